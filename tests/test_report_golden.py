"""The Markdown and LaTeX tables as rendered before the renderers shared one walk over the table
(``report._grid``): the same board renders to the same text, byte for byte. Regenerate a golden file only
for an intended change of the rendering: ``EEGBENCH_WRITE_GOLDEN=1 pytest tests/test_report_golden.py``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_leaderboard import REPORTED, make_results

from eegbench.results.leaderboard import build
from eegbench.results.report import render

GOLDEN = Path(__file__).parent / "fixtures" / "report"


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    d = tmp_path_factory.mktemp("results")
    make_results(d)
    reported = d.parent / "reported.toml"  # the tests' own reported rows: the golden text follows no shipped data
    reported.write_text(REPORTED)
    return build([d], reported=reported), str(d)


@pytest.mark.parametrize("fmt, name", [("md", "two_configs.md"), ("latex", "two_configs.tex")])
def test_rendered_tables_are_unchanged(board, fmt, name):
    b, directory = board
    text = render(b, fmt).replace(directory, "<D>")
    if os.environ.get("EEGBENCH_WRITE_GOLDEN") == "1":
        (GOLDEN / name).write_text(text)
    assert text == (GOLDEN / name).read_text()
