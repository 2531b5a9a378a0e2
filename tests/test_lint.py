"""The habits CI enforces: ruff (lint and format) over the tree and mypy (strict) over ``eegbench/``, each
configured in pyproject.toml and run here exactly as a contributor runs them from the repository root
(``ruff check .``, ``ruff format --check .``, ``mypy``), so the test command fails on a finding."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize(
    "args",
    [("ruff", "check", "."), ("ruff", "format", "--check", "."), ("mypy",)],
    ids=["ruff-check", "ruff-format", "mypy"],
)
def test_tree_is_clean(args):
    done = _run(*args)
    assert done.returncode == 0, f"`{' '.join(args)}` found problems:\n{done.stdout}{done.stderr}"


def test_every_source_file_is_checked():
    # ruff skips what .gitignore names (once it hid eegbench/results/); mypy checks the whole package
    ruff_config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["ruff"]
    excluded = {ROOT / p for p in ruff_config["extend-exclude"]}
    sources = {p for d in ("eegbench", "plugins") for p in (ROOT / d).rglob("*.py") if "__pycache__" not in p.parts}
    shown = {Path(line) for line in _run("ruff", "check", "--show-files", ".").stdout.splitlines()}
    assert sorted(str(p.relative_to(ROOT)) for p in sources - excluded - shown) == []
    done = _run("mypy")
    checked = re.search(r"in (\d+) source files", done.stdout)
    assert checked and int(checked.group(1)) == len(list((ROOT / "eegbench").rglob("*.py"))), done.stdout
