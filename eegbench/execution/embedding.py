"""Image embeddings: computed once per (encoder fingerprint, image-set fingerprint), cached with provenance.

A cache entry (``eegbench.execution.cache.Cache("embeddings")``) holds ``embeddings.npy`` (float32 ``[n, dim]``, row i =
image i of the set) and ``meta.json`` with the provenance manifest: the image ids in row order, the encoder's
``describe()``, the image set's name and fingerprint. A reordered image set has another fingerprint, and a
changed model, weights file, preprocessing or output choice another encoder fingerprint: both are misses.

User-provided embedding files (third-party feature files are a known source of silent errors: rows in
another order, a missing image, a different model's width, NaNs) go through :func:`load_embedding_file`,
which serves rows by image id and checks count, ids, dimension, finiteness and (optionally) normalisation.

:func:`dataset_and_encoders` and :func:`embed_splits` are ``eegbench embed SPEC`` and ``eegbench embed --dataset
NAME --image-encoder NAME`` (their parser: :mod:`eegbench.cli.embed`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from eegbench.errors import DataError, EegbenchError
from eegbench.execution.cache import Cache, CacheEntry
from eegbench.interfaces import Dataset, ImageEncoder, Split, to_jsonable

NAMESPACE = "embeddings"
#: tolerance of the unit-norm check on user files
NORM_TOL = 1e-3


def cache_fields(encoder: Any, images: Any) -> dict[str, Any]:
    """The cache key: encoder fingerprint × image-set fingerprint."""
    return {"encoder": str(encoder.fingerprint), "images": images.fingerprint()}


def _bound(encoder: Any, images: Any) -> Any:
    """Encoders whose identity depends on the image set (relative file paths) bind to it first."""
    bind = getattr(encoder, "for_images", None)
    return bind(images) if callable(bind) else encoder


def cached_entry(encoder: Any, images: Any, cache_root: str | os.PathLike[str] | None = None) -> CacheEntry | None:
    """The published cache entry for (encoder, images), or None."""
    encoder = _bound(encoder, images)
    return Cache(NAMESPACE, cache_root).get(cache_fields(encoder, images))


def is_cached(encoder: Any, images: Any, cache_root: str | os.PathLike[str] | None = None) -> bool:
    """True when :func:`embed_images` would read the cache instead of running the encoder."""
    entry = cached_entry(encoder, images, cache_root)
    return entry is not None and _entry_matches(entry, encoder, images)


def _entry_matches(entry: CacheEntry, encoder: Any, images: Any) -> bool:
    meta = entry.meta
    return list(meta.get("ids", [])) == list(images.ids) and int(meta.get("dim", -1)) == int(
        _bound(encoder, images).dim
    )


def embed_images(
    encoder: Any,
    images: Any,
    *,
    cache_root: str | os.PathLike[str] | None = None,
    device: str = "cpu",
    batch_size: int = 64,
    progress: bool = True,
) -> np.ndarray:
    """float32 ``[len(images), dim]`` embeddings of ``images`` (row i = ``images.ids[i]``), cached.

    Args:
        encoder: an :class:`~eegbench.interfaces.ImageEncoder`.
        images: an :class:`~eegbench.interfaces.ImageSet`.
        cache_root: cache directory (default ``EEGBENCH_CACHE`` / the per-user cache).
    Returns:
        a read-only memory map of the cached array when it was cached, else the fresh array.
    """
    encoder = _bound(encoder, images)
    cache = Cache(NAMESPACE, cache_root)
    fields = cache_fields(encoder, images)
    entry = cache.get(fields)
    if entry is not None and _entry_matches(entry, encoder, images):
        return entry.array("embeddings")
    emb = np.asarray(encoder.encode(images, device=device, batch_size=batch_size, progress=progress))
    where = f"image encoder {getattr(encoder, 'name', encoder.fingerprint)}"
    emb = validate_embeddings(emb, images, dim=int(encoder.dim), where=where)
    meta = {
        "ids": list(images.ids),
        "image_set": images.name,
        "image_set_fingerprint": images.fingerprint(),
        "encoder": to_jsonable(encoder.describe()),
        "dim": int(emb.shape[1]),
        "n": int(emb.shape[0]),
        "dtype": "float32",
        "device": str(device),  # provenance: GPU encoders run under fp16 autocast, CPU in fp32
    }
    cache.put(fields, {"embeddings": emb}, meta)
    return emb


# --------------------------------------------------------------------------------------------------
# validation of embedding matrices and user files
# --------------------------------------------------------------------------------------------------
def validate_embeddings(
    emb: np.ndarray, images: Any, *, dim: int | None = None, normalized: bool | None = None, where: str = "embeddings"
) -> np.ndarray:
    """Check an embedding matrix against an image set; return it as contiguous float32.

    Checks: 2-D; one row per image; width ``dim`` when given; every value finite; no all-zero row (a
    missing image written as zeros); unit L2 norm when ``normalized`` is True.
    """
    emb = np.asarray(emb)
    if emb.ndim != 2:
        raise DataError(f"{where}: embeddings must be 2-D [n_images, dim], got shape {emb.shape}")
    if len(emb) != len(images):
        raise DataError(f"{where}: {len(emb)} embedding rows for {len(images)} images of {images.name!r}")
    if dim is not None and emb.shape[1] != dim:
        raise DataError(f"{where}: embeddings have dim {emb.shape[1]}, expected {dim}")
    if not np.issubdtype(emb.dtype, np.floating):
        raise DataError(f"{where}: embeddings must be floating point, got {emb.dtype}")
    emb = np.ascontiguousarray(emb, dtype=np.float32)
    bad = ~np.isfinite(emb).all(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(f"{where}: {int(bad.sum())} rows hold NaN or inf (first: row {i}, image {images.ids[i]!r})")
    norms = np.linalg.norm(emb, axis=1)
    zero = norms == 0
    if zero.any():
        i = int(np.flatnonzero(zero)[0])
        raise DataError(f"{where}: {int(zero.sum())} rows are all zero (first: row {i}, image {images.ids[i]!r})")
    if normalized is True:
        off = np.abs(norms - 1.0) > NORM_TOL
        if off.any():
            i = int(np.flatnonzero(off)[0])
            raise DataError(
                f"{where}: declared L2-normalised but {int(off.sum())} rows are not unit norm "
                f'(row {i} has norm {norms[i]:.4g}); set normalized = "any" or fix the file'
            )
    return emb


def _read_npz_arrays(path: Path, keys: Sequence[str]) -> list[np.ndarray]:
    """The arrays ``keys`` of a ``.npz`` read without pickle; every way the file can be unreadable is one line."""
    import zipfile
    import zlib

    where = f"embedding file {str(path)!r}"
    redo = "write it again with numpy.savez(path, ids=..., embeddings=...)"
    try:
        with open(path, "rb") as fh:
            magic = fh.read(6)
    except OSError as exc:
        raise DataError(f"{where} cannot be read ({exc.strerror or exc}); check its permissions") from None
    if magic.startswith(b"\x93NUMPY"):
        raise DataError(
            f"{where} is a single .npy array, not a .npz archive of arrays {', '.join(map(repr, keys))}; {redo}"
        )
    if not magic.startswith(b"PK"):
        what = "empty" if not magic else "not a zip archive"
        raise DataError(f"{where} is {what}, so not a .npz; {redo}")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in keys if k not in z.files]
            if missing:
                raise DataError(f"{where} has no array {missing[0]!r} (arrays: {', '.join(z.files) or 'none'})")
            arrays = [z[k] for k in keys]
            bad = [k for k, a in zip(keys, arrays, strict=True) if not isinstance(a, np.ndarray)]
            if bad:  # numpy hands back a member's raw bytes when it is not an .npy array
                raise DataError(f"{where}: member {bad[0]!r} is not a numpy array; {redo}")
            return arrays
    except DataError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc):  # object arrays need pickle, which could run code: refuse
            raise DataError(
                f"{where} holds object arrays that cannot be read without pickle; store ids as strings "
                "(numpy.str_) and embeddings as floats"
            ) from None
        raise DataError(f"{where} is not a valid .npz ({exc}); {redo}") from None
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, KeyError) as exc:
        raise DataError(f"{where} is truncated or corrupt ({type(exc).__name__}: {exc}); {redo}") from None


def read_embedding_file(
    path: str | os.PathLike[str], *, ids_key: str = "ids", embeddings_key: str = "embeddings"
) -> tuple[np.ndarray, np.ndarray]:
    """(ids, embeddings) from a ``.npz`` (arrays ``ids`` and ``embeddings``) or ``.safetensors`` file plus ids.

    ``.npz`` files are read without pickle; ``ids`` must be a unicode/bytes array.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"embedding file {str(path)!r} does not exist")
    if path.suffix != ".npz":
        raise DataError(f"embedding file {str(path)!r}: expected a .npz with arrays {ids_key!r} and {embeddings_key!r}")
    ids, emb = _read_npz_arrays(path, (ids_key, embeddings_key))
    if ids.dtype.kind == "S":
        ids = ids.astype(str)
    if ids.ndim != 1 or ids.dtype.kind != "U":
        raise DataError(
            f"embedding file {str(path)!r}: {ids_key!r} must be a 1-D array of strings, got {ids.dtype} {ids.shape}"
        )
    if emb.ndim != 2 or len(emb) != len(ids):
        raise DataError(
            f"embedding file {str(path)!r}: {embeddings_key!r} has shape {emb.shape} for {len(ids)} ids "
            "(need [n_ids, dim])"
        )
    return ids, emb


