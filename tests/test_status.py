"""``eegbench status SPEC|RESULTS``: done / running / failed / pending from the results store."""
from __future__ import annotations

import json

import pytest

import eegbench
from eegbench.cli import main
from eegbench.status import counts, results_status, spec_status
from eegbench.store import ResultStore
from eegbench_plugins.executors.testing import FakeRunner, fake_plan

import eegbench_fakes as fakes


@pytest.fixture
def results(tmp_path):
    """A store with 2 done, 2 failed (one by dependency) and 1 running cell."""
    out = tmp_path / "results"
    cells = fake_plan(n_folds=2)
    eegbench.create("executor", "local").run(cells, FakeRunner(str(out), fail_keys=frozenset({"pre-2-0"})))
    ResultStore(out).mark_running("pre-3-0", spec_name="fake", stage="pretrain", fold="sub-03", seed=0)
    return out


def test_results_directory_lists_every_cell_with_errors(results, capsys):
    rows = {r["key"]: r for r in results_status(results)}
    assert counts(rows.values()) == {"done": 2, "running": 1, "failed": 2, "pending": 0}
    assert rows["pre-2-0"]["error"] == "ValueError: test backbone refused cell pre-2-0"
    assert "pre-2-0" in rows["fin-2-0"]["error"] and rows["fin-2-0"]["stage"] == "finetune"
    assert rows["pre-1-0"]["error"] is None
    # a fold's pretrain cell is listed before its finetune cell
    order = [r["key"] for r in results_status(results)]
    assert order.index("pre-1-0") < order.index("fin-1-0")

    assert main(["status", str(results)]) == 0
    out = capsys.readouterr().out
    assert "5 cells: 2 done, 1 running, 2 failed, 0 pending" in out
    assert "test backbone refused cell pre-2-0" in out
    assert "started" in out and "rerun the spec" in out


def test_show_filter_and_json(results, capsys):
    assert main(["status", str(results), "--show", "failed"]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith(("done", "failed", "running"))]
    assert len(lines) == 2 and all(ln.startswith("failed") for ln in lines)
    assert main(["status", str(results / "results.sqlite"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["counts"]["failed"] == 2 and len(data["cells"]) == 5


def test_missing_target_or_store_is_one_line_error(tmp_path, capsys):
    assert main(["status", str(tmp_path / "nope")]) == 2
    assert "no such spec file or results directory" in capsys.readouterr().err
    assert main(["status", str(tmp_path)]) == 2
    assert "no results database" in capsys.readouterr().err


def test_spec_status_marks_unseen_cells_pending(monkeypatch, tmp_path, capsys):
    import tomli_w

    fakes.install(monkeypatch, tmp_path)
    spec = fakes.spec_dict(**{"protocol.folds": [1, 2], "finetune": {"training_ratios": [0.5]}})
    spec_file = tmp_path / "spec.toml"
    spec_file.write_text(tomli_w.dumps(spec))
    results = tmp_path / "res"

    directory, rows = spec_status(spec_file, results)
    assert directory == results and [r["status"] for r in rows] == ["pending"] * 4
    pre, fin = rows[0], rows[1]
    assert (pre["stage"], fin["stage"], pre["fold"]) == ("pretrain", "finetune", "sub-01")

    store = ResultStore(results)
    store.mark_failed(rows[2]["key"], "CUDA out of memory")
    store.mark_running(rows[0]["key"], stage="pretrain", fold="sub-01")
    _, rows = spec_status(spec_file, results)
    assert [r["status"] for r in rows] == ["running", "pending", "failed", "pending"]
    assert rows[2]["error"] == "CUDA out of memory"

    assert main(["status", str(spec_file), "--results", str(results)]) == 0
    out = capsys.readouterr().out
    assert "4 cells: 0 done, 1 running, 1 failed, 2 pending" in out and "CUDA out of memory" in out
    # overrides change the plan exactly as they do for `eegbench run`
    assert main(["status", str(spec_file), "--results", str(results), "--set", "seeds=[0, 1]"]) == 0
    assert "8 cells" in capsys.readouterr().out
