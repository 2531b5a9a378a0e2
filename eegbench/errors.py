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