def load_embedding_file(
    path: str | os.PathLike[str],
    images: Any,
    *,
    dim: int | None = None,
    normalized: bool | None = None,
    ids_key: str = "ids",
    embeddings_key: str = "embeddings",
) -> np.ndarray:
    """Rows of a user-provided embedding file in ``images``' order, validated.

    The file may hold more images than the set (e.g. train and test together); every image of the set must
    be present exactly once. Checks: ids unique, every image id present, width ``dim``, finite values, no
    zero rows, unit norm when ``normalized`` is True.
    """
    ids, emb = read_embedding_file(path, ids_key=ids_key, embeddings_key=embeddings_key)
    where = f"embedding file {str(path)!r}"
    uniq, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        dup = uniq[counts > 1]
        raise DataError(f"{where}: {len(dup)} ids appear more than once (first: {str(dup[0])!r})")
    row_of = {str(i): r for r, i in enumerate(ids.tolist())}
    missing = [i for i in images.ids if i not in row_of]
    if missing:
        raise DataError(
            f"{where}: {len(missing)} of {len(images)} images of {images.name!r} have no row (first: {missing[0]!r})"
        )
    rows = np.fromiter((row_of[i] for i in images.ids), dtype=np.int64, count=len(images))
    return validate_embeddings(emb[rows], images, dim=dim, normalized=normalized, where=where)


