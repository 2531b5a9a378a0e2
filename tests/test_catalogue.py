"""registry.toml is the zoo's catalogue: it must equal what the built-in plugins register."""

from __future__ import annotations

from pathlib import Path

from eegbench import catalogue

REGISTRY_TOML = Path(__file__).resolve().parents[1] / "registry.toml"


def test_registry_toml_matches_plugins():
    on_disk = catalogue.read(REGISTRY_TOML)
    registered = catalogue.catalogue_entries()
    disk_keys = {(e["kind"], e["name"]) for e in on_disk}
    reg_keys = {(e["kind"], e["name"]) for e in registered}
    assert disk_keys - reg_keys == set(), f"in registry.toml but not registered: {sorted(disk_keys - reg_keys)[:5]}"
    assert reg_keys - disk_keys == set(), (
        f"registered but missing from registry.toml: {sorted(reg_keys - disk_keys)[:5]}"
    )
    assert on_disk == registered, "registry.toml differs from the plugins: run python -m eegbench.cli.catalogue --write"


def test_every_builtin_entry_is_documented():
    for entry in catalogue.catalogue_entries():
        assert entry["summary"].strip(), f"{entry['kind']} {entry['name']} has no summary"
        assert entry["name"] == entry["name"].strip()
        if ":" not in entry["name"]:
            assert entry["name"] == entry["name"].lower(), f"{entry['name']}: names are lowercase-with-dashes"
            assert "_" not in entry["name"], f"{entry['name']}: names are lowercase-with-dashes"


def test_reading_every_builtin_default_imports_no_torch():
    """Defaults come from the factories' signatures: the factories live in light modules (heavy imports inside)."""
    import subprocess
    import sys

    code = (
        "import sys; from eegbench import catalogue; entries = catalogue.catalogue_entries();"
        "bad = [m for m in ('torch', 'open_clip', 'timm', 'braindecode', 'mne') if m in sys.modules];"
        "print(len(entries), bad); sys.exit(1 if bad or not entries else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
