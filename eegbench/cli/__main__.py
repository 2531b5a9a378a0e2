"""``python -m eegbench.cli``: the same as the ``eegbench`` command."""

import sys

from eegbench.cli import main

sys.exit(main())
