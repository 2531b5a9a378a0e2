"""Leaderboards from one or more results directories (``eegbench leaderboard``).

The pipeline: read every results database, merge them without duplicate cells (a row is identified by
``cell_key`` + ``test_subject`` + ``metric``; the newest copy wins), keep one metric, group rows into
**configurations** (the ``by`` columns *and* the ``recipe_key`` the runner stored with each row: what was
computed, a finetune row's including its pretrain settings; see :mod:`eegbench.planning.recipe`,
:func:`_assign_configs`) and **columns** (protocol, stage, training ratio), and summarise each (configuration,
column) within one
**comparison context** (``context_key``): rows from different contexts are never ranked together.

Each summary has:

``mean``, ``std``, ``n``
    over every (test subject, seed) score of the cell group; ``std`` is the sample std (ddof=1), nan when n = 1.
``sd_subjects`` / ``n_subjects``
    spread over subjects of the per-subject scores averaged over seeds.
``sd_seeds`` / ``n_seeds``
    spread over seeds of the per-seed scores averaged over subjects (training noise, not subject variety).
``ranked``, ``rank_note``
    like is compared with like: within its context and column a configuration is ranked only when it was
    measured on the column's reference set of (test subject, seed) pairs, that of the most complete
    configuration (most pairs; equally large sets: the one most configurations share; still a tie between
    different sets: nobody is ranked). The others have ``ranked = False``, ``rank = 0``, no ``best``, no
    p-value and a ``rank_note`` ("not ranked: subjects differ (3 of the reference's 4; n=6)").
``best``, ``rank``
    among the ranked configurations of its context and column, by mean (ties share the rank and are all
    ``best``; the first of them in label order is the reference of the paired tests).
``p_value``, ``smd``, ``n_pairs``, ``test``
    paired comparison of a ranked configuration with the column's best over their (shared) subjects, seeds
    averaged per subject (see :mod:`eegbench.results.stats`); empty for unranked and reported rows.

Published numbers (a plugin's reported-results file, by default the papers plugin's ``reported.toml``) join as
``source == "reported"`` rows, only in columns whose protocol and stage match and contexts whose dataset, n-way
(and test averaging, when the entry states it) match, never on a synthetic dataset, at training ratio 1; they are
never ranked.

Heavy libraries (pandas, scipy, matplotlib) are imported inside functions: ``eegbench list`` stays fast.
"""

from __future__ import annotations

import json
import math
import os
import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eegbench.errors import EegbenchError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pandas as pd

#: result columns that name a component, and the component kind each names
COMPONENT_COLUMNS = {
    "dataset": "dataset",
    "backbone": "backbone",
    "image_encoder": "image-encoder",
    "loss": "loss",
    "task": "task",
}
DEFAULT_BY: tuple[str, ...] = ("backbone", "image_encoder", "loss")
FORMATS = ("md", "csv", "latex", "html", "json", "rows")
SUFFIX_FORMATS = {
    ".md": "md",
    ".markdown": "md",
    ".csv": "csv",
    ".tex": "latex",
    ".latex": "latex",
    ".html": "html",
    ".htm": "html",
    ".json": "json",
}
PROTOCOL_ORDER = ("intra", "loso", "pooled")
STAGE_ORDER = ("pretrain", "finetune")
DEDUP_KEY = ("cell_key", "test_subject", "metric")
#: columns of :attr:`Leaderboard.table`, in order
TABLE_COLUMNS = (
    "context_key",
    "config_id",
    "config",
    "variant",
    "source",
    "protocol",
    "stage",
    "training_ratio",
    "metric",
    "mean",
    "std",
    "n",
    "n_subjects",
    "sd_subjects",
    "n_seeds",
    "sd_seeds",
    "n_cells",
    "chance",
    "best",
    "ranked",
    "rank",
    "p_value",
    "smd",
    "n_pairs",
    "test",
    "rank_note",
    "citation",
    "selection",
    "notes",
)
REPORTED_REQUIRED = ("method", "citation", "dataset", "protocol", "stage", "n_way")
REPORTED_METRICS = ("top1", "top3", "top5")
#: k-way metrics of the retrieval task a reported entry may also give (``top1_2way``, ``top5_10way``, ...)
REPORTED_KWAY = re.compile(r"^top[15]_[1-9][0-9]*way$")
REPORTED_ENV = "EEGBENCH_REPORTED"


@dataclass(frozen=True)
class Column:
    """One leaderboard column: a protocol, a stage and a training ratio."""

    protocol: str
    stage: str
    training_ratio: float

    @property
    def label(self) -> str:
        text = f"{self.protocol} · {self.stage}"
        if self.stage == "finetune" or not math.isclose(self.training_ratio, 1.0):
            text += f" {_ratio_text(self.training_ratio)}"
        return text

    def sort_key(self) -> tuple[int, str, int, str, float]:
        return (
            _order(PROTOCOL_ORDER, self.protocol),
            self.protocol,
            _order(STAGE_ORDER, self.stage),
            self.stage,
            self.training_ratio,
        )


