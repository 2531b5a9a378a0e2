"""Who may open a results store how: reading commands (status, leaderboard) work on a read-only results
directory and never write; another program's ``results.sqlite`` is refused by every command, in one
line, before anything is written; stores of older eegbench versions are still recognised.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest
from quick_spec import QUICK, TINY_ONE_FOLD, as_cli
from test_leaderboard import make_results

from eegbench.cli import main
from eegbench.errors import EegbenchError
from eegbench.results.store import APPLICATION_ID, DB_NAME, CellRecord, ResultStore


def digest(directory: Path) -> dict[str, str]:
    """Every file of a directory and its hash: what "nothing was written" means."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir()) if p.is_file()}


def journal_mode(path: Path) -> str:
    """From the file header (bytes 18-19: 2 = WAL), without opening the database."""
    return "wal" if path.read_bytes()[18:20] == b"\x02\x02" else "delete"


@contextmanager
def unprivileged():
    """Root writes through any permission bits: drop to ``nobody`` so that a read-only file really is."""
    if os.geteuid() != 0:
        yield
        return
    os.setegid(65534)
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


@pytest.fixture
def read_only_results():
    """A finished results directory (scores for the leaderboard, one failed cell) made read-only: the
    directory and the database. Outside pytest's private tmp folder, so ``nobody`` can reach it."""
    directory = Path(tempfile.mkdtemp(prefix="eegbench-ro-"))
    try:
        make_results(directory)
        ResultStore(directory).mark_failed("broken-cell", "ValueError: a failure kept for status")
        (directory / DB_NAME).chmod(0o444)
        directory.chmod(0o555)
        yield directory
    finally:
        directory.chmod(0o755)
        shutil.rmtree(directory)


def test_reading_commands_work_on_a_read_only_store_and_write_nothing(read_only_results, tmp_path, capsys):
    # once on a writable copy first: the modules the commands import lazily may not be readable by nobody
    shutil.copytree(read_only_results, tmp_path / "copy")
    assert main(["status", str(tmp_path / "copy")]) == main(["leaderboard", str(tmp_path / "copy")]) == 0
    capsys.readouterr()
    before = digest(read_only_results)
    mode = journal_mode(read_only_results / DB_NAME)
    with unprivileged():
        assert main(["status", str(read_only_results)]) == 0
        status = capsys.readouterr()
        assert main(["leaderboard", str(read_only_results)]) == 0
        board = capsys.readouterr()
        store = ResultStore(read_only_results, read_only=True)
        assert store.cell_status()["broken-cell"] == "failed" and store.rows()
        # a command that writes says so in one line, naming the database
        with pytest.raises(EegbenchError, match=r"results\.sqlite is read-only .*--results") as info:
            ResultStore(read_only_results)
        assert "\n" not in str(info.value)
    assert "1 failed" in status.out and "a failure kept for status" in status.out, status
    assert "resnet1d" in board.out and board.err == "", board
    assert digest(read_only_results) == before  # no byte changed, no -wal or -shm left behind
    assert journal_mode(read_only_results / DB_NAME) == mode


def test_a_reader_sees_a_live_writers_commits(tmp_path):
    store = ResultStore(tmp_path)
    con = sqlite3.connect(tmp_path / DB_NAME)  # another process's open connection keeps the -wal and -shm
    try:
        con.execute("SELECT COUNT(*) FROM cells").fetchone()
        store.write_cell(CellRecord("k", rows=[{"metric": "top1", "value": 0.5}]))
        assert (tmp_path / f"{DB_NAME}-wal").stat().st_size > 0  # the commit is in the WAL, not yet in the file
        assert ResultStore(tmp_path, read_only=True).cell_status() == {"k": "done"}
    finally:
        con.close()


def foreign(directory: Path, mode: str) -> Path:
    """Another program's SQLite database, named as eegbench's."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / DB_NAME
    con = sqlite3.connect(path)
    con.execute(f"PRAGMA journal_mode={mode}")
    con.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY, name TEXT)")
    con.execute("INSERT INTO photos (name) VALUES ('cat.jpg')")
    con.commit()
    con.close()
    return path


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    mp = pytest.MonkeyPatch()
    mp.setenv("EEGBENCH_DATA", str(root / "data"))
    mp.setenv("EEGBENCH_CACHE", str(root / "cache"))
    yield root
    mp.undo()


COMMANDS = {
    "status": lambda d: ["status", str(d)],
    "status-spec": lambda d: ["status", str(QUICK), "--results", str(d), *as_cli(TINY_ONE_FOLD)],
    "leaderboard": lambda d: ["leaderboard", str(d)],
    "dry-run": lambda d: ["run", str(QUICK), "--dry-run", "--results", str(d), *as_cli(TINY_ONE_FOLD)],
    "run": lambda d: ["run", str(QUICK), "--quiet", "--results", str(d), *as_cli(TINY_ONE_FOLD)],
}


@pytest.mark.parametrize("mode", ["delete", "wal"])
@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_foreign_database_is_refused_untouched_by_every_command(command, mode, tiny_data, tmp_path, capsys):
    path = foreign(tmp_path / "results", mode)
    before = digest(path.parent)
    assert main(COMMANDS[command](path.parent)) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and "not an eegbench results database" in lines[0], err
    assert "move that file aside" in lines[0]
    assert digest(path.parent) == before and journal_mode(path) == mode  # nothing written, not even a log
    with sqlite3.connect(path) as con:
        assert con.execute("SELECT name FROM photos").fetchall() == [("cat.jpg",)]


def test_a_file_that_is_not_sqlite_is_one_line_and_untouched(tmp_path, capsys):
    (tmp_path / DB_NAME).write_bytes(b"name,score\ncat,1\n" * 10)
    before = digest(tmp_path)
    assert main(["status", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and DB_NAME in err, err
    with pytest.raises(EegbenchError):
        ResultStore(tmp_path)
    assert digest(tmp_path) == before


def test_new_stores_carry_the_marker_and_old_ones_are_recognised_and_kept(tmp_path):
    ResultStore(tmp_path / "new")
    assert sqlite3.connect(tmp_path / "new" / DB_NAME).execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    # a store written before the marker: eegbench's tables only, recognised by them; its rows stay
    old = tmp_path / "old"
    make_results(old)
    with sqlite3.connect(old / DB_NAME) as con:
        con.execute("PRAGMA application_id = 0")
        rows = con.execute("SELECT COUNT(*) FROM results").fetchone()[0]
    assert ResultStore(old, read_only=True).rows() and len(ResultStore(old, read_only=True).rows()) == rows
    ResultStore(old)  # a writer marks it
    assert sqlite3.connect(old / DB_NAME).execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert len(ResultStore(old).rows()) == rows
    # an eegbench-like file with one table too many is not eegbench's
    with sqlite3.connect(old / DB_NAME) as con:
        con.execute("PRAGMA application_id = 0")
        con.execute("CREATE TABLE extra (x)")
    with pytest.raises(EegbenchError, match="not an eegbench results database"):
        ResultStore(old, read_only=True)


def test_an_empty_file_is_initialised_by_a_writer_and_reported_empty_to_a_reader(tmp_path):
    (tmp_path / DB_NAME).touch()
    with pytest.raises(EegbenchError, match="empty"):
        ResultStore(tmp_path, read_only=True)
    assert ResultStore(tmp_path).cell_status() == {}
