"""Executors (local, submitit, ray): same cells and metrics as a sequential run, dependencies, failures,
reruns that touch only what is not done, packing, Slurm job scripts.

Most tests use the picklable FakeRunner (eegbench_plugins.executors.testing): its metric is a pure
function of the cell, so any executor must store exactly the rows of a sequential run. The acceptance
tests at the end run the engine's real runner on the synthetic Things-EEG-2 twin.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import eegbench
from eegbench.errors import EegbenchError
from eegbench.results.store import ResultStore
from eegbench_plugins.executors._core import pack_key, packs
from eegbench_plugins.executors.testing import FakeCell, FakeRunner, fake_metric, fake_plan

CELLS = fake_plan(n_folds=2, seeds=(0, 1))  # 8 cells: 4 pretrain, 4 finetune depending on them


def stored(results: Path) -> dict[str, float]:
    return {r["cell_key"]: r["value"] for r in ResultStore(results).rows()}


def statuses(results: Path) -> dict[str, str]:
    return ResultStore(results).cell_status()


@pytest.fixture(scope="module")
def sequential(tmp_path_factory):
    """The reference: every cell in this process, one after another."""
    results = tmp_path_factory.mktemp("sequential")
    outcomes = eegbench.create("executor", "local").run(CELLS, FakeRunner(str(results)))
    assert [o.status for o in outcomes] == ["done"] * len(CELLS)
    return stored(results)


def test_sequential_reference_is_complete(sequential):
    assert sequential == {c.key: fake_metric(c) for c in CELLS}


def test_listed_and_built_through_the_registry():
    names = [c.name for c in eegbench.list_components("executor")]
    assert {"local", "submitit", "ray"} <= set(names)
    assert eegbench.create("executor", "local", jobs=3).jobs == 3
    with pytest.raises(EegbenchError, match="jobs"):
        eegbench.create("executor", "local", jobs=0)
    with pytest.raises(EegbenchError, match="cluster"):
        eegbench.create("executor", "submitit", cluster="kubernetes")
    with pytest.raises(EegbenchError, match="cells_per_job"):
        eegbench.create("executor", "submitit", cells_per_job=0)


# one entry per way of running cells in other processes; ids name them in pytest's output
PARALLEL = [
    pytest.param("local", {"jobs": 2}, id="local-jobs2"),
    pytest.param("submitit", {"cluster": "local", "gpus_per_task": 0}, id="submitit-local"),
    pytest.param("submitit", {"cluster": "local", "cells_per_job": 3}, id="submitit-local-packed"),
    pytest.param("submitit", {"cluster": "debug"}, id="submitit-debug"),
]


@pytest.mark.parametrize("name, params", PARALLEL)
def test_parallel_run_matches_sequential_failures_recorded_rerun_retries_only_them(name, params, tmp_path, sequential):
    results = tmp_path / "results"
    executor = eegbench.create("executor", name, **params)
    # pre-2-1 fails inside the runner (recorded by it); fin-1-0's runner raises (recorded by the executor)
    broken = FakeRunner(str(results), fail_keys=frozenset({"pre-2-1"}), raise_keys=frozenset({"fin-1-0"}))
    outcomes = executor.run(CELLS, broken)

    assert [o.key for o in outcomes] == [c.key for c in CELLS]
    by_key = {o.key: o for o in outcomes}
    assert by_key["pre-2-1"].status == "failed" and "test backbone refused" in by_key["pre-2-1"].error
    assert by_key["fin-1-0"].status == "failed" and "fake runner exploded" in by_key["fin-1-0"].error
    # the dependent of the failed pretrain cell never ran and says why
    assert by_key["fin-2-1"].status == "failed"
    assert "dependency" in by_key["fin-2-1"].error and "pre-2-1" in by_key["fin-2-1"].error
    failed = {"pre-2-1", "fin-1-0", "fin-2-1"}
    assert {k for k, o in by_key.items() if o.status == "done"} == {c.key for c in CELLS} - failed
    assert {k for k, s in statuses(results).items() if s == "failed"} == failed
    cells = {c["cell_key"]: c for c in ResultStore(results).cells()}
    assert "test backbone refused" in cells["pre-2-1"]["error"]
    assert cells["fin-2-1"]["stage"] == "finetune" and cells["fin-2-1"]["fold"] == "sub-02"
    assert stored(results) == {k: v for k, v in sequential.items() if k not in failed}
    first_rows = {r["cell_key"]: r["created_at"] for r in ResultStore(results).rows()}

    # rerun with the problem fixed: only the failed cells run, the done ones are left alone
    outcomes = executor.run(CELLS, FakeRunner(str(results)))
    assert {o.key for o in outcomes if o.status == "done"} == failed
    assert {o.key for o in outcomes if o.status == "skipped"} == {c.key for c in CELLS} - failed
    assert stored(results) == sequential
    again = {r["cell_key"]: r["created_at"] for r in ResultStore(results).rows()}
    assert all(again[k] == t for k, t in first_rows.items())


def test_worker_processes_really_run_cells(tmp_path):
    results = tmp_path / "r"
    eegbench.create("executor", "local", jobs=2).run(CELLS, FakeRunner(str(results)))
    devices = {r["device"] for r in ResultStore(results).rows()}
    assert f"pid-{os.getpid()}" not in devices and len(devices) >= 1


def test_jobs_auto_is_the_default_and_resolves_from_the_environment_then_the_machine(monkeypatch):
    from eegbench.execution import resources

    local = eegbench.create("executor", "local")
    assert local.jobs == "auto" and eegbench.create("executor", "local", jobs="auto").jobs == "auto"
    with pytest.raises(EegbenchError, match=r'whole number >= 1 .* or "auto"'):
        eegbench.create("executor", "local", jobs="all")
    monkeypatch.setenv(resources.JOBS_ENV, "3")  # the suite's own setting is 1 (tests/conftest.py)
    assert local.resolve_jobs(8, "cpu") == 3
    assert eegbench.create("executor", "local", jobs=2).resolve_jobs(8, "cpu") == 2  # a spec's number wins
    monkeypatch.setenv(resources.JOBS_ENV, "zero")
    with pytest.raises(EegbenchError, match="EEGBENCH_JOBS='zero'"):
        local.resolve_jobs(8, "cpu")
    monkeypatch.delenv(resources.JOBS_ENV)
    monkeypatch.setattr(resources, "usable_cpus", lambda *a: 6)
    monkeypatch.setattr(resources, "usable_memory", lambda *a: 64 * 2**30)
    assert local.resolve_jobs(8, "cpu") == 6  # a worker per CPU
    assert local.resolve_jobs(4, "cpu") == 4  # no more workers than cells to run
    assert local.resolve_jobs(8, "cuda") == local.resolve_jobs(8, "cuda:1") == 1  # one process owns a GPU


def test_start_launches_the_fork_server_only_for_a_pool_run(monkeypatch, tmp_path):
    """``start`` (called by run_spec before the data is checked) starts the workers' fork server early, with the
    runner's preloads, only when the cells will run in worker processes."""
    import multiprocessing
    from multiprocessing import forkserver

    launched, preloads = [], []
    monkeypatch.setattr(forkserver, "ensure_running", lambda: launched.append(True))
    monkeypatch.setattr(
        multiprocessing.get_context("forkserver"), "set_forkserver_preload", lambda mods: preloads.append(mods)
    )
    runner = FakeRunner(str(tmp_path / "r"))
    eegbench.create("executor", "local", jobs=1).start(CELLS, runner)
    eegbench.create("executor", "local", jobs=2).start(CELLS[:1], runner)  # one cell runs in this process
    assert launched == []
    eegbench.create("executor", "local", jobs=2).start(CELLS, runner)
    # the fake runner names no imports of its own; the last preload freezes the server's heap
    assert launched == [True] and preloads == [["torch", "eegbench_plugins.executors._forkserver_heap"]]


