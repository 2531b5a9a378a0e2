"""Shared pieces of the image encoders: weights files, their identity, parallel image decoding.

Imports only the standard library at module level; torch / PIL are imported inside the functions that
need them.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from eegbench.errors import DataError, EegbenchError, WeightsError
from eegbench.paths import file_digest

#: ``weights`` values meaning "explicit random initialisation".
RANDOM_INIT_WORDS = ("none", "random")


def is_offline() -> bool:
    """True when the Hugging Face hub is switched off (read at call time, not at library import)."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "EEGBENCH_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return True
    try:
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)
    except Exception:  # hub client missing: only the plain url download remains
        return False


def looks_like_path(value: str) -> bool:
    """A ``weights`` value naming a file rather than a tag."""
    return (
        os.sep in value
        or "/" in value
        or value.startswith((".", "~"))
        or Path(value).suffix
        in (
            ".pt",
            ".pth",
            ".bin",
            ".safetensors",
            ".ckpt",
            ".npz",
        )
    )


def local_weights_file(value: str, where: str) -> Path:
    """``weights = "path/to/file"`` → the existing file, or one line saying it is missing."""
    path = Path(value).expanduser()
    if not path.is_file():
        raise EegbenchError(
            f"{where}: weights file {str(path)!r} does not exist (give an existing checkpoint path, a weights tag, "
            f'or weights = "none" for an explicit random init)'
        )
    return path.resolve()


def weights_problem(where: str, path: Any, weights: str, model: str, exc: BaseException) -> str:
    """One line for weights that would not load: the file (or tag) and what went wrong, in words."""
    from eegbench.errors import first_line, load_failure

    what = load_failure(exc)
    if path is None:
        return f"{where}: cannot build {model} with weights {weights!r}: the file is {what}"
    if what.startswith("not loadable") and any(
        w in str(exc) for w in ("size mismatch", "Missing key", "Unexpected key")
    ):
        what = f"not weights of {model} ({first_line(exc, 200)}); give weights for this model"
    return f"{where}: weights file {str(path)!r} is {what}"


def image_paths(images: Any) -> list[Path]:
    """Absolute paths of an :class:`~eegbench.interfaces.ImageSet`'s files (relative ones resolve against its root)."""
    root = Path(images.root) if getattr(images, "root", "") else None
    out = []
    for f in images.files:
        p = Path(f)
        if not p.is_absolute() and root is not None:
            p = root / p
        out.append(p)
    return out


def load_image(path: Path):
    """Decode one image to RGB (PIL releases the GIL while decoding, so threads run in parallel)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except FileNotFoundError:
        raise DataError(f"image file {str(path)!r} is missing (check the dataset's image_set folder)") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"image file {str(path)!r} cannot be decoded ({exc}); re-download the image set") from None


def default_workers() -> int:
    from eegbench.execution.resources import process_threads

    return max(1, min(8, process_threads()))


def iter_image_batches(
    paths: Sequence[Path],
    transform: Callable[[Any], Any],
    batch_size: int,
    workers: int | None = None,
    prefetch: int = 2,
) -> Iterator[Any]:
    """Yield ``torch`` batches ``[b, 3, H, W]`` in order, decoding + preprocessing in a thread pool.

    Up to ``prefetch`` batches are decoded ahead while the encoder runs on the current one, so JPEG
    decoding stays off the encoder's critical path; memory is bounded by ``prefetch + 1`` batches.
    """
    from concurrent.futures import ThreadPoolExecutor

    import torch

    if batch_size < 1:
        raise EegbenchError(f"batch_size must be >= 1, got {batch_size}")
    batches = [paths[i : i + batch_size] for i in range(0, len(paths), batch_size)]

    def work(p: Path):
        return transform(load_image(p))

    with ThreadPoolExecutor(max_workers=workers or default_workers(), thread_name_prefix="eegbench-decode") as pool:
        pending: deque = deque()
        it = iter(batches)
        for batch in it:
            pending.append([pool.submit(work, p) for p in batch])
            if len(pending) > prefetch:
                break
        while pending:
            futures = pending.popleft()
            nxt = next(it, None)
            if nxt is not None:
                pending.append([pool.submit(work, p) for p in nxt])
            yield torch.stack([f.result() for f in futures])


def autocast_context(device: str):
    """fp16 autocast on CUDA (AMP), nothing elsewhere."""
    import contextlib

    import torch

    if str(device).startswith("cuda"):
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def parse_output(output: str, where: str) -> tuple[str, int | None]:
    """``"embedding"`` | ``"cls"`` | ``"block:N"`` → (mode, N)."""
    if output in ("embedding", "cls"):
        return output, None
    if isinstance(output, str) and output.startswith("block:"):
        try:
            return "block", int(output.split(":", 1)[1])
        except ValueError:
            pass
    raise EegbenchError(f'{where}: output must be "embedding", "cls" or "block:N" (N a block index), got {output!r}')


#: the seed of every explicit random initialisation (``weights = "none"``): part of the encoder's fingerprint
RANDOM_INIT_SEED = 0


@contextmanager
def seeded_init(active: bool):
    """Build under a fixed seed without disturbing the caller's random state (a no-op when not active)."""
    if not active:
        yield
        return
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_INIT_SEED)
        yield


# --------------------------------------------------------------------------------------------------
# what the open_clip and timm encoders share: choosing weights, building a frozen model, the encode loop
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WeightsChoice:
    """What a ``weights`` value names: an explicit random init, a local file (its content digest is the
    identity), or a library tag (``path`` and ``identity`` None: the library resolves it)."""

    random_init: bool
    path: Path | None = None
    identity: str | None = None


def choose_weights(weights: str, where: str) -> WeightsChoice:
    if weights.lower() in RANDOM_INIT_WORDS:
        return WeightsChoice(True, None, f"random-init:seed{RANDOM_INIT_SEED}")
    if looks_like_path(weights) or Path(weights).expanduser().is_file():
        path = local_weights_file(weights, where)
        return WeightsChoice(False, path, f"sha256:{file_digest(path)}")
    return WeightsChoice(False)


def build_frozen(
    create: Callable[[], Any], *, random_init: bool, where: str, path: Any, weights: str, model: str
) -> Any:
    """``create()`` under the seeded random init when asked; weights that would not load are one line
    naming the file (a :class:`~eegbench.errors.WeightsError`)."""
    try:
        with seeded_init(random_init):  # "random init" is one model, the same on every machine
            return create()
    except EegbenchError:
        raise
    except Exception as exc:
        raise WeightsError(weights_problem(where, path, weights, model, exc)) from None


def encode_images(
    images: Any,
    preprocess: Callable[[Any], Any],
    embed: Callable[[Any], Any],
    dim: int,
    *,
    device: str,
    batch_size: int,
    progress: bool,
) -> np.ndarray:
    """Embed every image of ``images`` (decoded in parallel, ``preprocess`` then ``embed`` on ``device``)
    into float32 ``[n, dim]``."""
    import torch
    from tqdm.auto import tqdm

    paths = image_paths(images)
    out = np.empty((len(paths), dim), dtype=np.float32)
    row = 0
    with (
        torch.inference_mode(),
        autocast_context(device),
        tqdm(total=len(paths), disable=not progress, desc=f"embedding {images.name}", unit="img") as bar,
    ):
        for batch in iter_image_batches(paths, preprocess, batch_size):
            emb = embed(batch.to(device, non_blocking=True))
            out[row : row + len(emb)] = emb.cpu().numpy()
            row += len(emb)
            bar.update(len(emb))
    return out
