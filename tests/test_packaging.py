"""Packaging: every plugin folder is shipped, every entry point imports, the README's commands are CI's."""

from __future__ import annotations

import importlib
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_every_package_folder_is_listed():
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    found = set()
    for base, import_name in (("eegbench", "eegbench"), ("plugins", "eegbench_plugins")):
        for init in (ROOT / base).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / base).parts
            found.add(".".join((import_name, *rel)))
    assert found == listed, f"pyproject packages differ from folders: missing {found - listed}, extra {listed - found}"


def test_entry_points_import_without_heavy_libraries():
    import sys

    for name, target in PYPROJECT["project"]["entry-points"]["eegbench"].items():
        module = importlib.import_module(target)
        assert module is not None, name
    assert "mne" not in sys.modules or "eegbench_plugins" not in str(sys.modules.get("mne"))


def test_ci_runs_exactly_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    commands = [line.strip() for line in ci.splitlines() if "pytest" in line and not line.lstrip().startswith("#")]
    assert len(commands) == 1, commands
    assert commands[0] in readme, "the test command in .ci/run must appear verbatim in the README's Quick start"


def test_dependencies_are_ranges_and_constraints_pin_them():
    deps = PYPROJECT["project"]["dependencies"]
    assert all("==" not in d for d in deps), "pyproject states ranges; constraints.txt pins"
    pins = {
        line.split("==")[0].lower().replace("_", "-")
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    extras = [d for group in PYPROJECT["project"]["optional-dependencies"].values() for d in group]
    for dep in [*deps, *extras]:
        name = dep.split(">")[0].split("<")[0].split("=")[0].split("[")[0].strip().lower().replace("_", "-")
        assert name in pins, f"{name} is not pinned in constraints.txt"
    assert "torch==2.11.0" in (ROOT / "constraints.txt").read_text()
