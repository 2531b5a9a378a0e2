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


# -- a browsable zoo --------------------------------------------------------------------------------------
def _rows(kind=None, pattern=None, **kw):
    from eegbench.cli.zoo import list_rows
    from eegbench.registry import get_registry

    return list_rows(get_registry(), kind, pattern, **kw)


def test_list_fits_the_terminal_width_and_keeps_names_whole():
    from eegbench.cli.zoo import render_list

    rows, _ = _rows()
    for width in (100, 140):
        out = render_list(rows, terminal=True, width=width)
        lines = out.splitlines()
        assert max(len(line) for line in lines) <= width
        assert any(line.endswith("…") for line in lines)  # long summaries shortened, not wrapped
        assert len(lines) == len(rows) + 2
        assert "braindecode:SignalJEPA_Contextual" not in out or all(
            "braindecode:SignalJEPA_Contextual " in line for line in lines if "SignalJEPA_Contextual" in line
        )


def _component(name, summary, kind="loss", **kw):
    from types import SimpleNamespace

    fields = {"signal": "", "fits": None, "plugin": "eegbench", "citation": "", **kw}
    return SimpleNamespace(kind=kind, name=name, summary=summary, **fields)


def test_piped_list_is_plain_text_with_nothing_shortened(capsys):
    import eegbench

    assert main(["list", "backbone"]) == 0  # captured: not a terminal
    out = capsys.readouterr().out
    assert "\x1b[" not in out
    lines = out.splitlines()
    assert lines[0].split() == ["name", "aliases", "fits", "summary"] and set(lines[1]) == {"─"}
    assert all(line == line.rstrip() for line in lines)
    for comp in eegbench.list_components("backbone"):
        if comp.signal in ("", "EEG") and not comp.alias_of:
            row = next(line for line in lines[2:] if line.split()[0] == comp.name)
            assert row.endswith(comp.summary)  # whole, on its own line
    assert main(["list", "loss", "--wide"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["name", "signal", "package", "citation", "summary"]
    clip = next(line for line in lines if line.startswith("clip "))
    assert eegbench.get_component("loss", "clip").citation in clip


def test_list_table_text_is_data_not_markup_and_styled_only_when_asked(monkeypatch):
    from eegbench.cli.zoo import render_list

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    rows = [(_component("odd", "[bold]kept[/bold] :smile: as written " * 4, citation="Doe [1]"), ["o"])]
    plain = render_list(rows, terminal=False, wide=True)
    assert "[bold]kept[/bold] :smile:" in plain and "Doe [1]" in plain and "\x1b[" not in plain
    assert plain.splitlines()[0].split() == ["kind", "name", "aliases", "signal", "package", "citation", "summary"]
    coloured = render_list(rows, terminal=True, width=60, color=True)
    assert "\x1b[1m" in coloured and "odd" in coloured  # a bold header


def test_list_in_a_narrow_terminal_drops_the_summary_but_never_a_name():
    from eegbench.cli.zoo import render_list

    rows = [(_component("a-rather-long-component-name", "a summary"), [])]
    out = render_list(rows, terminal=True, width=30, show_kind=True)
    assert out.splitlines()[0].split() == ["kind", "name"] and "a-rather-long-component-name" in out


def test_list_folds_aliases_into_their_component(capsys):
    assert main(["list", "backbone"]) == 0
    out = capsys.readouterr().out
    names = [line.split()[0] for line in out.splitlines()[2:]]
    assert "atcnet" not in names and "braindecode:ATCNet" in names
    assert len(names) == len(set(names))
    row = next(line for line in out.splitlines() if line.startswith("braindecode:ATCNet "))
    assert "atcnet" in row.split()
    # a pattern matches the alias too, and names the canonical row
    assert main(["list", "backbone", "atcnet"]) == 0
    assert capsys.readouterr().out.splitlines()[2].split()[:2] == ["braindecode:ATCNet", "atcnet"]


def test_non_eeg_backbones_are_marked_and_left_out_unless_asked(capsys):
    assert main(["list", "backbone"]) == 0
    captured = capsys.readouterr()
    assert "NeuroPose" not in captured.out and "EMG2QwertyNet" not in captured.out
    assert "5 backbone(s) for other signals than EEG" in captured.err
    assert main(["list", "backbone", "--all"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("braindecode:NeuroPose "))
    assert "sEMG" in row.split()


def test_fits_column_and_filter_come_from_the_recorded_build_check(capsys):
    from eegbench_plugins.braindecode_zoo import model_table

    rows, _ = _rows("backbone", fits="17x128")
    names = {c.name for c, _ in rows}
    assert {"resnet1d", "nice", "braindecode:EEGNet"} <= names
    recorded_no = {"braindecode:" + n for n, e in model_table().items() if not e["fits"]}
    assert recorded_no and not names & recorded_no
    assert _rows("backbone", fits="17x128@100")[0] == rows and _rows("backbone", fits="17x128@250")[0] == []
    assert main(["list", "backbone", "braindecode:BENDR"]) == 0
    assert capsys.readouterr().out.splitlines()[2].split()[1] == "no"
    assert main(["list", "--fits", "17 by 128"]) == 2


@pytest.mark.parametrize("name", ["resnet1d", "resnet1d-subject", "nice", "atm-s", "ubp-mlp"])
def test_recorded_fits_build(name):
    """Every non-braindecode backbone recording a shape builds and runs at it (braindecode's records are checked
    by tests/test_braindecode_zoo.py against a build of each model)."""
    import torch

    import eegbench
    from eegbench.cli.zoo import parse_shape

    comp = eegbench.get_component("backbone", name)
    assert comp.fits, f"{name} records no shape it builds at"
    for shape in comp.fits:
        n_chans, n_times, sfreq = parse_shape(shape)
        net = eegbench.create("backbone", name, n_chans=n_chans, n_times=n_times, sfreq=sfreq, subjects=[1, 2])
        net.eval()
        with torch.no_grad():
            x = torch.randn(2, n_chans, n_times)
            out = net(x, torch.tensor([1, 2])) if "subject" in name else net(x)
        assert out.shape[0] == 2 and torch.isfinite(out).all()


def test_family_members_listed_from_open_clip_itself(capsys):
    import open_clip

    assert main(["list", "image-encoder", "open_clip*"]) == 0
    out = capsys.readouterr().out
    listed = {line.split()[0] for line in out.splitlines()[2:]}
    assert listed == {f"open_clip:{m}/{t}" for m, t in open_clip.list_pretrained()}
    assert main(["list", "image-encoder", "open_clip:ViT-B-32/*"]) == 0
    assert "open_clip:ViT-B-32/openai" in capsys.readouterr().out


def test_timm_family_listed_by_pattern(capsys):
    import timm

    assert main(["list", "image-encoder", "timm:resnet18.*"]) == 0
    listed = {line.split()[0] for line in capsys.readouterr().out.splitlines()[2:]}
    assert listed == {"timm:" + m for m in timm.list_models("resnet18.*", pretrained=True)} and listed


def test_made_up_family_member_is_refused_with_close_matches(capsys):
    # in this process: each command in a fresh one would import open_clip and timm again (seconds each)
    assert main(["info", "open_clip:ViT-B-99/foo"]) == 2
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert out == "" and len(lines) == 1 and "'ViT-B-32'" in lines[0] and "ViT-B-99" in lines[0]
    assert main(["info", "open_clip:ViT-B-32/foo"]) == 2
    assert "no pretrained tag 'foo'" in capsys.readouterr().err
    assert main(["info", "timm:resnt18"]) == 2
    assert "'resnet18'" in capsys.readouterr().err
    assert main(["info", "open_clip:ViT-B-32/openai"]) == 0


def test_checking_a_spec_imports_no_torch_and_still_refuses_a_bad_loss(tmp_path, monkeypatch):
    # a dry run only validates: the loss is checked through its light `check`, not built (torch takes seconds)
    from quick_spec import QUICK

    monkeypatch.setenv("EEGBENCH_DATA", str(tmp_path / "data"))
    code = (
        "import sys; from eegbench.cli import main; rc = main(sys.argv[1:]); "
        "print('HEAVY=' + ','.join(m for m in ('torch', 'braindecode', 'open_clip') if m in sys.modules)); "
        "sys.exit(rc)"
    )
    base = [sys.executable, "-c", code, "run", str(QUICK), "--dry-run", "--results", str(tmp_path / "res")]
    proc = subprocess.run(base, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.rstrip().endswith("HEAVY="), proc.stdout[-300:] + proc.stderr
    for setting, message in [
        ("loss.params.temperature=0", "loss clip: temperature must be a finite number > 0, got 0"),
        ('loss={name="soft-clip", params={target_temperature=-1}}', "target_temperature must be a finite number"),
    ]:
        proc = subprocess.run([*base, "--set", setting], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2 and message in proc.stderr and "[loss]" in proc.stderr, proc.stderr
        assert "HEAVY=" not in proc.stdout or proc.stdout.rstrip().endswith("HEAVY="), proc.stdout[-300:]


def test_dry_run_plans_nothing_for_a_made_up_family_member(tmp_path, monkeypatch):
    from quick_spec import QUICK

    monkeypatch.setenv("EEGBENCH_DATA", str(tmp_path / "data"))
    proc = run_cli(
        "run",
        str(QUICK),
        "--dry-run",
        "--results",
        str(tmp_path / "res"),
        "--set",
        'image_encoder.name="open_clip:ViT-B-99/foo"',
        "--set",
        "image_encoder.params={}",
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "did you mean 'ViT-B-32'" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "res").exists() or not any((tmp_path / "res").iterdir())


def test_plain_list_stays_light_even_with_a_pattern():
    code = (
        "import sys; from eegbench.cli import main; rc = main(['list', 'image-encoder', '*']); "
        "print('HEAVY=' + ','.join(m for m in ('torch', 'open_clip', 'timm') if m in sys.modules)); sys.exit(rc)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.rstrip().endswith("HEAVY="), proc.stdout[-300:] + proc.stderr


# -- one vocabulary of flags ------------------------------------------------------------------------------
def _commands(parser, prefix=()):
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*prefix, name), sub
                yield from _commands(sub, (*prefix, name))


def test_every_option_of_every_command_has_help():
    import argparse

    from eegbench.cli import build_parser

    missing = []
    for path, sub in _commands(build_parser()):
        for action in sub._actions:
            if (
                isinstance(action, (argparse._HelpAction, argparse._SubParsersAction))
                or action.help == argparse.SUPPRESS
            ):
                continue
            if not (action.help or "").strip():
                missing.append(f"eegbench {' '.join(path)} {'/'.join(action.option_strings) or action.dest}")
    assert not missing, missing


def test_run_and_embed_share_cache_and_set_and_status_shares_results():
    from eegbench.cli import build_parser

    subs = dict(_commands(build_parser()))
    flags = {name: {o for a in subs[(name,)]._actions for o in a.option_strings} for name in ("run", "embed", "status")}
    assert {"--cache", "--set", "--results"} <= flags["run"]
    assert {"--cache", "--set"} <= flags["embed"]
    assert {"--set", "--results"} <= flags["status"]
    embed_help = subs[("embed",)].format_help()
    assert "--cache-dir" not in embed_help and "--param" not in embed_help  # deprecated aliases stay hidden


@pytest.mark.parametrize("spelling", [["--subjects", "1", "2"], ["--subjects", "1,2"], ["--subjects", "1,", "2"]])
def test_data_verify_lists_take_commas_and_spaces(spelling, tmp_path, monkeypatch, capsys):
    from eegbench_plugins.things_eeg2 import download

    seen = {}
    monkeypatch.setattr(
        download, "verify", lambda root, parts, subjects: seen.update(parts=parts, subjects=subjects) or []
    )
    assert (
        main(
            ["data", "verify", "things-eeg-2", "--root", str(tmp_path), *spelling, "--parts", "preprocessed", "images"]
        )
        == 0
    )
    assert seen == {"parts": ["preprocessed", "images"], "subjects": [1, 2]}
    assert main(["data", "verify", "things-eeg-2", "--root", str(tmp_path), "--parts", "raw,images"]) == 0
    assert seen["parts"] == ["raw", "images"] and seen["subjects"] is None
    capsys.readouterr()
    assert main(["data", "verify", "things-eeg-2", "--root", str(tmp_path), "--subjects", "one"]) == 2
    assert "--subjects" in capsys.readouterr().err