# --------------------------------------------------------------------------------------------------
# a dataset's image sets, embedded (``eegbench embed``; its parser is eegbench.cli.embed)
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Embedded:
    """One image set embedded by one encoder: ``n`` x ``dim``, served from the cache or computed, and its entry."""

    encoder: str
    split: str
    n: int
    dim: int
    cached: bool
    path: Path | None


def dataset_and_encoders(
    spec: Any = None,
    overrides: Iterable[str] | Mapping[str, Any] | None = None,
    *,
    dataset: str | None = None,
    image_encoder: str | None = None,
    params: Mapping[str, Any] | None = None,
    root: str | os.PathLike[str] | None = None,
) -> tuple[Dataset, list[tuple[str, ImageEncoder]]]:
    """The dataset to embed and its image encoders, each ``(name, encoder)``, made ready (the synthetic twin
    generated, a missing release named).

    With a ``spec`` (path or parsed, with ``overrides`` as for ``eegbench run``): its dataset and every image
    encoder its variants use, each once, ``params`` set over each encoder's own. Without: the ``dataset`` and
    ``image_encoder`` named, the encoder built with ``params``. ``root`` overrides the dataset's root folder.
    """
    from eegbench.registry import create

    extra = dict(params or {})
    if spec is not None:
        from eegbench.planning.spec import expand_variants, load_spec

        loaded = load_spec(spec, overrides)
        dataset_kw = dict(loaded.dataset.params)
        if root:
            dataset_kw["root"] = root
        data = create("dataset", loaded.dataset.name, **dataset_kw)
        # every image encoder the spec's variants use (the variants share the dataset), each once
        wanted: dict[str, tuple[str, dict[str, Any]]] = {}
        for _, one in expand_variants(loaded):
            enc_params = {**one.image_encoder.params, **extra}
            wanted.setdefault(
                json.dumps([one.image_encoder.name, enc_params], sort_keys=True, default=str),
                (one.image_encoder.name, enc_params),
            )
        encoders = [(name, create("image-encoder", name, **enc_params)) for name, enc_params in wanted.values()]
    else:
        if not (dataset and image_encoder):
            raise EegbenchError("embedding needs a spec, or both a dataset and an image encoder")
        data = create("dataset", dataset, **({"root": root} if root else {}))
        encoders = [(image_encoder, create("image-encoder", image_encoder, **extra))]
    if callable(getattr(data, "ensure_available", None)):  # the twin is generated, a missing release named
        data.ensure_available()
    return data, encoders


def embed_splits(
    dataset: Dataset,
    encoders: Sequence[tuple[str, ImageEncoder]],
    splits: Sequence[Split] = ("train", "test"),
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    device: str = "auto",
    batch_size: int = 64,
    progress: bool = True,
) -> Iterator[Embedded]:
    """Embed each split's image set with each encoder (cached: computed once), yielding each as it is done."""
    from eegbench.execution.resources import resolve_device

    on = str(resolve_device(device))
    for name, encoder in encoders:
        for split in splits:
            images = dataset.image_set(split)
            hit = is_cached(encoder, images, cache_dir)
            emb = embed_images(
                encoder, images, cache_root=cache_dir, device=on, batch_size=batch_size, progress=progress
            )
            entry = cached_entry(encoder, images, cache_dir)
            yield Embedded(name, split, int(emb.shape[0]), int(emb.shape[1]), hit, entry.path if entry else None)
