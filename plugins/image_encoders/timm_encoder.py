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

from .common import (
    RANDOM_INIT_SEED,
    RANDOM_INIT_WORDS,
    autocast_context,
    file_sha256,
    image_paths,
    is_offline,
    iter_image_batches,
    local_weights_file,
    looks_like_path,
    seeded_init,
    weights_problem,
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
    def __init__(self, model: str, *, weights: str = "default", output: str = "embedding", normalize: bool = False,
                 cache_dir: str = "", name: str = ""):
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
        self.random_init = weights.lower() in RANDOM_INIT_WORDS
        kwargs: dict[str, Any] = {"num_classes": 0}
        full = model
        if self.random_init:
            identity, pretrained = f"random-init:seed{RANDOM_INIT_SEED}", False
        elif looks_like_path(weights) or Path(weights).expanduser().is_file():
            path = local_weights_file(weights, where)
            identity, pretrained = f"sha256:{file_sha256(path)}", True
            kwargs["pretrained_cfg_overlay"] = {"file": str(path)}
        else:
            full = model if weights == "default" or "." in model else f"{model}.{weights}"
            if not timm.is_model_pretrained(full.split(".")[0]) or (
                "." in full and full not in timm.list_pretrained(full)
            ):
                raise WeightsError(f'{where}: timm has no pretrained weights {full!r} (a file path, or weights = "none")')
            from timm.models import get_pretrained_cfg

            cfg = get_pretrained_cfg(full)
            cfg = cfg.to_dict() if cfg is not None and hasattr(cfg, "to_dict") else dict(cfg or {})
            path = _hub_file(cfg, cache_dir)
            if path is None and is_offline():
                raise WeightsError(
                    f"{where}: weights for {full} are not cached and the network is off; missing "
                    f"hf://{cfg.get('hf_hub_id', '?')}: download it and set weights = \"path/to/file\", or weights = \"none\""
                )
            identity = f"sha256:{file_sha256(path)}" if path else f"timm:{full}"
            pretrained = True
            if path is not None:
                kwargs["pretrained_cfg_overlay"] = {"file": str(path)}
        try:
            with seeded_init(self.random_init):  # "random init" is one model, the same on every machine
                net = timm.create_model(full, pretrained=pretrained, cache_dir=cache_dir or None, **kwargs)
        except Exception as exc:  # noqa: BLE001 - unreadable, unsafe or mismatched weights: one line naming the file
            raise WeightsError(weights_problem(where, path, weights, full, exc)) from None
        self.model = net.eval().requires_grad_(False)
        self.model_name = full
        self.weights, self.weights_identity = weights, identity
        self.normalize = bool(normalize)
        data_cfg = resolve_data_config({}, model=self.model)
        self.preprocess = create_transform(**data_cfg, is_training=False)
        self.dim = int(self.model.num_features)
        self.fingerprint = "timm:" + full + ":" + stable_hash({
            "library": "timm", "model": full, "weights": identity, "preprocess": repr(self.preprocess),
            "output": "embedding", "normalize": self.normalize,
        })
        self._device = "cpu"

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "name": self.name, "library": "timm", "model": self.model_name,
                "weights": self.weights, "weights_identity": self.weights_identity, "output": "embedding",
                "normalize": self.normalize, "preprocess": repr(self.preprocess)}

    def encode(self, images, *, device: str = "cpu", batch_size: int = 64, progress: bool = True) -> np.ndarray:
        import torch
        from tqdm.auto import tqdm

        if device != self._device:
            self.model.to(device)
            self._device = device
        paths = image_paths(images)
        out = np.empty((len(paths), self.dim), dtype=np.float32)
        row = 0
        with torch.inference_mode(), autocast_context(device), tqdm(
            total=len(paths), disable=not progress, desc=f"embedding {images.name}", unit="img"
        ) as bar:
            for batch in iter_image_batches(paths, self.preprocess, batch_size):
                emb = self.model(batch.to(device, non_blocking=True)).float()
                if self.normalize:
                    emb = torch.nn.functional.normalize(emb, dim=-1)
                out[row : row + len(emb)] = emb.cpu().numpy()
                row += len(emb)
                bar.update(len(emb))
        return out
