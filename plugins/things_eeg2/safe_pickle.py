"""Read the release's pickled-dict ``.npy`` files without running arbitrary code.

The Things-EEG-2 release stores dicts with ``np.save(path, dict)``: an ``.npy`` header with dtype ``object``
followed by a pickle. Letting numpy unpickle it would execute whatever the pickle asks for, so this
module parses the header with numpy's own format reader and unpickles the payload with an unpickler that
resolves only the handful of globals an array/dict pickle needs (numpy's array reconstructors, ``ndarray``,
``dtype``, numpy scalars). Anything else — ``os.system``, ``builtins.eval``, any class — is refused before
it can be called, with one line naming the file.
"""
from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib import format as npy_format

from eegbench.errors import DataError

#: (module, name) pairs an np.save'd dict of arrays, lists, strings and numbers can reference. numpy moved
#: its internals from ``numpy.core`` to ``numpy._core`` in 2.0; files written by either are accepted.
_ALLOWED: frozenset[tuple[str, str]] = frozenset(
    {(mod, name) for mod in ("numpy.core.multiarray", "numpy._core.multiarray") for name in ("_reconstruct", "scalar")}
    | {(mod, "_frombuffer") for mod in ("numpy.core.numeric", "numpy._core.numeric")}
    | {("numpy", "ndarray"), ("numpy", "dtype")}
    # protocol-2 pickles spell bytes as _codecs.encode(str, "latin1"): a pure conversion
    | {("_codecs", "encode")}
    | {("builtins", n) for n in ("complex", "int", "float", "str", "bytes", "bytearray", "bool", "list", "dict", "tuple", "set", "frozenset")}
)


class UnsafePickleError(DataError):
    """A pickle that references something outside the allowed set (nothing was executed)."""


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: Any, source: str):
        super().__init__(file, encoding="latin1")
        self._source = source

    def find_class(self, module: str, name: str) -> Any:  # noqa: D401 - pickle's hook
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        # numpy dtype classes (numpy.dtypes.Float64DType) may appear in numpy>=2 pickles of dtypes
        if module == "numpy.dtypes" and name.endswith("DType"):
            return super().find_class(module, name)
        raise UnsafePickleError(
            f"{self._source}: refused to load: its pickle references {module}.{name}, which a data file never "
            "needs (only numpy arrays, dicts, lists, strings and numbers are read); delete it and download it again"
        )

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"{self._source}: refused to load: its pickle uses persistent ids (not a data file)")


def read_npy_header(fh: Any) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, fortran_order, dtype) of an open ``.npy`` file, leaving ``fh`` at the data's start."""
    version = npy_format.read_magic(fh)
    if version == (1, 0):
        return npy_format.read_array_header_1_0(fh)
    if version == (2, 0):
        return npy_format.read_array_header_2_0(fh)
    raise ValueError(f"unsupported .npy format version {version}")


def load_pickled_npy(path: str | os.PathLike) -> Any:
    """Load an ``.npy`` file safely.

    A plain (non-object) array is returned as an ``ndarray`` (read with ``allow_pickle=False``). An object
    array — the release's ``np.save(dict)`` — is unpickled with the restricted unpickler and a 0-d result is
    unwrapped (``.item()``), so a saved dict comes back as a ``dict``.

    Raises:
        DataError: missing or truncated file, not an ``.npy`` file, or (``UnsafePickleError``) a pickle that
            references anything beyond numpy arrays/dtypes, dict, list, tuple, str and numbers.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    with open(path, "rb") as fh:
        try:
            shape, fortran, dtype = read_npy_header(fh)
        except (ValueError, OSError) as exc:
            raise DataError(f"{path}: not a valid .npy file ({exc}); delete it and download it again") from None
        if not dtype.hasobject:
            fh.seek(0)
            try:
                return np.load(fh, allow_pickle=False)
            except (ValueError, OSError, EOFError) as exc:
                raise DataError(f"{path}: corrupt .npy file ({exc}); delete it and download it again") from None
        try:
            obj = _RestrictedUnpickler(fh, str(path)).load()
        except UnsafePickleError:
            raise
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, MemoryError) as exc:
            raise DataError(
                f"{path}: corrupt or truncated pickled .npy ({type(exc).__name__}: {exc}); delete it and download it again"
            ) from None
    if isinstance(obj, np.ndarray) and obj.dtype.hasobject and obj.shape == ():
        return obj.item()
    return obj


def save_pickled_dict(path: str | os.PathLike, data: dict[str, Any]) -> None:
    """Write ``data`` exactly as the release does (``np.save`` of a dict), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            # what np.save does with a dict: a 0-d object-array header, then the array pickled (protocol 3)
            arr = np.empty((), dtype=object)
            arr[()] = data
            npy_format.write_array_header_1_0(fh, {"descr": "|O", "fortran_order": False, "shape": ()})
            pickle.dump(arr, fh, protocol=3)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
