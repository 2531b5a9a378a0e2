"""open_clip image encoders (``clip-vit-b-32``, ``open_clip:<model>/<pretrained>``).

Weights, in order (open_clip's own resolution, made offline-safe and loud):

1. ``weights = "none"`` (or ``"random"``): explicit random init; ``random_init = True`` is recorded with results.
2. an existing file path: loaded as an open_clip / OpenAI checkpoint (``weights_only`` loading).
3. a pretrained tag (``"openai"``, ``"laion2b_s32b_b79k"``): taken from the Hugging Face cache or open_clip's
   url cache when present; otherwise downloaded unless offline. When it cannot be had, one line names the
   missing file and how to provide it. There is never a silent random init.

``output``: ``"embedding"`` (CLIP's joint image embedding, after ``ln_post`` and the projection),
``"cls"`` (the CLS token of the last transformer block, before ``ln_post`` and the projection: 768-d for
ViT-B/32, what the seed trains against) or ``"block:N"`` (the CLS token after transformer block N, 0-based;
negative counts from the end). ``normalize = true`` L2-normalises rows.

``fingerprint`` = model + weights identity (sha256 of the weights file, or "random-init") + quick_gelu +
preprocessing (the eval transform's repr) + output + normalize.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from eegbench.errors import EegbenchError, WeightsError
from eegbench.interfaces import ImageEncoder, stable_hash
from eegbench.paths import file_digest

from .common import (
    autocast_context,
    build_frozen,
    choose_weights,
    encode_images,
    is_offline,
    parse_output,
)


def resolve_tag_file(model: str, tag: str, cache_dir: str, where: str) -> Path:
    """Local file for open_clip's pretrained ``tag`` of ``model``: from a cache, or downloaded when online."""
    import open_clip
    from open_clip import pretrained as ocp

    cfg = ocp.get_pretrained_cfg(model, tag)
    if not cfg:
        tags = ", ".join(open_clip.list_pretrained_tags_by_model(model)) or "none"
        raise WeightsError(
            f"{where}: {model} has no pretrained tag {tag!r} "
            f'(tags: {tags}; or a checkpoint file path, or weights = "none")'
        )
    if "file" in cfg:
        return Path(cfg["file"])
    hub = cfg.get("hf_hub", "")
    url = cfg.get("url", "")
    candidates: list[str] = []
    if hub:
        repo, filename = os.path.split(hub)
        names = [filename] if filename else []
        names = [n for f in (names or ["open_clip_pytorch_model.bin"]) for n in (*ocp._get_safe_alternatives(f), f)]
        try:
            from huggingface_hub import try_to_load_from_cache

            for name in names:
                found = try_to_load_from_cache(repo, name, cache_dir=cache_dir or None)
                if isinstance(found, str) and os.path.isfile(found):
                    return Path(found)
        except ImportError:
            pass
        candidates.append(f"hf://{repo}/{names[-1]}")
    if url:
        url_cache = Path(cache_dir or os.path.expanduser("~/.cache/clip")) / os.path.basename(url)
        if url_cache.is_file():
            return url_cache
        candidates.append(url)
    missing = " or ".join(candidates) or "(no source)"
    how = 'download it and set weights = "path/to/file", or weights = "none" for an explicit random init'
    if is_offline():
        raise WeightsError(
            f"{where}: weights {tag!r} for {model} are not cached and the network is off; missing {missing}: {how}"
        )
    try:
        target = ocp.download_pretrained(cfg, cache_dir=cache_dir or None)
    except Exception as exc:
        raise WeightsError(
            f"{where}: weights {tag!r} for {model} could not be downloaded ({type(exc).__name__}); "
            f"missing {missing}: {how}"
        ) from None
    if not target or not os.path.isfile(target):
        raise WeightsError(f"{where}: weights {tag!r} for {model} could not be found; missing {missing}: {how}")
    return Path(target)


