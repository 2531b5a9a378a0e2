"""On-disk cache entries: written to a temporary folder, published by an atomic rename.

An entry is a folder ``<cache>/<namespace>/<key>/`` holding arrays (``.npy``, memory-mappable) and a
``meta.json`` sidecar recording what produced it. Writers build the entry in a sibling temporary folder and
``rename`` it into place (MOABB's "lock file last" idea, made atomic), so a reader sees a complete entry or
none, a crash leaves no half entry, and two processes computing the same entry both succeed (the loser's
copy is discarded).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from eegbench.errors import EegbenchError
from eegbench.interfaces import canonical_json, stable_hash
from eegbench.paths import cache_dir

META = "meta.json"


class CacheEntry:
    """A published (complete) cache entry."""

    def __init__(self, path: Path):
        self.path = path

    @property
    def meta(self) -> dict[str, Any]:
        meta: dict[str, Any] = json.loads((self.path / META).read_text())
        return meta

    def array(self, name: str, mmap: bool = True) -> np.ndarray:
        """A stored array, memory-mapped read-only by default (plain ``.npy``, never pickled)."""
        array: np.ndarray = np.load(self.path / f"{name}.npy", mmap_mode="r" if mmap else None, allow_pickle=False)
        return array


class Cache:
    """``Cache(namespace).get(key_fields)`` / ``.put(key_fields, arrays, meta)``."""

    def __init__(self, namespace: str, root: str | os.PathLike[str] | None = None):
        self.root = cache_dir(root) / namespace

    def key(self, fields: Mapping[str, Any]) -> str:
        return stable_hash(fields, length=24)

    def get(self, fields: Mapping[str, Any]) -> CacheEntry | None:
        path = self.root / self.key(fields)
        return CacheEntry(path) if (path / META).is_file() else None

    def put(
        self, fields: Mapping[str, Any], arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any] | None = None
    ) -> CacheEntry:
        key = self.key(fields)
        final = self.root / key
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{key}.{uuid.uuid4().hex[:8]}.", dir=self.root))
        except OSError as exc:
            raise EegbenchError(
                f"cannot write to cache directory {self.root}: {exc} (set EEGBENCH_CACHE to a writable folder)"
            ) from exc
        try:
            for name, arr in arrays.items():
                np.save(tmp / f"{name}.npy", np.ascontiguousarray(arr), allow_pickle=False)
            record = {"key_fields": json.loads(canonical_json(fields)), **dict(meta or {})}
            # the sidecar is written last: an entry without it is never read
            (tmp / META).write_text(json.dumps(record, indent=2, sort_keys=True, default=str))
            try:
                os.rename(tmp, final)
            except OSError:
                if (final / META).is_file():  # another process published the same entry first
                    shutil.rmtree(tmp, ignore_errors=True)
                else:
                    shutil.rmtree(final, ignore_errors=True)  # an incomplete leftover
                    os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return CacheEntry(final)


#: namespace of the content-digest memo (one small JSON per file, keyed by its resolved path)
