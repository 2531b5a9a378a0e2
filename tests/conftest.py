"""Suite-wide settings.

The local executor's default ``jobs = "auto"`` runs a spec's cells in one worker process per CPU. The suite runs
cells in the test's own process instead (``EEGBENCH_JOBS=1``, inherited by the CLI subprocesses tests start):
monkeypatched engines and fakes must reach the cells, and hundreds of small runs would each pay the workers'
start-up. Tests of the default itself unset it (``tests/test_quick_e2e.py`` runs the README's main job with it,
``tests/test_executors.py`` checks how ``auto`` resolves).
"""

from __future__ import annotations

import os

os.environ["EEGBENCH_JOBS"] = "1"
