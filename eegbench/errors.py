"""User-facing errors: one line that says what is wrong and what to do.

The CLI prints ``EegbenchError`` messages without a traceback; anything else is a bug.
"""
from __future__ import annotations


class EegbenchError(Exception):
    """A problem with the user's input, files or environment, explained in one line."""


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
