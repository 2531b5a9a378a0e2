"""The shipped quick spec and tiny overrides of it, shared by the tests that run real cells end to end."""

from __future__ import annotations

from pathlib import Path

QUICK = Path(__file__).resolve().parent.parent / "benchmarks" / "quick.toml"

#: a twin small enough that a cell trains in about a second
TINY_TWIN = (
    "dataset.params={noise=4.0, subjects=4, train_concepts=12, images_per_concept=2, test_images=6, test_repetitions=4}"
)
#: quick.toml's base recipe alone (its [backbone], without the [[variants]] it compares), with one seed
SINGLE = "variants=[]"
ONE_SEED = "seeds=[0]"
#: quick.toml's base recipe on the tiny twin with few epochs (all of quick's folds and ratios)
TINY = [SINGLE, ONE_SEED, TINY_TWIN, "train.epochs=2", "finetune.epochs=1"]
#: one fold, one finetune ratio: three cells
TINY_ONE_FOLD = [*TINY, "finetune.training_ratios=[1.0]", "protocol.folds=[4]"]


def as_cli(overrides: list[str]) -> list[str]:
    """``["a=1", "b=2"]`` → ``["--set", "a=1", "--set", "b=2"]``."""
    return [arg for o in overrides for arg in ("--set", o)]
