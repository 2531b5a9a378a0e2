"""``python -m eegbench.cli``: the same as the ``eegbench`` command."""

from eegbench.cli import console

console()