@dataclass
class Leaderboard:
    """A computed leaderboard: the tidy summary table plus what the renderers and plots need.

    ``table`` has :data:`TABLE_COLUMNS` plus one column per ``by`` key; ``rows`` are the merged,
    deduplicated result rows of ``metric`` (one per cell x test subject); ``contexts`` maps each
    ``context_key`` to its context dict; ``citations`` maps ``"kind name"`` to a citation line.
    """

    metric: str
    by: tuple[str, ...]
    table: pd.DataFrame
    rows: pd.DataFrame
    contexts: dict[str, dict[str, Any]]
    citations: dict[str, str] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)
    reported: list[dict[str, Any]] = field(default_factory=list)

    def columns(self, context_key: str) -> list[Column]:
        """The columns present in one context, in display order."""
        t = self.table[self.table["context_key"] == context_key]
        cols = {Column(r.protocol, r.stage, float(r.training_ratio)) for r in t.itertuples()}
        return sorted(cols, key=Column.sort_key)

    def context_keys(self) -> list[str]:
        """Contexts in display order: most measured rows first, then by key."""
        counts = self.rows.groupby("context_key").size()
        return sorted(self.contexts, key=lambda k: (-int(counts.get(k, 0)), k))

    def chance(self, context_key: str) -> float | None:
        t = self.table[(self.table["context_key"] == context_key) & (self.table["source"] == "measured")]
        values = t["chance"].dropna()
        return float(values.mean()) if len(values) else None


# --------------------------------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------------------------------
class CellConfigs(Mapping[str, Mapping[str, Any]]):
    """``{cell_key: resolved config}`` of the stores' ``cells`` tables, each JSON text decoded only when asked
    for (a store holds thousands; the leaderboard needs those of pretrain cells without rows). A key's first
    valid config wins, as directories are given."""

    def __init__(self) -> None:
        self._texts: dict[str, list[str]] = {}
        self._decoded: dict[str, Mapping[str, Any] | None] = {}

    def add(self, cell_key: str, text: Any) -> None:
        if text:
            self._texts.setdefault(cell_key, []).append(text)

    def __getitem__(self, cell_key: str) -> Mapping[str, Any]:
        if cell_key not in self._decoded:
            self._decoded[cell_key] = next(filter(None, map(_config_or_none, self._texts.get(cell_key, ()))), None)
        found = self._decoded[cell_key]
        if found is None:
            raise KeyError(cell_key)
        return found

    def __iter__(self) -> Iterator[str]:
        return (k for k in self._texts if k in self)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __contains__(self, cell_key: object) -> bool:
        try:
            self[cell_key]  # type: ignore[index]
        except KeyError:
            return False
        return True


def _config_or_none(text: str) -> dict[str, Any] | None:
    try:
        cfg = json.loads(text)
    except (TypeError, ValueError):
        return None
    return cfg if isinstance(cfg, dict) and cfg else None


def load_results(
    results_dirs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], *, cell_configs: CellConfigs | None = None
) -> pd.DataFrame:
    """Every result row of the given results directories, merged, one row per (cell, test subject, metric).

    A missing directory, a directory without a results database, or no rows at all raise
    :class:`EegbenchError` with one line. When the same row is present in several directories (a cell
    copied between machines), the most recently written copy is kept. ``cell_configs``, when given, is
    filled with the configs of the stores' ``cells`` tables (:class:`CellConfigs`): a finetune row's pretrain
    settings are found through its pretrain cell's config, which may have no rows here. It is passed explicitly,
    not kept in ``DataFrame.attrs``: pandas deep-copies ``attrs`` on every operation, which made the leaderboard's
    time grow with the square of the store.
    """
    import pandas as pd

    from eegbench.results.store import DB_NAME, ResultStore

    dirs = [results_dirs] if isinstance(results_dirs, (str, os.PathLike)) else list(results_dirs)
    if not dirs:
        raise EegbenchError("no results directory given (pass one or more, or set EEGBENCH_RESULTS)")
    frames, empties = [], []
    cell_configs = CellConfigs() if cell_configs is None else cell_configs
    for d in dirs:
        path = Path(d).expanduser()
        if not path.is_dir():
            raise EegbenchError(
                f"results directory {path} does not exist (pass the directory `eegbench run` wrote, "
                "or set EEGBENCH_RESULTS)"
            )
        if not (path / DB_NAME).is_file():
            raise EegbenchError(f"no results database in {path} (expected {DB_NAME}; run `eegbench run SPEC` first)")
        store = ResultStore(path, read_only=True)  # never writes: read-only stores are fine, foreign ones refused
        frame = store.dataframe(shared=True)  # each distinct JSON text decoded once
        frame["results_dir"] = str(path)
        frames.append(frame)
        cells = store.cells()
        for c in cells:  # a finetune row's pretrain settings are found through its pretrain cell's config
            cell_configs.add(str(c["cell_key"]), c.get("config"))
        if frame.empty:
            statuses = [c["status"] for c in cells]
            counts = ", ".join(f"{statuses.count(s)} {s}" for s in ("failed", "running", "pending") if s in statuses)
            empties.append(f"{path} ({counts})" if counts else str(path))
    df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    if df.empty:
        raise EegbenchError(
            f"no results in {', '.join(empties)}: no finished cells yet (run `eegbench run SPEC`; "
            "`eegbench status` shows failures)"
        )
    df = df.sort_values(["created_at", "id"], kind="stable", na_position="first")
    df = df.drop_duplicates(subset=list(DEDUP_KEY), keep="last")
    return df.sort_values(["results_dir", "id"], kind="stable").reset_index(drop=True)


