"""Leaderboard plots (matplotlib's Agg canvas, PNG; no display and no global pyplot state).

Per comparison context:

* ``<context>_overview.png``: every configuration side by side, one panel per column (protocol · stage ·
  ratio), mean with a ± std bar over test subjects × seeds (the table's numbers);
* ``<context>_paired_differences.png``: per column with two or more ranked configurations, each one's
  per-subject difference to the column's best (the pairs of the paired test), mean and p-value;
* ``<context>_<protocol>_<stage>[_<ratio>]_subjects.png``: each test subject's score per configuration
  (mean over seeds; bars span the seeds' range when there are several), for the full-data column of every
  protocol/stage;
* ``<context>_<protocol>_finetune_curve.png``: score vs fine-tuning training ratio per configuration, mean
  with a ± std bar over test subjects × seeds (the pretrained model, when present, at 0 %).

All score plots of one context share one score axis range (from 0, so the chance level is in view), draw the
chance level as a labelled dashed line, and are sized to their content. Titles and captions name columns
and configurations, never hashes; only the file names carry the context key's first 8 characters.
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from eegbench.results.leaderboard import Column, Leaderboard

MAX_WIDTH = 12.0  # inches; wider figures are scaled down in the report anyway


class Plot(NamedTuple):
    """One rendered plot: its file name, PNG bytes, the context it belongs to and a one-line caption."""

    name: str
    png: bytes
    context_key: str
    caption: str


def metric_name(metric: str) -> str:
    """``top1`` -> ``top-1 accuracy``; other metric names unchanged."""
    if metric.startswith("top") and metric[3:].isdigit():
        return f"top-{metric[3:]} accuracy"
    return metric


def _figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(min(MAX_WIDTH, width), height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _chance_line(ax: Axes, chance: float | None, *, vertical: bool = False) -> None:
    """A dashed line at the chance level, labelled on the plot itself (not only in a legend)."""
    if chance is None or math.isnan(chance):
        return
    pct = chance * 100
    text = f"chance {pct:.2g} %"
    if vertical:
        ax.axvline(pct, color="0.35", linestyle="--", linewidth=1)
        ax.annotate(
            text,
            xy=(pct, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(3, -3),
            textcoords="offset points",
            ha="left",
            va="top",
            fontsize=7,
            color="0.3",
        )
    else:
        ax.axhline(pct, color="0.35", linestyle="--", linewidth=1)
        ax.annotate(
            text,
            xy=(1.0, pct),
            xycoords=("axes fraction", "data"),
            xytext=(-3, 2),
            textcoords="offset points",
            ha="right",
            va="bottom",
            fontsize=7,
            color="0.3",
        )


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "-" for c in text).strip("-")


def _score_range(part: pd.DataFrame, chance: float | None) -> tuple[float, float]:
    """The shared score axis of one context, in percent: from 0 to a little above the highest value any of
    its plots draws (a single score, or a group's mean + std), in steps of 5, at most 100."""
    hi = float(part["value"].max()) * 100
    keys = ["config_id", "protocol", "stage", "training_ratio"]
    stats = part.groupby(keys)["value"].agg(["mean", "std"]).fillna(0.0)
    if len(stats):
        hi = max(hi, float((stats["mean"] + stats["std"]).max()) * 100)
    if chance is not None and not math.isnan(chance):
        hi = max(hi, chance * 100)
    top = min(100.0, math.ceil(max(hi * 1.08, 5.0) / 5.0) * 5.0)
    return 0.0, top


def _legend_below(ax: Axes, n: int) -> None:
    if n > 1:
        # one entry per line: configuration labels are long, a wide legend would squeeze the axes
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=1, frameon=False)


