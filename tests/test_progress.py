"""Progress where nobody watches a terminal (pipes, logs, Slurm), a silent Python API, and pre-flight
failures that leave no store behind."""

from __future__ import annotations

import re

import eegbench_fakes as fakes
import pytest

from eegbench.cli import main
from eegbench.errors import EegbenchError
from eegbench.runner import run_spec


@pytest.fixture
def env(monkeypatch, tmp_path):
    fakes.install(monkeypatch, tmp_path)
    return tmp_path


def _spec_file(env, **changes):
    import tomli_w

    data = fakes.spec_dict(**{"protocol.folds": [2, 3], "finetune": {"training_ratios": [1.0], "epochs": 2}, **changes})
    path = env / "spec.toml"
    path.write_text(tomli_w.dumps(data))
    return str(path)


def test_piped_cli_prints_a_line_per_cell_start_end_and_periodic_epoch_lines(env, capsys, monkeypatch):
    monkeypatch.setenv("EEGBENCH_PROGRESS_EVERY", "0")  # a line every epoch (default: every 10 s)
    assert main(["run", _spec_file(env), "--results", str(env / "res"), "--device", "cpu"]) == 0
    captured = capsys.readouterr()  # neither stream is a terminal here: plain lines, no live display
    err = captured.err
    labels = [
        "pretrain sub-02 seed=0",
        "pretrain sub-03 seed=0",
        "finetune sub-02 seed=0 ratio=1",
        "finetune sub-03 seed=0 ratio=1",
    ]
    for label in labels:
        assert re.search(rf"^\[\d+s\] start {re.escape(label)} \(\d+ epochs", err, re.M), err
        assert re.search(rf"^\[\d+s\] done {re.escape(label)} in \d+\.\ds$", err, re.M), err
    epoch = re.findall(
        r"pretrain sub-02 seed=0: epoch (\d)/6 loss \d+\.\d{3} val \d+\.\d{3}, [\d,]+ samples/s, ETA \d+s", err
    )
    assert epoch and "6" not in epoch  # a running cell's epochs; its end is the done line
    assert "\x1b[" not in err and "━" not in err  # no terminal control codes in a log
    assert "results (retrieval accuracy in %" in captured.out


def test_quiet_prints_nothing_and_verbose_prints_every_epoch(env, capsys):
    spec = _spec_file(env)
    assert main(["run", spec, "--results", str(env / "q"), "--device", "cpu", "-q"]) == 0
    assert capsys.readouterr() == ("", "")
    assert main(["run", spec, "--results", str(env / "v"), "--device", "cpu", "-v"]) == 0
    err = capsys.readouterr().err
    assert len(re.findall(r"pretrain sub-03 seed=0: epoch [1-5]/6", err)) == 5


def test_python_api_is_silent_unless_asked(env, capsys):
    import eegbench

    df = eegbench.run(fakes.spec_dict(), results_dir=env / "res", device="cpu")
    assert len(df) and capsys.readouterr() == ("", "")
    eegbench.run(fakes.spec_dict(), results_dir=env / "res2", device="cpu", progress=True)
    captured = capsys.readouterr()
    assert "start pretrain sub-03 seed=0" in captured.err and "results (retrieval accuracy" in captured.out


@pytest.mark.parametrize("broken", ["encoder", "data"])
def test_failed_preflight_leaves_no_store_and_logs_the_error(env, monkeypatch, broken):
    def missing(*args, **kwargs):
        raise EegbenchError(
            "weights not found at /nowhere/ViT-B-32.pt (pass weights = PATH)"
            if broken == "encoder"
            else "subject 3 is missing under /nowhere (eegbench download)"
        )

    if broken == "encoder":
        monkeypatch.setattr(fakes.FakeEncoder, "__init__", missing)
    else:
        monkeypatch.setattr(fakes.FakeDataset, "ensure_available", missing, raising=False)
    res = env / "res"
    with pytest.raises(EegbenchError, match=r"not found|missing"):
        run_spec(fakes.spec_dict(), results_dir=res, device="cpu")
    assert not (res / "results.sqlite").exists()
    [log] = (res / "logs").glob("*.log")
    assert re.search(
        r"ERROR .*pre-flight failed, nothing run: .*(weights not found|subject 3 is missing)", log.read_text()
    )
