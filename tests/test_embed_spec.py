"""`eegbench embed SPEC`: a spec's image sets embedded once with its image encoder, then cache hits."""

from __future__ import annotations

from pathlib import Path

import pytest

from eegbench.cli import main

QUICK = str(Path(__file__).resolve().parent.parent / "benchmarks" / "quick.toml")
TINY_TWIN = "dataset.params={subjects=2, train_concepts=6, images_per_concept=2, test_images=4, test_repetitions=4}"


@pytest.fixture(autouse=True)
def dirs(monkeypatch, tmp_path):
    monkeypatch.setenv("EEGBENCH_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("EEGBENCH_CACHE", str(tmp_path / "cache"))


def test_embed_spec_computes_then_hits_the_cache(capsys):
    assert main(["embed", QUICK, "--set", TINY_TWIN, "--quiet"]) == 0
    first = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in first] == ["train", "test"]
    assert all("(computed)" in line for line in first) and "train: 12 x" in first[0] and "test: 4 x" in first[1]
    assert main(["embed", QUICK, "--set", TINY_TWIN, "--quiet"]) == 0
    assert all("(cached)" in line for line in capsys.readouterr().out.splitlines())


@pytest.mark.parametrize(
    "args, message",
    [
        (["embed"], "needs a SPEC, or both --dataset and --image-encoder"),
        (["embed", QUICK, "--dataset", "things-eeg-2"], "either SPEC or --dataset"),
        (
            ["embed", "--dataset", "things-eeg-2", "--image-encoder", "embedding-file", "--set", "x=1"],
            "'embedding-file' has no parameter 'x'",
        ),  # without SPEC, --set is an image-encoder parameter
    ],
)
def test_embed_argument_errors_are_one_line(args, message, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_embed_spec_embeds_every_variants_encoder_once(capsys):
    """Variants that share an encoder embed it once; a variant with another encoder gets its own lines."""
    one = ['variants=[{name="a", backbone={name="resnet1d"}}, {name="b", backbone={name="nice"}}]']
    assert main(["embed", QUICK, "--set", TINY_TWIN, "--set", *one, "--quiet"]) == 0
    assert [line.split(":")[0] for line in capsys.readouterr().out.splitlines()] == ["train", "test"]
    two = [
        'variants=[{name="a"}, {name="b", image_encoder={name="embedding-file", '
        'params={path="image_set/synthetic_latents.npz", normalize=true}}}]'
    ]
    assert main(["embed", QUICK, "--set", TINY_TWIN, "--set", *two, "--quiet"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["embedding-file train", "embedding-file test"] * 2
    assert [("(cached)" in line) for line in lines] == [True, True, False, False]  # the first: embedded above
