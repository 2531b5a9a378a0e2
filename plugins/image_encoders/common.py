"""Shared pieces of the image encoders: weights files, their identity, parallel image decoding.

Imports only the standard library at module level; torch / PIL are imported inside the functions that
need them.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections import deque
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from eegbench.errors import DataError, EegbenchError

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
    return os.sep in value or "/" in value or value.startswith((".", "~")) or Path(value).suffix in (
        ".pt", ".pth", ".bin", ".safetensors", ".ckpt", ".npz",
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
    from eegbench.errors import load_failure

    what = load_failure(exc)
    if path is None:
        return f"{where}: cannot build {model} with weights {weights!r}: the file is {what}"
    if what.startswith("not loadable") and any(w in str(exc) for w in ("size mismatch", "Missing key", "Unexpected key")):
        what = f"not weights of {model} ({str(exc).strip().splitlines()[0][:200]}); give weights for this model"
    return f"{where}: weights file {str(path)!r} is {what}"


def file_sha256(path: str | os.PathLike, *, memo: bool = True) -> str:
    """sha256 of a file, memoised in the cache directory by (path, size, mtime) so multi-GB weights are
    hashed once."""
    path = Path(path).resolve()
    st = path.stat()
    key = f"{path}|{st.st_size}|{st.st_mtime_ns}"
    memo_file = None
    if memo:
        from eegbench.paths import cache_dir

        memo_file = cache_dir() / "weights-sha256.json"
        try:
            known = json.loads(memo_file.read_text())
            if key in known:
                return known[key]
        except (OSError, ValueError):
            known = {}
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    digest = h.hexdigest()
    if memo_file is not None:
        try:
            memo_file.parent.mkdir(parents=True, exist_ok=True)
            known[key] = digest
            fd, tmp = tempfile.mkstemp(dir=memo_file.parent, prefix=".weights-sha256.")
            with os.fdopen(fd, "w") as f:
                json.dump(known, f)
            os.replace(tmp, memo_file)
        except OSError:
            pass  # the memo is an optimisation only
    return digest


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
    from eegbench.resources import process_threads

    return max(1, min(8, process_threads()))


def iter_image_batches(paths: Sequence[Path], transform: Callable[[Any], Any], batch_size: int,
                       workers: int | None = None, prefetch: int = 2) -> Iterator[Any]:
    """Yield ``torch`` batches ``[b, 3, H, W]`` in order, decoding + preprocessing in a thread pool.

    Up to ``prefetch`` batches are decoded ahead while the encoder runs on the current one, so JPEG
    decoding stays off the encoder's critical path; memory is bounded by ``prefetch + 1`` batches.
    """
    import torch
    from concurrent.futures import ThreadPoolExecutor

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
