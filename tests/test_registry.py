"""The registry: entry points, lookup, close matches, clashes, families, lazy factories."""

from __future__ import annotations

import types

import pytest

import eegbench
from eegbench import Component, hookimpl
from eegbench.errors import ComponentClashError, EegbenchError, UnknownComponentError
from eegbench.registry import Registry, natural_key, normalize_kind


def _plugin(name: str, components: list[Component], family: dict | None = None) -> types.SimpleNamespace:
    ns = types.SimpleNamespace(__name__=name)

    @hookimpl
    def eegbench_backbones():
        return [c for c in components if c.kind == "backbone"]

    @hookimpl
    def eegbench_losses():
        return [c for c in components if c.kind == "loss"]

    ns.eegbench_backbones = eegbench_backbones
    ns.eegbench_losses = eegbench_losses
    if family is not None:

        @hookimpl
        def eegbench_resolve_family(kind, name):
            prefix, _, rest = name.partition(":")
            if kind == "backbone" and prefix == family["prefix"]:
                return Component(kind="backbone", name=name, summary=f"family member {rest}", factory=family["factory"])
            return None

        ns.eegbench_resolve_family = eegbench_resolve_family
    return ns


def _factory(n_chans=None, n_times=None, width=4, **extra):
    """A family's factory: ``**extra`` accepts any further parameter."""
    return {"n_chans": n_chans, "n_times": n_times, "width": width, **extra}


def _closed_factory(n_chans=None, n_times=None, *, width: int = 4):
    return {"n_chans": n_chans, "n_times": n_times, "width": width}


COMPS = [
    Component(kind="backbone", name="resnet1d", summary="r", factory=_closed_factory),
    Component(kind="backbone", name="net10", summary="n", factory=_factory),
    Component(kind="backbone", name="net2", summary="n", factory=_factory),
    Component(kind="loss", name="clip", summary="c", factory=_factory),
]


@pytest.fixture
def reg():
    return Registry(autoload=False, plugins=[_plugin("p1", COMPS, {"prefix": "fam", "factory": _factory})])


def test_list_natural_order_and_wildcards(reg):
    assert [c.name for c in reg.list_components("backbone")] == ["net2", "net10", "resnet1d"]
    assert [c.name for c in reg.list_components("backbones", "net*")] == ["net2", "net10"]
    assert [c.name for c in reg.list_components(None, "*", exclude=["net*"])] == ["resnet1d", "clip"]
    assert natural_key("EEGNet2") < natural_key("EEGNet10")


def test_unknown_name_suggests_close_match(reg):
    with pytest.raises(UnknownComponentError) as err:
        reg.get("backbone", "resnet1")
    assert str(err.value) == "unknown backbone 'resnet1' — did you mean 'resnet1d'? (eegbench list backbone)"


def test_unknown_kind_is_one_line():
    with pytest.raises(EegbenchError, match="unknown kind 'backbon' — did you mean 'backbone'"):
        normalize_kind("backbon")


def test_path_like_name_refused(reg):
    with pytest.raises(UnknownComponentError, match="looks like a path"):
        reg.get("backbone", "models/resnet1d.pt")


def test_family_resolution(reg):
    comp = reg.get("backbone", "fam:Thing")
    assert comp.summary == "family member Thing" and comp.plugin == "p1"
    assert comp.build({"n_chans": 3}, anything=1)["anything"] == 1


def test_same_name_from_two_packages_is_an_error():
    dup = [Component(kind="backbone", name="resnet1d", summary="other", factory=_factory)]
    reg = Registry(autoload=False, plugins=[_plugin("pkg_a", COMPS), _plugin("pkg_b", dup)])
    with pytest.raises(ComponentClashError) as err:
        reg.list_components()
    assert "pkg_a" in str(err.value) and "pkg_b" in str(err.value)


def test_unknown_parameter_refused_and_none_keeps_default(reg):
    comp = reg.get("backbone", "resnet1d")
    assert comp.build({"n_chans": 17}, width=None)["width"] == 4
    with pytest.raises(EegbenchError, match="has no parameter 'widht' — did you mean 'width'"):
        comp.build({}, widht=3)


def test_typo_in_hook_name_is_caught():
    bad = types.SimpleNamespace()

    @hookimpl
    def eegbench_backbone():  # missing "s": no such hookspec
        return []

    bad.eegbench_backbone = eegbench_backbone
    with pytest.raises(Exception, match="unknown hook"):
        Registry(autoload=False, plugins=[bad])


