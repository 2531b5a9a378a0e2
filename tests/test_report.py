"""Acceptance for `eegbench leaderboard`: every format from two configurations over 3 subjects; the
Markdown, CSV and JSON numbers checked against the database; PNG plots; a self-contained HTML report."""

from __future__ import annotations

import csv
import io
import json
import re
import sqlite3
from collections import defaultdict
from html import unescape

import numpy as np
import pytest
from test_leaderboard import CONFIGS, REPORTED, make_context, make_results

from eegbench.cli import main
from eegbench.results.leaderboard import build
from eegbench.results.report import render

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    d = tmp_path_factory.mktemp("results")
    make_results(d)
    return d


def database_truth(directory, metric="top1"):
    """{(backbone, protocol, stage, ratio): (mean, std, n)} straight from the SQLite file."""
    con = sqlite3.connect(directory / "results.sqlite")
    groups = defaultdict(list)
    for backbone, protocol, stage, ratio, value in con.execute(
        "SELECT backbone, protocol, stage, training_ratio, value FROM results WHERE metric = ?", (metric,)
    ):
        groups[(backbone, protocol, stage, float(ratio))].append(value)
    con.close()
    return {k: (float(np.mean(v)), float(np.std(v, ddof=1)), len(v)) for k, v in groups.items()}


def column_key(label: str):
    """'loso · finetune 10 %' -> ('loso', 'finetune', 0.1)."""
    m = re.fullmatch(r"(\w+) · (\w+)(?: ([\d.]+) %)?", label)
    assert m, label
    return m.group(1), m.group(2), float(m.group(3)) / 100 if m.group(3) else 1.0