def test_a_pool_run_prints_a_start_and_a_done_line_per_cell_from_the_store(tmp_path):
    """Worker processes cannot call back: the plain progress lines of their cells come from the store."""
    import io
    import re

    from eegbench.runner import PlainProgress

    results = tmp_path / "r"
    store = ResultStore(results)
    runner = FakeRunner(str(results), fail_keys=frozenset({CELLS[0].key}), sleep=0.3)
    stream = io.StringIO()
    with PlainProgress(store, [c.key for c in CELLS], every=60.0, stream=stream, cells=CELLS):
        outcomes = eegbench.create("executor", "local", jobs=2).run(CELLS, runner)
    assert sum(o.status == "done" for o in outcomes) == 6  # the failed pretrain cell fails its finetune cell too
    out = stream.getvalue()
    for cell in CELLS:
        label = re.escape(cell.label())
        starts = len(re.findall(rf"^\[\d+s\] start {label} \(cell \d of 8 planned\)$", out, re.M))
        if cell.depends_on == (CELLS[0].key,):  # never started: its dependency failed
            assert starts == 0, out
        else:  # a quick failure may end before a poll saw it running
            assert starts == 1 or (starts == 0 and cell.key == CELLS[0].key), out
        if cell.key == CELLS[0].key:
            assert re.search(rf"^\[\d+s\] failed {label} after \d+s: ValueError", out, re.M), out
        elif cell.depends_on == (CELLS[0].key,):
            assert re.search(rf"^\[\d+s\] failed {label} after \d+s: dependency", out, re.M), out
        else:
            assert re.search(rf"^\[\d+s\] done {label} in \d+\.\ds$", out, re.M), out


