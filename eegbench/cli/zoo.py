"""``eegbench list`` and ``eegbench info``: browse the zoo (imports no torch, mne or braindecode).

:func:`list_rows` picks the components (aliases folded into their component, family members asked of the
plugin owning the family, ``--fits`` and the signal filter applied); :func:`render_list` draws them with rich.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from eegbench.components import KINDS, Component
from eegbench.errors import EegbenchError

if TYPE_CHECKING:
    from eegbench.registry import Registry


def add_commands(sub: Any) -> None:
    """Register ``eegbench list`` and ``eegbench info`` on the top-level subparsers."""
    p = sub.add_parser(
        "list",
        help="list registered components",
        description="List the zoo: one row per component, its short aliases folded in. A pattern whose head "
        "names a family ('open_clip*', 'timm:vit*') lists that family's members from the library itself.",
    )
    p.add_argument("kind", nargs="?", help="dataset, backbone, image-encoder, loss, task or executor (default: all)")
    p.add_argument(
        "pattern", nargs="?", help="fnmatch pattern on names and aliases, e.g. 'braindecode:*' or 'open_clip:ViT-B*'"
    )
    p.add_argument(
        "--fits",
        metavar="CxT[@HZ]",
        help="only backbones recorded as building at this input, e.g. 17x128 or 17x128@100",
    )
    p.add_argument(
        "--all",
        action="store_true",
        dest="all_signals",
        help="also list backbones for other signals (braindecode's sEMG models)",
    )
    p.add_argument("--wide", action="store_true", help="every column (plugin, citation), summaries not shortened")
    p.add_argument(
        "--json", action="store_true", help="machine-readable output (every component, aliases as their own records)"
    )
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("info", help="show a component's metadata, defaults and citation")
    p.add_argument("name", help="a component name, alias or family member (open_clip:MODEL/TAG, timm:MODEL)")
    p.add_argument("--kind", help="disambiguate when several kinds share the name")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_info)


def parse_shape(text: str) -> tuple[int, int, float | None]:
    """``"17x128"`` or ``"17x128@100"`` → ``(17, 128, 100.0)``; anything else is one line."""
    import re

    m = re.fullmatch(r"\s*(\d+)\s*[x×]\s*(\d+)\s*(?:@\s*(\d+(?:\.\d*)?)\s*(?:hz)?)?\s*", text.lower())
    if not m:
        raise EegbenchError(f"--fits {text!r}: expected CHANNELSxSAMPLES or CHANNELSxSAMPLES@HZ, e.g. 17x128@100")
    return int(m[1]), int(m[2]), float(m[3]) if m[3] else None


def fits_shape(comp: Component, shape: tuple[int, int, float | None]) -> bool:
    """Whether ``comp``'s recorded build check (``Component.fits``) covers ``shape``; unchecked is no."""
    for recorded in comp.fits or ():
        c, t, hz = parse_shape(recorded)
        if (c, t) == shape[:2] and (shape[2] is None or hz is None or abs(hz - shape[2]) < 1e-9):
            return True
    return False


def list_rows(
    reg: Registry, kind: str | None, pattern: str | None, *, fits: str | None = None, all_signals: bool = False
) -> tuple[list[tuple[Component, list[str]]], int]:
    """``([(component, its aliases)], hidden)``: one entry per canonical component, natural order.

    A pattern matches a component's name or any alias; family members come from ``eegbench_list_family``
    (the owning plugin answers only patterns naming its family). ``hidden`` counts backbones for another
    signal than EEG left out (``--all`` keeps them).
    """
    import fnmatch

    comps = reg.list_components(kind)
    by_key = {(c.kind, c.name): c for c in comps}
    aliases: dict[tuple[str, str], list[str]] = {}
    canonical: list[Component] = []
    for c in comps:
        if c.alias_of and (c.kind, c.alias_of) in by_key:
            aliases.setdefault((c.kind, c.alias_of), []).append(c.name)
        else:
            canonical.append(c)
    if pattern:

        def match(n: str) -> bool:
            return fnmatch.fnmatchcase(n.lower(), pattern.lower())

        canonical = [c for c in canonical if match(c.name) or any(match(a) for a in aliases.get((c.kind, c.name), ()))]
        seen = {(c.kind, c.name) for c in canonical}
        for k in [kind] if kind else KINDS:
            for answer in reg.pm.hook.eegbench_list_family(kind=k, pattern=pattern):
                for m in answer:
                    if (m.kind, m.name) not in seen:
                        seen.add((m.kind, m.name))
                        canonical.append(m)
    if fits:
        shape = parse_shape(fits)
        canonical = [c for c in canonical if fits_shape(c, shape)]
    hidden = 0
    if not all_signals:
        kept = [c for c in canonical if c.signal in ("", "EEG")]
        hidden = len(canonical) - len(kept)
        canonical = kept
    return [(c, sorted(aliases.get((c.kind, c.name), []))) for c in canonical], hidden