def test_factory_import_path_is_lazy():
    comp = Component(kind="loss", name="x", summary="", factory="json:dumps")
    assert comp.load_factory()([1]) == "[1]"
    with pytest.raises(EegbenchError, match="must look like 'module:function'"):
        Component(kind="loss", name="y", summary="", factory="json.dumps").load_factory()


def test_validate_runs_the_light_check_instead_of_building():
    built, checked = [], []

    def factory(*, temperature: float = 0.04):
        built.append(temperature)
        return object()

    def check(*, temperature):
        checked.append(temperature)
        if temperature <= 0:
            raise EegbenchError(f"loss x: temperature must be > 0, got {temperature}")

    light = Component(kind="loss", name="x", summary="", factory=factory, check=check)
    light.validate(temperature=0.1)
    light.validate()  # the check sees the resolved parameters: defaults filled in
    assert checked == [0.1, 0.04] and built == []
    with pytest.raises(EegbenchError, match="got -1"):
        light.validate(temperature=-1.0)
    with pytest.raises(EegbenchError, match="must be a number"):  # the signature's types first
        light.validate(temperature="warm")
    Component(kind="loss", name="y", summary="", factory=factory).validate(temperature=0.2)  # no check: built
    assert built == [0.2]
    bad = Component(kind="loss", name="z", summary="", factory=factory, check="json.dumps")
    with pytest.raises(EegbenchError, match=r"check 'json\.dumps' must look like 'module:function'"):
        bad.validate()


def test_builtin_losses_check_without_torch():
    code = (
        "import sys; from eegbench.registry import validate; from eegbench.errors import EegbenchError\n"
        "validate('loss', 'clip', temperature=0.07); validate('loss', 'soft-clip')\n"
        "try:\n    validate('loss', 'clip', temperature_param='exp')\nexcept EegbenchError as e:\n    print(e)\n"
        "print('torch' in sys.modules)"
    )
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == [
        'loss clip: temperature_param must be one of "log", "softplus", "softplus-scale", got \'exp\'',
        "False",
    ]


def test_builtin_entry_points_registered_by_distribution():
    """Built-ins come in through our own entry points, labelled with the distribution name."""
    comps = eegbench.list_components()
    assert comps, "no components registered: is eegbench installed (pip install -e .)?"
    builtin = [c for c in comps if c.plugin == "eegbench"]
    assert builtin and all(c.entry_point for c in builtin)


def test_blocking_a_plugin_by_entry_point_name(monkeypatch):
    monkeypatch.setenv("EEGBENCH_DISABLE_PLUGINS", "losses")
    reg = Registry()
    assert not [c for c in reg.list_components("loss") if c.entry_point == "losses"]


def test_family_members_are_labelled_with_their_package():
    import eegbench.registry as registry

    comp = registry.get_registry().get("image-encoder", "open_clip:ViT-B-32/openai")
    assert comp.plugin == "eegbench" and comp.entry_point == "image-encoders"
    [found] = registry.get_registry().find("timm:resnet18")
    assert found.kind == "image-encoder" and found.plugin == "eegbench"


@pytest.mark.parametrize(
    "value, message",
    [
        ("abc", r"parameter 'width' must be an integer \(default 4\), got 'abc'"),
        (2.5, "must be an integer"),
        (True, "must be an integer"),
    ],
)
def test_parameter_values_must_have_their_defaults_kind(reg, value, message):
    with pytest.raises(EegbenchError, match=message):
        reg.get("backbone", "resnet1d").build({}, width=value)


def test_numbers_booleans_lists_and_sentinels():
    """Unannotated parameters take their default's kind; text defaults (sentinels) accept anything."""

    def factory(*, rate=0.5, flag=False, sizes=(1, 2), mode="auto"):
        return {"rate": rate, "flag": flag, "sizes": sizes, "mode": mode}

    comp = Component(kind="loss", name="t", summary="", factory=factory)
    assert comp.defaults == {"rate": 0.5, "flag": False, "sizes": [1, 2], "mode": "auto"}
    assert comp.build({}, rate=1, sizes=(3,), mode=[4, 5]) == {"rate": 1, "flag": False, "sizes": (3,), "mode": [4, 5]}
    for bad in ({"rate": "fast"}, {"flag": 1}, {"sizes": 3}):
        with pytest.raises(EegbenchError, match="parameter"):
            comp.build({}, **bad)


