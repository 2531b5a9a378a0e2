"""Renderers of a :class:`~eegbench.leaderboard.Leaderboard`: Markdown, CSV, LaTeX, JSON and a
self-contained static HTML report (inline CSS, plots embedded as ``data:`` URIs, no network resources).

Human formats (Markdown, LaTeX, HTML) show scores in percent: ``mean ± std (n=N)``, the best of each
column in bold (among the configurations measured on the column's reference subjects and seeds; the others
are marked ``not ranked``), and per context a paired-statistics table and a spread table (subjects vs seeds).
Machine formats (CSV, JSON) carry the tidy table with fractions at full precision.
"""
from __future__ import annotations

import base64
import html
import json
import math
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from .errors import EegbenchError

if TYPE_CHECKING:  # pragma: no cover
    from .leaderboard import Column, Leaderboard

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


def _pct(x: Any, digits: int = 2) -> str:
    return "–" if _nan(x) else f"{float(x) * 100:.{digits}f}"


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


def context_items(ctx: dict[str, Any]) -> list[tuple[str, str]]:
    """The comparison context as (field, text) pairs for display (all fields, long lists shortened)."""
    out = []
    for key in sorted(ctx):
        value = ctx[key]
        if key == "channels" and isinstance(value, list):
            text = f"{len(value)} ({_short_list(value)})"
        elif key == "window" and isinstance(value, list):
            text = "[" + ", ".join(str(v) for v in value) + "] s"
        elif isinstance(value, bool):
            text = "yes" if value else "no"
        elif isinstance(value, (list, dict)):
            text = json.dumps(value, default=str)
        else:
            text = str(value)
        out.append((key, text))
    return out


def context_title(board: "Leaderboard", key: str) -> str:
    ctx = board.contexts.get(key, {})
    bits = [str(ctx.get("dataset", "?"))]
    if ctx.get("synthetic"):
        bits.append("synthetic")
    if "n_way" in ctx:
        bits.append(f"{ctx['n_way']}-way")
    if "test_averaging" in ctx:
        bits.append(f"test averaging {ctx['test_averaging']}")
    return " · ".join(bits) + f" · context {key}"


def _sections(board: "Leaderboard") -> list[dict[str, Any]]:
    """Per context: columns, row order and the (row, column) -> summary record map."""
    out = []
    for key in board.context_keys():
        t = board.table[board.table["context_key"] == key]
        columns = board.columns(key)
        first_col = columns[0] if columns else None
        order: dict[str, tuple] = {}
        for r in t.to_dict("records"):
            cid = r["config_id"]
            in_first = first_col is not None and (r["protocol"], r["stage"], r["training_ratio"]) == (
                first_col.protocol, first_col.stage, first_col.training_ratio)
            # ranked rows of the first column by mean, then its unranked rows, then rows absent from it
            tier = (1 if _unranked(r) else 0) if in_first else 2
            rank_key = (r["source"] != "measured", tier, -(r["mean"] if in_first else -1.0), r["config"])
            order[cid] = min(order.get(cid, rank_key), rank_key)
        row_ids = sorted(order, key=lambda c: order[c])
        cells = {(r["config_id"], (r["protocol"], r["stage"], r["training_ratio"])): r for r in t.to_dict("records")}
        labels = {r["config_id"]: r for r in t.to_dict("records")}
        out.append({"key": key, "columns": columns, "rows": row_ids, "cells": cells, "info": labels,
                    "chance": board.chance(key)})
    return out


def _colkey(col: "Column") -> tuple:
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
    return (f"subjects ± {_pct(r['sd_subjects'])} (n={int(r['n_subjects'])}); "
            f"seeds ± {_pct(r['sd_seeds'])} (n={int(r['n_seeds'])})")


def _reported_notes(board: "Leaderboard") -> list[str]:
    shown = board.table[board.table["source"] == "reported"].drop_duplicates(["config", "protocol", "stage"])
    out = []
    for r in shown.to_dict("records"):
        extra = "; ".join(x for x in (r["notes"], f"checkpoint selection: {r['selection']}" if r["selection"] else "") if x)
        out.append(f"{r['config']}, {r['protocol']} · {r['stage']}: {r['citation']}" + (f" ({extra})" if extra else ""))
    return out


# --------------------------------------------------------------------------------------------------
# formats
# --------------------------------------------------------------------------------------------------
def _md_escape(text: str) -> str:
    return str(text).replace("|", "\\|")