def test_done_cells_never_reach_the_runner_unless_forced(tmp_path):
    results = tmp_path / "r"
    local = eegbench.create("executor", "local")
    local.run(CELLS, FakeRunner(str(results)))
    # a runner that would explode on any cell: the store says all are done, so none is handed to it
    angry = FakeRunner(str(results), raise_keys=frozenset(c.key for c in CELLS))
    assert {o.status for o in local.run(CELLS, angry)} == {"skipped"}
    forced = FakeRunner(str(results), force=True, fail_keys=frozenset({"pre-1-0"}))
    outcomes = {o.key: o.status for o in local.run(CELLS, forced)}
    assert outcomes["pre-1-0"] == "failed" and outcomes["fin-1-0"] == "failed"


def test_dependency_outside_the_run_must_be_done_in_the_store(tmp_path):
    results = tmp_path / "r"
    local = eegbench.create("executor", "local")
    finetune_only = [c for c in CELLS if c.stage == "finetune" and c.fold == "sub-01"]
    outcomes = local.run(finetune_only, FakeRunner(str(results)))
    assert all(o.status == "failed" and "not among the cells to run" in o.error for o in outcomes)
    local.run([c for c in CELLS if c.stage == "pretrain"], FakeRunner(str(results)))
    assert [o.status for o in local.run(finetune_only, FakeRunner(str(results)))] == ["done", "done"]


def test_cycles_and_duplicates_are_refused_or_recorded(tmp_path):
    a = FakeCell(key="a", depends_on=("b",))
    b = FakeCell(key="b", depends_on=("a",))
    c = FakeCell(key="c")
    outcomes = eegbench.create("executor", "local").run([a, b, c], FakeRunner(str(tmp_path)))
    assert [o.status for o in outcomes] == ["failed", "failed", "done"]
    assert "cycle" in outcomes[0].error
    with pytest.raises(EegbenchError, match="twice"):
        eegbench.create("executor", "local").run([c, c], FakeRunner(str(tmp_path)))


@pytest.mark.parametrize(
    "name, params",
    [
        pytest.param("local", {"jobs": 2}, id="local-jobs2"),
        pytest.param("submitit", {"cluster": "local"}, id="submitit-local"),
    ],
)
def test_a_killed_worker_fails_its_cell_and_the_rest_go_on(name, params, tmp_path, sequential, monkeypatch):
    import submitit.core.core

    # submitit waits 15 s for a dead job's result file (shared-filesystem latency); nothing lags here
    monkeypatch.setattr(submitit.core.core.Job, "_results_timeout_s", 1)
    results = tmp_path / "r"
    executor = eegbench.create("executor", name, **params)
    outcomes = {o.key: o for o in executor.run(CELLS, FakeRunner(str(results), crash_keys=frozenset({"pre-1-0"})))}
    assert outcomes["pre-1-0"].status == "failed"
    assert "died" in outcomes["pre-1-0"].error or "ended without results" in outcomes["pre-1-0"].error
    assert outcomes["fin-1-0"].status == "failed" and "pre-1-0" in outcomes["fin-1-0"].error
    # a cell that shared the dead worker pool may be failed too, but never with wrong numbers
    for key, value in stored(results).items():
        assert value == sequential[key]
    assert outcomes["pre-2-1"].status in ("done", "failed") and outcomes["fin-2-1"].error != ""
    executor.run(CELLS, FakeRunner(str(results)))
    assert stored(results) == sequential


