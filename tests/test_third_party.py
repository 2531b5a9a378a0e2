"""A third-party backbone package is found through its entry point only, with its package name."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "eegbench-tinynet"


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("site")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            str(EXAMPLE),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return target


def _run(site: Path | None, code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if site is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)


def test_example_backbone_listed_with_its_package_and_buildable(site):
    code = (
        "import json, eegbench, torch\n"
        "from eegbench.cli import main\n"
        "comps = [c.as_dict() for c in eegbench.list_components('backbone', 'tinynet')]\n"
        "net = eegbench.create('backbone', 'tinynet', n_chans=17, n_times=128, n_filters=8)\n"
        "out = net(torch.zeros(2, 17, 128))\n"
        "print(json.dumps({'comps': comps, 'shape': list(out.shape), 'n_features': net.n_features}))\n"
    )
    proc = _run(site, code)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    [comp] = result["comps"]
    assert comp["plugin"] == "eegbench-tinynet" and comp["entry_point"] == "tinynet"
    assert result["shape"] == [2, 8 * 32] == [2, result["n_features"]]


def test_example_backbone_in_cli_listing(site):
    proc = _run(site, "from eegbench.cli import main; raise SystemExit(main(['list', 'backbone']))")
    assert proc.returncode == 0, proc.stderr
    line = next(line for line in proc.stdout.splitlines() if " tinynet " in f" {line} ")
    assert "eegbench-tinynet" in line


def test_example_absent_without_its_entry_point():
    proc = _run(None, "import eegbench; print([c.name for c in eegbench.list_components('backbone', 'tinynet')])")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