def default_reported_path() -> Path | None:
    """Where the published numbers are: ``$EEGBENCH_REPORTED``, else the file a plugin provides through the
    ``eegbench_reported_results`` hook (the built-in papers plugin ships ``reported.toml`` as package data).
    None when neither names one."""
    env = os.environ.get(REPORTED_ENV)
    if env:
        return Path(env).expanduser()
    from eegbench.registry import get_registry

    provided = get_registry().pm.hook.eegbench_reported_results()
    return Path(provided) if provided else None


def load_reported(path: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """The ``[[reported]]`` tables of a reported-results TOML file (the reported-results format), validated.

    ``path=None`` uses :func:`default_reported_path` and returns ``[]`` when there is no such file; an
    explicit path that does not exist, or an entry with a missing/invalid field, is an :class:`EegbenchError`.
    """
    explicit = path is not None
    p = Path(path).expanduser() if path is not None else default_reported_path()
    if p is None:
        return []
    if not p.is_file():
        if explicit or os.environ.get(REPORTED_ENV):
            raise EegbenchError(f"reported-results file {p} does not exist (pass --reported FILE or --no-reported)")
        return []
    try:
        with open(p, "rb") as fh:
            data = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise EegbenchError(f"cannot read reported results {p}: {exc}") from exc
    entries = data.get("reported", [])
    if not isinstance(entries, list):
        raise EegbenchError(f"{p}: 'reported' must be an array of tables ([[reported]])")
    out = []
    for i, entry in enumerate(entries):
        where = f"{p}: [[reported]] #{i + 1}"
        if not isinstance(entry, dict):
            raise EegbenchError(f"{where} is not a table")
        missing = [k for k in REPORTED_REQUIRED if k not in entry]
        if missing:
            raise EegbenchError(f"{where} ({entry.get('method', '?')}) lacks {', '.join(missing)}")
        metrics = [m for m in REPORTED_METRICS if m in entry] + sorted(k for k in entry if REPORTED_KWAY.match(str(k)))
        if not metrics:
            raise EegbenchError(f"{where} ({entry['method']}) has no metric (one of {', '.join(REPORTED_METRICS)})")
        for m in metrics:
            v = entry[m]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= float(v) <= 1.0:
                raise EegbenchError(
                    f"{where} ({entry['method']}): {m} = {v!r} must be a fraction in [0, 1] (e.g. 0.161 for 16.1 %)"
                )
        if not isinstance(entry["n_way"], int) or isinstance(entry["n_way"], bool):
            raise EegbenchError(f"{where} ({entry['method']}): n_way = {entry['n_way']!r} must be an integer")
        out.append(dict(entry))
    return out


def registry_citations() -> dict[tuple[str, str], dict[str, str]]:
    """``{(kind, name): {"summary", "citation"}}`` from ``registry.toml`` plus any installed plugins."""
    out: dict[tuple[str, str], dict[str, str]] = {}
    try:
        from eegbench.registry import get_registry

        for c in get_registry().list_components():
            out.setdefault((c.kind, c.name), {"summary": c.summary, "citation": c.citation})
    except EegbenchError:
        pass  # a broken third-party plugin must not take the leaderboard down: its rows just carry no citation
    return out


def _citation(index: Mapping[tuple[str, str], Mapping[str, str]], kind: str, name: str) -> str:
    entry = index.get((kind, name))
    if entry is None and ":" in name:
        try:
            from eegbench.registry import get_registry

            comp = get_registry().get(kind, name)
            return comp.citation
        except EegbenchError:
            return ""
    return (entry or {}).get("citation", "")


# --------------------------------------------------------------------------------------------------
# computing
# --------------------------------------------------------------------------------------------------
def build(
    results_dirs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]] | None = None,
    *,
    metric: str = "top1",
    by: Sequence[str] | str = DEFAULT_BY,
    reported: str | os.PathLike[str] | bool | None = None,
    rows: pd.DataFrame | None = None,
    cell_configs: CellConfigs | None = None,
) -> Leaderboard:
    """Compute a :class:`Leaderboard`.

    ``results_dirs``: one or more results directories (default: ``eegbench.paths.results_dir()``);
    ``rows``: already-loaded result rows instead (as :func:`load_results` returns), with ``cell_configs``
    the configs :func:`load_results` collected from the stores' ``cells`` tables (needed only for finetune rows
    whose pretrain cells have no rows among ``rows``);
    ``metric``: the metric to rank; ``by``: the columns that name a configuration (any result column;
    comma-separated string accepted); rows whose recipes differ are never merged, whatever ``by``;
    ``reported``: a reported-results file, ``None`` for the default file when present, ``False`` for none.
    """
    import pandas as pd

    from eegbench.results.store import RESULT_COLUMNS

    by = _parse_by(by)
    unknown = [b for b in by if b not in RESULT_COLUMNS]
    if unknown:
        raise EegbenchError(f"--by {','.join(unknown)}: not a result column (choose from {', '.join(RESULT_COLUMNS)})")
    if rows is None:
        if results_dirs is None:
            from eegbench.paths import results_dir

            results_dirs = [results_dir()]
        cell_configs = CellConfigs()
        rows = load_results(results_dirs, cell_configs=cell_configs)
        sources = [
            str(Path(d)) for d in ([results_dirs] if isinstance(results_dirs, (str, os.PathLike)) else results_dirs)
        ]
    else:
        sources = sorted(set(rows.get("results_dir", pd.Series(dtype=str)).dropna().astype(str)))
    # rows written before the store kept recipes (a store opened read-only is not migrated): their keys now
    rows = fill_recipes(rows, CellConfigs() if cell_configs is None else cell_configs)
    metrics = sorted(set(rows["metric"].dropna()))
    df = rows[rows["metric"] == metric].copy()
    if df.empty:
        raise EegbenchError(
            f"no {metric!r} results in {', '.join(sources) or 'the given rows'} "
            f"(metrics present: {', '.join(metrics) or 'none'})"
        )
    # rows written by an older or foreign writer may lack a grouping field: keep them visible, not dropped
    for col, missing in (("context_key", "unknown"), ("protocol", "unknown"), ("stage", "unknown")):
        df[col] = df[col].fillna(missing).astype(str)
    df["training_ratio"] = df["training_ratio"].fillna(1.0).astype(float)
    df["test_subject"] = df["test_subject"].fillna(-1).astype(int)
    df["seed"] = df["seed"].fillna(-1).astype(int)
    df["value"] = df["value"].astype(float)

    contexts: dict[str, dict[str, Any]] = {}
    for key, ctx in zip(df["context_key"], df["context"], strict=True):
        contexts.setdefault(key, ctx if isinstance(ctx, dict) else {})

    _assign_configs(df, by)
    labels = _labels(df, by)
    df["config"] = df["config_id"].map(lambda c: labels[c][0])
    df["variant"] = df["config_id"].map(lambda c: labels[c][1])

    groups = _Groups(df)
    table = pd.DataFrame(_summaries(groups, metric, by))
    table = _rank_and_test(table, groups)

    citations_index = registry_citations()
    citations: dict[str, str] = {}
    for col in by:
        kind = COMPONENT_COLUMNS.get(col)
        if kind:
            for name in sorted(set(df[col].dropna().astype(str))):
                cite = _citation(citations_index, kind, name)
                if cite:
                    citations[f"{kind} {name}"] = cite
    for ctx in contexts.values():
        name = ctx.get("dataset")
        if name:
            cite = _citation(citations_index, "dataset", str(name))
            if cite:
                citations[f"dataset {name}"] = cite

    reported_entries: list[dict[str, Any]] = []
    if reported is not False:
        reported_entries = load_reported(None if reported is None or reported is True else reported)
        extra = _reported_rows(reported_entries, table, contexts, metric, by)
        if extra:
            table = pd.concat([table, pd.DataFrame(extra)], ignore_index=True)
            for e in reported_entries:
                citations.setdefault(f"reported {e['method']}", str(e.get("citation", "")))

    for col in TABLE_COLUMNS:
        if col not in table:
            table[col] = None
    table = table[[*TABLE_COLUMNS, *[b for b in by if b not in TABLE_COLUMNS]]]
    table = _sort_table(table)
    return Leaderboard(
        metric=metric,
        by=tuple(by),
        table=table,
        rows=df.reset_index(drop=True),
        contexts=contexts,
        citations=citations,
        sources=sources,
        reported=reported_entries,
    )


