"""Image embeddings: computed once per (encoder fingerprint, image-set fingerprint), cached with provenance.

A cache entry (``eegbench.execution.cache.Cache("embeddings")``) holds ``embeddings.npy`` (float32 ``[n, dim]``, row i =
image i of the set) and ``meta.json`` with the provenance manifest: the image ids in row order, the encoder's
``describe()``, the image set's name and fingerprint. A reordered image set has another fingerprint, and a
changed model, weights file, preprocessing or output choice another encoder fingerprint: both are misses.

User-provided embedding files (third-party feature files are a known source of silent errors: rows in
another order, a missing image, a different model's width, NaNs) go through :func:`load_embedding_file`,
which serves rows by image id and checks count, ids, dimension, finiteness and (optionally) normalisation.

CLI: ``eegbench embed --dataset NAME [--root DIR] --image-encoder NAME [--param key=value ...]
[--split train,test] [--device DEV] [--batch-size N] [--cache-dir DIR]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from eegbench.errors import DataError, EegbenchError
from eegbench.execution.cache import Cache, CacheEntry
from eegbench.interfaces import to_jsonable

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


def cached_entry(encoder: Any, images: Any, cache_root: str | os.PathLike | None = None) -> CacheEntry | None:
    """The published cache entry for (encoder, images), or None."""
    encoder = _bound(encoder, images)
    return Cache(NAMESPACE, cache_root).get(cache_fields(encoder, images))


def is_cached(encoder: Any, images: Any, cache_root: str | os.PathLike | None = None) -> bool:
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
    cache_root: str | os.PathLike | None = None,
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
            bad = [k for k, a in zip(keys, arrays) if not isinstance(a, np.ndarray)]
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
    path: str | os.PathLike, *, ids_key: str = "ids", embeddings_key: str = "embeddings"
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
            f"embedding file {str(path)!r}: {embeddings_key!r} has shape {emb.shape} for {len(ids)} ids (need [n_ids, dim])"
        )
    return ids, emb


def load_embedding_file(
    path: str | os.PathLike,
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
# CLI
# --------------------------------------------------------------------------------------------------
def add_commands(sub) -> None:
    """Register ``eegbench embed`` on the top-level subparsers."""
    p = sub.add_parser("embed", help="compute (and cache) image embeddings of a dataset's image sets")
    p.add_argument(
        "spec",
        nargs="?",
        help="a benchmark spec: embed its dataset's images with its image encoder (each variant's, once)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        dest="overrides",
        metavar="KEY=VALUE",
        help="with SPEC: override a spec value, as for `eegbench run`; without: an image-encoder "
        "parameter (repeatable; values parsed as TOML, else kept as text)",
    )
    p.add_argument("--dataset", help="dataset name (eegbench list dataset), without SPEC")
    p.add_argument("--root", default=None, help="dataset root folder (default: the dataset's own)")
    p.add_argument(
        "--image-encoder",
        dest="image_encoder",
        help="image-encoder name (eegbench list image-encoder), or a family form such as open_clip:MODEL/TAG",
    )
    # deprecated spelling of an image-encoder parameter (before `--set` was the one override flag); hidden
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help=argparse.SUPPRESS)
    p.add_argument("--split", default="train,test", help="comma-separated splits (default train,test)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 or auto (default)")
    p.add_argument("--batch-size", type=int, default=64, dest="batch_size", help="images per forward pass (default 64)")
    p.add_argument(
        "--cache",
        metavar="DIR",
        default=None,
        dest="cache_dir",
        help="cache directory (default: $EEGBENCH_CACHE or the user cache dir), as for `eegbench run`",
    )
    # deprecated spelling of --cache (the flag `run` uses); hidden
    p.add_argument("--cache-dir", default=None, dest="cache_dir_deprecated", help=argparse.SUPPRESS)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_embed)


def parse_params(items: Sequence[str]) -> dict[str, Any]:
    """``["output=x", "normalize=true"]`` → ``{"output": "x", "normalize": True}`` (TOML values, else text)."""
    from eegbench.planning.spec import parse_value

    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise EegbenchError(f"--set {item!r} must look like key=value")
        out[key] = parse_value(raw)
    return out


def cmd_embed(args: argparse.Namespace) -> int:
    from eegbench.registry import create

    if args.cache_dir_deprecated:
        print("eegbench: --cache-dir is deprecated; use --cache", file=sys.stderr)
        args.cache_dir = args.cache_dir or args.cache_dir_deprecated
    if args.param:
        print(
            "eegbench: --param is deprecated; use --set (without a SPEC it sets an image-encoder parameter)",
            file=sys.stderr,
        )
    splits = [s.strip() for s in args.split.split(",") if s.strip()]
    for s in splits:
        if s not in ("train", "test"):
            raise EegbenchError(f"--split {s!r}: splits are train and test")
    if args.spec:
        if args.dataset or args.image_encoder:
            raise EegbenchError("give either SPEC or --dataset/--image-encoder, not both")
        from eegbench.planning.spec import expand_variants, load_spec

        spec = load_spec(args.spec, args.overrides)
        dataset_kw = dict(spec.dataset.params)
        if args.root:
            dataset_kw["root"] = args.root
        dataset = create("dataset", spec.dataset.name, **dataset_kw)
        # every image encoder the spec's variants use (the variants share the dataset), each once
        wanted: dict[str, tuple[str, dict[str, Any]]] = {}
        for _, one in expand_variants(spec):
            params = {**one.image_encoder.params, **parse_params(args.param)}
            wanted.setdefault(
                json.dumps([one.image_encoder.name, params], sort_keys=True, default=str),
                (one.image_encoder.name, params),
            )
        encoders = [(name, create("image-encoder", name, **params)) for name, params in wanted.values()]
    else:
        if not (args.dataset and args.image_encoder):
            raise EegbenchError("eegbench embed needs a SPEC, or both --dataset and --image-encoder")
        dataset_kw = {"root": args.root} if args.root else {}
        dataset = create("dataset", args.dataset, **dataset_kw)
        encoders = [
            (
                args.image_encoder,
                create("image-encoder", args.image_encoder, **parse_params([*args.overrides, *args.param])),
            )
        ]
    if callable(getattr(dataset, "ensure_available", None)):  # the twin is generated, a missing release named
        dataset.ensure_available()
    from eegbench.execution.resources import resolve_device

    device = str(resolve_device(args.device))
    for name, encoder in encoders:
        lead = f"{name} " if len(encoders) > 1 else ""  # several encoders (variants): each line names its own
        for split in splits:
            images = dataset.image_set(split)
            hit = is_cached(encoder, images, args.cache_dir)
            emb = embed_images(
                encoder,
                images,
                cache_root=args.cache_dir,
                device=device,
                batch_size=args.batch_size,
                progress=not args.quiet,
            )
            entry = cached_entry(encoder, images, args.cache_dir)
            status = "cached" if hit else "computed"
            print(f"{lead}{split}: {emb.shape[0]} x {emb.shape[1]} ({status}) {entry.path if entry else ''}".rstrip())
    return 0