def test_packing_groups_cells_of_one_shape_and_caps_the_pack_size():
    pre = [c for c in CELLS if c.stage == "pretrain"]
    fin = [c for c in CELLS if c.stage == "finetune"]
    chunks = packs(pre + fin, 3)
    assert [len(c) for c in chunks] == [3, 1, 3, 1]
    assert all(len({pack_key(c) for c in chunk}) == 1 for chunk in chunks)
    wide = FakeCell(key="w", config={"backbone": {"name": "nice"}})
    assert pack_key(wide) != pack_key(FakeCell(key="x", config={"backbone": {"name": "resnet1d"}}))


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch):
    """``srun``/``sbatch`` stand-ins on PATH, so submitit's Slurm executor can be built and its job script read."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("srun", "sbatch"):
        path = bin_dir / tool
        path.write_text("#!/bin/sh\nexit 0\n")
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


def test_slurm_job_script_carries_the_resources_and_the_apptainer_wrapper(fake_slurm, tmp_path):
    executor = eegbench.create(
        "executor",
        "submitit",
        partition="gpu",
        account="lab",
        qos="normal",
        gpus_per_task=1,
        cpus_per_task=4,
        mem_gb=40,
        timeout_min=90,
        array_parallelism=5,
        sbatch={"constraint": "a100"},
        setup=["module load apptainer"],
        apptainer="/images/eegbench.sif",
        apptainer_args="--bind /scratch",
        log_folder=str(tmp_path / "logs" / "%j"),
    )
    slurm = executor.make_executor(tmp_path / "results")
    script = slurm._make_submission_file_text(slurm._submitit_command_str, "uid")
    for line in (
        "--partition=gpu",
        "--account=lab",
        "--qos=normal",
        "--gpus-per-task=1",
        "--cpus-per-task=4",
        "--mem=40GB",
        "--time=90",
        "--constraint=a100",
        "module load apptainer",
    ):
        assert line in script
    assert "apptainer exec --nv --bind /scratch /images/eegbench.sif " in script
    assert str(tmp_path / "logs") in script
    assert slurm.parameters["array_parallelism"] == 5


FAKE_SBATCH = """#!{python}
# Stand-in for sbatch: runs each array task of the job script in the background with Slurm's variables.
import os, re, subprocess, sys
state = os.environ["FAKE_SLURM_DIR"]
script = sys.argv[-1]
text = open(script).read()
with open(os.path.join(state, "scripts.txt"), "a") as f:
    f.write(text + "\\n----\\n")
