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

Opening: reading commands (``status``, ``leaderboard``) pass ``read_only=True``: SQLite ``mode=ro`` (or
``immutable`` where no writer can be), no journal-mode switch, no table creation, so read-only results
directories work and no file changes. A store eegbench creates carries :data:`APPLICATION_ID`; one
written before that marker is recognised by its tables. Any other SQLite file is refused, read-only
and before anything is written, in one line naming it.

Ownership: a process runs a cell only after :meth:`ResultStore.claim` succeeded, an ``IMMEDIATE``
transaction that takes the cell unless it is ``running`` by a *live* owner (see :func:`owner_state`):
same host and the pid exists, or any host with a heartbeat younger than :data:`STALE_AFTER` seconds.
The owner refreshes ``heartbeat`` while the cell trains (:meth:`ResultStore.heartbeat`). A ``running``
cell whose owner is gone is ``stale``: claimable, and shown so by ``eegbench status``.
"""

from __future__ import annotations

import json
import os
import random
import socket
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

from eegbench.errors import EegbenchError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

_T = TypeVar("_T")

DB_NAME = "results.sqlite"
SCHEMA_VERSION = 1
#: ``PRAGMA application_id`` of a store eegbench created ("EEGB"): how a foreign SQLite file is told apart
APPLICATION_ID = 0x45454742
#: the tables of an eegbench store (``sqlite_sequence``: SQLite's, for the autoincrement id)
_OWN_TABLES = frozenset({"meta", "cells", "results", "sqlite_sequence"})

#: seconds without a heartbeat after which a ``running`` cell of another host is stale (claimable);
#: ``EEGBENCH_STALE_AFTER`` overrides. Owners refresh their heartbeat every :data:`HEARTBEAT_EVERY` s.
STALE_AFTER = float(os.environ.get("EEGBENCH_STALE_AFTER", "600"))
HEARTBEAT_EVERY = 30.0

#: columns of ``results`` (besides the autoincrement id), in order
RESULT_COLUMNS: tuple[str, ...] = (
    "cell_key",
    "spec_name",
    "spec_hash",
    "benchmark",
    "dataset",
    "dataset_params",
    "backbone",
    "backbone_params",
    "image_encoder",
    "image_encoder_params",
    "image_encoder_fingerprint",
    "loss",
    "loss_params",
    "task",
    "task_params",
    "protocol",
    "fold",
    "test_subject",
    "train_subjects",
    "stage",
    "training_ratio",
    "seed",
    "context",
    "context_key",
    "metric",
    "value",
    "chance",
    "epochs_run",
    "best_epoch",
    "wall_seconds",
    "samples_per_second",
    "device",
    "versions",
    "config",
    "recipe",
    "recipe_key",
    "pretrain_recipe_key",
    "created_at",
)
JSON_COLUMNS = {
    "dataset_params",
    "backbone_params",
    "image_encoder_params",
    "loss_params",
    "task_params",
    "train_subjects",
    "context",
    "versions",
    "config",
    "recipe",
}
#: columns added since the first schema, per table: an older store gets them when opened for writing
#: (:meth:`ResultStore._migrate`); ``recipe*`` are filled from the stored configs (:func:`fill_recipes`)
ADDED_COLUMNS: Mapping[str, tuple[tuple[str, str], ...]] = {
    "cells": (("heartbeat", "REAL"), ("recipe_key", "TEXT"), ("pretrain_recipe_key", "TEXT")),
    "results": (("recipe", "TEXT"), ("recipe_key", "TEXT"), ("pretrain_recipe_key", "TEXT")),
}

#: the SQL types of the result columns that are not TEXT
_SQL_TYPES = {
    **dict.fromkeys(("value", "chance", "training_ratio", "wall_seconds", "samples_per_second", "created_at"), "REAL"),
    **dict.fromkeys(("seed", "test_subject", "epochs_run", "best_epoch"), "INTEGER"),
}

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS cells (
    cell_key TEXT PRIMARY KEY,
    spec_name TEXT, stage TEXT, fold TEXT, seed INTEGER, training_ratio REAL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'running', 'done', 'failed')),
    error TEXT, host TEXT, pid INTEGER,
    started_at REAL, finished_at REAL, checkpoint TEXT, config TEXT, heartbeat REAL,
    recipe_key TEXT, pretrain_recipe_key TEXT
);
CREATE TABLE IF NOT EXISTS results (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    {", ".join(f"{c} {_SQL_TYPES.get(c, 'TEXT')}" for c in RESULT_COLUMNS)},
    UNIQUE (cell_key, metric, test_subject)
);
CREATE INDEX IF NOT EXISTS results_cell ON results (cell_key);
"""


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    except OSError:
        return False
    try:  # Linux: a dead child its parent has not reaped yet (a zombie) still answers kill(pid, 0)
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rindex(")") + 2 :][:1] != "Z"
    except (OSError, ValueError):
        return True


