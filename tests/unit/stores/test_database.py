"""sts.stores.sqlite.Database: one connection per process and thread, every one of them closed by its owner.

Python 3.13 reports a connection that is garbage-collected while open (ResourceWarning), so a connection opened
by another thread and never closed would surface there as an error in some unrelated test.
"""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from sts.stores.sqlite import Database, initialize, latest_version

FORK = multiprocessing.get_context("fork")


@pytest.fixture
def path(tmp_path: Path) -> Path:
    initialize(tmp_path / "sts.db")
    return tmp_path / "sts.db"


def closed(conn: sqlite3.Connection) -> bool:
    try:
        conn.execute("SELECT 1")
    except sqlite3.ProgrammingError:  # "Cannot operate on a closed database."
        return True
    return False


def in_thread(work: Callable[[], sqlite3.Connection]) -> sqlite3.Connection:
    """Run ``work`` in a new thread that has ended when this returns."""
    out: list[sqlite3.Connection] = []
    thread = threading.Thread(target=lambda: out.append(work()))
    thread.start()
    thread.join(timeout=30)
    [conn] = out
    return conn


def test_close_closes_the_connection_of_every_thread(path: Path) -> None:
    db = Database(path)
    mine = db.conn
    others = [in_thread(lambda: db.conn) for _ in range(2)]
    db.close()
    assert all(closed(conn) for conn in (mine, *others))


def test_the_connection_of_an_ended_thread_is_closed_when_another_one_is_opened(path: Path) -> None:
    with Database(path) as db:
        ended = in_thread(lambda: db.conn)
        assert not closed(ended)
        assert db.conn is not ended
        assert closed(ended)


def test_a_connection_is_reopened_after_close_also_in_a_thread_that_had_one(path: Path) -> None:
    with Database(path) as db:
        first = db.conn
        opened, closed_by_owner = threading.Event(), threading.Event()
        seen: list[tuple[sqlite3.Connection, sqlite3.Connection, int]] = []

        def worker() -> None:
            before = db.conn
            opened.set()
            closed_by_owner.wait(timeout=30)
            after = db.conn
            seen.append((before, after, after.execute("SELECT COUNT(*) FROM schema_version").fetchone()[0]))

        thread = threading.Thread(target=worker)
        thread.start()
        assert opened.wait(timeout=30)
        db.close()
        closed_by_owner.set()
        thread.join(timeout=30)
        [(before, after, rows)] = seen
        assert closed(first) and closed(before)
        assert after is not before and rows == latest_version()
        assert db.conn is not first and db.conn.execute("SELECT 1").fetchone() == (1,)


def _in_forked_child(target: Callable[..., None], db: Database, conn: sqlite3.Connection) -> object:
    """Run ``target(db, conn, results)`` in a forked child; what it put in ``results`` (the child must exit 0)."""
    results: multiprocessing.Queue[object] = FORK.Queue()
    child = FORK.Process(target=target, args=(db, conn, results))
    child.start()
    outcome = results.get(timeout=30)
    child.join(timeout=30)
    assert child.exitcode == 0
    return outcome


def _child(db: Database, parent_conn: sqlite3.Connection, results: multiprocessing.Queue[object]) -> None:
    try:
        own = db.conn
        rows = own.execute("SELECT COUNT(*) FROM schema_version WHERE version = 1").fetchone()[0]
        db.close()
        results.put((own is parent_conn, rows, closed(own), closed(parent_conn)))
    except Exception as exc:  # report, do not hide, a failure in the child
        results.put(repr(exc))


def test_a_forked_child_opens_its_own_connection_and_never_closes_the_parents(path: Path) -> None:
    """A connection must not cross fork() and the child must not close the parent's either (sqlite.org "How To
    Corrupt An SQLite Database File" §2.6)."""
    with Database(path) as db:
        parent_conn = db.conn
        outcome = _in_forked_child(_child, db, parent_conn)
        assert outcome == (False, 1, True, False)  # its own connection, closed; the inherited one left alone
        assert db.conn is parent_conn and not closed(parent_conn)


# --- the write connection (Database.write): a second one per thread, with busy_timeout 0 ----------------------


def _write(db: Database) -> sqlite3.Connection:
    """Write through ``db`` and return the connection the write ran on."""

    def statement(conn: sqlite3.Connection) -> sqlite3.Connection:
        conn.execute("INSERT INTO meta(key, value) VALUES (hex(randomblob(8)), 'v')")
        return conn

    return db.write(statement)


def busy_timeout(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA busy_timeout").fetchone()[0])


def test_writes_run_on_a_connection_of_their_own_that_fails_at_once_when_locked(path: Path) -> None:
    """The pauses of a write are Database.write's; the reads keep SQLite's busy handler, with no PRAGMA toggled
    around each write."""
    with Database(path, busy_timeout_ms=1234) as db:
        writer = _write(db)
        assert writer is db.write_conn and writer is not db.conn
        assert busy_timeout(writer) == 0
        assert busy_timeout(db.conn) == 1234
        assert _write(db) is writer  # kept for the next write
        assert writer.execute("PRAGMA foreign_keys").fetchone() == (1,)
        assert writer.execute("PRAGMA synchronous").fetchone() == (1,)  # NORMAL, like the reads' connection


def test_close_closes_the_write_connection_of_every_thread(path: Path) -> None:
    db = Database(path)
    mine = _write(db)
    others = [in_thread(lambda: _write(db)) for _ in range(2)]
    db.close()
    assert all(closed(conn) for conn in (mine, *others))
    assert not closed(_write(db))  # re-opened after close
    db.close()


def test_the_write_connection_of_an_ended_thread_is_closed_when_another_one_is_opened(path: Path) -> None:
    with Database(path) as db:
        ended = in_thread(lambda: _write(db))
        assert not closed(ended)
        assert _write(db) is not ended
        assert closed(ended)


def test_a_failed_statement_drops_both_connections_of_the_thread(path: Path) -> None:
    """unavailable(): a connection that saw a broken file stays broken, so the next request opens new ones."""
    with Database(path) as db:
        reader, writer = db.conn, _write(db)
        other = in_thread(lambda: _write(db))  # another thread's: not dropped
        error = db.unavailable("replay store", sqlite3.OperationalError("disk I/O error"), "replay_store_down")
        assert str(error) == "replay store: OperationalError" and error.reason == "replay_store_down"
        assert closed(reader) and closed(writer) and not closed(other)
        assert db.conn is not reader and _write(db) is not writer


def _child_writes(db: Database, parent_writer: sqlite3.Connection, results: multiprocessing.Queue[object]) -> None:
    try:
        own = _write(db)
        db.close()
        results.put((own is parent_writer, closed(own), closed(parent_writer)))
    except Exception as exc:  # report, do not hide, a failure in the child
        results.put(repr(exc))


def test_a_forked_child_opens_its_own_write_connection_and_never_closes_the_parents(path: Path) -> None:
    with Database(path) as db:
        parent_writer = _write(db)
        outcome = _in_forked_child(_child_writes, db, parent_writer)
        assert outcome == (False, True, False)  # its own write connection, closed; the inherited one left alone
        assert _write(db) is parent_writer and not closed(parent_writer)
