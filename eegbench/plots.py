"""Leaderboard plots (matplotlib's Agg canvas, PNG; no display and no global pyplot state).

* ``<context>_<protocol>_<stage>[_<ratio>]_subjects.png``: each test subject's score per configuration
  (mean over seeds; bars show the seed range when there are several seeds).
* ``<context>_<protocol>_finetune_curve.png``: score vs training ratio per configuration, mean with a
  ± std band over subjects and seeds.

Every plot draws the chance level as a dashed line.
"""
from __future__ import annotations

import io
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from .leaderboard import Leaderboard


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _chance_line(ax, chance: float | None) -> None:
    if chance is not None and not math.isnan(chance):
        ax.axhline(chance * 100, color="0.3", linestyle="--", linewidth=1, label=f"chance ({chance * 100:.3g} %)")


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "-" for c in text).strip("-")


def make_plots(board: "Leaderboard", out_dir: str | os.PathLike | None = None) -> list[tuple[str, bytes]]:
    """Render every plot of ``board`` as ``(file name, PNG bytes)``; also write them into ``out_dir``."""
    from .leaderboard import Column

    plots: list[tuple[str, bytes]] = []
    rows = board.rows
    for ctx in board.context_keys():
        part = rows[rows["context_key"] == ctx]
        if part.empty:
            continue
        chance = board.chance(ctx)
        columns = board.columns(ctx)
        configs = sorted(part["config"].unique())
        colors = {c: f"C{i % 10}" for i, c in enumerate(configs)}
        # per-subject scores: the full-data column of each (protocol, stage)
        for col in columns:
            same = [c for c in columns if (c.protocol, c.stage) == (col.protocol, col.stage)]
            if col.training_ratio != max(c.training_ratio for c in same):
                continue
            sel = part[(part["protocol"] == col.protocol) & (part["stage"] == col.stage)
                       & (part["training_ratio"] == col.training_ratio)]
            if sel.empty:
                continue
            subjects = sorted(sel["test_subject"].unique())
            pos = {s: i for i, s in enumerate(subjects)}
            fig = _figure(max(5.0, 0.5 * len(subjects) + 3), 3.8)
            ax = fig.add_subplot()
            width = 0.7 / max(1, len(configs))
            for k, cfg in enumerate(configs):
                g = sel[sel["config"] == cfg].groupby("test_subject")["value"]
                if not len(g):
                    continue
                mean, lo, hi = g.mean() * 100, g.min() * 100, g.max() * 100
                x = [pos[s] - 0.35 + width * (k + 0.5) for s in mean.index]
                ax.errorbar(x, mean.to_numpy(), yerr=[(mean - lo).to_numpy(), (hi - mean).to_numpy()], fmt="o",
                            color=colors[cfg], label=cfg, capsize=2, markersize=4)
            _chance_line(ax, chance)
            ax.set_xticks(range(len(subjects)), [f"sub-{s:02d}" if s >= 0 else "pooled" for s in subjects],
                          rotation=45 if len(subjects) > 8 else 0)
            ax.set_ylabel(f"{board.metric} (%)")
            ax.set_title(f"{col.label}: per-subject {board.metric} [{ctx[:8]}]", fontsize=10)
            ax.legend(fontsize=7, loc="best")
            ax.grid(axis="y", alpha=0.3)
            ratio = "" if math.isclose(col.training_ratio, 1.0) else f"_r{col.training_ratio:g}"
            plots.append((f"{ctx[:8]}_{_slug(col.protocol)}_{_slug(col.stage)}{ratio}_subjects.png", _png(fig)))
        # finetune curves: score vs training ratio
        for protocol in sorted({c.protocol for c in columns if c.stage == "finetune"},
                               key=lambda p: Column(p, "finetune", 1.0).sort_key()):
            sel = part[(part["protocol"] == protocol) & (part["stage"] == "finetune")]
            fig = _figure(5.5, 3.8)
            ax = fig.add_subplot()
            for cfg in configs:
                g = sel[sel["config"] == cfg].groupby("training_ratio")["value"]
                if not len(g):
                    continue
                mean = g.mean() * 100
                std = g.std(ddof=1).fillna(0.0) * 100
                x = mean.index.to_numpy() * 100
                ax.plot(x, mean.to_numpy(), marker="o", color=colors[cfg], label=cfg)
                ax.fill_between(x, (mean - std).to_numpy(), (mean + std).to_numpy(), color=colors[cfg], alpha=0.2)
            _chance_line(ax, chance)
            ax.set_xlabel("training data used for fine-tuning (%)")
            ax.set_ylabel(f"{board.metric} (%)")
            ax.set_title(f"{protocol} · finetune: {board.metric} vs training ratio [{ctx[:8]}]", fontsize=10)
            ax.legend(fontsize=7, loc="best")
            ax.grid(alpha=0.3)
            plots.append((f"{ctx[:8]}_{_slug(protocol)}_finetune_curve.png", _png(fig)))
    if out_dir is not None:
        out = Path(out_dir).expanduser()
        try:
            out.mkdir(parents=True, exist_ok=True)
            for name, data in plots:
                (out / name).write_bytes(data)
        except OSError as exc:
            from .errors import EegbenchError

            raise EegbenchError(f"cannot write plots to {out}: {exc.strerror or exc}") from exc
    return plots
