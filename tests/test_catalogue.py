"""registry.toml is the zoo's catalogue: it must equal what the built-in plugins register."""
from __future__ import annotations

from eegbench import catalogue


def test_registry_toml_matches_plugins():
    on_disk = catalogue.read(catalogue.default_path())
    registered = catalogue.catalogue_entries()
    disk_keys = {(e["kind"], e["name"]) for e in on_disk}
    reg_keys = {(e["kind"], e["name"]) for e in registered}
    assert disk_keys - reg_keys == set(), f"in registry.toml but not registered: {sorted(disk_keys - reg_keys)[:5]}"
    assert reg_keys - disk_keys == set(), f"registered but missing from registry.toml: {sorted(reg_keys - disk_keys)[:5]}"
    assert on_disk == registered, "registry.toml differs from the plugins: run python -m eegbench.catalogue --write"


def test_every_builtin_entry_is_documented():
    for entry in catalogue.catalogue_entries():
        assert entry["summary"].strip(), f"{entry['kind']} {entry['name']} has no summary"
        assert entry["name"] == entry["name"].strip()
        if ":" not in entry["name"]:
            assert entry["name"] == entry["name"].lower(), f"{entry['name']}: names are lowercase-with-dashes"
            assert "_" not in entry["name"], f"{entry['name']}: names are lowercase-with-dashes"
