"""Renderers of a :class:`~eegbench.results.leaderboard.Leaderboard`: Markdown, CSV, LaTeX, JSON and a
self-contained static HTML report (inline CSS, plots embedded as ``data:`` URIs, no network resources).

Human formats (Markdown, LaTeX, HTML) show scores in percent: ``mean ± std (n=N)``, the best of each
column in bold (among the configurations measured on the column's reference subjects and seeds; the others
are marked ``not ranked``), and per context a paired-statistics table and a spread table (subjects vs seeds).
Machine formats (CSV, JSON) carry the tidy table with fractions rounded to 6 significant digits (no float32
noise). The HTML page is rendered from the ``report.html.j2`` template: a summary of each comparison context
first (dataset, protocol, n-way, test averaging, image encoder by name, how many configurations, subjects and
seeds), then the ranked tables, then the plots; hashes and fingerprints only in a collapsed identity block.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from eegbench.errors import EegbenchError
from eegbench.interfaces import to_jsonable

if TYPE_CHECKING:  # pragma: no cover
    from eegbench.results.leaderboard import Column, Leaderboard

DEFINITIONS = {
    "mean": "mean over every (test subject, seed) score of the configuration in that column",
    "std": "sample standard deviation (ddof=1) over the same scores",
    "n": "number of (test subject, seed) scores",
    "sd_subjects": "std over subjects of the per-subject scores averaged over seeds",
    "sd_seeds": "std over seeds of the per-seed scores averaged over subjects",
    "p_value": "one-sided paired test that the column's best beats this row, over shared subjects "
    "(exact sign-flip permutation test below 20 subjects, Wilcoxon signed-rank from 20)",
    "smd": "standardised mean difference of (best - this row) over shared subjects",
    "best": "highest mean among the ranked configurations of its context and column (measured rows only)",
    "ranked": "measured on the column's reference (test subject, seed) set, that of its most complete configuration "
    "(most pairs; equal sizes: the set most configurations share; still tied: nobody is ranked); only "
    "ranked rows get a rank, best and p-value",
    "rank_note": "why a measured row is not ranked (its subjects or seeds differ from the reference set)",
    "reported": "published numbers, not re-run and never ranked; shown only where dataset, n-way, protocol, stage "
    "(and test averaging, when stated) match; their channels, gallery and checkpoint selection may still "
    "differ (see each entry's notes)",
}


# --------------------------------------------------------------------------------------------------
# shared helpers
# --------------------------------------------------------------------------------------------------
def _nan(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


#: significant digits of the fractions in machine exports (CSV, JSON, rows): enough for any score of a
#: test set under a million trials, without float32 noise such as 0.3799999952316284
SIGNIFICANT_DIGITS = 6
#: decimals of the percentages in human tables (Markdown, LaTeX, HTML)
PERCENT_DECIMALS = 1


def round_sig(x: Any, digits: int = SIGNIFICANT_DIGITS) -> Any:
    """A float rounded to ``digits`` significant digits (other values unchanged; nan and inf kept)."""
    if isinstance(x, bool) or not isinstance(x, float) or math.isnan(x) or math.isinf(x) or x == 0.0:
        return x
    return float(f"{x:.{digits}g}")


def _pct(x: Any, digits: int = PERCENT_DECIMALS) -> str:
    return "–" if _nan(x) else f"{float(x) * 100:.{digits}f}"


def _chance_pct(x: Any) -> str:
    """A chance level in percent, two significant digits (2, 0.5, 0.06)."""
    return "–" if _nan(x) else f"{float(x) * 100:.2g}"


def _num(x: Any, digits: int = 2) -> str:
    if _nan(x):
        return "–"
    if math.isinf(float(x)):
        return "∞" if x > 0 else "-∞"
    return f"{float(x):.{digits}f}"


def _p(x: Any) -> str:
    if _nan(x):
        return "–"
    return f"{x:.2g}" if x < 0.001 else f"{x:.3f}"


def _short_list(values: Sequence[Any], k: int = 4) -> str:
    items = [str(v) for v in values]
    return ", ".join(items) if len(items) <= k else ", ".join(items[:k]) + f", … ({len(items)})"


def _unranked(r: dict[str, Any] | None) -> bool:
    """A measured summary left out of its column's ranking (measured on other subjects/seeds)."""
    note = None if r is None else r.get("rank_note")
    return r is not None and r["source"] == "measured" and isinstance(note, str) and bool(note)


