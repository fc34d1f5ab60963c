"""Tests for sts.stores.sqlite.Database.write: request-path writes that meet a locked database retry briefly
within ``busy_timeout`` (issue 19) and still fail closed beyond it."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sts.errors import ServiceUnavailable
from sts.stores.base import TokenRecord
from sts.stores.sqlite import Database, initialize
from sts.stores.sqlite_stores import SqliteReplayCache, SqliteTokenStore

FORK = multiprocessing.get_context("fork")
GENEROUS = 20.0  # seconds: a bound for a loaded machine, far above any real wait below


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    path = tmp_path / "sts.db"
    initialize(path)
    return path


@pytest.fixture
def holder(db_path: Path) -> Iterator[sqlite3.Connection]:
    """Another connection (as another worker's would be), autocommit, for holding the write lock."""
    conn = sqlite3.connect(db_path, isolation_level=None)
    yield conn
    if conn.in_transaction:
        conn.execute("ROLLBACK")
    conn.close()


def _in_thread(work: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    results: list[object] = []

    def run() -> None:
        try:
            results.append(work())
        except Exception as exc:  # handed to the test, which asserts on it
            results.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, results


def _record(token_id: str) -> TokenRecord:
    return TokenRecord(
        token_id=token_id, subject="PRIMARY/alice", relying_party="https://rp.example.com/",
        token_type="urn:oasis:names:tc:SAML:2.0:assertion", not_before=0.0, not_on_or_after=4e9, status="issued",
        renewable=True, renew_after_expiry=True, digest="digest-" + token_id, data='{"v":2}',
    )


def test_a_write_waits_for_the_lock_and_succeeds_once_it_is_released(
    db_path: Path, holder: sqlite3.Connection
) -> None:
    holder.execute("BEGIN IMMEDIATE")
    db = Database(db_path, busy_timeout_ms=int(GENEROUS * 1000))
    try:
        cache = SqliteReplayCache(db)
        thread, results = _in_thread(lambda: cache.check_and_add("wsse-nonce", b"n1", time.time() + 360))
        thread.join(timeout=0.3)
        assert thread.is_alive() and results == []  # still waiting for the lock
        holder.execute("ROLLBACK")
        thread.join(timeout=GENEROUS)
        assert results == [True]  # the retried statement counted the nonce once: first seen ...
        assert cache.check_and_add("wsse-nonce", b"n1", time.time() + 360) is False  # ... and now a replay
    finally:
        db.close()


def test_a_write_locked_beyond_busy_timeout_fails_closed(db_path: Path, holder: sqlite3.Connection) -> None:
    holder.execute("BEGIN IMMEDIATE")
    db = Database(db_path, busy_timeout_ms=300)
    try:
        started = time.monotonic()
        with pytest.raises(ServiceUnavailable) as caught:
            SqliteReplayCache(db).check_and_add("wsse-nonce", b"n2", time.time() + 360)
        waited = time.monotonic() - started
        assert caught.value.reason == "replay_store_down"
        assert str(caught.value) == "replay store: OperationalError"
        assert 0.3 <= waited < GENEROUS  # it did wait the whole bound, not give up at the first SQLITE_BUSY
        holder.execute("ROLLBACK")
        assert SqliteReplayCache(db).check_and_add("wsse-nonce", b"n2", time.time() + 360) is True  # nothing kept
    finally:
        db.close()


def test_the_database_error_is_raised_after_the_bound(db_path: Path, holder: sqlite3.Connection) -> None:
    holder.execute("BEGIN IMMEDIATE")
    with Database(db_path, busy_timeout_ms=100) as db, pytest.raises(sqlite3.OperationalError) as caught:
        db.write(lambda conn: conn.execute("INSERT INTO meta(key, value) VALUES ('k', 'v')"))
    assert str(caught.value) == "database is locked"


def test_reads_keep_the_configured_busy_timeout(db_path: Path) -> None:
    with Database(db_path, busy_timeout_ms=1234) as db:
        SqliteReplayCache(db).check_and_add("wsse-nonce", b"n3", time.time() + 360)
        assert db.conn.execute("PRAGMA busy_timeout").fetchone()[0] == 1234


def test_a_statement_that_fails_otherwise_is_not_retried(db_path: Path) -> None:
    attempts: list[int] = []

    def statement(conn: sqlite3.Connection) -> object:
        attempts.append(1)
        return conn.execute("INSERT INTO no_such_table VALUES (1)")

    with Database(db_path) as db, pytest.raises(sqlite3.OperationalError, match="no such table"):
        db.write(statement)
    assert attempts == [1]


def test_a_transaction_is_retried_as_a_whole(db_path: Path, holder: sqlite3.Connection) -> None:
    with Database(db_path, busy_timeout_ms=int(GENEROUS * 1000)) as db:
        store = SqliteTokenStore(db)
        store.put(_record("_old"), 4e9)
        holder.execute("BEGIN IMMEDIATE")
        thread, results = _in_thread(lambda: store.renew("_old", _record("_new"), 4e9))
        thread.join(timeout=0.3)
        assert thread.is_alive()
        holder.execute("ROLLBACK")
        thread.join(timeout=GENEROUS)
        assert results == [True]
        old, new = store.get("_old"), store.get("_new")
        assert old is not None and old.status == "renewed"
        assert new is not None and new.status == "issued"


def test_threads_of_a_process_take_turns(db_path: Path) -> None:
    """A thread holding the process's write turn beyond the bound makes another thread's write fail closed."""
    with Database(db_path, busy_timeout_ms=200) as db:
        entered, release = threading.Event(), threading.Event()

        def hold(conn: sqlite3.Connection) -> None:
            entered.set()
            release.wait(timeout=GENEROUS)

        thread, _ = _in_thread(lambda: db.write(hold))
        try:
            assert entered.wait(timeout=GENEROUS)
            with pytest.raises(ServiceUnavailable) as caught:
                SqliteReplayCache(db).check_and_add("wsse-nonce", b"n4", time.time() + 360)
            assert caught.value.reason == "replay_store_down"
        finally:
            release.set()
            thread.join(timeout=GENEROUS)
        assert SqliteReplayCache(db).check_and_add("wsse-nonce", b"n4", time.time() + 360) is True


def _write_in_child(db: Database, results: object) -> None:
    try:
        first = SqliteReplayCache(db).check_and_add("wsse-nonce", b"child", time.time() + 360)
        results.put(first)  # type: ignore[attr-defined]
    except Exception as exc:  # reported to the parent, which asserts on it
        results.put(repr(exc))  # type: ignore[attr-defined]
    finally:
        db.close()


def test_a_forked_child_does_not_inherit_a_held_write_turn(db_path: Path) -> None:
    """gunicorn forks workers: a turn held by a parent's thread at fork() must not block the child's writes."""
    with Database(db_path, busy_timeout_ms=2000) as db:
        db.conn.execute("SELECT 1")
        entered, release = threading.Event(), threading.Event()

        def hold(conn: sqlite3.Connection) -> None:
            entered.set()
            release.wait(timeout=GENEROUS)

        thread, _ = _in_thread(lambda: db.write(hold))
        try:
            assert entered.wait(timeout=GENEROUS)
            results = FORK.Queue()
            child = FORK.Process(target=_write_in_child, args=(db, results))
            child.start()
            outcome = results.get(timeout=GENEROUS)
            child.join(timeout=GENEROUS)
        finally:
            release.set()
            thread.join(timeout=GENEROUS)
        assert outcome is True