def test_defaults_and_types_come_from_the_factory_signature():
    """The signature is the one source: annotations are checked strictly, context and ``_`` arguments are not
    parameters, ``**kwargs`` opens the component, a partial's bound keywords become defaults."""
    import functools

    def factory(
        n_chans,
        n_times,
        sfreq=None,
        chs_info=None,
        subjects=None,
        *,
        depth: int = 2,
        lengths: str | list[int] = "auto",
        rate: float = 0.1,
        _tag: str = "",
    ):
        return {"depth": depth, "lengths": lengths, "rate": rate, "tag": _tag}

    comp = Component(kind="backbone", name="sig", summary="", factory=factory)
    assert comp.defaults == {"depth": 2, "lengths": "auto", "rate": 0.1} and not comp.open_params
    assert comp.build({"n_chans": 3, "n_times": 4}, lengths=[8, 4], rate=1)["lengths"] == [8, 4]
    for bad, message in (
        ({"depth": "2"}, r"parameter 'depth' must be an integer \(default 2\), got '2'"),
        ({"lengths": 5}, r"parameter 'lengths' must be text or a list \(default 'auto'\), got 5"),
        ({"lengths": [8, "x"]}, r"parameter 'lengths' must be text or a list \(an integer at \[1\]\)"),
        ({"_tag": "x"}, "has no parameter '_tag'"),
        ({"n_chans": 3}, "has no parameter 'n_chans'"),
    ):
        with pytest.raises(EegbenchError, match=message):
            comp.resolve_params(bad)
    bound = Component(kind="backbone", name="fam:x", summary="", factory=functools.partial(factory, depth=5, _tag="t"))
    assert bound.defaults["depth"] == 5 and bound.build({"n_chans": 1, "n_times": 1})["tag"] == "t"

    def family(n_chans, n_times, *, model: str, **kwargs):
        return kwargs

    member = Component(kind="backbone", name="fam:y", summary="", factory=functools.partial(family, model="y"))
    assert member.open_params and member.defaults == {"model": "y"}
    assert member.build({"n_chans": 1, "n_times": 1}, anything=3) == {"anything": 3}
    required = Component(kind="backbone", name="fam:z", summary="", factory=family)
    with pytest.raises(EegbenchError, match="parameter 'model' is required"):
        required.resolve_params({})


def test_a_component_with_read_defaults_still_pickles():
    import pickle

    comp = Component(kind="backbone", name="p", summary="", factory="eegbench_plugins.resnet1d:build")
    assert comp.defaults["kernel_size"] == 17 and comp.resolve_params({"dropout": 0.1})["dropout"] == 0.1
    again = pickle.loads(pickle.dumps(comp))
    assert again == comp and again.defaults == comp.defaults


def test_create_backbone_without_its_signal_is_one_line():
    with pytest.raises(EegbenchError, match="backbone 'resnet1d' needs n_chans and n_times"):
        eegbench.create("backbone", "resnet1d")


def test_clash_message_names_the_entry_points():
    a = _plugin("pkg_a", COMPS)
    b = _plugin("pkg_b", [Component(kind="loss", name="clip", summary="x", factory=_factory, entry_point="b-ep")])
    with pytest.raises(ComponentClashError, match="EEGBENCH_DISABLE_PLUGINS=b-ep"):
        Registry(autoload=False, plugins=[a, b]).list_components()


# --------------------------------------------------------------------------------------------------
# hooks are called through pluggy: wrappers, firstresult and ordering behave as pluggy documents
# --------------------------------------------------------------------------------------------------
def test_a_hook_wrapper_observes_and_changes_the_answers():
    seen: list[list[str]] = []
    extra = Component(kind="backbone", name="wrapped-net", summary="added by a wrapper", factory=_factory)
    watcher = types.SimpleNamespace(__name__="watcher")

    @hookimpl(wrapper=True)
    def eegbench_backbones():
        answers = yield  # one list per plugin, last registered first
        seen.append([c.name for answer in answers for c in answer])
        return [[c for c in answer if c.name != "net10"] for answer in answers] + [[extra]]

    watcher.eegbench_backbones = eegbench_backbones
    second = [Component(kind="backbone", name="other", summary="o", factory=_factory)]
    reg = Registry(autoload=False, plugins=[_plugin("p1", COMPS), _plugin("p2", second), watcher])
    names = [c.name for c in reg.list_components("backbone")]
    assert seen == [["other", "resnet1d", "net10", "net2"]]  # p2 registered last, so answered first
    assert names == ["net2", "other", "resnet1d", "wrapped-net"]  # net10 dropped, wrapped-net added
    # each component keeps the plugin that gave it, the wrapper's own addition included
    assert {c.name: c.plugin for c in reg.list_components("backbone")} == {
        "net2": "p1",
        "resnet1d": "p1",
        "other": "p2",
        "wrapped-net": "watcher",
    }