def _g(x: Any, digits: int = 3) -> str:
    """A number for people: at most ``digits`` significant digits, no trailing zeros (0.5, 63.6, 250)."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    if v.is_integer() and abs(v) < 1e6:
        return str(int(v))
    return f"{v:.{digits}g}"


def _hz(x: Any) -> str:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    return f"{v:.1f}".rstrip("0").rstrip(".") + " Hz"


#: context fields that identify rather than describe (hashes, fingerprints): shown only in the identity block
IDENTITY_FIELDS = ("image_encoder",)
#: context fields shown in the summary instead of the context list
SUMMARY_FIELDS = ("dataset", "synthetic", "n_way", "test_averaging")
_FIELD_LABELS = {
    "test_split": "test split",
    "train_averaging": "training trials averaged",
    "test_averaging": "test trials averaged",
    "standardize": "standardised",
    "selection": "checkpoint selection",
    "n_way": "retrieval",
}


def context_items(ctx: dict[str, Any]) -> list[tuple[str, str]]:
    """The comparison context as (label, text) pairs for people: rounded values (sampling rate in Hz, window
    in s), the channel list collapsed to its count and first names, validation as one line; the fields of
    :func:`summary_items` and hashes/fingerprints (:func:`identity_items`) left out."""
    out: list[tuple[str, str]] = []
    skip = (
        set(IDENTITY_FIELDS)
        | set(SUMMARY_FIELDS)
        | {"val_fraction", "val_by", "n_times", "sfreq", "channels", "window", "image_encoder_random_init"}
    )
    if isinstance(ctx.get("window"), list) and len(ctx["window"]) == 2:
        out.append(("window", f"{_g(ctx['window'][0])} to {_g(ctx['window'][1])} s"))
    if isinstance(ctx.get("channels"), list):
        names = [str(c) for c in ctx["channels"]]
        out.append(("channels", f"{len(names)} ({', '.join(names[:4])}{', …' if len(names) > 4 else ''})"))
    sampling = " ".join(
        x
        for x in (
            f"{ctx['n_times']} samples" if "n_times" in ctx else "",
            f"at {_hz(ctx['sfreq'])}" if "sfreq" in ctx else "",
        )
        if x
    )
    if sampling:
        out.append(("per trial", sampling))
    for key in ctx:
        if key in skip:
            continue
        value = ctx[key]
        label = _FIELD_LABELS.get(key, key.replace("_", " "))
        if isinstance(value, bool):
            text = "yes" if value else "no"
        elif isinstance(value, float):
            text = _g(value)
        elif isinstance(value, (list, dict)):
            text = json.dumps(round_sig_all(value), default=str)
        else:
            text = str(value)
        out.append((label, text))
    if "val_fraction" in ctx or "val_by" in ctx:
        frac = ctx.get("val_fraction")
        text = f"{_g(float(frac) * 100)} % of the training data" if isinstance(frac, (int, float)) else "yes"
        if ctx.get("val_by"):
            text += f", split by {ctx['val_by']}"
        out.append(("validation", text))
    if ctx.get("image_encoder_random_init"):
        out.append(("image encoder", "randomly initialised (not pretrained)"))
    return out


def round_sig_all(value: Any) -> Any:
    """:func:`round_sig` applied to every float of a nested structure."""
    if isinstance(value, dict):
        return {k: round_sig_all(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [round_sig_all(v) for v in value]
    return round_sig(value)


def _context_rows(board: Leaderboard, key: str) -> Any:
    rows = board.rows
    return rows[rows["context_key"] == key]


def encoder_names(board: Leaderboard, key: str) -> list[str]:
    """The image encoders of a context by name (the context itself holds only their fingerprint)."""
    part = _context_rows(board, key)
    if "image_encoder" not in part:
        return []
    return sorted({str(v) for v in part["image_encoder"].dropna()})


def summary_items(board: Leaderboard, key: str) -> list[tuple[str, str]]:
    """What a context compares, in a few (label, text) pairs: dataset, protocols, n-way, test averaging, image
    encoder by name, and how many configurations, test subjects and seeds."""
    ctx = board.contexts.get(key, {})
    part = _context_rows(board, key)
    out = []
    data = str(ctx.get("dataset", "?")) + (" (synthetic)" if ctx.get("synthetic") else "")
    out.append(("dataset", data))
    protocols: dict[str, list[str]] = {}
    for col in board.columns(key):
        protocols.setdefault(col.protocol, [])
        text = col.stage if col.stage != "finetune" else f"finetune {_ratio(col.training_ratio)}"
        protocols[col.protocol].append(text)
    out.append(("protocol", "; ".join(f"{p} ({', '.join(stages)})" for p, stages in protocols.items())))
    if "n_way" in ctx:
        out.append(("retrieval", f"{ctx['n_way']}-way"))
    if "test_averaging" in ctx:
        out.append(("test trials averaged", str(ctx["test_averaging"])))
    names = encoder_names(board, key)
    if names:
        enc = ", ".join(names) + (" (randomly initialised)" if ctx.get("image_encoder_random_init") else "")
        out.append(("image encoder", enc))
    t = board.table[board.table["context_key"] == key]
    n_measured = t.loc[t["source"] == "measured", "config_id"].nunique()
    n_reported = t.loc[t["source"] != "measured", "config_id"].nunique()
    out.append(("configurations", str(n_measured) + (f" (+ {n_reported} reported)" if n_reported else "")))
    subjects = sorted(int(s) for s in part["test_subject"].unique()) if len(part) else []
    seeds = sorted(int(s) for s in part["seed"].unique()) if len(part) else []
    out.append(("test subjects", f"{len(subjects)} ({_short_list(subjects, 8)})"))
    out.append(("seeds", f"{len(seeds)} ({_short_list(seeds, 8)})"))
    out.append(("chance", f"{_chance_pct(board.chance(key))} %"))
    return out


def identity_items(board: Leaderboard, key: str) -> list[tuple[str, str]]:
    """Hashes and fingerprints that identify a context and its configurations (for the collapsed block)."""
    ctx = board.contexts.get(key, {})
    out = [("context key", key)]
    for f in IDENTITY_FIELDS:
        if f in ctx:
            out.append((f"{f.replace('_', ' ')} fingerprint", str(ctx[f])))
    t = board.table[(board.table["context_key"] == key) & (board.table["source"] == "measured")]
    for cid, label in t.drop_duplicates("config_id")[["config_id", "config"]].itertuples(index=False):
        out.append((f"configuration {label}", str(cid)))
    part = _context_rows(board, key)
    if "spec_name" in part and "spec_hash" in part:
        for name, h in sorted(set(zip(part["spec_name"].astype(str), part["spec_hash"].astype(str), strict=True))):
            out.append((f"spec {name}", h))
    return out


def _ratio(ratio: float) -> str:
    pct = ratio * 100
    return f"{pct:.0f} %" if math.isclose(pct, round(pct)) else f"{pct:.3g} %"


def context_title(board: Leaderboard, key: str) -> str:
    """A context in one line for people (no hash): dataset, synthetic, n-way, test averaging."""
    ctx = board.contexts.get(key, {})
    bits = [str(ctx.get("dataset", "?"))]
    if ctx.get("synthetic"):
        bits.append("synthetic")
    if "n_way" in ctx:
        bits.append(f"{ctx['n_way']}-way")
    if "test_averaging" in ctx:
        bits.append(f"test averaging {ctx['test_averaging']}")
    return " · ".join(bits)


def _sections(board: Leaderboard) -> list[dict[str, Any]]:
    """Per context: columns, row order and the (row, column) -> summary record map."""
    out = []
    for key in board.context_keys():
        t = board.table[board.table["context_key"] == key]
        columns = board.columns(key)
        first_col = columns[0] if columns else None
        order: dict[str, tuple[bool, int, float, str]] = {}
        for r in t.to_dict("records"):
            cid = r["config_id"]
            in_first = first_col is not None and (r["protocol"], r["stage"], r["training_ratio"]) == (
                first_col.protocol,
                first_col.stage,
                first_col.training_ratio,
            )
            # ranked rows of the first column by mean, then its unranked rows, then rows absent from it
            tier = (1 if _unranked(r) else 0) if in_first else 2
            rank_key = (r["source"] != "measured", tier, -(r["mean"] if in_first else -1.0), r["config"])
            order[cid] = min(order.get(cid, rank_key), rank_key)
        row_ids = sorted(order, key=lambda c: order[c])
        cells = {(r["config_id"], (r["protocol"], r["stage"], r["training_ratio"])): r for r in t.to_dict("records")}
        labels = {r["config_id"]: r for r in t.to_dict("records")}
        out.append(
            {
                "key": key,
                "columns": columns,
                "rows": row_ids,
                "cells": cells,
                "info": labels,
                "chance": board.chance(key),
            }
        )
    return out


def _colkey(col: Column) -> tuple[str, str, float]:
    return (col.protocol, col.stage, col.training_ratio)


def _cell_text(r: dict[str, Any] | None) -> str:
    if r is None:
        return ""
    if r["source"] != "measured":
        return f"{_pct(r['mean'])} (reported)"
    return f"{_pct(r['mean'])} ± {_pct(r['std'])} (n={int(r['n'])}{'; not ranked' if _unranked(r) else ''})"


def _stats_text(r: dict[str, Any] | None) -> str:
    if r is None or r["source"] != "measured":
        return ""
    if _unranked(r):
        return str(r["rank_note"])
    if r["best"]:
        return "best"
    if r["test"] == "n/a":
        return f"n/a (n={int(r['n_pairs'])} shared subjects)"
    test = "exact perm." if r["test"] == "permutation-exact" else r["test"]
    return f"p={_p(r['p_value'])}, SMD={_num(r['smd'])} ({test}, n={int(r['n_pairs'])})"


def _spread_text(r: dict[str, Any] | None) -> str:
    if r is None or r["source"] != "measured":
        return ""
    return (
        f"subjects ± {_pct(r['sd_subjects'])} (n={int(r['n_subjects'])}); "
        f"seeds ± {_pct(r['sd_seeds'])} (n={int(r['n_seeds'])})"
    )


def _reported_notes(board: Leaderboard) -> list[str]:
    shown = board.table[board.table["source"] == "reported"].drop_duplicates(["config", "protocol", "stage"])
    out = []
    for r in shown.to_dict("records"):
        extra = "; ".join(
            x for x in (r["notes"], f"checkpoint selection: {r['selection']}" if r["selection"] else "") if x
        )
        out.append(f"{r['config']}, {r['protocol']} · {r['stage']}: {r['citation']}" + (f" ({extra})" if extra else ""))
    return out


# --------------------------------------------------------------------------------------------------
# formats
# --------------------------------------------------------------------------------------------------
def _md_escape(text: str) -> str:
    return str(text).replace("|", "\\|")


def _intro(board: Leaderboard) -> str:
    """One sentence on what the whole report covers."""
    from eegbench.results.plots import metric_name

    measured = board.table[board.table["source"] == "measured"]
    rows = board.rows
    n_ctx = len(board.contexts)

    def count(n: int, word: str) -> str:
        return f"{n} {word}{'' if n == 1 else 's'}"

    bits = [
        count(measured["config_id"].nunique(), "configuration"),
        count(rows["test_subject"].nunique(), "test subject"),
        count(rows["seed"].nunique(), "seed"),
    ]
    where = f" in {n_ctx} comparison contexts (never ranked together)" if n_ctx > 1 else ""
    return (
        f"{metric_name(board.metric).capitalize()} of {' × '.join(bits)}{where}; scores in percent, "
        "mean ± std over test subjects × seeds."
    )


def _headline(sec: dict[str, Any]) -> str:
    """The first column's best and its runner-up, with the paired test, in one sentence ('' when unranked)."""
    if not sec["columns"]:
        return ""
    col = sec["columns"][0]
    ranked = sorted(
        (r for (cid, k), r in sec["cells"].items() if k == _colkey(col) and r["source"] == "measured" and r["ranked"]),
        key=lambda r: (int(r["rank"]), r["config"]),
    )
    if not ranked:
        return ""
    best = ranked[0]
    text = f"Best on {col.label}: {best['config']}, {_pct(best['mean'])} %"
    if len(ranked) > 1:
        second = ranked[1]
        text += f", ahead of {second['config']} ({_pct(second['mean'])} %"
        if not _nan(second["p_value"]):
            text += f"; one-sided p = {_p(second['p_value'])} over {int(second['n_pairs'])} subjects"
        text += ")"
    return text + "."


