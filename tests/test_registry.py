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
                return Component(kind="backbone", name=name, summary=f"family member {rest}",
                                 factory=family["factory"], open_params=True)
            return None

        ns.eegbench_resolve_family = eegbench_resolve_family
    return ns


def _factory(n_chans=None, n_times=None, width=4, **extra):
    return {"n_chans": n_chans, "n_times": n_times, "width": width, **extra}


COMPS = [
    Component(kind="backbone", name="resnet1d", summary="r", factory=_factory, defaults={"width": 4}),
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
    with pytest.raises(EegbenchError, match="has no parameter 'widht'"):
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


@pytest.mark.parametrize("value, message", [
    ("abc", r"parameter 'width' must be an integer \(default 4\), got 'abc'"),
    (2.5, "must be an integer"),
    (True, "must be an integer"),
])
def test_parameter_values_must_have_their_defaults_kind(reg, value, message):
    with pytest.raises(EegbenchError, match=message):
        reg.get("backbone", "resnet1d").build({}, width=value)


def test_numbers_booleans_lists_and_sentinels():
    comp = Component(kind="loss", name="t", summary="", factory=lambda **kw: kw,
                     defaults={"rate": 0.5, "flag": False, "sizes": [1, 2], "mode": "auto"})
    assert comp.build({}, rate=1, sizes=(3,), mode=[4, 5]) == {"rate": 1, "flag": False, "sizes": (3,), "mode": [4, 5]}
    for bad in ({"rate": "fast"}, {"flag": 1}, {"sizes": 3}):
        with pytest.raises(EegbenchError, match="parameter"):
            comp.build({}, **bad)


def test_create_backbone_without_its_signal_is_one_line():
    with pytest.raises(EegbenchError, match="backbone 'resnet1d' needs n_chans and n_times"):
        eegbench.create("backbone", "resnet1d")


def test_clash_message_names_the_entry_points():
    a = _plugin("pkg_a", COMPS)
    b = _plugin("pkg_b", [Component(kind="loss", name="clip", summary="x", factory=_factory, entry_point="b-ep")])
    with pytest.raises(ComponentClashError, match="EEGBENCH_DISABLE_PLUGINS=b-ep"):
        Registry(autoload=False, plugins=[a, b]).list_components()
