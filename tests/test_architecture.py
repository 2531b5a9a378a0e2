"""The import contracts of pyproject.toml ([tool.importlinter]) hold: the core is layered from the command
line down to the contracts, it imports no plugin, and no sibling modules import each other in a cycle.

The rule the contracts enforce: every import statement is a dependency, at module level or inside a
function; imports under ``if TYPE_CHECKING:`` are not (they never run)."""

from __future__ import annotations

from pathlib import Path

import grimp
import pytest
from importlinter.cli import lint_imports

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


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
    # export imports report inside its command handler only; report names Leaderboard under TYPE_CHECKING
    assert "eegbench.results.report" in graph.find_modules_directly_imported_by("eegbench.results.export")
    assert "eegbench.results.leaderboard" not in graph.find_modules_directly_imported_by("eegbench.results.report")


def test_no_core_module_imports_the_package_root(graph):
    # eegbench/__init__ is the front door (it re-exports from registry, runner, version): a module of the
    # package importing it would close a cycle through the root
    importers = graph.find_modules_that_directly_import("eegbench")
    assert {m for m in importers if m.startswith("eegbench.")} == set()
    assert "eegbench_plugins.resnet1d" in importers  # plugins use the front door (eegbench.hookimpl)
