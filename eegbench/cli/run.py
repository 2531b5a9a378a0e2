"""``eegbench run SPEC``: the parser, and the exit status of :func:`eegbench.runner.run_spec`'s result."""

from __future__ import annotations

import argparse
from typing import Any

from eegbench.errors import EXIT_CELL_FAILED, EXIT_USER_ERROR
from eegbench.runner import PROGRESS_EVERY, PROGRESS_EVERY_ENV


def _jobs(text: str) -> int | str:
    """``--jobs``: ``auto`` or an integer (the executor refuses one below 1 in its own words)."""
    if text.strip() == "auto":
        return "auto"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number or auto, got {text!r}") from None


def add_commands(sub: Any) -> None:
    """Register ``eegbench run`` on the top-level subparsers."""
    p = sub.add_parser("run", help="run a benchmark spec (TOML): plan, train, evaluate, store results")
    p.add_argument("spec", help="path to a benchmark spec, e.g. benchmarks/quick.toml")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a spec key with a TOML value, e.g. --set train.epochs=5 --set seeds=[1,2]",
    )
    p.add_argument("--dry-run", action="store_true", help="print the cells, their work and what is stored; run nothing")
    p.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="run a subset: stage, fold, seed, ratio, test_subject, protocol or key (repeatable)",
    )
    p.add_argument("--force", action="store_true", help="recompute cells already stored")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu or cuda[:N]")
    p.add_argument(
        "--results",
        metavar="DIR",
        help="results directory (default: spec [paths] results, EEGBENCH_RESULTS, ./results)",
    )
    p.add_argument(
        "--cache", metavar="DIR", help="cache directory (default: spec [paths] cache, EEGBENCH_CACHE, user cache)"
    )
    p.add_argument("--executor", metavar="NAME", help="executor component (local, submitit, ray; default: the spec's)")
    p.add_argument(
        "--jobs",
        type=_jobs,
        metavar="N",
        help="cells at once (executor parameter jobs): a whole number, or auto (default: one worker per CPU on "
        "CPUs, one at a time on a GPU)",
    )
    p.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress or tables; a failed or deferred cell still gets one line on stderr",
    )
    p.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="a progress line every epoch (default: a live display in a terminal, else a line per cell "
        f"start and end and one every ${PROGRESS_EVERY_ENV} seconds, default {PROGRESS_EVERY:g})",
    )
    p.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    from eegbench.runner import run_spec  # looked up when run (tests and tools may stand in for it)

    df = run_spec(
        args.spec,
        args.overrides,
        results_dir=args.results,
        cache_dir=args.cache,
        device=args.device,
        force=args.force,
        dry_run=args.dry_run,
        only=args.only,
        executor=args.executor,
        jobs=args.jobs,
        quiet=args.quiet,
        progress=True,
        verbose=args.verbose,
    )
    # the exit-code contract (README "Exit codes"): a failure due to the user's input wins over a run-time one
    if df.attrs.get("failed_user_error"):
        return EXIT_USER_ERROR
    return EXIT_CELL_FAILED if df.attrs.get("failed") else 0