def render_list(
    rows: list[tuple[Component, list[str]]],
    *,
    terminal: bool,
    width: int = 100,
    wide: bool = False,
    show_kind: bool = True,
    color: bool = False,
) -> str:
    """The ``eegbench list`` table: fitted to ``width`` in a terminal; plain, unshortened columns otherwise
    (piped, or ``--wide``). ``color``: ANSI styles (a terminal's)."""
    from eegbench.cli.tables import new_table, render

    backbones = any(c.kind == "backbone" for c, _ in rows)
    marks = any(c.signal not in ("", "EEG") for c, _ in rows) or wide  # all EEG unless --all or --wide
    aliased = any(names for _, names in rows)
    headers = (["kind"] if show_kind else []) + ["name"] + (["aliases"] if aliased else [])
    headers += (["signal"] if marks else []) + (["fits"] if backbones else [])
    # the providing package is shown whenever another package than eegbench provides something (third-party plugins)
    packaged = wide or any(c.plugin != "eegbench" for c, _ in rows)
    headers += (["package"] if packaged else []) + (["citation"] if wide else [])
    headers += ["summary"]

    def fits_cell(c: Component) -> str:
        if c.fits is None:
            return "" if c.kind != "backbone" else "?"
        return ", ".join(c.fits) if c.fits else "no"

    table = []
    for c, names in rows:
        row = ([c.kind] if show_kind else []) + [c.name] + ([", ".join(names)] if aliased else [])
        row += ([c.signal] if marks else []) + ([fits_cell(c)] if backbones else [])
        row += ([c.plugin] if packaged else []) + ([c.citation] if wide else [])
        table.append([*row, c.summary])
    # In a terminal: names and marks (what a reader copies) are never shortened; the summary takes the width
    # that is left, shortened with an ellipsis, and is dropped below 12 characters. Otherwise nothing is shortened.
    widths = [max(len(h), *(len(r[i]) for r in table)) for i, h in enumerate(headers)]
    room = width - sum(widths[:-1]) - 2 * (len(headers) - 1)
    fitted = terminal and not wide
    if fitted and room < 12:
        headers, table = headers[:-1], [r[:-1] for r in table]
    out = new_table()
    for i, header in enumerate(headers):
        if fitted and header == "summary":
            out.add_column(header, no_wrap=True, overflow="ellipsis", max_width=room)
        else:
            out.add_column(header, no_wrap=True, min_width=widths[i])
    for row in table:
        out.add_row(*row)
    return render(out, width=width if fitted and room >= 12 else None, color=color)


def cmd_list(args: argparse.Namespace) -> int:
    from eegbench.registry import get_registry, normalize_kind

    reg = get_registry()
    kind = normalize_kind(args.kind) if args.kind else None
    if args.json:
        comps = reg.list_components(kind, args.pattern)
        if args.pattern:
            comps += [
                m
                for k in ([kind] if kind else KINDS)
                for a in reg.pm.hook.eegbench_list_family(kind=k, pattern=args.pattern)
                for m in a
            ]
        print(json.dumps([c.as_dict() for c in comps], indent=2, default=str))
        return 0
    rows, hidden = list_rows(reg, kind, args.pattern, fits=args.fits, all_signals=args.all_signals)
    if not rows:
        what = f"{kind} " if kind else ""
        pattern = f" matching {args.pattern!r}" if args.pattern else ""
        fits = f" building at {args.fits}" if args.fits else ""
        print(f"no {what}components{pattern}{fits} (eegbench list{' ' + kind if kind else ''})", file=sys.stderr)
        return 1
    import shutil

    terminal = sys.stdout.isatty()
    width = shutil.get_terminal_size().columns
    print(render_list(rows, terminal=terminal, width=width, wide=args.wide, show_kind=kind is None, color=terminal))
    if hidden:
        print(f"({hidden} backbone(s) for other signals than EEG not shown; --all lists them)", file=sys.stderr)
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from eegbench.registry import get_registry

    reg = get_registry()
    comps = [reg.get(args.kind, args.name)] if args.kind else reg.find(args.name)
    if not comps and ":" in args.name:
        # a family member the owning plugin refused (open_clip:ViT-B-99/foo): its line names close matches
        from eegbench.errors import UnknownComponentError

        for kind in KINDS:
            try:
                reg.get(kind, args.name)
            except UnknownComponentError as exc:
                if str(exc) != reg._unknown_message(kind, args.name):
                    raise
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
        if c.alias_of:
            print(f"  alias of: {c.alias_of}")
        if c.signal:
            print(f"  signal  : {c.signal}")
        if c.fits is not None:
            print(
                f"  builds at: {', '.join(c.fits) or 'none recorded (see notes)'}  (channels x samples @ Hz, recorded)"
            )
        if c.notes:
            print(f"  notes   : {c.notes}")
        print("  defaults:" + ("" if c.defaults else " (none)"))
        for key, value in c.defaults.items():
            print(f"    {key} = {json.dumps(value, default=str)}")
        if c.open_params:
            print("    (further keyword arguments are passed to the underlying library)")
    return 0