def test_an_old_style_hookwrapper_sees_the_family_answer():
    seen = []
    spy = types.SimpleNamespace(__name__="spy")

    @hookimpl(hookwrapper=True)
    def eegbench_resolve_family(kind, name):
        outcome = yield
        seen.append((kind, name, outcome.get_result().summary))

    spy.eegbench_resolve_family = eegbench_resolve_family
    reg = Registry(autoload=False, plugins=[_plugin("p1", COMPS, {"prefix": "fam", "factory": _factory}), spy])
    assert reg.get("backbone", "fam:Thing").plugin == "p1"
    assert seen == [("backbone", "fam:Thing", "family member Thing")]


def _family_plugin(plugin_name: str, calls: list[str], **opts) -> types.SimpleNamespace:
    ns = types.SimpleNamespace(__name__=plugin_name)

    @hookimpl(**opts)
    def eegbench_resolve_family(kind, name):
        calls.append(plugin_name)
        if kind == "backbone" and name.startswith("fam:"):
            return Component(kind="backbone", name=name, summary=f"from {plugin_name}", factory=_factory)
        return None

    ns.eegbench_resolve_family = eegbench_resolve_family
    return ns


def test_firstresult_stops_at_the_first_answer():
    calls: list[str] = []
    reg = Registry(autoload=False, plugins=[_family_plugin("early", calls), _family_plugin("late", calls)])
    comp = reg.get("backbone", "fam:Thing")
    # pluggy calls the last registered plugin first; its answer ends the call: "early" is never asked
    assert comp.summary == "from late" and comp.plugin == "late"
    assert calls[0] == "late" and "early" not in calls
    # a plugin that declines (None) passes the question on
    calls.clear()
    with pytest.raises(UnknownComponentError):
        reg.get("loss", "fam:Thing")
    assert calls == ["late", "early"]


def test_tryfirst_decides_which_family_plugin_answers():
    calls: list[str] = []
    reg = Registry(
        autoload=False, plugins=[_family_plugin("preferred", calls, tryfirst=True), _family_plugin("late", calls)]
    )
    comp = reg.get("backbone", "fam:Thing")
    assert comp.summary == "from preferred" and comp.plugin == "preferred"
    assert calls[0] == "preferred" and "late" not in calls[:1]


def test_a_plugin_that_raises_is_named():
    broken = types.SimpleNamespace(__name__="broken")

    @hookimpl
    def eegbench_losses():
        raise RuntimeError("boom")

    broken.eegbench_losses = eegbench_losses
    reg = Registry(autoload=False, plugins=[_plugin("p1", COMPS), broken])
    with pytest.raises(EegbenchError, match="plugin 'broken' failed to list its loss components: RuntimeError: boom"):
        reg.list_components()


def test_a_plugin_answering_none_does_not_shift_the_labels():
    def module(namespace):  # plugins as entry points load them: modules
        mod = types.ModuleType(namespace.__name__)
        mod.__dict__.update(vars(namespace))
        return mod

    silent = types.SimpleNamespace(__name__="silent")

    @hookimpl
    def eegbench_backbones():
        return None  # against the contract ([] for none), and pluggy drops it from the answers

    silent.eegbench_backbones = eegbench_backbones
    second = [Component(kind="backbone", name="other", summary="o", factory=_factory)]
    reg = Registry(
        autoload=False, plugins=[module(_plugin("p1", COMPS)), module(silent), module(_plugin("p2", second))]
    )
    assert {c.name: c.plugin for c in reg.list_components("backbone")} == {
        "net2": "p1",
        "net10": "p1",
        "resnet1d": "p1",
        "other": "p2",
    }