def render_markdown(board: "Leaderboard") -> str:
    lines = [f"# Leaderboard: {board.metric}", ""]
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
        lines += [f"- {k}: {_md_escape(v)}" for k, v in context_items(board.contexts.get(sec["key"], {}))]
        chance = sec["chance"]
        lines += [f"- **chance**: {_pct(chance)} %" if chance is not None else "- chance: –", ""]
        header = ["configuration", *[c.label for c in cols]]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for cid in sec["rows"]:
            cells = []
            for c in cols:
                r = sec["cells"].get((cid, _colkey(c)))
                text = _cell_text(r)
                if r is not None and r["source"] == "measured" and r["best"]:
                    text = f"**{text}**"
                elif r is not None and r["source"] != "measured":
                    text = f"*{text}*"
                cells.append(text)
            lines.append("| " + " | ".join([_md_escape(sec["info"][cid]["config"]), *cells]) + " |")
        lines.append("")
        measured = [cid for cid in sec["rows"] if sec["info"][cid]["source"] == "measured"]
        for title, fn in (("Paired comparison with the column's best (one-sided p, standardised mean difference)",
                           _stats_text),
                          ("Spread over subjects (seed-averaged) vs over seeds (subject-averaged), in %", _spread_text)):
            lines += [f"### {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            for cid in measured:
                lines.append("| " + " | ".join([_md_escape(sec["info"][cid]["config"]),
                                                *[fn(sec["cells"].get((cid, _colkey(c)))) for c in cols]]) + " |")
            lines.append("")
    notes = _reported_notes(board)
    if notes:
        lines += ["## Reported results", "", f"*[reported]* rows: {DEFINITIONS['reported']}.", ""]
        lines += [f"- {_md_escape(n)}" for n in notes] + [""]
    if board.citations:
        lines += ["## References", ""] + [f"- {k}: {_md_escape(v)}" for k, v in sorted(board.citations.items())] + [""]
    return "\n".join(lines)


def render_csv(board: "Leaderboard") -> str:
    """The tidy table (fractions, full precision), one row per (context, configuration, column)."""
    return board.table.to_csv(index=False)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float):
        return None if math.isnan(value) else (str(value) if math.isinf(value) else value)
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return _jsonable(value.item())
    return value


def render_json(board: "Leaderboard") -> str:
    contexts = []
    for sec in _sections(board):
        t = board.table[board.table["context_key"] == sec["key"]]
        contexts.append({
            "context_key": sec["key"],
            "context": board.contexts.get(sec["key"], {}),
            "chance": sec["chance"],
            "columns": [{"protocol": c.protocol, "stage": c.stage, "training_ratio": c.training_ratio,
                         "label": c.label} for c in sec["columns"]],
            "rows": [{k: _jsonable(v) for k, v in r.items() if k != "context_key"} for r in t.to_dict("records")],
        })
    doc = {"metric": board.metric, "unit": "fraction", "by": list(board.by), "sources": board.sources,
           "definitions": DEFINITIONS, "contexts": contexts, "citations": board.citations,
           "reported": board.reported}
    return json.dumps(_jsonable(doc), indent=2, default=str, allow_nan=False) + "\n"


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def _tex(text: Any) -> str:
    s = "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))
    s = s.replace(" · ", ", ").replace("·", ",").replace("±", r"$\pm$").replace("–", "--").replace("…", r"\dots{}")
    return s.replace("-∞", r"$-\infty$").replace("∞", r"$\infty$").replace("×", r"$\times$")


