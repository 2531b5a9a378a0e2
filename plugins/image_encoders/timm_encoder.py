"""``timm:<model>``: a frozen timm image model's pooled (pre-logits) features.

Weights: ``"default"`` (timm's default pretrained tag, from the Hugging Face cache or downloaded when
online; offline and not cached → one line naming the hub file), a tag (``"in1k"`` → ``<model>.in1k``), a local
file path (timm's ``pretrained_cfg_overlay = {"file": path}``), or ``"none"`` (explicit random init).
Preprocessing is timm's own eval transform for the model's pretrained config. ``output = "embedding"`` only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from eegbench.errors import EegbenchError, WeightsError
from eegbench.interfaces import ImageEncoder, stable_hash
from eegbench.paths import file_digest

from .common import (
    build_frozen,
    choose_weights,
    encode_images,
    is_offline,
)


def _hub_file(cfg: dict, cache_dir: str) -> Path | None:
    repo = cfg.get("hf_hub_id")
    if not repo:
        return None
    from huggingface_hub import try_to_load_from_cache

    names = [cfg["hf_hub_filename"]] if cfg.get("hf_hub_filename") else ["model.safetensors", "pytorch_model.bin"]
    for name in names:
        found = try_to_load_from_cache(repo, name, cache_dir=cache_dir or None)
        if isinstance(found, str) and Path(found).is_file():
            return Path(found)
    return None


class TimmEncoder(ImageEncoder):
    def __init__(
        self,
        model: str,
        *,
        weights: str = "default",
        output: str = "embedding",
        normalize: bool = False,
        cache_dir: str = "",
        name: str = "",
    ):
        import timm
        from timm.data import create_transform, resolve_data_config

        self.name = name or f"timm:{model}"
        where = f"image encoder {self.name}"
        if output != "embedding":
            raise EegbenchError(f'{where}: timm encoders support output = "embedding" only, got {output!r}')
        arch = model.split(".", 1)[0]
        if not timm.is_model(arch):
            raise EegbenchError(f"{where}: timm has no model {arch!r} (see timm.list_models())")
        weights = str(weights)
        choice = choose_weights(weights, where)
        self.random_init, path, identity = choice.random_init, choice.path, choice.identity
        kwargs: dict[str, Any] = {"num_classes": 0}
        full = model
        pretrained = not self.random_init
        if path is not None:
            kwargs["pretrained_cfg_overlay"] = {"file": str(path)}
        elif not self.random_init:
            full = model if weights == "default" or "." in model else f"{model}.{weights}"
            if not timm.is_model_pretrained(full.split(".")[0]) or (
                "." in full and full not in timm.list_pretrained(full)
            ):
                raise WeightsError(
                    f'{where}: timm has no pretrained weights {full!r} (a file path, or weights = "none")'
                )
            from timm.models import get_pretrained_cfg

            cfg = get_pretrained_cfg(full)
            cfg = cfg.to_dict() if cfg is not None and hasattr(cfg, "to_dict") else dict(cfg or {})
            path = _hub_file(cfg, cache_dir)
            if path is None and is_offline():
                raise WeightsError(
                    f"{where}: weights for {full} are not cached and the network is off; missing "
                    f'hf://{cfg.get("hf_hub_id", "?")}: download it and set weights = "path/to/file", '
                    'or weights = "none"'
                )
            identity = f"sha256:{file_digest(path)}" if path else f"timm:{full}"
            if path is not None:
                kwargs["pretrained_cfg_overlay"] = {"file": str(path)}
        net = build_frozen(
            lambda: timm.create_model(full, pretrained=pretrained, cache_dir=cache_dir or None, **kwargs),
            random_init=self.random_init,
            where=where,
            path=path,
            weights=weights,
            model=full,
        )
        self.model = net.eval().requires_grad_(False)
        self.model_name = full
        self.weights, self.weights_identity = weights, identity
        self.normalize = bool(normalize)
        data_cfg = resolve_data_config({}, model=self.model)
        self.preprocess = create_transform(**data_cfg, is_training=False)
        self.dim = int(self.model.num_features)
        self.fingerprint = (
            "timm:"
            + full
            + ":"
            + stable_hash(
                {
                    "library": "timm",
                    "model": full,
                    "weights": identity,
                    "preprocess": repr(self.preprocess),
                    "output": "embedding",
                    "normalize": self.normalize,
                }
            )
        )
        self._device = "cpu"

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "name": self.name,
            "library": "timm",
            "model": self.model_name,
            "weights": self.weights,
            "weights_identity": self.weights_identity,
            "output": "embedding",
            "normalize": self.normalize,
            "preprocess": repr(self.preprocess),
        }

    def _embed(self, batch):
        import torch

        emb = self.model(batch).float()
        return torch.nn.functional.normalize(emb, dim=-1) if self.normalize else emb

    def encode(self, images, *, device: str = "cpu", batch_size: int = 64, progress: bool = True) -> np.ndarray:
        if device != self._device:
            self.model.to(device)
            self._device = device
        return encode_images(
            images, self.preprocess, self._embed, self.dim, device=device, batch_size=batch_size, progress=progress
        )