jid = str(1000 + len(open(os.path.join(state, "scripts.txt")).read().split("----")) - 1)
m = re.search(r"#SBATCH --array=0-(\\d+)", text)
for task in range(int(m.group(1)) + 1) if m else [None]:
    env = dict(os.environ, SLURM_JOB_ID=jid if task is None else f"{{jid}}{{task}}", SLURM_NTASKS="1",
               SLURM_JOB_NUM_NODES="1", SLURM_NODEID="0", SLURM_JOB_NODELIST="node1", SLURM_PROCID="0",
               SLURM_LOCALID="0")
    if task is not None:
        env.update(SLURM_ARRAY_JOB_ID=jid, SLURM_ARRAY_TASK_ID=str(task))
    subprocess.Popen(["bash", script], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(f"Submitted batch job {{jid}}")
"""

FAKE_SRUN = """#!{python}
# Stand-in for srun: drops srun's own options and runs the command in place.
import os, sys
args = sys.argv[1:]
while args[0].startswith("--"):
    args = args[2:] if args[0] in ("--output", "--error") else args[1:]
os.execvp(args[0], args)
"""


def test_submitit_slurm_path_end_to_end_with_a_fake_sbatch(tmp_path, monkeypatch, sequential, capsys):
    import sys

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tools = {
        "sbatch": FAKE_SBATCH,
        "srun": FAKE_SRUN,
        "sacct": "#!/bin/sh\necho 'JobID|State|NodeList'\n",
        "scancel": "#!/bin/sh\nexit 0\n",
    }
    for tool, text in tools.items():
        path = bin_dir / tool
        path.write_text(text.format(python=sys.executable))
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SLURM_DIR", str(tmp_path))
    results = tmp_path / "results"
    executor = eegbench.create(
        "executor", "submitit", partition="gpu", gpus_per_task=0, cells_per_job=2, array_parallelism=2, poll_seconds=0.2
    )
    outcomes = executor.run(CELLS, FakeRunner(str(results), fail_keys=frozenset({"pre-1-1"})))
    by_key = {o.key: o.status for o in outcomes}
    assert by_key["pre-1-1"] == by_key["fin-1-1"] == "failed"
    assert stored(results) == {k: v for k, v in sequential.items() if k not in ("pre-1-1", "fin-1-1")}
    assert "submitted 2 job(s) for 4 cell(s): 1001_0, 1001_1" in capsys.readouterr().err  # job ids printed
    scripts = (tmp_path / "scripts.txt").read_text().split("----")[:-1]
    # pretrain cells packed 2 per job = one array of 2 jobs; then the unblocked finetune cells (one or two
    # arrays, depending on whether both pretrain jobs ended within one poll)
    assert 2 <= len(scripts) <= 3
    assert "#SBATCH --array=0-1%2" in scripts[0] and "#SBATCH --partition=gpu" in scripts[0]
    executor.run(CELLS, FakeRunner(str(results)))
    assert stored(results) == sequential


def test_slurm_without_slurm_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(EegbenchError, match="cluster=local"):
        eegbench.create("executor", "submitit").make_executor(tmp_path)


# --------------------------------------------------------------------------------------------------
# smoke-testing a cluster spec locally; what a job that left no results tells
# --------------------------------------------------------------------------------------------------
SLURM_ENV = {
    "setup": ["no-such-module-cmd load apptainer"],
    "apptainer": "missing.sif",
    "apptainer_args": "--bind /nowhere",
    "python": "no-such-python",
}


@pytest.fixture
def quick_dead_jobs(monkeypatch):
    import submitit.core.core

    # submitit waits 15 s for a dead job's result file (shared-filesystem latency); nothing lags here
    monkeypatch.setattr(submitit.core.core.Job, "_results_timeout_s", 1)


def logged_paths(error: str) -> list[Path]:
    line = next((ln for ln in error.splitlines() if ln.startswith("log: ")), "log: ")
    return [Path(p) for p in line[len("log: ") :].split(", ") if p]


@pytest.mark.parametrize("cluster", ["local", "debug"])
def test_local_clusters_skip_the_slurm_job_environment_unless_asked(cluster, tmp_path, sequential, capsys):
    import shlex
    import sys

    pre = [c for c in CELLS if c.stage == "pretrain"][:2]
    executor = eegbench.create("executor", "submitit", cluster=cluster, gpus_per_task=0, **SLURM_ENV)
    assert executor.python_command() == shlex.quote(sys.executable)
    outcomes = executor.run(pre, FakeRunner(str(tmp_path / "r")))
    assert [o.status for o in outcomes] == ["done", "done"], [o.error for o in outcomes]
    assert stored(tmp_path / "r") == {c.key: sequential[c.key] for c in pre}
    assert "not applying setup, apptainer, python" in capsys.readouterr().err
    # asked for: the container wrapper is back (on Slurm it always is)
    wrapped = eegbench.create("executor", "submitit", cluster="local", local_setup=True, **SLURM_ENV)
    assert wrapped.python_command() == "apptainer exec --nv --bind /nowhere missing.sif no-such-python"
    assert eegbench.create("executor", "submitit", **SLURM_ENV).python_command() == wrapped.python_command()


def test_a_failing_setup_line_is_the_recorded_cause_with_its_log(tmp_path, quick_dead_jobs):
    results = tmp_path / "r"
    pre, fin = CELLS[0], next(c for c in CELLS if CELLS[0].key in c.depends_on)
    executor = eegbench.create(
        "executor",
        "submitit",
        cluster="local",
        gpus_per_task=0,
        local_setup=True,
        setup=["echo preparing the node", "no-such-module-cmd load apptainer"],
    )
    outcomes = {o.key: o for o in executor.run([pre, fin], FakeRunner(str(results)))}
    error = outcomes[pre.key].error
    first = error.splitlines()[0]
    assert outcomes[pre.key].status == "failed" and "ended without results" in first
    assert "no-such-module-cmd" in first and "not found" in first  # the shell's own words, first line
    assert "preparing the node" in error  # the tail of the setup log
    logs = logged_paths(error)
    assert logs and all(p.is_file() for p in logs)
    assert "UncompletedJobError" not in error and "_log.out" not in error  # no files that do not exist
    stored_error = {c["cell_key"]: c["error"] for c in ResultStore(results).cells()}[pre.key]
    assert stored_error == error
    assert "no-such-module-cmd" in outcomes[fin.key].error and "dependency" in outcomes[fin.key].error


def test_a_crashed_job_names_its_existing_logs_only(tmp_path, quick_dead_jobs):
    executor = eegbench.create("executor", "submitit", cluster="local", gpus_per_task=0)
    (out,) = executor.run(CELLS[:1], FakeRunner(str(tmp_path / "r"), crash_keys=frozenset({CELLS[0].key})))
    assert out.status == "failed"
    assert "ended without results: no error message in its logs" in out.error.splitlines()[0]
    logs = logged_paths(out.error)
    assert logs and all(p.is_file() for p in logs)


class _Paths:
    def __init__(self, folder: Path):
        self.folder, self.stderr, self.stdout = folder, folder / "7_0_log.err", folder / "7_0_log.out"


class _Job:
    job_id = "7"
    state = "OUT_OF_MEMORY"

    def __init__(self, folder: Path):
        self.paths = _Paths(folder)


def test_job_error_picks_the_telling_line_of_a_slurm_stderr(tmp_path):
    from submitit.core.utils import UncompletedJobError

    executor = eegbench.create("executor", "submitit")
    job = _Job(tmp_path)
    exc = UncompletedJobError(f"No output/error stream produced ! Check: {job.paths.stdout}")
    assert executor._job_error(job, exc).startswith(
        "job 7 ended without results (state OUT_OF_MEMORY): it wrote no output"
    )
    assert "log:" not in executor._job_error(job, exc) and str(job.paths.stdout) not in executor._job_error(job, exc)

    job.paths.stderr.write_text(
        "submitit INFO (x) - Starting\nTraceback (most recent call last):\n"
        '  File "x.py", line 1\nRuntimeError: CUDA out of memory\n'
        "srun: error: node1: task 0: Exited with exit code 1\n"
    )
    error = executor._job_error(job, exc)
    assert (
        error.splitlines()[0] == "job 7 ended without results (state OUT_OF_MEMORY): RuntimeError: CUDA out of memory"
    )
    assert error.splitlines()[-1] == f"log: {job.paths.stderr}"


@pytest.mark.parametrize(
    "name, params, field",
    [
        ("local", {"jobs": 0}, "jobs"),
        ("local", {"jobs": 1.5}, "jobs"),
        ("local", {"jobs": True}, "jobs"),
        ("submitit", {"gpus_per_task": -1}, "gpus_per_task"),
        ("submitit", {"array_parallelism": 0}, "array_parallelism"),
        ("submitit", {"cells_per_job": 0}, "cells_per_job"),
        ("submitit", {"timeout_min": 0}, "timeout_min"),
        ("submitit", {"cpus_per_task": 0}, "cpus_per_task"),
        ("submitit", {"mem_gb": 0}, "mem_gb"),
        ("submitit", {"poll_seconds": -1}, "poll_seconds"),
        ("submitit", {"partition": 3}, "partition"),
        ("submitit", {"setup": [1]}, "setup"),
        ("submitit", {"local_setup": "yes"}, "local_setup"),
        ("ray", {"cells_per_task": 0}, "cells_per_task"),
        ("ray", {"num_gpus": -1}, "num_gpus"),
        ("ray", {"gpus_per_cell": -0.5}, "gpus_per_cell"),
    ],
)
def test_bad_executor_parameters_are_one_line_naming_the_parameter(name, params, field):
    with pytest.raises(EegbenchError) as err:
        eegbench.create("executor", name, **params)
    message = str(err.value)
    # the executor's own check, or the registry's type check against the defaults: one line either way
    assert "\n" not in message and name in message and field in message


def test_dry_run_refuses_bad_executor_parameters(tmp_path, capsys):
    from eegbench.cli import main

    quick = Path(__file__).resolve().parent.parent / "benchmarks" / "quick.toml"
    slurm = quick.parent / "slurm_example.toml"
    assert main(["run", str(quick), "--dry-run", "--set", "executor.jobs=0", "--results", str(tmp_path)]) != 0
    assert "jobs must be a whole number >= 1" in capsys.readouterr().err
    assert main(["run", str(slurm), "--dry-run", "--set", "executor.cells_per_job=0", "--results", str(tmp_path)]) != 0
    assert "cells_per_job" in capsys.readouterr().err
    # the documented smoke-test overrides plan fine
    assert (
        main(
            [
                "run",
                str(slurm),
                "--dry-run",
                "--set",
                "executor.cluster=local",
                "--set",
                "seeds=[0]",
                "--only",
                "fold=sub-01",
                "--results",
                str(tmp_path),
            ]
        )
        == 0
    )


def test_ray_local_instance_gives_the_sequential_rows(tmp_path, sequential):
    ray = pytest.importorskip("ray")
    results = tmp_path / "r"
    executor = eegbench.create("executor", "ray", num_cpus=2, cells_per_task=2)
    outcomes = executor.run(
        CELLS, FakeRunner(str(results), fail_keys=frozenset({"pre-2-1"}), raise_keys=frozenset({"fin-1-0"}))
    )
    assert not ray.is_initialized()  # the instance it started is shut down
    by_key = {o.key: o for o in outcomes}
    assert [o.key for o in outcomes] == [c.key for c in CELLS]
    assert "fake runner exploded" in by_key["fin-1-0"].error
    assert "pre-2-1" in by_key["fin-2-1"].error
    failed = {"pre-2-1", "fin-1-0", "fin-2-1"}
    assert stored(results) == {k: v for k, v in sequential.items() if k not in failed}
    assert f"pid-{os.getpid()}" not in {r["device"] for r in ResultStore(results).rows()}


# --------------------------------------------------------------------------------------------------
# acceptance: the engine's real runner (CellRunner via run_spec) on a small spec, in other processes
# --------------------------------------------------------------------------------------------------
TESTS_DIR = Path(__file__).resolve().parent
BOOM_ENV = "EEGBENCH_TEST_BOOM_SUBJECT"

PLUGIN_SOURCE = f'''
"""Test-only plugin: the engine's fake components plus a backbone that raises for one training subject.

Installed as a distribution (dist-info + entry point) so worker processes, submitit jobs and Ray tasks
load it like any third-party plugin. The failing subject comes from the environment, so a rerun without
it reuses the same cell keys.
"""
import os

import eegbench_fakes as fakes
from eegbench import hookimpl
from eegbench.components import Component


def build_boom(n_chans, n_times, sfreq=None, chs_info=None, subjects=None, hidden=32):
    bad = int(os.environ.get("{BOOM_ENV}", "0") or 0)
    if bad and subjects and bad in subjects:
        raise ValueError(f"boom backbone refuses subject {{bad}}")
    return fakes.build_backbone(n_chans, n_times, sfreq, chs_info, subjects, hidden=hidden)


class Plugin(fakes.FakePlugin):
    @hookimpl
    def eegbench_backbones(self):
        return [Component(kind="backbone", name="boom-mlp", summary="test", factory=build_boom)]


PLUGIN = Plugin()
'''


@pytest.fixture(scope="module")
def engine_env(tmp_path_factory):
    """A temp distribution registering the fakes, on PYTHONPATH for this process and every worker."""
    from eegbench.execution import embedding
    from eegbench.registry import reset_registry

    if not hasattr(embedding, "embed_images"):  # the engine needs the embedding cache (eegbench.execution.embedding)
        pytest.skip("eegbench.execution.embedding.embed_images is not available")
    root = tmp_path_factory.mktemp("engine")
    site = root / "site"
    dist = site / "eegbench_exec_fakes-0.0.dist-info"
    dist.mkdir(parents=True)
    (site / "eegbench_exec_fakes.py").write_text(PLUGIN_SOURCE)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: eegbench-exec-fakes\nVersion: 0.0\n")
    (dist / "entry_points.txt").write_text("[eegbench]\nexec-fakes = eegbench_exec_fakes:PLUGIN\n")
    mp = pytest.MonkeyPatch()
    paths = [str(site), str(TESTS_DIR)]
    mp.setenv("PYTHONPATH", os.pathsep.join(paths + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    for p in reversed(paths):
        mp.syspath_prepend(p)
    for var in ("EEGBENCH_CACHE", "EEGBENCH_DATA", "EEGBENCH_RESULTS"):
        mp.setenv(var, str(root / var.lower()))
    mp.delenv(BOOM_ENV, raising=False)
    reset_registry()
    yield root
    mp.undo()
    reset_registry()


def engine_spec(**changes):
    import eegbench_fakes as fakes

    base = {
        "protocol.folds": [1, 2],
        "backbone.name": "boom-mlp",
        "train.epochs": 3,
        "finetune": {"training_ratios": [0.5], "epochs": 2},
        "executor": {"name": "local"},
    }
    return fakes.spec_dict(**{**base, **changes})


def run_engine(results: Path, **changes):
    from eegbench.runner import run_spec

    return run_spec(engine_spec(**changes), results_dir=results, device="cpu", quiet=True)


def metric_rows(results: Path) -> dict[tuple, float]:
    return {(r["cell_key"], r["metric"], r["test_subject"]): r["value"] for r in ResultStore(results).rows()}


@pytest.fixture(scope="module")
def engine_sequential(engine_env):
    results = engine_env / "sequential"
    run_engine(results)
    rows = metric_rows(results)
    assert len(ResultStore(results).cells()) == 4 and all(s == "done" for s in statuses(results).values())
    return rows


@pytest.mark.slow
@pytest.mark.parametrize(
    "executor",
    [
        pytest.param({"executor.params.jobs": 2}, id="local-jobs2"),
        pytest.param(
            {"executor": {"name": "submitit", "params": {"cluster": "local", "gpus_per_task": 0}}}, id="submitit-local"
        ),
        pytest.param({"executor": {"name": "ray", "params": {"num_cpus": 2}}}, id="ray-local"),
    ],
)
def test_engine_spec_in_other_processes_stores_the_sequential_rows(engine_env, engine_sequential, executor):
    results = engine_env / f"run-{abs(hash(str(executor)))}"
    run_engine(results, **executor)
    cells = ResultStore(results).cells()
    assert all(c["status"] == "done" for c in cells), [(c["stage"], c["fold"], c["status"], c["error"]) for c in cells]
    assert metric_rows(results) == engine_sequential


@pytest.mark.slow
def test_engine_failed_cell_is_recorded_shown_and_retried_alone(engine_env, engine_sequential, monkeypatch, capsys):
    from eegbench.cli import main

    results = engine_env / "failing"
    spec_file = engine_env / "spec.toml"
    import tomli_w

    spec = engine_spec(**{"executor.params.jobs": 2})
    spec_file.write_text(tomli_w.dumps(spec))
    monkeypatch.setenv(BOOM_ENV, "1")  # fold sub-02 trains on subjects 1 and 3: its pretrain cell raises
    run_engine(results, **{"executor.params.jobs": 2})
    cells = {(c["stage"], c["fold"]): c for c in ResultStore(results).cells()}
    assert cells[("pretrain", "sub-02")]["status"] == "failed"
    assert "boom backbone refuses subject 1" in cells[("pretrain", "sub-02")]["error"]
    assert (
        cells[("finetune", "sub-02")]["status"] == "failed" and "dependency" in cells[("finetune", "sub-02")]["error"]
    )
    assert cells[("pretrain", "sub-01")]["status"] == cells[("finetune", "sub-01")]["status"] == "done"
    done_rows = {k: v for k, v in metric_rows(results).items()}
    assert done_rows.items() <= engine_sequential.items()

    capsys.readouterr()
    assert main(["status", str(spec_file), "--results", str(results)]) == 0
    out = capsys.readouterr().out
    assert "4 cells: 2 done, 0 running, 2 failed, 0 pending" in out
    assert "boom backbone refuses subject 1" in out

    monkeypatch.delenv(BOOM_ENV)
    finished_before = {c["cell_key"]: c["finished_at"] for c in ResultStore(results).cells() if c["status"] == "done"}
    run_engine(results, **{"executor.params.jobs": 2})
    after = {c["cell_key"]: c for c in ResultStore(results).cells()}
    assert all(c["status"] == "done" for c in after.values())
    assert all(after[k]["finished_at"] == t for k, t in finished_before.items())  # done cells not rerun
    assert metric_rows(results) == engine_sequential


def test_executors_read_cells_and_runners_through_their_contracts(monkeypatch, tmp_path):
    """No getattr probing: executors read what ``CellLike`` and ``CellRunner`` declare; a planned cell and the
    stand-in are named alike (the cell's label and the start of its key)."""
    import inspect

    import eegbench_fakes as fakes

    from eegbench.planning.plan import build_plan
    from eegbench_plugins.executors import _core, local, rayexec, slurm

    source = "".join(inspect.getsource(m) for m in (_core, local, rayexec, slurm))
    assert not any(probe in source for probe in ("getattr(cell", "getattr(c,", "getattr(runner", "hasattr(cell"))
    # the module's engine_env may have put the same fakes on the path as a distribution: one provider only
    monkeypatch.setenv("EEGBENCH_DISABLE_PLUGINS", "exec-fakes")
    fakes.install(monkeypatch, tmp_path)
    cell = build_plan(fakes.spec_dict()).cells[0]
    assert _core.describe(cell) == f"{cell.label()} [{cell.key[:12]}]"
    stand_in = FakeCell(
        key=cell.key, stage=cell.stage, fold=cell.fold, seed=cell.seed, training_ratio=cell.training_ratio
    )
    assert _core.describe(stand_in) == _core.describe(cell)
    assert pack_key(cell) == pack_key(FakeCell(key="other", stage=cell.stage, config=dict(cell.config)))


def test_the_fork_servers_last_preload_freezes_its_heap():
    # a frozen heap is shared by the forked workers untouched and skipped by the server's exit collection
    code = "import gc, eegbench_plugins.executors._forkserver_heap; print(gc.get_freeze_count() > 1000)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "True"
