"""Spec keys that reach component context and executors: dataset root, inline executor params, --jobs."""

from __future__ import annotations

from pathlib import Path

import pytest

from eegbench.errors import EegbenchError
from eegbench.planning.plan import build_plan
from eegbench.planning.spec import load_spec
from eegbench.runner import run_spec

QUICK = Path(__file__).resolve().parent.parent / "benchmarks" / "quick.toml"


def test_dataset_root_is_accepted_and_part_of_the_cell_key(tmp_path):
    a = build_plan(QUICK, [f'dataset.params.root="{tmp_path / "a"}"']).cells[0]
    b = build_plan(QUICK, [f'dataset.params.root="{tmp_path / "b"}"']).cells[0]
    assert a.config["dataset"]["params"]["root"] == str(tmp_path / "a")
    assert a.key != b.key


def test_dataset_parameter_typo_still_refused():
    with pytest.raises(EegbenchError, match=r"\[dataset\].*has no parameter 'rooot'"):
        build_plan(QUICK, ['dataset.params.rooot="x"'])


def test_executor_params_may_be_given_inline():
    spec = load_spec(QUICK, ['executor.name="submitit"', 'executor.partition="gpu"', "executor.params.mem_gb=32"])
    assert spec.executor.name == "submitit"
    assert spec.executor.params == {"partition": "gpu", "mem_gb": 32}
    build_plan(spec)  # the params are the submitit executor's own


def test_jobs_only_for_executors_that_take_it(tmp_path):
    with pytest.raises(EegbenchError, match="--jobs applies to the local executor"):
        run_spec(QUICK, executor="submitit", jobs=2, results_dir=tmp_path, quiet=True)


@pytest.mark.parametrize("where", ["file", "under-a-file"])
def test_unusable_results_directory_is_one_line(tmp_path, where):
    blocker = tmp_path / "taken"
    blocker.write_text("not a directory")
    target = blocker if where == "file" else blocker / "results"
    with pytest.raises(EegbenchError, match="results directory"):
        run_spec(QUICK, results_dir=target, quiet=True)
    assert blocker.read_text() == "not a directory"


def test_only_needs_key_value_and_a_spec_directory_is_named(tmp_path):
    with pytest.raises(EegbenchError, match="--only 'fold' must look like KEY=VALUE"):
        build_plan(QUICK).select(["fold"])
    with pytest.raises(EegbenchError, match="is a directory; give a spec file"):
        load_spec(QUICK.parent)


def test_failed_cell_lines_keep_their_bracketed_keys(tmp_path, monkeypatch, capsys):
    """Rich markup must not swallow `[cell key]` in failure messages."""
    from eegbench.cli import main

    monkeypatch.setenv("EEGBENCH_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("EEGBENCH_CACHE", str(tmp_path / "cache"))
    from quick_spec import TINY_TWIN as tiny

    rc = main(
        [
            "run",
            str(QUICK),
            "--set",
            "variants=[]",
            "--set",
            tiny,
            "--set",
            'backbone={name="braindecode:AttnSleep"}',
            "--only",
            "fold=sub-03",
            "--results",
            str(tmp_path / "r"),
        ]
    )
    assert rc == 2  # a backbone that cannot take the data's shape is the user's input (exit-code contract)
    out = capsys.readouterr().out
    pretrain = next(
        c
        for c in build_plan(QUICK, ["variants=[]", tiny, 'backbone={name="braindecode:AttnSleep"}']).cells
        if c.stage == "pretrain" and c.fold == "sub-03"
    )
    assert f"[{pretrain.key[:12]}]" in out.replace("\n", "")


def test_dry_run_refuses_bad_jobs(capsys):
    from eegbench.cli import main

    assert main(["run", str(QUICK), "--dry-run", "--jobs", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "jobs" in err[0]


def test_an_empty_ratio_list_drops_the_finetune_stage():
    plan = build_plan(QUICK, ['protocol.name="intra"', "finetune.training_ratios=[]"])
    assert {c.stage for c in plan.cells} == {"pretrain"} and {c.protocol for c in plan.cells} == {"intra"}
    with pytest.raises(EegbenchError, match=r"finetune.training_ratios=\[\]"):
        build_plan(QUICK, ['protocol.name="intra"'])


def test_loss_settings_are_checked_at_plan_time():
    with pytest.raises(EegbenchError, match=r"\[loss\].*temperature_param must be one of"):
        build_plan(QUICK, ['loss.params.temperature_param="foo"'])