@pytest.fixture(scope="module")
def outputs(results, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    reported = out / "reported.toml"
    reported.write_text(REPORTED)
    files = {}
    for fmt, suffix in (("md", "md"), ("csv", "csv"), ("latex", "tex"), ("json", "json"), ("html", "html")):
        files[fmt] = out / f"board.{suffix}"
        args = ["leaderboard", str(results), "--reported", str(reported), "--out", str(files[fmt])]
        # the format is named explicitly once and inferred from the suffix otherwise
        assert main(args + (["--format", fmt] if fmt in ("md", "latex") else [])) == 0
    assert (
        main(
            [
                "leaderboard",
                str(results),
                "--no-reported",
                "--format",
                "html",
                "--out",
                str(out / "plain.html"),
                "--plots",
                str(out / "plots"),
            ]
        )
        == 0
    )
    return out, files


def test_every_format_is_produced(outputs):
    _, files = outputs
    for fmt, path in files.items():
        assert path.stat().st_size > 200, fmt
    assert files["latex"].read_text().count(r"\begin{tabular}") == 1
    assert r"\textbf{" in files["latex"].read_text() and r"\toprule" in files["latex"].read_text()


def test_markdown_numbers_match_the_database(results, outputs):
    _, files = outputs
    truth = database_truth(results)
    lines = files["md"].read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| configuration |"))
    header = [c.strip() for c in lines[start].strip("|").split("|")]
    checked = 0
    best_cells = 0
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        backbone = cells[0].split(" / ")[0]
        if cells[0].endswith("[reported]"):
            assert all(c == "" or c.endswith("(reported)*") for c in cells[1:])
            continue
        for label, cell in zip(header[1:], cells[1:], strict=True):
            m = re.fullmatch(r"(\*\*)?([\d.]+) ± ([\d.]+) \(n=(\d+)\)(\*\*)?", cell)
            assert m, cell
            mean, std, n = truth[(backbone, *column_key(label))]
            # percent with one decimal
            assert re.fullmatch(r"\d+\.\d", m.group(2)) and re.fullmatch(r"\d+\.\d", m.group(3)), cell
            assert float(m.group(2)) == pytest.approx(mean * 100, abs=0.0501)
            assert float(m.group(3)) == pytest.approx(std * 100, abs=0.0501)
            assert int(m.group(4)) == n == 6
            best_cells += bool(m.group(1))
            checked += 1
    assert checked == len(truth) == 10
    assert best_cells == 5  # one best per column
    text = files["md"].read_text()
    assert "**chance**: 0.5 %" in text and "p=0.125" in text and "seeds ±" in text
    assert "NICE [reported]" in text and "Song et al. 2024" in text


def test_csv_and_json_numbers_match_the_database(results, outputs):
    _, files = outputs
    truth = database_truth(results)
    rows = list(csv.DictReader(io.StringIO(files["csv"].read_text())))
    measured = [r for r in rows if r["source"] == "measured"]
    assert len(measured) == len(truth)
    for r in measured:
        mean, std, n = truth[(r["backbone"], r["protocol"], r["stage"], float(r["training_ratio"]))]
        # 6 significant digits: relative error at most 5e-6
        assert float(r["mean"]) == pytest.approx(mean, rel=5e-6) and float(r["std"]) == pytest.approx(std, rel=5e-6)
        assert int(r["n"]) == n
    assert {r["config"] for r in rows if r["source"] == "reported"} == {"NICE [reported]"}

    doc = json.loads(files["json"].read_text())
    assert doc["metric"] == "top1" and len(doc["contexts"]) == 1
    ctx = doc["contexts"][0]
    assert ctx["chance"] == pytest.approx(1 / 200) and ctx["context"]["n_way"] == 200
    json_measured = [r for r in ctx["rows"] if r["source"] == "measured"]
    assert len(json_measured) == len(truth)
    for r in json_measured:
        mean, std, n = truth[(r["backbone"], r["protocol"], r["stage"], r["training_ratio"])]
        assert r["mean"] == pytest.approx(mean, rel=5e-6) and r["std"] == pytest.approx(std, rel=5e-6) and r["n"] == n
        assert r["sd_subjects"] >= 0 and r["sd_seeds"] >= 0
    assert [c["label"] for c in ctx["columns"]] == [
        "intra · pretrain",
        "loso · pretrain",
        "loso · finetune 10 %",
        "loso · finetune 50 %",
        "loso · finetune 100 %",
    ]


def test_plots_are_written_and_non_empty(outputs):
    out, _ = outputs
    pngs = sorted((out / "plots").glob("*.png"))
    names = [p.name for p in pngs]
    assert any(n.endswith("_intra_pretrain_subjects.png") for n in names)
    assert any(n.endswith("_loso_pretrain_subjects.png") for n in names)
    assert any(n.endswith("_loso_finetune_curve.png") for n in names)
    assert any(n.endswith("_overview.png") for n in names)
    assert any(n.endswith("_paired_differences.png") for n in names)
    for p in pngs:
        data = p.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000


def test_every_plot_draws_the_chance_line(results, monkeypatch):
    import eegbench.results.plots as plots

    calls = []
    original = plots._chance_line
    monkeypatch.setattr(
        plots, "_chance_line", lambda ax, chance, **kw: (calls.append(chance), original(ax, chance, **kw))
    )
    made = plots.make_plots(build(results, reported=False))
    # score plots: overview (one chance line per column panel: 5), intra and loso pretrain subjects, loso finetune
    # subjects, curve; plus the paired differences (a difference scale: no chance line)
    assert len(made) == 6 and len(calls) == 4 + 5 and all(c == pytest.approx(1 / 200) for c in calls)


def test_html_embeds_the_plots_and_needs_no_network(outputs):
    out, files = outputs
    for html_path in (files["html"], out / "plain.html"):
        text = html_path.read_text()
        assert text.startswith("<!DOCTYPE html>")
        images = re.findall(r'<img [^>]*src="([^"]+)"', text)
        assert len(images) == 6 and all(src.startswith("data:image/png;base64,") for src in images)
        # no external resource: nothing loaded from a URL, no scripts, no stylesheets links
        assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", text, re.I)
        assert not re.search(r"url\(\s*['\"]?(https?:)?//|@import|<script|<link", text, re.I)
        assert "http://" not in text and "https://" not in text
        assert "<dt>chance</dt><dd>0.5 %</dd>" in text
    import base64

    first = re.search(r'src="data:image/png;base64,([^"]+)"', files["html"].read_text()).group(1)
    assert base64.b64decode(first).startswith(PNG_MAGIC)


def test_latex_escapes_names(tmp_path):
    make_results(tmp_path, (("eeg_net#2", "clip-vit-b-32", "clip", 0.1, {}), *CONFIGS[:1]), protocols=("intra",))
    text = render(build(tmp_path, reported=False), "latex")
    assert r"eeg\_net\#2" in text and "eeg_net#2" not in text.split("% context")[0]
    from eegbench.results.report import _tex

    assert _tex("SMD=∞ · n") == r"SMD=$\infty$, n" and _tex("50% a_b") == r"50\% a\_b"


def test_two_contexts_render_as_separate_tables(tmp_path):
    make_results(tmp_path, CONFIGS, protocols=("intra",))
    make_results(tmp_path, CONFIGS, protocols=("intra",), context=make_context(n_way=50))
    board = build(tmp_path, reported=False)
    assert render(board, "latex").count(r"\begin{tabular}") == 2
    doc = json.loads(render(board, "json"))
    assert sorted(c["context"]["n_way"] for c in doc["contexts"]) == [50, 200]
    assert sorted(c["chance"] for c in doc["contexts"]) == pytest.approx([1 / 200, 1 / 50])
    html = render(board, "html")
    # per context: the overview, the paired differences and the per-subject plot of its one column
    assert html.count("<h2>Context ") == 2 and html.count("data:image/png;base64,") == 6


def test_unranked_configurations_are_marked_in_every_format(tmp_path):
    full = (("net-a", "clip-vit-b-32", "clip", 0.10, {}), ("net-b", "clip-vit-b-32", "clip", 0.12, {}))
    make_results(tmp_path, full, subjects=(1, 2, 3, 4), protocols=("intra",))
    make_results(tmp_path, (("net-c", "clip-vit-b-32", "clip", 0.30, {}),), subjects=(1, 2, 3), protocols=("intra",))
    board = build(tmp_path, reported=False)
    note = "not ranked: subjects differ (3 of the reference's 4; n=6)"
    md = render(board, "md")
    row = next(line for line in md.splitlines() if line.startswith("| net-c"))
    assert "(n=6; not ranked)" in row and "**" not in row
    assert next(line for line in md.splitlines() if line.startswith("| net-b")).count("**") == 2
    assert note in md
    html = render(board, "html", plots=[])
    assert 'class="unranked"' in html and f'title="{note}"' in unescape(html)
    latex = render(board, "latex")
    assert r"$^{\dagger}$" in latex and "not ranked: subjects differ" in latex
    rows = {r["backbone"]: r for r in csv.DictReader(io.StringIO(render(board, "csv")))}
    assert rows["net-c"]["ranked"] == "False" and rows["net-c"]["rank_note"] == note and rows["net-c"]["p_value"] == ""
    doc = json.loads(render(board, "json"))
    c = next(r for r in doc["contexts"][0]["rows"] if r["backbone"] == "net-c")
    assert c["ranked"] is False and c["best"] is False and c["p_value"] is None and c["rank_note"] == note
    assert "ranked" in doc["definitions"]


# --------------------------------------------------------------------------------------------------
# a report people read: summary first, human values, no hashes outside the identity block
# --------------------------------------------------------------------------------------------------
HEX16 = re.compile(r"(?<![0-9a-f])[0-9a-f]{16}(?![0-9a-f])")
CHANNELS = ["Pz", "P3", "P7", "O1", "Oz", "O2", "P4", "P8", "P1", "P2", "PO7", "PO3", "POz", "PO4", "PO8", "P5", "P6"]
REAL_CONTEXT = dict(
    dataset="things-eeg-2-synthetic",
    synthetic=True,
    n_way=50,
    sfreq=63.63636363636364,
    n_times=64,
    channels=CHANNELS,
    window=[0.0, 1.0057],
    image_encoder="embedding-file:c4fb359369756420",
    val_fraction=0.2,
)


def significant_digits(number: str) -> int:
    mantissa = number.lstrip("-").split("e")[0].replace(".", "").lstrip("0")
    return len(mantissa.rstrip("0")) if "." in number else len(mantissa)


def float32_noise(base, subject, seed, ratio, k):
    """Scores as a float32 model writes them: 0.38 stored as 0.3799999952316284."""
    return float(np.float32(min(1.0, round(base * k + 0.02 * subject + 0.01 * seed, 2))))


@pytest.fixture(scope="module")
def real_board(tmp_path_factory):
    d = tmp_path_factory.mktemp("real")
    configs = (("resnet1d", "embedding-file", "clip", 0.30, {}), ("nice", "embedding-file", "clip", 0.24, {}))
    make_results(
        d,
        configs,
        subjects=(1, 2, 3, 4),
        protocols=("loso",),
        ratios=(0.25, 1.0),
        context=make_context(**REAL_CONTEXT),
        scorer=float32_noise,
    )
    return d, build(d, reported=False)


class _Visible(__import__("html.parser").parser.HTMLParser):
    """Text of headings, captions and the page title, alt/title attributes, and whether inside the identity block."""

    def __init__(self):
        super().__init__()
        self.stack, self.shown, self.identity_depth, self.outside_identity = [], [], 0, []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.stack.append(tag)
        if tag == "details" and "identity" in (a.get("class") or ""):
            self.identity_depth = len(self.stack)
        self.shown += [v for k, v in attrs if k in ("alt", "title") and v]

    def handle_endtag(self, tag):
        if self.stack and self.stack[-1] == tag:
            if len(self.stack) == self.identity_depth:
                self.identity_depth = 0
            self.stack.pop()

    def handle_data(self, data):
        if set(self.stack) & {"h1", "h2", "h3", "h4", "figcaption", "title", "summary", "dt", "dd"}:
            self.shown.append(data)
        if not self.identity_depth:
            self.outside_identity.append(data)


def test_html_reads_summary_first_with_human_values_and_hashes_only_in_identity(real_board):
    _, board = real_board
    page = render(board, "html")
    parser = _Visible()
    parser.feed(page)
    ctx_key = board.context_keys()[0]
    assert ctx_key in page and "c4fb359369756420" in page  # kept, in the identity block
    shown = " ".join(parser.shown)
    assert not HEX16.search(shown), HEX16.findall(shown)
    assert not HEX16.search(" ".join(parser.outside_identity)), HEX16.findall(" ".join(parser.outside_identity))
    # order: summary, then ranking table, then plots, then identity
    positions = [page.index(s) for s in ('<dl class="summary">', "<h3>Ranking</h3>", "<img ", 'class="identity"')]
    assert positions == sorted(positions)
    text = unescape(page)
    for expected in (
        "<dt>image encoder</dt><dd>embedding-file</dd>",
        "<dt>retrieval</dt><dd>50-way</dd>",
        "<dt>configurations</dt><dd>2</dd>",
        "<dt>test subjects</dt><dd>4 (1, 2, 3, 4)</dd>",
        "<dt>seeds</dt><dd>2 (0, 1)</dd>",
        "<dt>chance</dt><dd>2 %</dd>",
        "64 samples at 63.6 Hz",
        "window: 0 to 1.01 s",
        "<summary>17 (Pz, P3, P7, O1, …)</summary>",
        "validation: 20 % of the training data, split by image",
    ):
        assert expected in text, expected
    assert "63.636" not in page and "1.0057" not in page and "sfreq" not in page
    # percent with one decimal in every table cell with a score
    cells = re.findall(r"<td[^>]*>(\d+\.\d+) ± (\d+\.\d+) \(n=\d+\)</td>", page)
    assert cells and all(len(m.split(".")[1]) == 1 and len(s.split(".")[1]) == 1 for m, s in cells)


def test_plots_share_the_score_axis_label_chance_and_name_no_hash(real_board, monkeypatch):
    import eegbench.results.plots as plots

    figures = []
    original = plots._png
    monkeypatch.setattr(plots, "_png", lambda fig: (figures.append(fig), original(fig))[1])
    made = plots.make_plots(real_board[1])
    # overview, paired differences, loso pretrain and finetune-100% subjects, finetune curve
    assert len(figures) == len(made) == 5
    ranges, widths = set(), []
    for fig, plot in zip(figures, made, strict=True):
        assert plot.png.startswith(PNG_MAGIC) and not HEX16.search(plot.caption)
        widths.append(fig.get_size_inches()[0])
        texts = [t.get_text() for t in fig.texts] + [
            t.get_text()
            for ax in fig.axes
            for t in (ax.title, ax.xaxis.label, ax.yaxis.label, *ax.texts, *ax.get_yticklabels())
        ]
        assert not any(HEX16.search(t) for t in texts), texts
        if plot.name.endswith("_paired_differences.png"):
            assert len(fig.axes) == 3 and all(ax.get_xlim() == fig.axes[0].get_xlim() for ax in fig.axes)
            assert sum(t.startswith("p=") for ax in fig.axes for t in (x.get_text() for x in ax.texts)) == 3
            continue
        for ax in fig.axes:
            assert "chance 2 %" in [t.get_text() for t in ax.texts]  # the chance line is labelled on every panel
            ranges.add(ax.get_xlim() if plot.name.endswith("_overview.png") else ax.get_ylim())
            if ax.containers:  # error bars drawn
                assert any(len(c.lines) > 2 and c.lines[2] for c in ax.containers)
    assert len(ranges) == 1, ranges  # one score range for every panel of the metric
    lo, hi = ranges.pop()
    assert lo == 0 and 40 <= hi <= 60  # from 0 (chance in view) to a little above the best score (~0.42)
    assert max(widths) <= plots.MAX_WIDTH and min(widths) < 5  # sized to content, not a fixed large canvas


def test_exports_carry_no_float32_noise(real_board):
    d, board = real_board
    raw = sqlite3.connect(d / "results.sqlite").execute("SELECT value FROM results").fetchall()
    assert any(len(repr(v)) > 12 for (v,) in raw)  # the database does hold float32 noise
    floats = ("mean", "std", "sd_subjects", "sd_seeds", "chance", "p_value", "smd", "training_ratio")
    rows = list(csv.DictReader(io.StringIO(render(board, "csv"))))
    numbers = [r[k] for r in rows for k in floats if r[k]]
    assert len(numbers) > 30 and max(significant_digits(x) for x in numbers) <= 6

    def walk(v):
        if isinstance(v, dict):
            return [x for y in v.values() for x in walk(y)]
        if isinstance(v, list):
            return [x for y in v for x in walk(y)]
        return [repr(v)] if isinstance(v, float) else []

    numbers = walk(json.loads(render(board, "json")))
    assert len(numbers) > 30 and max(significant_digits(x) for x in numbers) <= 6
    for fmt in ("md", "latex"):
        assert not re.search(r"\d\.\d{2,} ?(±|\$\\pm)", render(board, fmt)), fmt  # percent with one decimal
