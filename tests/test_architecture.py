"""The import contracts of pyproject.toml ([tool.importlinter]) hold: the core is layered from the command
line down to the contracts, it imports no plugin, and no sibling modules import each other in a cycle.

The rule the contracts enforce: every import statement is a dependency, at module level or inside a
function; imports under ``if TYPE_CHECKING:`` are not (they never run)."""

from __future__ import annotations

import ast
from pathlib import Path

import grimp
import pytest
from importlinter.cli import lint_imports

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
CORE = Path(__file__).resolve().parents[1] / "eegbench"


def _lint(config: Path) -> int:
    return lint_imports(config_filename=str(config), no_cache=True, no_logo=True)


def test_import_contracts_are_kept():
    assert _lint(PYPROJECT) == 0, "an import contract in pyproject.toml is broken: run lint-imports for details"


def test_a_broken_contract_fails(tmp_path):
    # the checker is live: plugins do import the core, so forbidding it must fail
    config = tmp_path / "broken.toml"
    config.write_text(
        '[tool.importlinter]\nroot_packages = ["eegbench", "eegbench_plugins"]\n\n'
        '[[tool.importlinter.contracts]]\nname = "plugins without the core"\ntype = "forbidden"\n'
        'source_modules = ["eegbench_plugins.resnet1d"]\nforbidden_modules = ["eegbench"]\n'
    )
    assert _lint(config) != 0


@pytest.fixture(scope="module")
def graph():
    return grimp.build_graph("eegbench", "eegbench_plugins", exclude_type_checking_imports=True, cache_dir=None)


def test_function_level_imports_count_and_type_checking_ones_do_not(graph):
    # export imports report inside a function only; report names Leaderboard under TYPE_CHECKING
    assert "eegbench.results.report" in graph.find_modules_directly_imported_by("eegbench.results.export")
    assert "eegbench.results.leaderboard" not in graph.find_modules_directly_imported_by("eegbench.results.report")


def test_no_core_module_imports_the_package_root(graph):
    # eegbench/__init__ is the front door (it re-exports from registry, runner, version): a module of the
    # package importing it would close a cycle through the root
    importers = graph.find_modules_that_directly_import("eegbench")
    assert {m for m in importers if m.startswith("eegbench.")} == set()
    assert "eegbench_plugins.resnet1d" in importers  # plugins use the front door (eegbench.hookimpl)


def importers(target: str, package_dir: Path, package: str) -> set[str]:
    """The modules of ``package`` (its source at ``package_dir``) that import ``target`` or a submodule of it,
    anywhere: at module level, inside a function, under ``if TYPE_CHECKING:``. Relative imports are the
    package's own modules, never ``target``."""
    found = set()
    for path in sorted(package_dir.rglob("*.py")):
        module = ".".join((package, *path.relative_to(package_dir).with_suffix("").parts)).removesuffix(".__init__")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            if any(name == target or name.startswith(target + ".") for name in names):
                found.add(module)
    return found


def test_argparse_lives_in_the_cli_package_only():
    # every parser of the core is in eegbench.cli; the rest of the core takes typed arguments (plugins may
    # keep their own parsers: they add commands through the eegbench_cli hook)
    found = importers("argparse", CORE, "eegbench")
    outside = {m for m in found if m != "eegbench.cli" and not m.startswith("eegbench.cli.")}
    assert outside == set(), f"argparse outside eegbench.cli: {sorted(outside)}; move the parser into eegbench/cli/"
    assert "eegbench.cli" in found  # the check sees the package that does import it


def test_the_argparse_check_finds_every_spelling(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text('"""Says argparse in words only."""\n')
    (pkg / "top.py").write_text("import argparse\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "late.py").write_text(
        "def f():\n    from argparse import ArgumentParser\n\n    return ArgumentParser\n"
    )
    (pkg / "sub" / "aliased.py").write_text("import os, argparse as ap\n")
    (pkg / "sub" / "typed.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import argparse\n")
    (pkg / "other.py").write_text("import argparsex\nfrom .argparse import x\nfrom . import argparse\n")
    assert importers("argparse", pkg, "pkg") == {"pkg.top", "pkg.sub.late", "pkg.sub.aliased", "pkg.sub.typed"}