def owner_state(record: Mapping[str, Any], *, now: float | None = None, stale_after: float | None = None) -> str:
    """Who holds a ``running`` cell: ``"self"`` (this process), ``"live"`` or ``"stale"``.

    Stale: on this host, the pid no longer exists; on any host, the last heartbeat (``started_at`` for
    rows written before heartbeats existed) is older than ``stale_after`` (default :data:`STALE_AFTER`).
    """
    now = time.time() if now is None else now
    stale_after = STALE_AFTER if stale_after is None else stale_after
    host, pid = record.get("host"), record.get("pid")
    here = host == socket.gethostname()
    if here and pid == os.getpid():
        return "self"
    beat = record.get("heartbeat")
    if here:
        if pid is None or not _pid_exists(int(pid)):
            return "stale"
        # an old row without heartbeats on this host: trust the pid alone
        return "stale" if beat is not None and now - beat > stale_after else "live"
    beat = beat if beat is not None else record.get("started_at")
    return "stale" if beat is None or now - beat > stale_after else "live"


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
    recipe_key: str | None = None
    pretrain_recipe_key: str | None = None


@contextmanager
def _write_transaction(con: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` (the write lock) … ``COMMIT``; anything raised rolls the whole of it back."""
    con.execute("BEGIN IMMEDIATE")
    try:
        yield con
        con.execute("COMMIT")
    except BaseException:
        if con.in_transaction:
            con.execute("ROLLBACK")
        raise


class ResultStore:
    """Read/write access to ``<directory>/results.sqlite``."""

    def __init__(
        self, directory: str | os.PathLike[str], *, create: bool = True, read_only: bool = False, timeout: float = 60.0
    ):
        self.directory = Path(directory)
        self.path = self.directory / DB_NAME
        self.timeout = timeout
        self.read_only = read_only
        if not self.path.exists():
            if not create or read_only:
                raise EegbenchError(
                    f"no results database in {self.directory} (expected {DB_NAME}; run a benchmark first)"
                )
            from eegbench.paths import writable_dir

            writable_dir(self.directory, "results directory", "choose another with --results or EEGBENCH_RESULTS")
        else:
            # before anything is written: a file that is not an eegbench store is refused untouched
            kind = self._identify()
            if read_only:
                if kind == "empty":
                    raise EegbenchError(
                        f"results database {self.path} is empty (no eegbench tables yet; run a benchmark first)"
                    )
                return
            if not os.access(self.path, os.W_OK) or not os.access(self.directory, os.W_OK):
                raise EegbenchError(
                    f"results database {self.path} is read-only and this command writes to it: make it "
                    "writable, or choose another results directory with --results or EEGBENCH_RESULTS"
                )
        with self._connect() as con:

            def init() -> None:
                # one transaction: another process sees either no tables or the whole marked schema
                with _write_transaction(con):
                    con.execute(f"PRAGMA application_id={APPLICATION_ID}")
                    for statement in _SCHEMA.split(";"):
                        if statement.strip():
                            con.execute(statement)
                    con.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

            self._retry(init)
            self._migrate(con)

    def _migrate(self, con: sqlite3.Connection) -> None:
        """Bring a store written by an earlier version up to this schema, in one transaction: add the columns
        of :data:`ADDED_COLUMNS` it lacks (heartbeats; recipes and their keys), and fill the recipe columns of
        rows that lack them from their stored configs (:func:`fill_recipes`). Nothing stored is changed."""
        have = {t: {r["name"] for r in con.execute(f"PRAGMA table_info({t})").fetchall()} for t in ADDED_COLUMNS}
        missing = [(t, c, kind) for t, cols in ADDED_COLUMNS.items() for c, kind in cols if c not in have[t]]
        if not missing:
            return

        def tx() -> None:
            with _write_transaction(con):
                for table, column, kind in missing:
                    try:
                        con.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
                    except sqlite3.OperationalError as exc:
                        if "duplicate column" not in str(exc):  # another process added it first
                            raise
                fill_recipes(con)

        self._retry(tx)

    def _identify(self) -> str:
        """``"eegbench"`` or ``"empty"`` (no tables: a file being created, or touched); raises
        :class:`EegbenchError` for another program's database. Read through a read-only connection, so
        nothing about the file changes (not even its journal mode).

        An eegbench store carries :data:`APPLICATION_ID`; stores written before the marker are recognised
        by their tables: only eegbench's own, with a ``cells`` table keyed by ``cell_key``."""
        with self._connect(read_only=True) as con:
            app_id = con.execute("PRAGMA application_id").fetchone()[0]
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()}
            if app_id == APPLICATION_ID:
                return "eegbench"
            columns = {
                t: {r[1] for r in con.execute(f"PRAGMA table_info({t})").fetchall()}
                for t in tables & {"cells", "results"}
            }
        if app_id == 0 and not tables:
            return "empty"
        if (
            app_id == 0
            and tables <= _OWN_TABLES
            and {"cell_key", "status"} <= columns.get("cells", set())
            and ("results" not in tables or {"cell_key", "metric", "value"} <= columns["results"])
        ):
            return "eegbench"
        what = (
            f"application id {app_id}"
            if app_id
            else "tables " + ", ".join(sorted(tables)[:6]) + (" ..." if len(tables) > 6 else "")
        )
        raise EegbenchError(
            f"{self.path} is not an eegbench results database ({what}); it was left untouched: pass "
            "another results directory (--results or EEGBENCH_RESULTS) or move that file aside"
        )

    # -- connection handling -------------------------------------------------------------------------
    @contextmanager
    def _connect(self, read_only: bool | None = None) -> Iterator[sqlite3.Connection]:
        read_only = self.read_only if read_only is None else read_only
        try:
            con = (
                self._open_read_only()
                if read_only
                else sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
            )
        except sqlite3.Error as exc:
            raise EegbenchError(f"cannot open results database {self.path}: {exc}") from exc
        try:
            con.execute(f"PRAGMA busy_timeout={int(self.timeout * 1000)}")
            if not read_only:  # a reader leaves the journal mode as it is
                journal = os.environ.get("EEGBENCH_STORE_JOURNAL", "WAL")
                self._retry(lambda: con.execute(f"PRAGMA journal_mode={journal}"))
            con.row_factory = sqlite3.Row
            yield con
        except sqlite3.DatabaseError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise
            if "readonly" in str(exc) or "read-only" in str(exc):
                raise EegbenchError(
                    f"results database {self.path} is read-only and this command writes to it: make it "
                    "writable, or choose another results directory with --results or "
                    "EEGBENCH_RESULTS"
                ) from exc
            raise EegbenchError(f"results database {self.path} is unreadable ({exc}); move it aside and rerun") from exc
        finally:
            con.close()

    def _open_read_only(self) -> sqlite3.Connection:
        """A connection that never writes: not the database, and no ``-wal``/``-shm`` files beside it.

        ``mode=ro`` sees a live writer's commits, but on a WAL database it creates (and leaves) the
        ``-wal`` and ``-shm`` files when they are absent. Absent, no writer is there: the database file is
        the whole state, read with ``immutable=1``, as is a database that ``mode=ro`` cannot open (a WAL
        database in a directory this user may not write: nothing can write there either)."""
        uri = "file:" + quote(str(self.path.absolute())) + "?mode=ro"
        immutable = uri + "&immutable=1"
        try:
            with open(self.path, "rb") as f:
                header = f.read(20)
        except OSError as exc:
            raise sqlite3.OperationalError(f"unable to open database file ({exc.strerror})") from exc
        wal = header[:16] == b"SQLite format 3\x00" and header[18:20] == b"\x02\x02"
        if wal and not Path(f"{self.path}-wal").exists():
            return sqlite3.connect(immutable, uri=True, timeout=self.timeout, isolation_level=None)
        try:
            con = sqlite3.connect(uri, uri=True, timeout=self.timeout, isolation_level=None)
            con.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return con
        except sqlite3.OperationalError as exc:
            if "unable to open" not in str(exc) and "readonly" not in str(exc):
                raise
        return sqlite3.connect(immutable, uri=True, timeout=self.timeout, isolation_level=None)

    @staticmethod
    def _retry(fn: Callable[[], _T], attempts: int = 20) -> _T:
        """``fn()``, retried with backoff while SQLite says the database is locked or busy (the last try's
        error propagates)."""
        for attempt in range(attempts - 1):
            try:
                return fn()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                time.sleep(min(2.0, 0.05 * 2**attempt) * (0.5 + random.random()))
        return fn()

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
                    chunk = keys[i : i + 500]
                    rows += con.execute(
                        f"SELECT cell_key, status FROM cells WHERE cell_key IN ({','.join('?' * len(chunk))})", chunk
                    ).fetchall()
        return {r["cell_key"]: r["status"] for r in rows}

    def cell_times(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        """``{cell_key: {status, started_at, finished_at, error}}`` for the given keys (progress lines)."""
        keys = list(keys)
        out: dict[str, dict[str, Any]] = {}
        with self._connect() as con:
            for i in range(0, len(keys), 500):
                chunk = keys[i : i + 500]
                for r in con.execute(
                    "SELECT cell_key, status, started_at, finished_at, error FROM cells "
                    f"WHERE cell_key IN ({','.join('?' * len(chunk))})",
                    chunk,
                ):
                    out[r["cell_key"]] = {k: r[k] for k in ("status", "started_at", "finished_at", "error")}
        return out

    def cells(self) -> list[dict[str, Any]]:
        with self._connect() as con:
            rows = con.execute("SELECT * FROM cells ORDER BY spec_name, stage, fold, seed, training_ratio").fetchall()
        return [dict(r) for r in rows]

    def is_done(self, cell_key: str) -> bool:
        return self.cell_status([cell_key]).get(cell_key) == "done"

    def mark_running(
        self,
        cell_key: str,
        *,
        spec_name: str = "",
        stage: str = "",
        fold: str = "",
        seed: int | None = None,
        training_ratio: float | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        """Record that a cell started, unconditionally (never downgrades a finished cell). Runners use
        :meth:`claim`, which does not take a cell another live process runs."""
        with self._connect() as con:
            self._retry(
                lambda: con.execute(
                    "INSERT INTO cells (cell_key, spec_name, stage, fold, seed, training_ratio, status, host, pid, "
                    "started_at, heartbeat, config) VALUES (?, ?, ?, ?, ?, ?, 'running', ?, ?, ?, ?, ?) "
                    "ON CONFLICT(cell_key) DO UPDATE SET status='running', error=NULL, host=excluded.host, "
                    "pid=excluded.pid, started_at=excluded.started_at, heartbeat=excluded.heartbeat "
                    "WHERE cells.status != 'done'",
                    (
                        cell_key,
                        spec_name,
                        stage,
                        fold,
                        seed,
                        training_ratio,
                        socket.gethostname(),
                        os.getpid(),
                        time.time(),
                        time.time(),
                        json.dumps(config or {}, sort_keys=True, default=str),
                    ),
                )
            )

    def claim(
        self,
        cell_key: str,
        *,
        force: bool = False,
        spec_name: str = "",
        stage: str = "",
        fold: str = "",
        seed: int | None = None,
        training_ratio: float | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        """Atomically take a cell for this process: mark it ``running`` with this host/pid and a heartbeat.

        Returns None when claimed, else the cell's current record (a dict of ``cells`` columns) saying why
        not: ``status == "done"`` (and not ``force``), or ``status == "running"`` by a live owner (see
        :func:`owner_state`; ``force`` never takes a live cell). A stale running, failed, pending or
        unknown cell is claimed; so is one this process already holds. A done cell claimed with ``force``
        stays ``done`` (never downgraded; :meth:`write_cell` replaces its rows, a failure keeps the old ones).
        """
        now = time.time()
        host, pid = socket.gethostname(), os.getpid()
        values = (
            cell_key,
            spec_name,
            stage,
            fold,
            seed,
            training_ratio,
            host,
            pid,
            now,
            now,
            json.dumps(config or {}, sort_keys=True, default=str),
        )

        def tx(con: sqlite3.Connection) -> dict[str, Any] | None:
            con.execute("BEGIN IMMEDIATE")  # the write lock: no other claim can interleave read and write
            try:
                row = con.execute("SELECT * FROM cells WHERE cell_key = ?", (cell_key,)).fetchone()
                if row is not None:
                    record = dict(row)
                    if (record["status"] == "done" and not force) or (
                        record["status"] == "running" and owner_state(record, now=now) == "live"
                    ):
                        con.execute("ROLLBACK")
                        return record
                    if record["status"] == "done":  # forced: recompute, but a done cell is never downgraded
                        con.execute("ROLLBACK")
                        return None
                con.execute(
                    "INSERT INTO cells (cell_key, spec_name, stage, fold, seed, training_ratio, status, host, pid, "
                    "started_at, heartbeat, config) VALUES (?, ?, ?, ?, ?, ?, 'running', ?, ?, ?, ?, ?) "
                    "ON CONFLICT(cell_key) DO UPDATE SET status='running', error=NULL, host=excluded.host, "
                    "pid=excluded.pid, started_at=excluded.started_at, heartbeat=excluded.heartbeat, "
                    "finished_at=NULL, spec_name=excluded.spec_name, stage=excluded.stage, fold=excluded.fold, "
                    "seed=excluded.seed, training_ratio=excluded.training_ratio, config=excluded.config",
                    values,
                )
                con.execute("COMMIT")
                return None
            except BaseException:
                if con.in_transaction:
                    con.execute("ROLLBACK")
                raise

        with self._connect() as con:
            return self._retry(lambda: tx(con))

    def heartbeat(self, cell_key: str) -> bool:
        """Refresh this process's heartbeat on a cell it holds; False when it no longer holds it."""
        with self._connect() as con:
            cur = self._retry(
                lambda: con.execute(
                    "UPDATE cells SET heartbeat = ? WHERE cell_key = ? AND status = 'running' AND host = ? AND pid = ?",
                    (time.time(), cell_key, socket.gethostname(), os.getpid()),
                )
            )
            return cur.rowcount > 0

    @contextmanager
    def heartbeating(self, cell_key: str, every: float | None = None) -> Iterator[None]:
        """While the block runs, refresh this process's heartbeat on ``cell_key`` every ``every`` seconds
        (default :data:`HEARTBEAT_EVERY`) from a daemon thread; stops when the block ends."""
        import threading

        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(HEARTBEAT_EVERY if every is None else every):
                try:
                    if not self.heartbeat(cell_key):
                        return  # no longer ours: finished or recorded failed
                except Exception:
                    pass

        thread = threading.Thread(target=loop, name=f"eegbench-heartbeat-{cell_key[:12]}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=5)

    def cell_record(self, cell_key: str) -> dict[str, Any] | None:
        """The ``cells`` row of one cell as a dict (None if the store never saw it)."""
        with self._connect() as con:
            row = con.execute("SELECT * FROM cells WHERE cell_key = ?", (cell_key,)).fetchone()
        return dict(row) if row is not None else None

    def mark_failed(self, cell_key: str, error: str) -> None:
        with self._connect() as con:
            self._retry(
                lambda: con.execute(
                    "INSERT INTO cells (cell_key, status, error, host, pid, finished_at) "
                    "VALUES (?, 'failed', ?, ?, ?, ?) "
                    "ON CONFLICT(cell_key) DO UPDATE SET status='failed', error=excluded.error, "
                    "finished_at=excluded.finished_at WHERE cells.status != 'done'",
                    (cell_key, error[:4000], socket.gethostname(), os.getpid(), time.time()),
                )
            )

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
            with _write_transaction(con):
                con.execute("DELETE FROM results WHERE cell_key = ?", (record.cell_key,))
                con.executemany(
                    f"INSERT INTO results ({', '.join(RESULT_COLUMNS)}) "
                    f"VALUES ({', '.join('?' * len(RESULT_COLUMNS))})",
                    rows,
                )
                con.execute(
                    "INSERT INTO cells (cell_key, spec_name, stage, fold, seed, training_ratio, status, host, pid, "
                    "started_at, finished_at, checkpoint, config, recipe_key, pretrain_recipe_key) "
                    "VALUES (?, ?, ?, ?, ?, ?, 'done', ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT(cell_key) DO UPDATE SET status='done', error=NULL, finished_at=excluded.finished_at, "
                    "checkpoint=excluded.checkpoint, config=excluded.config, spec_name=excluded.spec_name, "
                    "stage=excluded.stage, fold=excluded.fold, seed=excluded.seed, "
                    "training_ratio=excluded.training_ratio, "
                    "recipe_key=excluded.recipe_key, pretrain_recipe_key=excluded.pretrain_recipe_key",
                    (
                        record.cell_key,
                        record.spec_name,
                        record.stage,
                        record.fold,
                        record.seed,
                        record.training_ratio,
                        socket.gethostname(),
                        os.getpid(),
                        record.started_at,
                        now,
                        record.checkpoint,
                        json.dumps(dict(record.config), sort_keys=True, default=str),
                        record.recipe_key,
                        record.pretrain_recipe_key,
                    ),
                )

        with self._connect() as con:
            self._retry(lambda: tx(con))

    # -- reading results -----------------------------------------------------------------------------
    def rows(self, where: str = "", params: Sequence[Any] = (), *, shared: bool = False) -> list[dict[str, Any]]:
        """Result rows as dicts with JSON columns decoded (``where`` is an SQL condition on ``results``).

        ``shared=True`` decodes each distinct JSON text once and gives every row with that text the same
        object (a cell's rows repeat its config, context and versions per metric and subject): several times
        faster on large stores, for readers that do not modify the decoded values.
        """
        sql = "SELECT * FROM results" + (f" WHERE {where}" if where else "") + " ORDER BY id"
        with self._connect() as con:
            raw = con.execute(sql, tuple(params)).fetchall()
        decoded: dict[str, Any] = {}
        out = []
        for r in raw:
            d = dict(r)
            for c in JSON_COLUMNS:
                text = d.get(c)
                if text:
                    if shared:
                        value = decoded.get(text)
                        if value is None:
                            value = decoded[text] = json.loads(text)
                        d[c] = value
                    else:
                        d[c] = json.loads(text)
            out.append(d)
        return out

    def dataframe(self, where: str = "", params: Sequence[Any] = (), *, shared: bool = False) -> pd.DataFrame:
        """Result rows as a pandas DataFrame (JSON columns decoded; ``shared`` as for :meth:`rows`)."""
        import pandas as pd

        return pd.DataFrame(self.rows(where, params, shared=shared), columns=["id", *RESULT_COLUMNS])


# --------------------------------------------------------------------------------------------------
# stores written before recipes were typed
# --------------------------------------------------------------------------------------------------
def fill_recipes(con: sqlite3.Connection) -> int:
    """Fill ``recipe``, ``recipe_key`` and ``pretrain_recipe_key`` of result rows that lack them, from their
    stored configs (:class:`eegbench.planning.recipe.StoredRecipes`: the rules the leaderboard applied before the store
    kept recipes, so every key, and every leaderboard, is unchanged); then each done cell's keys from its rows.

    A finetune row whose pretrain cell this store does not hold is left unfilled: the leaderboard fills it when
    it reads, with the configs of every store it merges. Returns the number of rows filled."""
    from collections import ChainMap

    from eegbench.planning.recipe import StoredRecipes

    columns = (
        "id",
        "cell_key",
        "stage",
        "config",
        "dataset",
        "dataset_params",
        "backbone",
        "backbone_params",
        "image_encoder",
        "image_encoder_params",
        "loss",
        "loss_params",
        "task",
        "task_params",
    )
    raw = con.execute(f"SELECT {', '.join(columns)} FROM results WHERE recipe_key IS NULL").fetchall()
    if not raw:
        return 0
    decoded: dict[str, Any] = {}

    def load(text: Any) -> Any:
        if not text:
            return None
        if text not in decoded:
            try:
                decoded[text] = json.loads(text)
            except ValueError:
                decoded[text] = None
        return decoded[text]

    rows = []
    for r in raw:
        row = dict(zip(columns, tuple(r), strict=True))
        for c in columns:
            if c == "config" or c.endswith("_params"):
                row[c] = load(row[c])
        rows.append(row)
    own = {str(r["cell_key"]): r["config"] for r in rows if isinstance(r["config"], dict) and r["config"]}
    stored = {}
    for key, text in con.execute("SELECT cell_key, config FROM cells").fetchall():
        cfg = load(text)
        if isinstance(cfg, dict) and cfg:
            stored[str(key)] = cfg
    lookup = ChainMap(own, stored)
    book = StoredRecipes(lookup)
    updates = []
    for r in rows:
        cfg = r["config"]
        if r["stage"] == "finetune" and isinstance(cfg, dict) and cfg:
            link = cfg.get("pretrain")
            if not (isinstance(link, dict) and str(link.get("key")) in lookup):
                continue  # its pretrain settings may be in another store: the leaderboard fills it when merging
        recipe, key, base = book.of(cfg, r["stage"], r)
        updates.append((json.dumps(recipe, sort_keys=True, default=str), key, base, r["id"]))
    con.executemany("UPDATE results SET recipe = ?, recipe_key = ?, pretrain_recipe_key = ? WHERE id = ?", updates)
    con.execute(
        "UPDATE cells SET (recipe_key, pretrain_recipe_key) = (SELECT recipe_key, pretrain_recipe_key FROM "
        "results WHERE results.cell_key = cells.cell_key AND recipe_key IS NOT NULL LIMIT 1) "
        "WHERE recipe_key IS NULL AND status = 'done'"
    )
    return len(updates)