def render_markdown(board: Leaderboard) -> str:
    from eegbench.results.plots import metric_name

    lines = [f"# Leaderboard: {metric_name(board.metric)}", "", _intro(board), ""]
    if board.sources:
        lines += [f"Results: {', '.join(board.sources)}", ""]
    lines += [
        f"Cells: {board.metric} in %, mean ± std over test subjects × seeds (n = number of subject-seed scores); "
        "**bold** = best in its column. Rows of different comparison contexts are never ranked together; within a "
        "column only configurations measured on the same test subjects and seeds as its most complete one are "
        "ranked, the others say *not ranked* (why: in the paired-comparison table). "
        f"Configuration = {' / '.join(board.by)}.",
        "",
    ]
    for i, sec in enumerate(_sections(board), 1):
        cols = sec["columns"]
        lines += [f"## Context {i}: {context_title(board, sec['key'])}", ""]
        lines += [f"- **{k}**: {_md_escape(v)}" for k, v in summary_items(board, sec["key"])]
        lines += [
            "",
            "Context: "
            + "; ".join(f"{k}: {_md_escape(v)}" for k, v in context_items(board.contexts.get(sec["key"], {}))),
            "",
        ]
        headline = _headline(sec)
        if headline:
            lines += [_md_escape(headline), ""]
        header = ["configuration", *[c.label for c in cols]]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for cid, records in _grid(sec):
            cells = []
            for r in records:
                text = _cell_text(r)
                if r is not None and r["source"] == "measured" and r["best"]:
                    text = f"**{text}**"
                elif r is not None and r["source"] != "measured":
                    text = f"*{text}*"
                cells.append(text)
            lines.append("| " + " | ".join([_md_escape(sec["info"][cid]["config"]), *cells]) + " |")
        lines.append("")
        for title, fn in (
            ("Paired comparison with the column's best (one-sided p, standardised mean difference)", _stats_text),
            ("Spread over subjects (seed-averaged) vs over seeds (subject-averaged), in %", _spread_text),
        ):
            lines += [f"### {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            for cid, records in _grid(sec, _measured_rows(sec)):
                lines.append("| " + " | ".join([_md_escape(sec["info"][cid]["config"]), *map(fn, records)]) + " |")
            lines.append("")
        lines += ["<details><summary>Identity (hashes and fingerprints)</summary>", ""]
        lines += [f"- {_md_escape(k)}: `{v}`" for k, v in identity_items(board, sec["key"])]
        lines += ["", "</details>", ""]
    notes = _reported_notes(board)
    if notes:
        lines += ["## Reported results", "", f"*[reported]* rows: {DEFINITIONS['reported']}.", ""]
        lines += [f"- {_md_escape(n)}" for n in notes] + [""]
    if board.citations:
        lines += ["## References", ""] + [f"- {k}: {_md_escape(v)}" for k, v in sorted(board.citations.items())] + [""]
    return "\n".join(lines)


def _grid(sec: dict[str, Any], rows: Sequence[str] | None = None) -> Iterable[tuple[str, list[Any]]]:
    """What every renderer walks: (row id, the cell record of each column or None) for the section's rows
    (or ``rows``)."""
    for cid in sec["rows"] if rows is None else rows:
        yield cid, [sec["cells"].get((cid, _colkey(c))) for c in sec["columns"]]


def _measured_rows(sec: dict[str, Any]) -> list[str]:
    """The section's measured rows (the paired-comparison and spread tables leave reported rows out)."""
    return [cid for cid in sec["rows"] if sec["info"][cid]["source"] == "measured"]


def _measured_table(sec: dict[str, Any], text: Callable[[dict[str, Any] | None], str]) -> list[dict[str, Any]]:
    """The section's measured rows as the HTML template's records, each cell the ``text`` of its summary."""
    return [
        {"label": sec["info"][cid]["config"], "cells": [text(r) for r in records]}
        for cid, records in _grid(sec, _measured_rows(sec))
    ]


def _rounded_frame(frame: Any) -> Any:
    """A copy of a DataFrame with every float rounded to :data:`SIGNIFICANT_DIGITS` significant digits."""
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype.kind == "f":
            out[col] = out[col].map(round_sig)
        elif out[col].dtype == object:
            out[col] = out[col].map(lambda v: round_sig(v) if isinstance(v, float) else v)
    return out


def render_csv(board: Leaderboard) -> str:
    """The tidy table (fractions to 6 significant digits), one row per (context, configuration, column)."""
    return str(_rounded_frame(board.table).to_csv(index=False))


def _json_number(value: float) -> Any:
    """A fraction to 6 significant digits; nan (no value) as null, infinities as text (JSON has neither)."""
    return None if math.isnan(value) else (str(value) if math.isinf(value) else round_sig(value))


def _jsonable(value: Any) -> Any:
    return to_jsonable(value, _json_number)


def render_json(board: Leaderboard) -> str:
    contexts = []
    for sec in _sections(board):
        t = board.table[board.table["context_key"] == sec["key"]]
        contexts.append(
            {
                "context_key": sec["key"],
                "context": board.contexts.get(sec["key"], {}),
                "chance": sec["chance"],
                "columns": [
                    {"protocol": c.protocol, "stage": c.stage, "training_ratio": c.training_ratio, "label": c.label}
                    for c in sec["columns"]
                ],
                "rows": [{k: _jsonable(v) for k, v in r.items() if k != "context_key"} for r in t.to_dict("records")],
            }
        )
    doc = {
        "metric": board.metric,
        "unit": "fraction",
        "significant_digits": SIGNIFICANT_DIGITS,
        "by": list(board.by),
        "sources": board.sources,
        "definitions": DEFINITIONS,
        "contexts": contexts,
        "citations": board.citations,
        "reported": board.reported,
    }
    return json.dumps(_jsonable(doc), indent=2, default=str, allow_nan=False) + "\n"


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def _tex(text: Any) -> str:
    s = "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))
    s = s.replace(" · ", ", ").replace("·", ",").replace("±", r"$\pm$").replace("–", "--").replace("…", r"\dots{}")
    return s.replace("-∞", r"$-\infty$").replace("∞", r"$\infty$").replace("×", r"$\times$")


def render_latex(board: Leaderboard) -> str:
    out = [
        f"% eegbench leaderboard: {board.metric} in percent, mean $\\pm$ std over test subjects x seeds (n);",
        "% bold = best in its column, dagger = not ranked (other subjects/seeds); needs \\usepackage{booktabs}",
        "",
    ]
    for sec in _sections(board):
        cols = sec["columns"]
        ctx_text = "; ".join(f"{k}: {v}" for k, v in context_items(board.contexts.get(sec["key"], {})))
        out += [
            f"% context {sec['key']}: {ctx_text}",
            r"\begin{table}[ht]",
            r"\centering",
            r"\small",
            r"\caption{"
            + _tex(f"{board.metric} (%) on {context_title(board, sec['key'])}; chance {_chance_pct(sec['chance'])} %")
            + "}",
            r"\begin{tabular}{l" + "c" * len(cols) + "}",
            r"\toprule",
            " & ".join(["Configuration", *[_tex(c.label) for c in cols]]) + r" \\",
            r"\midrule",
        ]
        for cid, records in _grid(sec):
            cells = []
            for r in records:
                if r is None:
                    cells.append("")
                elif r["source"] != "measured":
                    cells.append(r"\textit{" + _pct(r["mean"]) + "}")
                else:
                    text = f"{_pct(r['mean'])} $\\pm$ {_tex(_pct(r['std']))} ({int(r['n'])})"
                    if _unranked(r):
                        text += r"$^{\dagger}$"
                    cells.append(r"\textbf{" + text + "}" if r["best"] else text)
            label = sec["info"][cid]["config"]
            out.append(" & ".join([_tex(label), *cells]) + r" \\")
        out += [
            r"\midrule",
            r"\multicolumn{" + str(len(cols) + 1) + r"}{l}{\textit{Paired comparison with the best}} \\",
        ]
        for cid, records in _grid(sec, _measured_rows(sec)):
            texts = [_tex(_stats_text(r)) for r in records]
            out.append(" & ".join([_tex(sec["info"][cid]["config"]), *texts]) + r" \\")
        out += [r"\bottomrule", r"\end{tabular}"]
        if any(_unranked(r) for r in sec["cells"].values()):
            out.append(
                r"\par\footnotesize{$^{\dagger}$not ranked: measured on other test subjects/seeds than the "
                r"column's most complete configuration (see the paired-comparison rows)}"
            )
        out += [r"\end{table}", ""]
    for note in _reported_notes(board):
        out.append(f"% reported: {note}")
    return "\n".join(out) + "\n"


HOW_TO_READ = (
    "Cells: mean ± std in % over test subjects × seeds (n = number of subject-seed scores); bold = best "
    "in its column; shaded = not ranked (measured on other subjects or seeds than the column's most "
    "complete configuration; hover for why); italics = published numbers, never ranked."
)


def _html_context(ctx: dict[str, Any]) -> list[dict[str, str]]:
    out = []
    for label, text in context_items(ctx):
        full = ""
        if label == "channels" and isinstance(ctx.get("channels"), list) and len(ctx["channels"]) > 4:
            full = ", ".join(str(c) for c in ctx["channels"])
        out.append({"label": label, "text": text, "full": full})
    return out


def _plot_records(plots: Iterable[Any], key: str, used: set[str]) -> list[dict[str, str]]:
    """The plots of one context as template records (caption, base64 PNG). Accepts :class:`eegbench.results.plots.Plot`
    values or plain ``(file name, PNG bytes)`` pairs (matched to the context by the file name's prefix)."""
    out = []
    for plot in plots:
        if hasattr(plot, "context_key"):
            name, data, ctx, caption = plot.name, plot.png, plot.context_key, plot.caption
        else:
            name, data = plot
            ctx = key if str(name).startswith(key[:8]) else None
            caption = str(name).split("_", 1)[-1].rsplit(".", 1)[0].replace("_", " ")
        if ctx != key or name in used:
            continue
        used.add(name)
        out.append({"caption": caption, "name": name, "data": base64.b64encode(data).decode("ascii")})
    return out


def render_html(board: Leaderboard, plots: Iterable[Any] | None = None) -> str:
    """One self-contained page from the ``report.html.j2`` template: a summary first, then the ranked tables
    in percent, then the plots (embedded as base64 PNGs); hashes only in a collapsed identity block. Inline CSS,
    no scripts, no external resources."""
    import jinja2

    from eegbench.results.plots import metric_name

    plots = list(plots or [])
    used: set[str] = set()
    sections = []
    for i, sec in enumerate(_sections(board), 1):
        cols = sec["columns"]
        rows = []
        for cid, records in _grid(sec):
            info = sec["info"][cid]
            cells = []
            for r in records:
                best = r is not None and r["source"] == "measured" and bool(r["best"])
                cells.append(
                    {
                        "text": _cell_text(r),
                        "cls": "best" if best else ("unranked" if _unranked(r) else ""),
                        "title": str(r["rank_note"]) if _unranked(r) else "",
                    }
                )
            rows.append({"label": info["config"], "reported": info["source"] != "measured", "cells": cells})

        sections.append(
            {
                "index": i,
                "title": context_title(board, sec["key"]),
                "summary": summary_items(board, sec["key"]),
                "headline": _headline(sec),
                "context": _html_context(board.contexts.get(sec["key"], {})),
                "columns": [c.label for c in cols],
                "rows": rows,
                "stats": _measured_table(sec, _stats_text),
                "spread": _measured_table(sec, _spread_text),
                "plots": _plot_records(plots, sec["key"], used),
                "identity": identity_items(board, sec["key"]),
            }
        )
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("eegbench.results", "."),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    return env.get_template("report.html.j2").render(
        metric_name=metric_name(board.metric),
        intro=_intro(board),
        sources=board.sources,
        sections=sections,
        how_to_read=HOW_TO_READ,
        reported_notes=_reported_notes(board),
        reported_definition=DEFINITIONS["reported"],
        citations=sorted(board.citations.items()),
    )


def render(board: Leaderboard, fmt: str = "md", *, plots: Iterable[Any] | None = None) -> str:
    """Render ``board`` as ``fmt`` (md, csv, latex, html, json); ``plots`` (:class:`eegbench.results.plots.Plot`) are
    embedded by the HTML format (made here when not given)."""
    if fmt == "md":
        return render_markdown(board)
    if fmt == "csv":
        return render_csv(board)
    if fmt == "latex":
        return render_latex(board)
    if fmt == "json":
        return render_json(board)
    if fmt == "html":
        if plots is None:
            from eegbench.results.plots import make_plots

            plots = make_plots(board)
        return render_html(board, plots)
    raise EegbenchError(f"unknown leaderboard format {fmt!r} (choose from md, csv, latex, html, json)")