def leaderboard(
    results_dirs: str | os.PathLike[str] | Iterable[str | os.PathLike[str]] | None = None,
    *,
    metric: str = "top1",
    by: Sequence[str] | str = DEFAULT_BY,
    reported: str | os.PathLike[str] | bool | None = None,
) -> pd.DataFrame:
    """The leaderboard as a tidy DataFrame: one row per (context, configuration, protocol, stage, ratio).

    Columns: :data:`TABLE_COLUMNS` plus the ``by`` columns; see the module docstring for their meaning.
    Render it with :func:`eegbench.results.report.render` on :func:`build`'s :class:`Leaderboard`.
    """
    return build(results_dirs, metric=metric, by=by, reported=reported).table


def _parse_by(by: Sequence[str] | str) -> tuple[str, ...]:
    items = by.split(",") if isinstance(by, str) else list(by)
    out = tuple(dict.fromkeys(s.strip().replace("-", "_") for s in items if s and s.strip()))
    if not out:
        raise EegbenchError("--by needs at least one result column, e.g. backbone,image_encoder,loss")
    return out


def fill_recipes(rows: pd.DataFrame, cell_configs: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """``rows`` with ``recipe``, ``recipe_key`` and ``pretrain_recipe_key`` filled where a store written by an
    earlier version (or opened read-only, so not migrated) lacks them, by the migration's rules
    (:class:`eegbench.planning.recipe.StoredRecipes`), with the configs of every loaded row and of the stores' ``cells``
    tables (a finetune's pretrain cell may be in another directory). Rows that have them are left as they are."""
    from collections import ChainMap

    from eegbench.planning.recipe import StoredRecipes

    for col in ("recipe", "recipe_key", "pretrain_recipe_key"):
        if col not in rows:
            rows[col] = None
    missing = rows["recipe_key"].isna().to_numpy()
    if not missing.any():
        return rows
    own: dict[str, Mapping[str, Any]] = {}
    for key, cfg in zip(rows["cell_key"], rows["config"], strict=True):
        if isinstance(cfg, dict) and cfg:
            own[str(key)] = cfg
    book = StoredRecipes(ChainMap(own, cell_configs))  # type: ignore[arg-type]
    columns = [
        c for c in ("stage", "config", *COMPONENT_COLUMNS, *(c + "_params" for c in COMPONENT_COLUMNS)) if c in rows
    ]
    part = rows.loc[missing, columns]
    found = [book.of(r.get("config"), r.get("stage"), r) for r in part.to_dict("records")]
    recipe = rows["recipe"].astype(object).to_numpy(copy=True)
    keys = rows["recipe_key"].astype(object).to_numpy(copy=True)
    bases = rows["pretrain_recipe_key"].astype(object).to_numpy(copy=True)
    at = missing.nonzero()[0]
    for i, (r, k, b) in zip(at, found, strict=True):
        recipe[i], keys[i], bases[i] = r, k, b
    return rows.assign(recipe=recipe, recipe_key=keys, pretrain_recipe_key=bases)


def _hashable_or_id(value: Any) -> Any:
    """``value`` as part of a cache key: itself, or for a list or dict (alive meanwhile) its identity."""
    return ("id", id(value)) if isinstance(value, (list, dict)) else value


def _by_part(row: Mapping[str, Any], by: Sequence[str]) -> list[Any]:
    parts: list[Any] = []
    for col in by:
        value = row.get(col)
        value = None if _isnull(value) else value
        if col in COMPONENT_COLUMNS:
            params = row.get(col + "_params")
            parts.append([value, params if isinstance(params, dict) else {}])
        else:
            parts.append(value)
    return parts


def _assign_configs(df: pd.DataFrame, by: Sequence[str]) -> None:
    """Set ``config_id`` on every row, in place, from the ``by`` values and the stored ``recipe_key``.

    A configuration is the ``by`` values **and** the recipe: rows whose recipes differ are never merged,
    whatever ``by`` says. A pretrain recipe's rows share the row of the finetune recipe built on them
    (``pretrain_recipe_key``) when exactly one such finetune recipe is present in the context; with several
    (a finetune setting varied over one pretraining) the pretrain scores get a row of their own rather than
    being counted twice.
    """
    from eegbench.interfaces import stable_hash

    columns = [
        c
        for c in dict.fromkeys(
            [
                "stage",
                "context_key",
                "recipe_key",
                "pretrain_recipe_key",
                *by,
                *(c + "_params" for c in by if c in COMPONENT_COLUMNS),
            ]
        )
        if c in df
    ]
    recs = [dict(zip(columns, values, strict=True)) for values in zip(*(df[c].tolist() for c in columns), strict=True)]
    ids_of: dict[tuple[str, str], str] = {}
    ids, by_parts = [], []
    parts: dict[tuple[Any, ...], str] = {}  # a cell's parameter dicts are shared by its rows (one decoded JSON text)
    for r in recs:
        part_key = tuple((_hashable_or_id(r.get(c)), id(r.get(c + "_params"))) for c in by)
        part = parts.get(part_key)
        if part is None:
            part = parts[part_key] = json.dumps(_by_part(r, by), sort_keys=True, default=str)
        rid = str(r["recipe_key"])
        cid = ids_of.get((part, rid))
        if cid is None:
            cid = ids_of[(part, rid)] = stable_hash([part, rid], 12)
        by_parts.append(part)
        ids.append(cid)
    finetunes: dict[tuple[str, str, str], set[str]] = {}
    for r, part, cid in zip(recs, by_parts, ids, strict=True):
        if r.get("stage") == "finetune":
            finetunes.setdefault((str(r.get("context_key")), part, str(r["pretrain_recipe_key"])), set()).add(cid)
    for i, (r, part) in enumerate(zip(recs, by_parts, strict=True)):
        if r.get("stage") != "finetune":
            targets = finetunes.get((str(r.get("context_key")), part, str(r["pretrain_recipe_key"])), set())
            if len(targets) == 1:
                ids[i] = next(iter(targets))
    df["config_id"] = ids


def _flat(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flat(f"{prefix}.{k}", v, out)
    else:
        out[prefix] = json.dumps(value, sort_keys=True, default=str) if isinstance(value, (list, dict)) else value


def _flat_recipe(recipe: Mapping[str, Any]) -> dict[str, Any]:
    """``{"backbone": "resnet1d", "backbone.depth": 4, "train.epochs": 12, "finetune.lr": 0.001, ...}``."""
    out: dict[str, Any] = {}
    for k, v in recipe.items():
        if k in COMPONENT_COLUMNS and isinstance(v, dict) and "name" in v:
            out[k] = v.get("name")
            _flat(k, v.get("params") or {}, out)
        else:
            _flat(k, v, out)
    return out


def _labels(df: pd.DataFrame, by: Sequence[str]) -> dict[str, tuple[str, str]]:
    """``{config_id: (label, variant)}``: the ``by`` names, and as ``variant`` the recipe keys
    (``backbone.depth``, ``train.epochs``, ``finetune.lr``...) whose values differ among the configurations
    with the same names (keys a configuration lacks, such as ``finetune.*`` on a pretrain-only row, are
    left out of its label)."""
    # a configuration's fullest recipe (a finetune row's, when it has one) names it
    reps = df.assign(_ft=(df["stage"] == "finetune").astype(int)).sort_values("_ft", ascending=False, kind="stable")
    first = reps.drop_duplicates("config_id").to_dict("records")
    names = {r["config_id"]: tuple("" if _isnull(r.get(c)) else str(r.get(c)) for c in by) for r in first}
    params = {r["config_id"]: _flat_recipe(r["recipe"] if isinstance(r["recipe"], dict) else {}) for r in first}

    def text(value: Any) -> str:
        return json.dumps(value, default=str)

    def variants(group: list[str], missing: bool) -> dict[str, str]:
        keys = sorted({k for c in group for k in params[c]})
        if missing:
            differing = [k for k in keys if len({text(params[c].get(k, "-")) for c in group}) > 1]
        else:
            differing = [k for k in keys if len({text(params[c][k]) for c in group if k in params[c]}) > 1]
        return {
            c: ", ".join(f"{k}={params[c].get(k, '-')}" for k in differing if missing or k in params[c]) for c in group
        }

    out = {}
    for name in set(names.values()):
        group = sorted(c for c, n in names.items() if n == name)
        variant = variants(group, False) if len(group) > 1 else {group[0]: ""}
        clashes: dict[str, list[str]] = {}
        for c in group:
            clashes.setdefault(variant[c], []).append(c)
        for same in clashes.values():
            if len(same) > 1:  # told apart only by keys some lack: show those too, else the id
                fixed = variants(same, True)
                for c in same:
                    variant[c] = (
                        fixed[c]
                        if len(set(fixed.values())) == len(same)
                        else ", ".join(filter(None, [fixed[c], f"id {c[:6]}"]))
                    )
        for c in group:
            label = " / ".join(n for n in name if n) or c
            out[c] = (label + (f" ({variant[c]})" if variant[c] else ""), variant[c])
    return out


def _isnull(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


#: the columns one leaderboard cell (a summary row) is grouped by
GROUP_KEYS = ("context_key", "config_id", "protocol", "stage", "training_ratio")
#: one group's values of :data:`GROUP_KEYS`
GroupKey = tuple[str, str, str, str, float]
#: the (test subject, seed) pairs a configuration was measured on in one column
Coverage = frozenset[tuple[int, int]]


class _Groups:
    """The rows of each (context, configuration, column) group, as positions into plain arrays.

    One pandas group-by over all rows replaces a DataFrame per group: the per-group work is then numpy on
    slices, which keeps the leaderboard's time linear in the rows with a small constant.
    """

    def __init__(self, df: pd.DataFrame):
        import pandas as pd

        self.df = df
        self.index: dict[GroupKey, np.ndarray] = df.groupby(list(GROUP_KEYS), sort=False, dropna=False).indices
        self.keys: list[GroupKey] = sorted(self.index, key=lambda k: self.index[k][0])  # order of first appearance
        self.value = df["value"].to_numpy(dtype=float)
        self.subject = df["test_subject"].to_numpy(dtype=int)
        self.seed = df["seed"].to_numpy(dtype=int)
        self.chance = df["chance"].astype(float).to_numpy()
        self.cell = pd.factorize(df["cell_key"])[0]
        # per-subject scores for the paired tests: pandas' mean over all rows at once (not per group: pandas
        # sums the two ways in different orders, and the tests' last bits would change)
        self._paired = df.groupby([*GROUP_KEYS, "test_subject"], sort=False)["value"].mean().sort_index()

    def _means(self, key: GroupKey, labels: np.ndarray) -> pd.Series:
        import pandas as pd

        idx = self.index[key]
        # pandas' group mean on this group alone, ascending labels (the spreads' numbers, to the last bit)
        return pd.Series(self.value[idx]).groupby(labels[idx]).mean()

    def subject_scores(self, key: GroupKey) -> pd.Series:
        """Per-subject scores of a group (seeds averaged), ascending subjects, for its spread."""
        return self._means(key, self.subject)

    def seed_scores(self, key: GroupKey) -> pd.Series:
        """Per-seed scores of a group (subjects averaged), ascending seeds, for its spread."""
        return self._means(key, self.seed)

    def paired_scores(self, key: GroupKey) -> pd.Series:
        """Per-subject scores of a group (seeds averaged), indexed by test subject, for the paired tests."""
        return self._paired.loc[key]

    def coverage(self, key: GroupKey) -> Coverage:
        """The (test subject, seed) pairs a configuration was measured on in one column."""
        idx = self.index[key]
        return frozenset(zip(self.subject[idx].tolist(), self.seed[idx].tolist(), strict=True))


def _summaries(groups: _Groups, metric: str, by: Sequence[str]) -> list[dict[str, Any]]:
    """One summary record per group, in the groups' order."""
    columns = list(dict.fromkeys(["config", "variant", *by]))
    firsts = groups.df[columns].iloc[[int(groups.index[k][0]) for k in groups.keys]].to_dict("records")
    return [_summary(groups, key, first, metric, by) for key, first in zip(groups.keys, firsts, strict=True)]


def _summary(
    groups: _Groups, key: GroupKey, first: Mapping[str, Any], metric: str, by: Sequence[str]
) -> dict[str, Any]:
    import numpy as np
    import pandas as pd

    from eegbench.results.stats import sample_std

    ctx, cid, protocol, stage, ratio = key
    idx = groups.index[key]
    values = groups.value[idx]
    per_subject = groups.subject_scores(key).to_numpy()
    per_seed = groups.seed_scores(key).to_numpy()
    chance = pd.Series(groups.chance[idx])
    rec = {
        "context_key": ctx,
        "config_id": cid,
        "config": first["config"],
        "variant": first["variant"],
        "source": "measured",
        "protocol": protocol,
        "stage": stage,
        "training_ratio": float(ratio),
        "metric": metric,
        "mean": float(values.mean()),
        "std": sample_std(values),
        "n": int(values.size),
        "n_subjects": int(per_subject.size),
        "sd_subjects": sample_std(per_subject),
        "n_seeds": int(per_seed.size),
        "sd_seeds": sample_std(per_seed),
        "n_cells": int(np.unique(groups.cell[idx]).size),
        "chance": float(chance.mean()) if chance.notna().any() else math.nan,
        "citation": "",
        "selection": "",
        "notes": "",
    }
    for col in by:
        if col not in rec:
            rec[col] = first.get(col)
    return rec


def _reference(coverages: Mapping[Any, Coverage]) -> Coverage | None:
    """A column's reference set: the (test subject, seed) set of its most complete configuration (most
    pairs; among equally large sets, the one most configurations share). None when that is still a tie
    between different sets: no configuration is then more complete than another, and none is ranked."""
    counts: dict[Coverage, int] = {}
    for cov in coverages.values():
        counts[cov] = counts.get(cov, 0) + 1
    order = sorted(counts, key=lambda c: (-len(c), -counts[c]))
    if len(order) > 1 and (len(order[0]), counts[order[0]]) == (len(order[1]), counts[order[1]]):
        return None
    return order[0] if order else None


def _numbers(values: Iterable[int]) -> str:
    return ",".join(str(v) for v in sorted(values))


def _unranked_note(cov: Coverage, ref: Coverage | None) -> str:
    """Why a configuration is left out of its column's ranking, in one line (``not ranked: ...``)."""
    subjects, seeds = {s for s, _ in cov}, {e for _, e in cov}
    if ref is None:
        return (
            f"not ranked: configurations cover different subjects/seeds, none is most complete "
            f"(this one: subjects {_numbers(subjects)}, seeds {_numbers(seeds)}; n={len(cov)})"
        )
    ref_subjects, ref_seeds = {s for s, _ in ref}, {e for _, e in ref}
    if subjects != ref_subjects:
        extra = subjects - ref_subjects
        return (
            f"not ranked: subjects differ ({len(subjects & ref_subjects)} of the reference's {len(ref_subjects)}"
            + (f", plus {_numbers(extra)}" if extra else "")
            + f"; n={len(cov)})"
        )
    if seeds != ref_seeds:
        extra = seeds - ref_seeds
        return (
            f"not ranked: seeds differ ({len(seeds & ref_seeds)} of the reference's {len(ref_seeds)}"
            + (f", plus {_numbers(extra)}" if extra else "")
            + f"; n={len(cov)})"
        )
    return f"not ranked: subject-seed pairs differ (n={len(cov)} vs the reference's {len(ref)})"


def _rank_and_test(table: pd.DataFrame, groups: _Groups) -> pd.DataFrame:
    """Rank each (context, column) like with like: only configurations measured on the column's reference
    (test subject, seed) set (:func:`_reference`) are ranked and tested; the others get ``ranked = False``,
    ``rank = 0``, no p-value and a ``rank_note`` saying why."""
    from eegbench.results.stats import paired_test

    n = len(table)
    best, ranked, rank = [False] * n, [False] * n, [0] * n
    p_value, smd, n_pairs, test, note = [math.nan] * n, [math.nan] * n, [0] * n, [""] * n, [""] * n
    keys = [tuple(k) for k in table[list(GROUP_KEYS)].itertuples(index=False, name=None)]
    means = table["mean"].tolist()
    configs = table["config"].tolist()
    by_column: dict[tuple[str, str, str, float], list[int]] = {}
    for i, (ctx, _, protocol, stage, ratio) in enumerate(keys):
        by_column.setdefault((ctx, protocol, stage, ratio), []).append(i)
    for idx in by_column.values():
        covs = {i: groups.coverage(keys[i]) for i in idx}
        ref = _reference(covs)
        comparable = [i for i in idx if ref is not None and covs[i] == ref]
        for i in idx:
            if i not in comparable:
                note[i] = _unranked_note(covs[i], ref)
        if not comparable:
            continue
        # by mean, then label (a stable sort over the table's order, as pandas' would be)
        order = sorted(comparable, key=lambda i: (math.isnan(means[i]), -means[i], configs[i]))
        ranks = _min_ranks([means[i] for i in order])
        for i, r in zip(order, ranks, strict=True):
            ranked[i], rank[i], best[i] = True, r, r == 1  # exact ties are all marked best
        best_scores = groups.paired_scores(keys[order[0]])  # the reference of the tests: the first best by label
        for i in order[1:]:
            other = groups.paired_scores(keys[i])
            # same coverage, so the subjects are the same; aligned by subject all the same
            res = paired_test(best_scores.loc[other.index].to_numpy(), other.to_numpy())
            p_value[i], smd[i], n_pairs[i], test[i] = res.p_value, res.smd, int(res.n), res.test
    return table.assign(
        best=best, ranked=ranked, rank=rank, p_value=p_value, smd=smd, n_pairs=n_pairs, test=test, rank_note=note
    )


def _min_ranks(values: list[float]) -> list[int]:
    """Competition ranks of values sorted in descending order (pandas' ``rank(method="min")``: ties share
    the lowest rank)."""
    out: list[int] = []
    for pos, v in enumerate(values):
        out.append(out[-1] if pos and v == values[pos - 1] else pos + 1)
    return out


def reported_matches(entry: Mapping[str, Any], context: Mapping[str, Any], column: Column) -> bool:
    """Whether a published number is comparable with a context and column (see the module docstring)."""
    if context.get("synthetic"):
        return False
    if str(entry.get("dataset")) != str(context.get("dataset")):
        return False
    if int(entry.get("n_way", -1)) != _int_or(context.get("n_way"), -2):
        return False
    if entry.get("protocol") != column.protocol or entry.get("stage") != column.stage:
        return False
    if not math.isclose(column.training_ratio, 1.0):
        return False
    avg = entry.get("test_averaging")
    return avg in (None, "") or "test_averaging" not in context or str(avg) == str(context.get("test_averaging"))


def _int_or(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _reported_rows(
    entries: list[dict[str, Any]],
    table: pd.DataFrame,
    contexts: dict[str, dict[str, Any]],
    metric: str,
    by: Sequence[str],
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if not entries:
        return out
    present = {(r.context_key, Column(r.protocol, r.stage, float(r.training_ratio))) for r in table.itertuples()}
    taken: set[tuple[str, str, Column]] = set()
    for entry in entries:
        if metric not in entry:
            continue
        for ctx_key, column in sorted(present, key=lambda p: (p[0], p[1].sort_key())):
            if not reported_matches(entry, contexts.get(ctx_key, {}), column):
                continue
            # one row per method, its protocols side by side; a second entry for the same cell gets its own row
            label, k = str(entry["method"]), 1
            while (ctx_key, label, column) in taken:
                k += 1
                label = f"{entry['method']} #{k}"
            taken.add((ctx_key, label, column))
            rec = {
                "context_key": ctx_key,
                "config_id": f"reported:{label}",
                "config": f"{label} [reported]",
                "variant": "",
                "source": "reported",
                "protocol": column.protocol,
                "stage": column.stage,
                "training_ratio": column.training_ratio,
                "metric": metric,
                "mean": float(entry[metric]),
                "std": math.nan,
                "n": 0,
                "n_subjects": 0,
                "sd_subjects": math.nan,
                "n_seeds": 0,
                "sd_seeds": math.nan,
                "n_cells": 0,
                "chance": math.nan,
                "best": False,
                "ranked": False,
                "rank": 0,
                "p_value": math.nan,
                "smd": math.nan,
                "n_pairs": 0,
                "test": "",
                "rank_note": "",
                "citation": str(entry.get("citation", "")),
                "selection": str(entry.get("selection", "")),
                "notes": "; ".join(str(entry[k]) for k in ("input", "notes") if entry.get(k)),
            }
            for col in by:
                rec[col] = {
                    "backbone": entry["method"],
                    "image_encoder": entry.get("image_encoder", ""),
                    "dataset": entry.get("dataset", ""),
                }.get(col, "")
            out.append(rec)
    return out


def _sort_table(table: pd.DataFrame) -> pd.DataFrame:
    t = table.copy()
    t["_src"] = (t["source"] != "measured").astype(int)
    t["_col"] = [
        Column(p, s, float(r)).sort_key()
        for p, s, r in zip(t["protocol"], t["stage"], t["training_ratio"], strict=True)
    ]
    t = t.sort_values(["context_key", "_col", "_src", "rank", "config"], kind="stable")
    return t.drop(columns=["_src", "_col"]).reset_index(drop=True)


def _order(seq: Sequence[str], value: str) -> int:
    return seq.index(value) if value in seq else len(seq)


def _ratio_text(ratio: float) -> str:
    """``0.25`` → ``"25 %"``: the report's and the run summary's spelling of a training ratio."""
    pct = ratio * 100
    return f"{pct:.0f} %" if math.isclose(pct, round(pct)) else f"{pct:.3g} %"
