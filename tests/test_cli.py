"""The command line: listing, info, one-line errors, and that listing stays light."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from eegbench.cli import main


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "eegbench.cli", *args], capture_output=True, text=True, timeout=120)


def test_list_shows_every_kind(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    kinds = {line.split()[0] for line in out.splitlines()[2:] if line.strip()}
    assert {"dataset", "backbone", "image-encoder", "loss", "task"} <= kinds


def test_list_json_and_pattern(capsys):
    assert main(["list", "backbone", "resnet*", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and all(r["kind"] == "backbone" and r["name"].startswith("resnet") for r in rows)


@pytest.mark.parametrize(
    "args, message",
    [
        (["info", "nosuchthing"], "unknown 'nosuchthing'"),
        (["list", "nosuchkind"], "unknown kind 'nosuchkind'"),
        (["info", "resnet1", "--kind", "backbone"], "did you mean 'resnet1d'?"),
    ],
)
def test_user_errors_are_one_line_without_traceback(args, message):
    proc = run_cli(*args)
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert message in lines[0] and "Traceback" not in proc.stderr


def test_info_prints_defaults_and_citation(capsys):
    assert main(["info", "resnet1d"]) == 0
    out = capsys.readouterr().out
    assert "citation" in out and "defaults" in out and "Ribeiro" in out


def test_listing_imports_neither_torch_nor_mne():
    code = (
        "import sys; from eegbench.cli import main; rc = main(['list']); "
        "heavy = [m for m in ('torch', 'mne', 'braindecode', 'open_clip', 'timm') if m in sys.modules]; "
        "print('HEAVY=' + ','.join(heavy)); sys.exit(rc)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY=\n" in proc.stdout or proc.stdout.rstrip().endswith("HEAVY="), proc.stdout[-300:]
