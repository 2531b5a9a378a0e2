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
    | {
        ("builtins", n)
        for n in (
            "complex",
            "int",
            "float",
            "str",
            "bytes",
            "bytearray",
            "bool",
            "list",
            "dict",
            "tuple",
            "set",
            "frozenset",
        )
    }
)


class UnsafePickleError(DataError):
    """A pickle that references something outside the allowed set (nothing was executed)."""


def _allowed(module: str, name: str) -> bool:
    # numpy dtype classes (numpy.dtypes.Float64DType) may appear in numpy>=2 pickles of dtypes
    return (module, name) in _ALLOWED or (module == "numpy.dtypes" and name.endswith("DType"))


def _refused(source: str, module: str, name: str) -> UnsafePickleError:
    return UnsafePickleError(
        f"{source}: refused to load: its pickle references {module}.{name}, which a data file never "
        "needs (only numpy arrays, dicts, lists, strings and numbers are read); delete it and download it again"
    )


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: Any, source: str):
        super().__init__(file, encoding="latin1")
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        if _allowed(module, name):
            return super().find_class(module, name)
        raise _refused(self._source, module, name)

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


#: opcodes whose string argument may name a global for a later STACK_GLOBAL (kept when short)
_STRING_OPS = frozenset(
    {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING", "BINSTRING", "STRING"}
)
_MEMO_PUT = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
_MEMO_GET = frozenset({"GET", "BINGET", "LONG_BINGET"})
_LENGTH_PREFIX = {-2: ("<B", 1), -3: ("<i", 4), -4: ("<I", 4), -5: ("<Q", 8)}


def scan_pickle(fh: Any, source: str) -> None:
    """Check a pickle stream's globals without building any object (nothing is executed, little is read).

    Walks the opcodes from ``fh``'s position to ``STOP``, seeking past large byte payloads (the arrays), and
    applies the restricted unpickler's rule to every ``GLOBAL``/``INST``/``STACK_GLOBAL``. Extension codes
    and persistent ids are refused too.

    Raises:
        UnsafePickleError: a global outside the allowed set (or one that cannot be resolved statically).
        DataError: a truncated or malformed stream.
    """
    import pickletools
    import struct

    codes = {op.code.encode("latin1"): op for op in pickletools.opcodes}
    recent: list[Any] = [None, None]  # the last two values pushed, where they are strings
    memo: dict[int, Any] = {}
    while True:
        code = fh.read(1)
        op = codes.get(code)
        if op is None:
            raise DataError(
                f"{source}: corrupt pickled .npy (unknown or missing opcode {code!r}); delete it and download it again"
            )
        name, arg, value = op.name, op.arg, None
        if arg is not None:
            if arg.n == -1:  # up to a newline (GLOBAL/INST: two lines)
                value = fh.readline().decode("latin1").rstrip("\n")
                if name in ("GLOBAL", "INST"):
                    value = (value, fh.readline().decode("latin1").rstrip("\n"))
            elif arg.n in _LENGTH_PREFIX:
                fmt, size = _LENGTH_PREFIX[arg.n]
                raw = fh.read(size)
                if len(raw) != size:
                    raise DataError(f"{source}: truncated pickled .npy; delete it and download it again")
                length = struct.unpack(fmt, raw)[0]
                if name in _STRING_OPS and length <= 4096:
                    value = fh.read(length).decode("utf-8" if "UNICODE" in name else "latin1", errors="replace")
                elif length > 0:
                    fh.seek(length, os.SEEK_CUR)
            else:
                raw = fh.read(arg.n)
                if len(raw) != arg.n:
                    raise DataError(f"{source}: truncated pickled .npy; delete it and download it again")
                if name in _MEMO_GET or name in _MEMO_PUT:
                    value = int.from_bytes(raw, "little")
        if name in ("GLOBAL", "INST"):
            if not _allowed(*value):
                raise _refused(source, *value)
        elif name == "STACK_GLOBAL":
            module, attr = recent
            if not (isinstance(module, str) and isinstance(attr, str)):
                raise UnsafePickleError(
                    f"{source}: refused to load: its pickle builds a global it names indirectly (not a data file)"
                )
            if not _allowed(module, attr):
                raise _refused(source, module, attr)
        elif name in ("EXT1", "EXT2", "EXT4", "PERSID", "BINPERSID"):
            raise UnsafePickleError(f"{source}: refused to load: its pickle uses {name} (not a data file)")
        elif name == "STOP":
            return
        if name == "MEMOIZE":
            memo[len(memo)] = recent[-1]
        elif name in _MEMO_PUT:
            memo[int(value)] = recent[-1]
        elif name in _MEMO_GET:
            recent = [recent[-1], memo.get(int(value))]
        elif name not in ("FRAME", "PROTO"):
            recent = [recent[-1], value if name in _STRING_OPS else None]


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
            _shape, _fortran, dtype = read_npy_header(fh)
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
        except (
            pickle.UnpicklingError,
            EOFError,
            ValueError,
            TypeError,
            AttributeError,
            IndexError,
            MemoryError,
        ) as exc:
            raise DataError(
                f"{path}: corrupt or truncated pickled .npy ({type(exc).__name__}: {exc}); "
                "delete it and download it again"
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
