"""User-facing errors: one line that says what is wrong and what to do.

The CLI prints ``EegbenchError`` messages without a traceback; anything else is a bug. Each class carries the
exit code of the contract in the README ("Exit codes"): 2 for the user's input (specs, files, data, also when
found inside a cell), 1 for a cell that failed at run time (:class:`CellFailure`), 130 for Ctrl-C.
"""

from __future__ import annotations

#: exit codes of the ``eegbench`` command (documented in the README, "Exit codes")
EXIT_USER_ERROR = 2
EXIT_CELL_FAILED = 1
EXIT_INTERRUPTED = 130


class EegbenchError(Exception):
    """A problem with the user's input, files or environment, explained in one line."""

    exit_code = EXIT_USER_ERROR


class UnknownComponentError(EegbenchError, KeyError):
    """A component name that no plugin registers."""

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0] if self.args else ""


class ComponentClashError(EegbenchError):
    """Two packages register the same (kind, name)."""


class SpecError(EegbenchError):
    """A benchmark spec that fails validation (file, table and key are named)."""


class DataError(EegbenchError):
    """Missing, corrupt or unsafe data files."""


class WeightsError(EegbenchError):
    """Pretrained weights that cannot be found or loaded."""


class CellFailure(EegbenchError):
    """A cell that failed at run time although its inputs were valid (training diverged to a non-finite
    loss, a model produced non-finite embeddings): the cell is recorded failed, nothing is scored."""

    exit_code = EXIT_CELL_FAILED


def first_line(exc: BaseException, limit: int | None = None) -> str:
    """The first line of ``exc``'s message, clipped to ``limit`` characters (``""`` when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else ""


def one_line(exc: BaseException, limit: int | None = None) -> str:
    """How a message names an error: an :class:`EegbenchError`'s first line as it is (it speaks to the
    user), anything else ``Type: first line`` (or just the type when the message is empty)."""
    text = first_line(exc, limit)
    if isinstance(exc, EegbenchError):
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def load_failure(exc: BaseException) -> str:
    """What went wrong when ``torch.load(weights_only=True)`` (or a library calling it) read a file: words
    that follow "<file> is ...".

    Classified by the exception, so no torch import is needed: the safe loader refusing pickled objects
    (unsafe: never loaded with full pickle), a truncated or corrupt archive, or weights that do not fit.
    """
    import pickle
    import zipfile

    text = first_line(exc).split(". ")[0][:200]
    detail = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    if isinstance(exc, pickle.UnpicklingError) or "weights only load failed" in str(exc).lower():
        return (
            "refused by the safe loader (torch.load weights_only=True): it holds pickled objects beyond "
            "tensors and plain values, which could run code; use a state_dict or .safetensors file from a "
            "trusted source"
        )
    if isinstance(exc, (EOFError, zipfile.BadZipFile)) or any(
        w in str(exc) for w in ("PytorchStreamReader", "central directory", "unexpected EOF", "Ran out of input")
    ):
        return f"truncated or corrupt ({detail}); download or write it again"
    if isinstance(exc, KeyError) or "invalid load key" in str(exc):
        return "not a PyTorch checkpoint (neither a torch zip archive nor a pickle); give the right file"
    if isinstance(exc, OSError):
        return f"unreadable ({detail}); check the path and its permissions"
    return f"not loadable ({detail})"
