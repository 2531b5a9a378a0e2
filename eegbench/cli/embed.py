"""``eegbench embed``: the parser, and a line per image set embedded by
:func:`eegbench.execution.embedding.embed_splits`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from eegbench.errors import EegbenchError


def add_commands(sub: Any) -> None:
    """Register ``eegbench embed`` on the top-level subparsers."""
    p = sub.add_parser("embed", help="compute (and cache) image embeddings of a dataset's image sets")
    p.add_argument(
        "spec",
        nargs="?",
        help="a benchmark spec: embed its dataset's images with its image encoder (each variant's, once)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        dest="overrides",
        metavar="KEY=VALUE",
        help="with SPEC: override a spec value, as for `eegbench run`; without: an image-encoder "
        "parameter (repeatable; values parsed as TOML, else kept as text)",
    )
    p.add_argument("--dataset", help="dataset name (eegbench list dataset), without SPEC")
    p.add_argument("--root", default=None, help="dataset root folder (default: the dataset's own)")
    p.add_argument(
        "--image-encoder",
        dest="image_encoder",
        help="image-encoder name (eegbench list image-encoder), or a family form such as open_clip:MODEL/TAG",
    )
    # deprecated spelling of an image-encoder parameter (before `--set` was the one override flag); hidden
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help=argparse.SUPPRESS)
    p.add_argument("--split", default="train,test", help="comma-separated splits (default train,test)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 or auto (default)")
    p.add_argument("--batch-size", type=int, default=64, dest="batch_size", help="images per forward pass (default 64)")
    p.add_argument(
        "--cache",
        metavar="DIR",
        default=None,
        dest="cache_dir",
        help="cache directory (default: $EEGBENCH_CACHE or the user cache dir), as for `eegbench run`",
    )
    # deprecated spelling of --cache (the flag `run` uses); hidden
    p.add_argument("--cache-dir", default=None, dest="cache_dir_deprecated", help=argparse.SUPPRESS)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_embed)


def parse_params(items: Sequence[str]) -> dict[str, Any]:
    """``["output=x", "normalize=true"]`` → ``{"output": "x", "normalize": True}`` (TOML values, else text)."""
    from eegbench.planning.spec import parse_value

    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise EegbenchError(f"--set {item!r} must look like key=value")
        out[key] = parse_value(raw)
    return out


def cmd_embed(args: argparse.Namespace) -> int:
    from eegbench.execution.embedding import dataset_and_encoders, embed_splits

    if args.cache_dir_deprecated:
        print("eegbench: --cache-dir is deprecated; use --cache", file=sys.stderr)
        args.cache_dir = args.cache_dir or args.cache_dir_deprecated
    if args.param:
        print(
            "eegbench: --param is deprecated; use --set (without a SPEC it sets an image-encoder parameter)",
            file=sys.stderr,
        )
    splits = [s.strip() for s in args.split.split(",") if s.strip()]
    for s in splits:
        if s not in ("train", "test"):
            raise EegbenchError(f"--split {s!r}: splits are train and test")
    if args.spec:
        if args.dataset or args.image_encoder:
            raise EegbenchError("give either SPEC or --dataset/--image-encoder, not both")
        # with a SPEC, --set overrides the spec; only the deprecated --param sets encoder parameters
        dataset, encoders = dataset_and_encoders(
            args.spec, args.overrides, params=parse_params(args.param), root=args.root
        )
    else:
        if not (args.dataset and args.image_encoder):
            raise EegbenchError("eegbench embed needs a SPEC, or both --dataset and --image-encoder")
        dataset, encoders = dataset_and_encoders(
            dataset=args.dataset,
            image_encoder=args.image_encoder,
            params=parse_params([*args.overrides, *args.param]),
            root=args.root,
        )
    done = embed_splits(
        dataset,
        encoders,
        splits,
        cache_dir=args.cache_dir,
        device=args.device,
        batch_size=args.batch_size,
        progress=not args.quiet,
    )
    for one in done:
        lead = f"{one.encoder} " if len(encoders) > 1 else ""  # several encoders (variants): each line names its own
        status = "cached" if one.cached else "computed"
        print(f"{lead}{one.split}: {one.n} x {one.dim} ({status}) {one.path or ''}".rstrip())
    return 0
