"""Property: any TOML document either plans or is refused with the project's one-line user error.

Documents are mutations of the shipped quick spec (a key set to any TOML value, deleted, or added) and
random documents; values cover every TOML type (strings, integers of any size, floats with inf and nan,
booleans, dates and times, arrays, tables). Planning builds the executor, loss and task, so a value that
only fails inside a component must fail here too, in one line. Nothing trains, no data is generated.
"""

from __future__ import annotations

import copy
import tomllib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from quick_spec import QUICK

from eegbench.errors import EegbenchError
from eegbench.planning.plan import build_plan

BASE = tomllib.loads(QUICK.read_text())

#: every dotted key of the quick spec, plus documented keys it leaves at their defaults
KNOWN_KEYS = sorted(
    {
        *(
            f"{table}.{key}" if isinstance(value, dict) else table
            for table, value in BASE.items()
            for key in (value if isinstance(value, dict) else [None])
        ),
        *(
            f"{t}.params.{k}"
            for t in ("dataset", "backbone", "loss", "image_encoder")
            for k in BASE.get(t, {}).get("params", {})
        ),
        "train.min_lr",
        "train.eps",
        "train.betas",
        "train.grad_clip",
        "train.patience",
        "train.plateau_factor",
        "train.plateau_patience",
        "train.amp",
        "train.optimizer",
        "train.text_prompt",
        "train.compile",
        "dataset.window",
        "dataset.channels",
        "dataset.subjects",
        "protocol.folds",
        "validation.by",
        "validation.split",
        "loss.params.learn_temperature",
        "loss.params.text_weight",
        "loss.params.temperature_param",
        "task.name",
        "task.params.topk",
        "executor.jobs",
        "paths.results",
        "finetune.training_ratios",
    }
)

scalars = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(
        [
            0,
            1,
            -1,
            0.0,
            1e10,
            1e-320,
            2**63,
            "all",
            "none",
            "auto",
            "",
            "{concept}",
            "{x}",
            "resnet1d",
            "loso",
            "pooled",
            "intra",
            "last",
            "best-val",
            "train",
            "test",
        ]
    ),
    st.text(max_size=12),
    st.booleans(),
    st.dates(),
    st.datetimes(),
    st.times(),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=8,
)


def _set(doc: dict, dotted: str, value) -> None:
    node = doc
    parts = dotted.split(".")
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[parts[-1]] = value


def _delete(doc: dict, dotted: str) -> None:
    node = doc
    parts = dotted.split(".")
    for part in parts[:-1]:
        node = node.get(part)
        if not isinstance(node, dict):
            return
    node.pop(parts[-1], None)


@st.composite
def mutated_specs(draw) -> dict:
    doc = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 3))):
        key = draw(
            st.one_of(
                st.sampled_from(KNOWN_KEYS),
                st.builds(lambda t, k: f"{t}.{k}", st.sampled_from(sorted(BASE)), st.text(min_size=1, max_size=6)),
            )
        )
        if draw(st.integers(0, 4)) == 0:
            _delete(doc, key)
        else:
            _set(doc, key, draw(values))
    return doc


def _plans_or_one_line(doc) -> None:
    try:
        build_plan(doc)
    except EegbenchError as exc:
        message = str(exc)
        assert message.strip() and "\n" not in message, repr(message)
    # any other exception fails the property: a raw traceback for the user


@pytest.fixture(autouse=True, scope="module")
def _private_dirs(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("spec-property")
    mp.setenv("EEGBENCH_DATA", str(root / "data"))
    mp.setenv("EEGBENCH_CACHE", str(root / "cache"))
    yield
    mp.undo()


PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(mutated_specs())
def test_mutations_of_the_quick_spec_plan_or_fail_in_one_line(doc):
    _plans_or_one_line(doc)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.sampled_from([*BASE, "x", "source"]), values, max_size=6))
def test_random_documents_plan_or_fail_in_one_line(doc):
    _plans_or_one_line(doc)


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=200))
def test_any_text_as_a_spec_file_plans_or_fails_in_one_line(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("toml") / "spec.toml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    _plans_or_one_line(path)


def test_the_base_document_plans():
    assert build_plan(copy.deepcopy(BASE)).cells
