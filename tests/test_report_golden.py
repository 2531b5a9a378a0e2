"""The Markdown and LaTeX tables as rendered before the renderers shared one walk over the table
(``report._grid``): the same board renders to the same text, byte for byte."""
from __future__ import annotations

from pathlib import Path

import pytest

from eegbench.leaderboard import build
from eegbench.report import render
from test_leaderboard import make_results

GOLDEN = Path(__file__).parent / "fixtures" / "report"


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    d = tmp_path_factory.mktemp("results")
    make_results(d)
    return build([d]), str(d)


@pytest.mark.parametrize("fmt, name", [("md", "two_configs.md"), ("latex", "two_configs.tex")])
def test_rendered_tables_are_unchanged(board, fmt, name):
    b, directory = board
    assert render(b, fmt).replace(directory, "<D>") == (GOLDEN / name).read_text()