def render_latex(board: "Leaderboard") -> str:
    out = [f"% eegbench leaderboard: {board.metric} in percent, mean $\\pm$ std over test subjects x seeds (n);",
           "% bold = best in its column, dagger = not ranked (other subjects/seeds); needs \\usepackage{booktabs}", ""]
    for sec in _sections(board):
        cols = sec["columns"]
        ctx_text = "; ".join(f"{k}: {v}" for k, v in context_items(board.contexts.get(sec["key"], {})))
        out += [f"% context {sec['key']}: {ctx_text}", r"\begin{table}[ht]", r"\centering", r"\small",
                r"\caption{" + _tex(f"{board.metric} (%) on {context_title(board, sec['key'])}; chance "
                                    f"{_pct(sec['chance'])} %") + "}",
                r"\begin{tabular}{l" + "c" * len(cols) + "}", r"\toprule",
                " & ".join(["Configuration", *[_tex(c.label) for c in cols]]) + r" \\", r"\midrule"]
        for cid in sec["rows"]:
            cells = []
            for c in cols:
                r = sec["cells"].get((cid, _colkey(c)))
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
        out += [r"\midrule", r"\multicolumn{" + str(len(cols) + 1) + r"}{l}{\textit{Paired comparison with the best}} \\"]
        for cid in sec["rows"]:
            if sec["info"][cid]["source"] != "measured":
                continue
            texts = [_tex(_stats_text(sec["cells"].get((cid, _colkey(c))))) for c in cols]
            out.append(" & ".join([_tex(sec["info"][cid]["config"]), *texts]) + r" \\")
        out += [r"\bottomrule", r"\end{tabular}"]
        if any(_unranked(r) for r in sec["cells"].values()):
            out.append(r"\par\footnotesize{$^{\dagger}$not ranked: measured on other test subjects/seeds than the "
                       r"column's most complete configuration (see the paired-comparison rows)}")
        out += [r"\end{table}", ""]
    for note in _reported_notes(board):
        out.append(f"% reported: {note}")
    return "\n".join(out) + "\n"


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em;color:#222;max-width:1400px}
table{border-collapse:collapse;margin:.5em 0 1.5em}th,td{border:1px solid #ccc;padding:.3em .6em;text-align:right}
th:first-child,td:first-child{text-align:left}th{background:#f3f3f3}td.best{font-weight:bold;background:#eef7ee}
td.unranked{color:#8a5a00;background:#fff8e6}
tr.reported td{font-style:italic;color:#555;background:#fafafa}.ctx{font-size:.9em;color:#444}
figure{display:inline-block;margin:.5em}figure img{max-width:640px;border:1px solid #ddd}
figcaption{font-size:.8em;color:#555}code{background:#f3f3f3;padding:0 .2em}
"""


def _h(text: Any) -> str:
    return html.escape(str(text), quote=True)


def render_html(board: "Leaderboard", plots: Iterable[tuple[str, bytes]] | None = None) -> str:
    """One self-contained page: inline CSS, every plot embedded as a base64 PNG; no external resources."""
    plots = list(plots or [])
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>eegbench leaderboard: {_h(board.metric)}</title><style>{_CSS}</style></head><body>",
             f"<h1>Leaderboard: {_h(board.metric)}</h1>"]
    if board.sources:
        parts.append(f"<p>Results: {_h(', '.join(board.sources))}</p>")
    parts.append(f"<p>Cells: {_h(board.metric)} in %, mean ± std over test subjects × seeds (n = number of "
                 "subject-seed scores); <strong>bold</strong> = best in its column. Rows of different comparison "
                 "contexts are never ranked together; within a column only configurations measured on the same test "
                 "subjects and seeds as its most complete one are ranked, the others say <em>not ranked</em> (why: "
                 f"in the paired-comparison table). Configuration = {_h(' / '.join(board.by))}.</p>")
    used: set[str] = set()
    for i, sec in enumerate(_sections(board), 1):
        cols = sec["columns"]
        parts.append(f"<h2>Context {i}: {_h(context_title(board, sec['key']))}</h2>")
        items = "".join(f"<li>{_h(k)}: {_h(v)}</li>" for k, v in context_items(board.contexts.get(sec["key"], {})))
        parts.append(f'<ul class="ctx">{items}<li><strong>chance: {_h(_pct(sec["chance"]))} %</strong></li></ul>')
        head = "<tr><th>configuration</th>" + "".join(f"<th>{_h(c.label)}</th>" for c in cols) + "</tr>"
        body = []
        for cid in sec["rows"]:
            info = sec["info"][cid]
            tds = []
            for c in cols:
                r = sec["cells"].get((cid, _colkey(c)))
                best = r is not None and r["source"] == "measured" and bool(r["best"])
                attr = ' class="best"' if best else (' class="unranked"' if _unranked(r) else "")
                title = f' title="{_h(r["rank_note"])}"' if _unranked(r) else ""
                tds.append(f"<td{attr}{title}>{_h(_cell_text(r))}</td>")
            cls = ' class="reported"' if info["source"] != "measured" else ""
            body.append(f"<tr{cls}><td>{_h(info['config'])}</td>{''.join(tds)}</tr>")
        parts.append(f"<table>{head}{''.join(body)}</table>")
        measured = [cid for cid in sec["rows"] if sec["info"][cid]["source"] == "measured"]
        for title, fn in (("Paired comparison with the column's best (one-sided p, standardised mean difference)",
                           _stats_text),
                          ("Spread over subjects (seed-averaged) vs over seeds (subject-averaged), in %", _spread_text)):
            rows = "".join(f"<tr><td>{_h(sec['info'][cid]['config'])}</td>"
                           + "".join(f"<td>{_h(fn(sec['cells'].get((cid, _colkey(c)))))}</td>" for c in cols) + "</tr>"
                           for cid in measured)
            parts.append(f"<h3>{_h(title)}</h3><table>{head}{rows}</table>")
        figs = [(n, d) for n, d in plots if n.startswith(sec["key"][:8]) and n not in used]
        for name, data in figs:
            used.add(name)
            parts.append(f'<figure><img alt="{_h(name)}" src="data:image/png;base64,'
                         f'{base64.b64encode(data).decode("ascii")}"><figcaption>{_h(name)}</figcaption></figure>')
    notes = _reported_notes(board)
    if notes:
        parts.append(f"<h2>Reported results</h2><p><em>[reported]</em> rows: {_h(DEFINITIONS['reported'])}.</p>")
        parts.append("<ul>" + "".join(f"<li>{_h(n)}</li>" for n in notes) + "</ul>")
    if board.citations:
        parts.append("<h2>References</h2><ul>"
                     + "".join(f"<li>{_h(k)}: {_h(v)}</li>" for k, v in sorted(board.citations.items())) + "</ul>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def render(board: "Leaderboard", fmt: str = "md", *, plots: Iterable[tuple[str, bytes]] | None = None) -> str:
    """Render ``board`` as ``fmt`` (md, csv, latex, html, json); ``plots`` are embedded by the HTML format."""
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
            from .plots import make_plots

            plots = make_plots(board)
        return render_html(board, plots)
    raise EegbenchError(f"unknown leaderboard format {fmt!r} (choose from md, csv, latex, html, json)")
