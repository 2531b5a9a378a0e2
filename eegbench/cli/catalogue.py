"""``python -m eegbench.cli.catalogue [--write] [--path FILE]``: check ``registry.toml`` against the registered
built-in components (exit 1 when they differ), or regenerate it (:mod:`eegbench.catalogue`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from eegbench.catalogue import catalogue_entries, default_path, read, render


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eegbench.cli.catalogue")
    parser.add_argument("--write", action="store_true", help="regenerate registry.toml")
    parser.add_argument("--path", type=Path, default=default_path(), help="the catalogue (default: ./registry.toml)")
    args = parser.parse_args(argv)
    entries = catalogue_entries()
    if args.write:
        args.path.write_text(render(entries))
        print(f"wrote {len(entries)} components to {args.path}")
        return 0
    on_disk = read(args.path) if args.path.exists() else []
    if on_disk != entries:
        print(f"{args.path} differs from the registered components; run python -m eegbench.cli.catalogue --write")
        return 1
    print(f"{args.path}: {len(entries)} components, in sync")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
