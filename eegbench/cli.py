"""The ``eegbench`` command line.

Core commands live here or in the core module that owns them (``run``, ``embed``, ``status``,
``leaderboard``); plugins add their own through the ``eegbench_cli`` hook (``synth``, ``download X``, ...).
User errors (:class:`~eegbench.errors.EegbenchError`) print one line and exit 2; no traceback. Exit codes
(README, "Exit codes"): 0 done, 1 a cell failed at run time, 2 the user's input, 3 an internal error, 130 Ctrl-C.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from types import SimpleNamespace
from typing import Sequence

from . import __version__
from .errors import EXIT_INTERRUPTED, EXIT_USER_ERROR, EegbenchError


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors in one line with the same prefix as our own errors."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(EXIT_USER_ERROR, f"eegbench: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    from .registry import get_registry

    parser = _Parser(prog="eegbench", description="EEG-to-image alignment benchmarks: a plugin zoo.")
    parser.add_argument("--version", action="version", version=f"eegbench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("list", help="list registered components")
    p.add_argument("kind", nargs="?", help="dataset, backbone, image-encoder, loss, task or executor")
    p.add_argument("pattern", nargs="?", help="fnmatch pattern on names, e.g. 'braindecode:*'")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("info", help="show a component's metadata, defaults and citation")
    p.add_argument("name")
    p.add_argument("--kind", help="disambiguate when several kinds share the name")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_info)

    download = sub.add_parser("download", help="download a dataset").add_subparsers(
        dest="dataset", metavar="DATASET", parser_class=_Parser, required=True
    )
    preprocess = sub.add_parser("preprocess", help="preprocess a dataset's raw recordings").add_subparsers(
        dest="dataset", metavar="DATASET", parser_class=_Parser, required=True
    )
    data = sub.add_parser("data", help="inspect datasets on disk").add_subparsers(
        dest="data_command", metavar="ACTION", parser_class=_Parser, required=True
    )
    verify = data.add_parser("verify", help="list what is present, missing or corrupt").add_subparsers(
        dest="dataset", metavar="DATASET", parser_class=_Parser, required=True
    )

    # core commands owned by other core modules (each keeps its heavy imports inside handlers)
    from . import embedding, leaderboard, runner, status

    runner.add_commands(sub)
    embedding.add_commands(sub)
    leaderboard.add_commands(sub)
    status.add_commands(sub)

    groups = SimpleNamespace(root=sub, download=download, preprocess=preprocess, verify=verify)
    get_registry().pm.hook.eegbench_cli(commands=groups)
    return parser


def _fmt_table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in rows + [headers]) for i in range(len(headers))]
    widths[-1] = 0  # the last column (summary) is not padded
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line(headers), line(["-" * len(h) for h in headers])] + [line(r) for r in rows])


def cmd_list(args: argparse.Namespace) -> int:
    from .registry import get_registry, normalize_kind

    reg = get_registry()
    kind = normalize_kind(args.kind) if args.kind else None
    comps = reg.list_components(kind, args.pattern)
    if args.json:
        print(json.dumps([c.as_dict() for c in comps], indent=2, default=str))
        return 0
    if not comps:
        what = f"{kind} " if kind else ""
        pattern = f" matching {args.pattern!r}" if args.pattern else ""
        print(f"no {what}components{pattern} (eegbench list{' ' + kind if kind else ''})", file=sys.stderr)
        return 1
    rows = [[c.kind, c.name, c.plugin, c.summary] for c in comps]
    print(_fmt_table(rows, ["kind", "name", "package", "summary"]))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from .registry import get_registry

    reg = get_registry()
    comps = [reg.get(args.kind, args.name)] if args.kind else reg.find(args.name)
    if not comps:
        raise reg.unknown_any(args.name)
    if args.json:
        print(json.dumps([c.as_dict() for c in comps], indent=2, default=str))
        return 0
    for i, c in enumerate(comps):
        if i:
            print()
        print(f"{c.name}  ({c.kind})")
        print(f"  summary : {c.summary}")
        print(f"  package : {c.plugin}" + (f"  (entry point {c.entry_point!r})" if c.entry_point else ""))
        print(f"  citation: {c.citation or '-'}")
        if c.notes:
            print(f"  notes   : {c.notes}")
        print("  defaults:" + ("" if c.defaults else " (none)"))
        for key, value in c.defaults.items():
            print(f"    {key} = {json.dumps(value, default=str)}")
        if c.open_params:
            print("    (further keyword arguments are passed to the underlying library)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return EXIT_USER_ERROR
        return int(args.func(args) or 0)
    except EegbenchError as exc:
        print(f"eegbench: error: {exc}", file=sys.stderr)
        return int(getattr(exc, "exit_code", EXIT_USER_ERROR))
    except KeyboardInterrupt:
        print("eegbench: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return 0
    except Exception as exc:  # a bug: keep it to one line unless asked
        if os.environ.get("EEGBENCH_DEBUG"):
            raise
        print(
            f"eegbench: internal error: {type(exc).__name__}: {exc} (set EEGBENCH_DEBUG=1 for the traceback, "
            "and please report it)",
            file=sys.stderr,
        )
        return 3


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
