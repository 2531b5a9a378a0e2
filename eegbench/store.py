"""The results store: one SQLite database per results directory (``<results>/results.sqlite``).

Two tables:

``cells``   one row per cell (``cell_key`` = hash of the cell's fully resolved config): its status
            (``pending`` | ``running`` | ``done`` | ``failed``), error message, host, timings, checkpoint
            path and config. The source of truth for what is done: executors and reruns read it.
``results`` one row per (cell, metric): every column a leaderboard needs to group, compare and cite
            (components and parameters, protocol, fold, stage, ratio, seed, the comparison context,
            value and chance, timings, device, versions).

Why SQLite in WAL mode: readers never block the writer, a cell's rows are written in one transaction
(all or nothing, so a crash never leaves half a cell and never rewrites finished cells), and concurrent
writers from worker processes or Slurm/Ray jobs on one filesystem are serialised by SQLite's lock with a
busy timeout plus retries. On network filesystems without reliable locks, set ``EEGBENCH_STORE_JOURNAL``
to ``DELETE`` (rollback journal), which SQLite supports there better than WAL.
"""
from __future__ import annotations

import json
import os
import random
import socket
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from .errors import EegbenchError

DB_NAME = "results.sqlite"
SCHEMA_VERSION = 1

#: columns of ``results`` (besides the autoincrement id), in order
RESULT_COLUMNS: tuple[str, ...] = (
    "cell_key", "spec_name", "spec_hash", "benchmark",
    "dataset", "dataset_params",
    "backbone", "backbone_params",
    "image_encoder", "image_encoder_params", "image_encoder_fingerprint",
    "loss", "loss_params",
    "task", "task_params",
    "protocol", "fold", "test_subject", "train_subjects",
    "stage", "training_ratio", "seed",
    "context", "context_key",
    "metric", "value", "chance",
    "epochs_run", "best_epoch", "wall_seconds", "samples_per_second",
    "device", "versions", "config", "created_at",
)
JSON_COLUMNS = {"dataset_params", "backbone_params", "image_encoder_params", "loss_params", "task_params",
                "train_subjects", "context", "versions", "config"}

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS cells (
    cell_key TEXT PRIMARY KEY,
    spec_name TEXT, stage TEXT, fold TEXT, seed INTEGER, training_ratio REAL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'running', 'done', 'failed')),
    error TEXT, host TEXT, pid INTEGER,
    started_at REAL, finished_at REAL, checkpoint TEXT, config TEXT
);
CREATE TABLE IF NOT EXISTS results (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    {", ".join(c + (" REAL" if c in ("value", "chance", "training_ratio", "wall_seconds", "samples_per_second", "created_at") else " INTEGER" if c in ("seed", "test_subject", "epochs_run", "best_epoch") else " TEXT") for c in RESULT_COLUMNS)},
    UNIQUE (cell_key, metric, test_subject)
);
CREATE INDEX IF NOT EXISTS results_cell ON results (cell_key);
"""


@dataclass
class CellRecord:
    """What a finished cell hands to :meth:`ResultStore.write_cell`."""

    cell_key: str
    rows: list[dict[str, Any]]  # one dict per (test subject, metric), keys from RESULT_COLUMNS
    spec_name: str = ""
    stage: str = ""
    fold: str = ""
    seed: int | None = None
    training_ratio: float | None = None
    checkpoint: str | None = None
    config: Mapping[str, Any] = field(default_factory=dict)
    started_at: float | None = None


class ResultStore:
    """Read/write access to ``<directory>/results.sqlite``."""

    def __init__(self, directory: str | os.PathLike, *, create: bool = True, timeout: float = 60.0):
        self.directory = Path(directory)
        self.path = self.directory / DB_NAME
        self.timeout = timeout
        if not self.path.exists():
            if not create:
                raise EegbenchError(f"no results database in {self.directory} (expected {DB_NAME}; run a benchmark first)")
            from .paths import writable_dir

            writable_dir(self.directory, "results directory", "choose another with --results or EEGBENCH_RESULTS")
        with self._connect() as con:
            self._retry(lambda: con.executescript(_SCHEMA))
            self._retry(lambda: con.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)))

    # -- connection handling -------------------------------------------------------------------------
    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            con = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
        except sqlite3.Error as exc:
            raise EegbenchError(f"cannot open results database {self.path}: {exc}") from exc
        try:
            journal = os.environ.get("EEGBENCH_STORE_JOURNAL", "WAL")
            self._retry(lambda: con.execute(f"PRAGMA journal_mode={journal}"))
            con.execute(f"PRAGMA busy_timeout={int(self.timeout * 1000)}")
            con.row_factory = sqlite3.Row
            yield con
        except sqlite3.DatabaseError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise
            raise EegbenchError(f"results database {self.path} is unreadable ({exc}); move it aside and rerun") from exc
        finally:
            con.close()

    @staticmethod
    def _retry(fn, attempts: int = 20):
        for attempt in range(attempts):
            try:
                return fn()
            except sqlite3.OperationalError as exc:
                if ("locked" not in str(exc) and "busy" not in str(exc)) or attempt == attempts - 1:
                    raise
                time.sleep(min(2.0, 0.05 * 2 ** attempt) * (0.5 + random.random()))

    # -- cells ---------------------------------------------------------------------------------------
    def cell_status(self, keys: Iterable[str] | None = None) -> dict[str, str]:
        """``{cell_key: status}`` for the given keys (all cells if None)."""
        with self._connect() as con:
            if keys is None:
                rows = con.execute("SELECT cell_key, status FROM cells").fetchall()
            else:
                keys = list(keys)
                rows = []
                for i in range(0, len(keys), 500):
                    chunk = keys[i:i + 500]
                    rows += con.execute(
                        f"SELECT cell_key, status FROM cells WHERE cell_key IN ({','.join('?' * len(chunk))})", chunk
                    ).fetchall()
        return {r["cell_key"]: r["status"] for r in rows}

    def cells(self) -> list[dict[str, Any]]:
        with self._connect() as con:
            rows = con.execute("SELECT * FROM cells ORDER BY spec_name, stage, fold, seed, training_ratio").fetchall()
        return [dict(r) for r in rows]

    def is_done(self, cell_key: str) -> bool:
        return self.cell_status([cell_key]).get(cell_key) == "done"

    def mark_running(self, cell_key: str, *, spec_name: str = "", stage: str = "", fold: str = "", seed: int | None = None,
                     training_ratio: float | None = None, config: Mapping[str, Any] | None = None) -> None:
        """Record that a cell started (never downgrades a finished cell)."""
        with self._connect() as con:
            self._retry(lambda: con.execute(
                "INSERT INTO cells (cell_key, spec_name, stage, fold, seed, training_ratio, status, host, pid, started_at, config) "
                "VALUES (?, ?, ?, ?, ?, ?, 'running', ?, ?, ?, ?) "
                "ON CONFLICT(cell_key) DO UPDATE SET status='running', error=NULL, host=excluded.host, pid=excluded.pid, "
                "started_at=excluded.started_at WHERE cells.status != 'done'",
                (cell_key, spec_name, stage, fold, seed, training_ratio, socket.gethostname(), os.getpid(), time.time(),
                 json.dumps(config or {}, sort_keys=True, default=str)),
            ))

    def mark_failed(self, cell_key: str, error: str) -> None:
        with self._connect() as con:
            self._retry(lambda: con.execute(
                "INSERT INTO cells (cell_key, status, error, host, pid, finished_at) VALUES (?, 'failed', ?, ?, ?, ?) "
                "ON CONFLICT(cell_key) DO UPDATE SET status='failed', error=excluded.error, finished_at=excluded.finished_at "
                "WHERE cells.status != 'done'",
                (cell_key, error[:4000], socket.gethostname(), os.getpid(), time.time()),
            ))

    def write_cell(self, record: CellRecord) -> None:
        """Store a finished cell's rows and mark it done, in one transaction (all or nothing)."""
        rows = []
        now = time.time()
        for row in record.rows:
            unknown = set(row) - set(RESULT_COLUMNS)
            if unknown:
                raise ValueError(f"unknown result columns: {sorted(unknown)}")
            full = {c: row.get(c) for c in RESULT_COLUMNS}
            full["cell_key"] = record.cell_key
            full["created_at"] = full["created_at"] or now
            for c in JSON_COLUMNS:
                if full[c] is not None and not isinstance(full[c], str):
                    full[c] = json.dumps(full[c], sort_keys=True, default=str)
            rows.append(tuple(full[c] for c in RESULT_COLUMNS))

        def tx(con: sqlite3.Connection) -> None:
            con.execute("BEGIN IMMEDIATE")
            try:
                con.execute("DELETE FROM results WHERE cell_key = ?", (record.cell_key,))
                con.executemany(
                    f"INSERT INTO results ({', '.join(RESULT_COLUMNS)}) VALUES ({', '.join('?' * len(RESULT_COLUMNS))})", rows
                )
                con.execute(
                    "INSERT INTO cells (cell_key, spec_name, stage, fold, seed, training_ratio, status, host, pid, started_at, "
                    "finished_at, checkpoint, config) VALUES (?, ?, ?, ?, ?, ?, 'done', ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT(cell_key) DO UPDATE SET status='done', error=NULL, finished_at=excluded.finished_at, "
                    "checkpoint=excluded.checkpoint, config=excluded.config, spec_name=excluded.spec_name, "
                    "stage=excluded.stage, fold=excluded.fold, seed=excluded.seed, training_ratio=excluded.training_ratio",
                    (record.cell_key, record.spec_name, record.stage, record.fold, record.seed, record.training_ratio,
                     socket.gethostname(), os.getpid(), record.started_at, now, record.checkpoint,
                     json.dumps(dict(record.config), sort_keys=True, default=str)),
                )
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise

        with self._connect() as con:
            self._retry(lambda: tx(con))

    # -- reading results -----------------------------------------------------------------------------
    def rows(self, where: str = "", params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Result rows as dicts with JSON columns decoded (``where`` is an SQL condition on ``results``)."""
        sql = "SELECT * FROM results" + (f" WHERE {where}" if where else "") + " ORDER BY id"
        with self._connect() as con:
            raw = con.execute(sql, tuple(params)).fetchall()
        out = []
        for r in raw:
            d = dict(r)
            for c in JSON_COLUMNS:
                if d.get(c):
                    d[c] = json.loads(d[c])
            out.append(d)
        return out

    def dataframe(self, where: str = "", params: Sequence[Any] = ()):
        """Result rows as a pandas DataFrame (JSON columns decoded)."""
        import pandas as pd

        return pd.DataFrame(self.rows(where, params), columns=["id", *RESULT_COLUMNS])