class OpenClipEncoder(ImageEncoder):
    """A frozen open_clip model in eval mode. See the module docstring for weights and outputs."""

    def __init__(
        self,
        model: str,
        weights: str,
        *,
        output: str = "embedding",
        quick_gelu: Any = "auto",
        normalize: bool = False,
        cache_dir: str = "",
        default_tag: str = "",
        name: str = "",
    ):
        import open_clip

        self.name = name or f"open_clip:{model}/{weights}"
        where = f"image encoder {self.name}"
        if model not in open_clip.list_models():
            raise EegbenchError(f"{where}: open_clip has no model {model!r} (see open_clip.list_models())")
        self.model_name = model
        self.output, self.block = parse_output(output, where)
        self.normalize = bool(normalize)
        weights = str(weights)
        choice = choose_weights(weights, where)
        self.random_init, path, identity = choice.random_init, choice.path, choice.identity
        tag = ""
        if path is not None:
            tag = default_tag  # the file is taken to hold these weights (for QuickGELU and preprocessing)
        elif not self.random_init:
            tag = weights
            path = resolve_tag_file(model, tag, cache_dir, where)
            identity = f"sha256:{file_digest(path)}"
        pcfg = open_clip.pretrained.get_pretrained_cfg(model, tag) if tag else {}
        if quick_gelu == "auto":
            quick_gelu = bool(pcfg.get("quick_gelu", False))
        self.quick_gelu = bool(quick_gelu)
        preprocess_kw = {}
        for key, kw in (
            ("mean", "image_mean"),
            ("std", "image_std"),
            ("interpolation", "image_interpolation"),
            ("resize_mode", "image_resize_mode"),
        ):
            if key in pcfg:
                preprocess_kw[kw] = pcfg[key]
        model_obj, _, preprocess = build_frozen(
            lambda: open_clip.create_model_and_transforms(
                model,
                pretrained=str(path) if path is not None else None,
                force_quick_gelu=self.quick_gelu,
                cache_dir=cache_dir or None,
                weights_only=True,
                **preprocess_kw,
            ),
            random_init=self.random_init,
            where=where,
            path=path,
            weights=weights,
            model=model,
        )
        self.model = model_obj.eval().requires_grad_(False)
        self.preprocess = preprocess
        self.weights = weights
        self.weights_identity = identity
        visual = self.model.visual
        if self.output != "embedding" and not (
            hasattr(visual, "forward_intermediates") and hasattr(visual, "transformer")
        ):
            raise EegbenchError(f'{where}: output = {output!r} needs a ViT image tower; use output = "embedding"')
        if self.output == "embedding":
            self.dim = int(getattr(visual, "output_dim", 0) or self._probe_dim())
        else:
            depth = len(visual.transformer.resblocks)
            index = depth - 1 if self.output == "cls" else self.block
            if not -depth <= index < depth:
                raise EegbenchError(
                    f"{where}: output block:{self.block} is out of range (the model has {depth} blocks)"
                )
            self.block_index = index % depth
            self.dim = int(visual.transformer.width)
        self.fingerprint = self._fingerprint()
        self._device = "cpu"

    # -- identity -----------------------------------------------------------------------------------------
    def _fingerprint(self) -> str:
        fields = {
            "library": "open_clip",
            "model": self.model_name,
            "weights": self.weights_identity,
            "quick_gelu": self.quick_gelu,
            "preprocess": repr(self.preprocess),
            "output": self.output if self.output != "block" else f"block:{self.block_index}",
            "normalize": self.normalize,
        }
        return f"open_clip:{self.model_name}:{stable_hash(fields)}"

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "name": self.name,
            "library": "open_clip",
            "model": self.model_name,
            "weights": self.weights,
            "weights_identity": self.weights_identity,
            "quick_gelu": self.quick_gelu,
            "output": self.output if self.output != "block" else f"block:{self.block_index}",
            "normalize": self.normalize,
            "preprocess": repr(self.preprocess),
        }

    # -- encoding -------------------------------------------------------------------------------------------
    def _probe_dim(self) -> int:
        import torch

        size = self.model.visual.image_size
        size = size if isinstance(size, (tuple, list)) else (size, size)
        with torch.no_grad():
            return int(self.model.encode_image(torch.zeros(1, 3, *size)).shape[-1])

    def _to(self, device: str) -> None:
        if device != self._device:
            self.model.to(device)
            self._device = device

    def encode_tensor(self, x):
        """Embed a preprocessed batch ``[b, 3, H, W]`` (already on the model's device)."""
        import torch

        if self.output == "embedding":
            out = self.model.encode_image(x)
        else:
            feats = self.model.visual.forward_intermediates(
                x,
                indices=[self.block_index],
                stop_early=True,
                intermediates_only=True,
                output_fmt="NLC",
                output_extra_tokens=True,
            )
            out = feats["image_intermediates_prefix"][0][:, 0]
        out = out.float()
        if self.normalize:
            out = torch.nn.functional.normalize(out, dim=-1)
        return out

    def encode(self, images, *, device: str = "cpu", batch_size: int = 64, progress: bool = True) -> np.ndarray:
        self._to(device)
        return encode_images(
            images,
            self.preprocess,
            self.encode_tensor,
            self.dim,
            device=device,
            batch_size=batch_size,
            progress=progress,
        )

    def encode_text(self, prompts: list[str], *, device: str | None = None, batch_size: int = 256) -> np.ndarray:
        """CLIP text embeddings (joint space, float32 ``[len(prompts), d]``; L2-normalised if ``normalize``)."""
        import open_clip
        import torch

        device = device or self._device
        self._to(device)
        tokenizer = open_clip.get_tokenizer(self.model_name)
        chunks = []
        with torch.inference_mode(), autocast_context(device):
            for i in range(0, len(prompts), batch_size):
                tokens = tokenizer(list(prompts[i : i + batch_size])).to(device)
                emb = self.model.encode_text(tokens).float()
                if self.normalize:
                    emb = torch.nn.functional.normalize(emb, dim=-1)
                chunks.append(emb.cpu().numpy())
        width = int(getattr(self.model, "text_projection", torch.empty(0, 0)).shape[-1]) if not chunks else 0
        return np.concatenate(chunks) if chunks else np.zeros((0, width), dtype=np.float32)
