"""Built-in plugin (skeleton: being written)."""
from __future__ import annotations

from eegbench import hookimpl


@hookimpl
def eegbench_datasets():
    return []