def _subjects_plot(
    board: Leaderboard,
    part: pd.DataFrame,
    col: Column,
    configs: list[str],
    colors: dict[str, str],
    chance: float | None,
    ylim: tuple[float, float],
) -> tuple[Figure, str] | None:
    sel = part[
        (part["protocol"] == col.protocol)
        & (part["stage"] == col.stage)
        & (part["training_ratio"] == col.training_ratio)
    ]
    if sel.empty:
        return None
    subjects = sorted(sel["test_subject"].unique())
    shown = [c for c in configs if (sel["config"] == c).any()]
    pos = {s: i for i, s in enumerate(subjects)}
    width = 0.8 / max(1, len(shown))
    fig = _figure(
        1.4 + len(subjects) * max(0.55, 0.2 * len(shown)), 2.6 + (0.17 * len(shown) + 0.2 if len(shown) > 1 else 0)
    )
    ax = fig.add_subplot()
    several_seeds = sel["seed"].nunique() > 1
    for k, cfg in enumerate(shown):
        g = sel[sel["config"] == cfg].groupby("test_subject")["value"]
        mean, lo, hi = g.mean() * 100, g.min() * 100, g.max() * 100
        x = [pos[s] - 0.4 + width * (k + 0.5) for s in mean.index]
        yerr = [(mean - lo).to_numpy(), (hi - mean).to_numpy()] if several_seeds else None
        ax.errorbar(
            x, mean.to_numpy(), yerr=yerr, fmt="o", color=colors[cfg], label=cfg, capsize=2, markersize=4, elinewidth=1
        )
    _chance_line(ax, chance)
    ax.set_xticks(
        range(len(subjects)),
        [f"sub-{s:02d}" if s >= 0 else "pooled" for s in subjects],
        rotation=45 if len(subjects) > 10 else 0,
        fontsize=8,
    )
    ax.set_xlim(-0.6, len(subjects) - 0.4)
    ax.set_ylim(*ylim)
    ax.set_ylabel(f"{metric_name(board.metric)} (%)", fontsize=8)
    ax.tick_params(axis="y", labelsize=8)
    ax.set_title(f"{col.label}: per test subject", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    _legend_below(ax, len(shown))
    spread = "bars span the seeds' range" if several_seeds else "one seed"
    caption = (
        f"{col.label}: {metric_name(board.metric)} per test subject and configuration (mean over seeds; {spread})."
    )
    return fig, caption


def _overview_plot(
    board: Leaderboard,
    ctx: str,
    columns: list[Column],
    configs: list[str],
    colors: dict[str, str],
    chance: float | None,
    ylim: tuple[float, float],
) -> tuple[Figure, str] | None:
    """Configurations side by side: one panel per column, a row per configuration (mean ± std)."""
    t = board.table[(board.table["context_key"] == ctx) & (board.table["source"] == "measured")]
    if t.empty:
        return None
    # the table's row order: by the first column's mean, best on top
    first = columns[0]
    firsts = t[
        (t["protocol"] == first.protocol) & (t["stage"] == first.stage) & (t["training_ratio"] == first.training_ratio)
    ].set_index("config")["mean"]
    order = sorted(configs, key=lambda c: (-float(firsts.get(c, -1.0)), c))
    ypos = {c: len(order) - 1 - i for i, c in enumerate(order)}
    label_width = min(3.5, 0.055 * max(len(c) for c in order))
    fig = _figure(label_width + 0.4 + 1.9 * len(columns), 1.0 + 0.32 * len(order))
    axes = fig.subplots(1, len(columns), sharey=True, squeeze=False)[0]
    for ax, col in zip(axes, columns, strict=True):
        sel = t[
            (t["protocol"] == col.protocol) & (t["stage"] == col.stage) & (t["training_ratio"] == col.training_ratio)
        ]
        for r in sel.to_dict("records"):
            std = r["std"] * 100 if r["std"] == r["std"] else 0.0
            ax.errorbar(
                [r["mean"] * 100],
                [ypos[r["config"]]],
                xerr=[[std], [std]],
                fmt="o",
                color=colors[r["config"]],
                capsize=2,
                markersize=5 if r["best"] else 4,
                elinewidth=1,
                markerfacecolor=colors[r["config"]] if r["ranked"] else "white",
            )
        _chance_line(ax, chance, vertical=True)
        ax.set_xlim(*ylim)
        ax.set_title(col.label, fontsize=8)
        ax.grid(axis="x", alpha=0.3)
        ax.tick_params(labelsize=7)
    axes[0].set_yticks(range(len(order)), [c for c in reversed(order)], fontsize=7)
    axes[0].set_ylim(-0.6, len(order) - 0.4)
    fig.supxlabel(f"{metric_name(board.metric)} (%)", fontsize=8)
    caption = (
        f"{metric_name(board.metric)} per configuration and column: mean ± std over test subjects × seeds "
        "(as in the table); hollow = not ranked."
    )
    return fig, caption


def _paired_plot(
    board: Leaderboard, part: pd.DataFrame, ctx: str, columns: list[Column], colors: dict[str, str]
) -> tuple[Figure, str] | None:
    """Per column, each ranked configuration's per-subject difference to the column's best (seeds averaged per
    subject: the pairs the paired test uses), with the mean difference and the test's p-value."""
    t = board.table[(board.table["context_key"] == ctx) & (board.table["source"] == "measured") & board.table["ranked"]]
    panels = []
    for col in columns:
        sel = t[
            (t["protocol"] == col.protocol) & (t["stage"] == col.stage) & (t["training_ratio"] == col.training_ratio)
        ].sort_values(["rank", "config"], kind="stable")
        if len(sel) < 2:
            continue
        rows = part[
            (part["protocol"] == col.protocol)
            & (part["stage"] == col.stage)
            & (part["training_ratio"] == col.training_ratio)
        ]
        per_subject = rows.groupby(["config_id", "test_subject"])["value"].mean() * 100
        best = per_subject.loc[sel.iloc[0]["config_id"]]
        others = []
        for r in sel.iloc[1:].to_dict("records"):
            diff = (best - per_subject.loc[r["config_id"]]).dropna()
            others.append((r["config"], diff.to_numpy(), r["p_value"]))
        panels.append((col, sel.iloc[0]["config"], others))
    if not panels:
        return None
    span = max([float(abs(d).max()) for _, _, o in panels for _, d, _ in o if len(d)] or [1.0])
    span = max(1.0, math.ceil(span * 1.15))
    # one row per configuration across panels (shared y), in the order of the first panel that has it
    order = list(dict.fromkeys(c for _, _, o in panels for c, _, _ in o))
    ypos = {c: len(order) - 1 - i for i, c in enumerate(order)}
    label_width = min(3.5, 0.055 * max(len(c) for c in order))
    fig = _figure(label_width + 0.4 + 1.9 * len(panels), 1.3 + 0.36 * len(order))
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    for ax, (col, _, others) in zip(axes, panels, strict=True):
        for cfg, diff, p in others:
            y = ypos[cfg]
            jitter = [y + 0.12 * ((k % 3) - 1) for k in range(len(diff))]
            ax.scatter(diff, jitter, s=10, color=colors.get(cfg, "C0"), alpha=0.6, linewidths=0)
            if len(diff):
                ax.plot([diff.mean()], [y], marker="D", color="black", markersize=4)
            if p == p:  # not nan
                ax.annotate(
                    f"p={p:.2g}",
                    xy=(1.0, y),
                    xycoords=("axes fraction", "data"),
                    xytext=(-2, 4),
                    textcoords="offset points",
                    ha="right",
                    va="bottom",
                    fontsize=6,
                    color="0.3",
                )
        ax.axvline(0, color="0.35", linewidth=1)
        ax.set_xlim(-span, span)
        ax.set_title(col.label, fontsize=8)
        ax.grid(axis="x", alpha=0.3)
        ax.tick_params(axis="x", labelsize=7)
    axes[0].set_yticks(range(len(order)), list(reversed(order)), fontsize=7)
    axes[0].set_ylim(-0.6, len(order) - 0.4)
    bests = {b for _, b, _ in panels}
    fig.suptitle(
        f"best ({bests.pop()}) minus each configuration"
        if len(bests) == 1
        else "each column's best minus each configuration",
        fontsize=8,
    )
    fig.supxlabel("difference per test subject (percentage points)", fontsize=8)
    caption = (
        "Paired differences to each column's best: one dot per test subject (seeds averaged), diamond = "
        "mean; right of 0 = the best is ahead on that subject; p = the one-sided paired test of the table."
    )
    return fig, caption


def _curve_plot(
    board: Leaderboard,
    part: pd.DataFrame,
    protocol: str,
    configs: list[str],
    colors: dict[str, str],
    chance: float | None,
    ylim: tuple[float, float],
) -> tuple[Figure, str] | None:
    sel = part[(part["protocol"] == protocol) & (part["stage"] == "finetune")]
    if sel.empty:
        return None
    pre = part[(part["protocol"] == protocol) & (part["stage"] == "pretrain")]
    shown = [c for c in configs if (sel["config"] == c).any()]
    fig = _figure(4.6, 2.8 + (0.17 * len(shown) + 0.2 if len(shown) > 1 else 0))
    ax = fig.add_subplot()
    for cfg in shown:
        g = sel[sel["config"] == cfg].groupby("training_ratio")["value"]
        mean = g.mean() * 100
        std = g.std(ddof=1).fillna(0.0) * 100
        x = list(mean.index.to_numpy() * 100)
        y, e = list(mean.to_numpy()), list(std.to_numpy())
        p = pre[pre["config"] == cfg]["value"]
        if len(p):  # the pretrained model on the held-out subject: no fine-tuning data
            x, y, e = [0.0, *x], [float(p.mean()) * 100, *y], [float(p.std(ddof=1)) * 100 if len(p) > 1 else 0.0, *e]
        ax.errorbar(x, y, yerr=e, marker="o", color=colors[cfg], label=cfg, capsize=2, markersize=4, elinewidth=1)
    _chance_line(ax, chance)
    ax.set_xlabel("training data of the test subject used for fine-tuning (%)", fontsize=8)
    ax.set_ylabel(f"{metric_name(board.metric)} (%)", fontsize=8)
    ax.set_ylim(*ylim)
    ax.set_xlim(-5, 105)
    ax.tick_params(labelsize=8)
    ax.set_title(f"{protocol} · finetune: vs training ratio", fontsize=9)
    ax.grid(alpha=0.3)
    _legend_below(ax, len(shown))
    caption = (
        f"{protocol} · finetune: {metric_name(board.metric)} vs the share of the test subject's training data "
        "used for fine-tuning; mean ± std over test subjects × seeds"
        + (" (0 % = the pretrained model)" if not pre.empty else "")
        + "."
    )
    return fig, caption


def make_plots(board: Leaderboard, out_dir: str | os.PathLike[str] | None = None) -> list[Plot]:
    """Render every plot of ``board`` (a :class:`Plot` each: name, PNG bytes, context key, caption); also
    write the PNG files into ``out_dir`` when given."""
    from eegbench.results.leaderboard import Column

    plots: list[Plot] = []
    rows = board.rows
    for ctx in board.context_keys():
        part = rows[rows["context_key"] == ctx]
        if part.empty:
            continue
        chance = board.chance(ctx)
        columns = board.columns(ctx)
        configs = sorted(part["config"].unique())
        colors = {c: f"C{i % 10}" for i, c in enumerate(configs)}
        ylim = _score_range(part, chance)
        made = _overview_plot(board, ctx, columns, configs, colors, chance, ylim)
        if made:
            plots.append(Plot(f"{ctx[:8]}_overview.png", _png(made[0]), ctx, made[1]))
        made = _paired_plot(board, part, ctx, columns, colors)
        if made:
            plots.append(Plot(f"{ctx[:8]}_paired_differences.png", _png(made[0]), ctx, made[1]))
        for col in columns:  # per-subject scores: the full-data column of each (protocol, stage)
            same = [c for c in columns if (c.protocol, c.stage) == (col.protocol, col.stage)]
            if col.training_ratio != max(c.training_ratio for c in same):
                continue
            made = _subjects_plot(board, part, col, configs, colors, chance, ylim)
            if made:
                ratio = "" if math.isclose(col.training_ratio, 1.0) else f"_r{col.training_ratio:g}"
                name = f"{ctx[:8]}_{_slug(col.protocol)}_{_slug(col.stage)}{ratio}_subjects.png"
                plots.append(Plot(name, _png(made[0]), ctx, made[1]))
        for protocol in sorted(
            {c.protocol for c in columns if c.stage == "finetune"}, key=lambda p: Column(p, "finetune", 1.0).sort_key()
        ):
            made = _curve_plot(board, part, protocol, configs, colors, chance, ylim)
            if made:
                plots.append(Plot(f"{ctx[:8]}_{_slug(protocol)}_finetune_curve.png", _png(made[0]), ctx, made[1]))
    if out_dir is not None:
        out = Path(out_dir).expanduser()
        try:
            out.mkdir(parents=True, exist_ok=True)
            for plot in plots:
                (out / plot.name).write_bytes(plot.png)
        except OSError as exc:
            from eegbench.errors import EegbenchError

            raise EegbenchError(f"cannot write plots to {out}: {exc.strerror or exc}") from exc
    return plots
