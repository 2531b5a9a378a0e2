"""The ``eegbench`` command line: every argparse line of the core lives in this package.

One module per group of commands, each registering its parsers (``add_commands``) and turning the parsed
namespace into a call of the core's typed functions: :mod:`~eegbench.cli.zoo` (``list``, ``info``),
:mod:`~eegbench.cli.data` (the ``download``, ``preprocess`` and ``data verify`` groups plugins fill),
:mod:`~eegbench.cli.run` (``run``), :mod:`~eegbench.cli.embed` (``embed``), :mod:`~eegbench.cli.results`
(``leaderboard``, ``export``) and :mod:`~eegbench.cli.status` (``status``); :mod:`~eegbench.cli.tables` draws
the terminal tables and :mod:`~eegbench.cli.catalogue` is ``python -m eegbench.cli.catalogue``. Plugins add
their own commands through the ``eegbench_cli`` hook (``synth``, ``download X``, ...). Handlers keep their
heavy imports inside, so building the parser stays light.

User errors (:class:`~eegbench.errors.EegbenchError`) print one line and exit 2; no traceback. Exit codes
(README, "Exit codes"): 0 done, 1 a cell failed at run time, 2 the user's input, 3 an internal error, 130 Ctrl-C.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
from collections.abc import Sequence
from types import SimpleNamespace
from typing import NoReturn

from eegbench.errors import EXIT_INTERRUPTED, EXIT_USER_ERROR, EegbenchError
from eegbench.version import __version__


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors in one line with the same prefix as our own errors."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USER_ERROR, f"eegbench: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    from eegbench.cli import data, embed, results, run, status, zoo
    from eegbench.registry import get_registry

    parser = _Parser(prog="eegbench", description="EEG-to-image alignment benchmarks: a plugin zoo.")
    parser.add_argument("--version", action="version", version=f"eegbench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    zoo.add_commands(sub)  # list and info
    download, preprocess, verify = data.add_commands(sub, parser_class=_Parser)
    run.add_commands(sub)
    embed.add_commands(sub)
    results.add_commands(sub)  # leaderboard and export
    status.add_commands(sub)

    groups = SimpleNamespace(root=sub, download=download, preprocess=preprocess, verify=verify)
    get_registry().pm.hook.eegbench_cli(commands=groups)
    return parser


def console() -> None:
    """The ``eegbench`` program (and ``python -m eegbench.cli``): :func:`main`, then exit."""
    code = main()
    # the process ends here: the interpreter's final collection would walk every object of the run (pandas,
    # scipy, rich, the registry) for a second or more before the shell gets its prompt back
    gc.freeze()
    sys.exit(code)


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
