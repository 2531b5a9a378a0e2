"""``eegbench status SPEC|RESULTS``: done / running / failed / pending from the results store."""

from __future__ import annotations

import json

import eegbench_fakes as fakes
import pytest

import eegbench
from eegbench.cli import main
from eegbench.results.status import counts, results_status, spec_status
from eegbench.results.store import ResultStore
from eegbench_plugins.executors.testing import FakeRunner, fake_plan


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
    assert counts(rows.values()) == {"done": 2, "running": 1, "stale": 0, "failed": 2, "pending": 0}
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


def test_table_has_its_columns_and_keeps_long_errors_whole_when_piped(results, capsys):
    from eegbench.cli.status import render

    long_error = "RuntimeError: " + "x" * 200 + " [see the log] :warning:"
    ResultStore(results).mark_failed("pre-3-0", long_error)
    assert main(["status", str(results)]) == 0  # captured: not a terminal
    lines = capsys.readouterr().out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("status"))
    assert lines[header].split() == ["status", "stage", "fold", "seed", "ratio", "cell", "note"]
    assert set(lines[header + 1]) == {"─"}
    row = next(line for line in lines if "pre-3-0" in line)
    assert row.startswith("failed") and row.endswith(long_error) and "\x1b[" not in row
    # fitted to a terminal, the note wraps under its column; every other column stays whole
    fitted = render(results_status(results), width=70)
    assert max(len(line) for line in fitted.splitlines()) <= 70
    starts = [line.split()[0] for line in fitted.splitlines()[2:] if not line.startswith(" ")]
    assert starts == ["done", "done", "failed", "failed", "failed"]


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


def _dead_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # reaped: the pid no longer exists
    return proc.pid


def _set_owner(results, key, **cols):
    import sqlite3

    with sqlite3.connect(results / "results.sqlite") as con:
        con.execute(f"UPDATE cells SET {', '.join(f'{c} = ?' for c in cols)} WHERE cell_key = ?", (*cols.values(), key))


def test_running_cell_of_a_dead_owner_is_stale_and_claimable(results, capsys):
    import socket
    import time

    dead = _dead_pid()
    _set_owner(results, "pre-3-0", pid=dead)
    # another host: its heartbeat decides (the pid means nothing here)
    ResultStore(results).mark_running("fin-3-0", spec_name="fake", stage="finetune", fold="sub-03", seed=0)
    _set_owner(results, "fin-3-0", host="elsewhere.example", pid=1, heartbeat=time.time() - 3600)
    rows = {r["key"]: r for r in results_status(results)}
    assert rows["pre-3-0"]["status"] == "stale" and rows["fin-3-0"]["status"] == "stale"
    assert counts(rows.values())["stale"] == 2 and counts(rows.values())["running"] == 0

    assert main(["status", str(results)]) == 0
    out = capsys.readouterr().out
    assert "0 running, 2 stale" in out
    assert f"owner gone: was on {socket.gethostname()} pid {dead}" in out and "elsewhere.example pid 1" in out
    assert "rerun the spec" in out

    store = ResultStore(results)
    assert store.claim("pre-3-0", stage="pretrain") is None  # dead owner: taken
    rec = store.cell_record("pre-3-0")
    assert rec["status"] == "running" and rec["pid"] != dead
    assert store.claim("fin-3-0", stage="finetune") is None  # stale heartbeat: taken
    assert {r["key"]: r["status"] for r in results_status(results)}["pre-3-0"] == "running"


def test_live_foreign_running_cell_is_not_claimed_even_forced(results):
    import os
    import time

    parent = os.getppid()  # a live process on this host that is not us
    _set_owner(results, "pre-3-0", pid=parent)
    store = ResultStore(results)
    for force in (False, True):
        holder = store.claim("pre-3-0", force=force)
        assert holder is not None and holder["status"] == "running" and holder["pid"] == parent
    # another host with a fresh heartbeat is live too
    _set_owner(results, "pre-3-0", host="elsewhere.example", pid=1, heartbeat=time.time())
    assert store.claim("pre-3-0") is not None
    assert {r["key"]: r["status"] for r in results_status(results)}["pre-3-0"] == "running"
    # a done cell is refused unless forced
    assert store.claim("pre-1-0")["status"] == "done"
    assert store.claim("pre-1-0", force=True) is None
    store.mark_failed("pre-1-0", "forced recompute failed")
    assert store.cell_record("pre-1-0")["status"] == "done"  # never downgraded


def test_old_database_gains_the_heartbeat_column(tmp_path):
    import sqlite3

    out = tmp_path / "old"
    out.mkdir()
    with sqlite3.connect(out / "results.sqlite") as con:  # the schema before heartbeats
        con.execute(
            "CREATE TABLE cells (cell_key TEXT PRIMARY KEY, spec_name TEXT, stage TEXT, fold TEXT, seed INTEGER, "
            "training_ratio REAL, status TEXT NOT NULL, error TEXT, host TEXT, pid INTEGER, started_at REAL, "
            "finished_at REAL, checkpoint TEXT, config TEXT)"
        )
        con.execute("INSERT INTO cells (cell_key, status) VALUES ('k', 'done')")
    store = ResultStore(out)
    assert store.cell_status() == {"k": "done"}
    assert store.claim("new") is None and store.cell_record("new")["heartbeat"] is not None
    assert store.heartbeat("new") and not store.heartbeat("k")


def test_status_defaults_to_the_results_directory_like_leaderboard(results, monkeypatch, capsys):
    monkeypatch.setenv("EEGBENCH_RESULTS", str(results))
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert f"results in {results}" in out and "5 cells: 2 done" in out
    monkeypatch.delenv("EEGBENCH_RESULTS")
    monkeypatch.chdir(results.parent)  # ./results, leaderboard's last default
    assert main(["status"]) == 0
    assert "5 cells" in capsys.readouterr().out
    assert main(["status", "--results", str(results)]) == 0
    assert "5 cells" in capsys.readouterr().out
