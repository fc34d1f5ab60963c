"""Tests for sts.stores.sqlite_stores: the shared replay cache (W16-W18, O01, O02) and lockout counters (A03)."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sts.errors import ServiceUnavailable
from sts.stores.base import LockState
from sts.stores.sqlite import Database, initialize
from sts.stores.sqlite_stores import SqliteLockoutStore, SqliteReplayCache

NOW = 1_800_000_000.0  # an arbitrary epoch second for the lockout store (it takes ``now`` as an argument)
DURATION = 300
MAX_DURATION = 3600
FORK = multiprocessing.get_context("fork")


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    path = tmp_path / "sts.db"
    initialize(path)
    return path


@pytest.fixture
def db(db_path: Path) -> Iterator[Database]:
    database = Database(db_path)
    yield database
    database.close()


def _lockout(db: Database, max_failures: int = 3) -> SqliteLockoutStore:
    return SqliteLockoutStore(db, max_failures=max_failures, duration=DURATION, max_duration=MAX_DURATION)


def _level(db: Database, key: str) -> int:
    row = db.conn.execute("SELECT level FROM counters WHERE ns = 'lockout' AND key = ?", (key,)).fetchone()
    return int(row[0])


def _fail(store: SqliteLockoutStore, key: str, times: int, now: float) -> LockState:
    state = LockState(0, 0.0)
    for _ in range(times):
        state = store.record_failure(key, now)
    return state


# --- replay cache ---------------------------------------------------------------------------------------------


def test_replay_first_true_then_false(db: Database) -> None:  # W16
    cache = SqliteReplayCache(db)
    expires = time.time() + 360
    assert cache.check_and_add("wsse-nonce", b"nonce-1", expires) is True
    assert cache.check_and_add("wsse-nonce", b"nonce-1", expires) is False
    assert cache.check_and_add("wsse-nonce", b"nonce-1", expires) is False


def test_replay_other_value_is_new(db: Database) -> None:
    cache = SqliteReplayCache(db)
    expires = time.time() + 360
    assert cache.check_and_add("wsse-nonce", b"nonce-1", expires) is True
    assert cache.check_and_add("wsse-nonce", b"nonce-2", expires) is True


def test_replay_same_value_other_namespace_is_new(db: Database) -> None:
    cache = SqliteReplayCache(db)
    expires = time.time() + 360
    assert cache.check_and_add("wsse-nonce", b"value", expires) is True
    assert cache.check_and_add("signature", b"value", expires) is True
    assert cache.check_and_add("signature", b"value", expires) is False


def test_replay_seen_by_another_connection(db_path: Path) -> None:  # W17: shared by workers, not per process
    first, second = Database(db_path), Database(db_path)
    try:
        expires = time.time() + 360
        assert SqliteReplayCache(first).check_and_add("wsse-nonce", b"shared", expires) is True
        assert SqliteReplayCache(second).check_and_add("wsse-nonce", b"shared", expires) is False
    finally:
        first.close()
        second.close()


def test_replay_expired_entry_accepted_again(db: Database) -> None:  # O03: entries live until their expiry
    cache = SqliteReplayCache(db)
    assert cache.check_and_add("wsse-nonce", b"old", time.time() - 1) is True
    assert cache.check_and_add("wsse-nonce", b"old", time.time() + 360) is True
    # ... and the renewed entry now holds again.
    assert cache.check_and_add("wsse-nonce", b"old", time.time() + 360) is False


def test_replay_stores_a_digest_not_the_value(db: Database) -> None:
    SqliteReplayCache(db).check_and_add("wsse-nonce", b"secret-nonce-bytes", time.time() + 360)
    keys = [row[0] for row in db.conn.execute("SELECT key FROM replay")]
    assert len(keys) == 1
    assert "secret-nonce-bytes" not in keys[0]
    assert len(keys[0]) == 64


def _replay_worker(path: Path, barrier: object, results: object, attempts: int) -> None:
    database = Database(path)
    cache = SqliteReplayCache(database)
    barrier.wait()  # type: ignore[attr-defined]
    wins = 0
    try:
        for _ in range(attempts):
            if cache.check_and_add("wsse-nonce", b"the-same-nonce", time.time() + 360):
                wins += 1
        results.put(("ok", wins))  # type: ignore[attr-defined]
    except Exception as exc:  # report, do not hide, a failure in the child
        results.put(("error", repr(exc)))  # type: ignore[attr-defined]
    finally:
        database.close()


def _run_processes(target: Callable[..., None], path: Path, processes: int, attempts: int) -> list[tuple[str, object]]:
    barrier = FORK.Barrier(processes)
    results = FORK.Queue()
    children = [FORK.Process(target=target, args=(path, barrier, results, attempts)) for _ in range(processes)]
    for child in children:
        child.start()
    outcomes = [results.get(timeout=30) for _ in children]
    for child in children:
        child.join(timeout=30)
        assert child.exitcode == 0
    return outcomes


def test_replay_race_between_processes_exactly_one_wins(db_path: Path) -> None:  # W18, O01
    outcomes = _run_processes(_replay_worker, db_path, processes=8, attempts=20)
    assert [kind for kind, _ in outcomes] == ["ok"] * 8, outcomes
    assert sum(int(wins) for _, wins in outcomes) == 1  # type: ignore[call-overload]


def _broken_garbage(tmp_path: Path) -> Database:
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not an SQLite database file\x00\xff" * 200)
    return Database(path)


def _broken_directory(tmp_path: Path) -> Database:
    path = tmp_path / "a-directory"
    path.mkdir()
    return Database(path)


def _broken_no_schema(tmp_path: Path) -> Database:
    path = tmp_path / "empty.db"
    sqlite3.connect(path).close()
    return Database(path)


BROKEN = pytest.mark.parametrize("broken", [_broken_garbage, _broken_directory, _broken_no_schema])


@BROKEN
def test_replay_fails_closed(tmp_path: Path, broken: Callable[[Path], Database]) -> None:  # O02
    cache = SqliteReplayCache(broken(tmp_path))
    with pytest.raises(ServiceUnavailable) as caught:
        cache.check_and_add("wsse-nonce", b"nonce", time.time() + 360)
    assert caught.value.reason == "replay_store_down"


@BROKEN
def test_lockout_state_fails_closed(tmp_path: Path, broken: Callable[[Path], Database]) -> None:  # O02
    with pytest.raises(ServiceUnavailable) as caught:
        _lockout(broken(tmp_path)).state("PRIMARY/alice")
    assert caught.value.reason == "lockout_store_down"


@BROKEN
def test_lockout_record_failure_fails_closed(tmp_path: Path, broken: Callable[[Path], Database]) -> None:
    with pytest.raises(ServiceUnavailable) as caught:
        _lockout(broken(tmp_path)).record_failure("PRIMARY/alice", NOW)
    assert caught.value.reason == "lockout_store_down"


@BROKEN
def test_lockout_reset_fails_closed(tmp_path: Path, broken: Callable[[Path], Database]) -> None:
    with pytest.raises(ServiceUnavailable):
        _lockout(broken(tmp_path)).reset("PRIMARY/alice")


def test_replay_fails_closed_when_the_file_is_corrupted_after_use(tmp_path: Path) -> None:  # O02
    path = tmp_path / "sts.db"
    initialize(path)
    database = Database(path)
    cache = SqliteReplayCache(database)
    assert cache.check_and_add("wsse-nonce", b"before", time.time() + 360) is True
    database.close()
    path.write_bytes(b"garbage!" * 2048)
    with pytest.raises(ServiceUnavailable):
        cache.check_and_add("wsse-nonce", b"after", time.time() + 360)


# --- lockout --------------------------------------------------------------------------------------------------


def test_lockout_unknown_key_has_no_state(db: Database) -> None:
    assert _lockout(db).state("PRIMARY/nobody") is None


def test_lockout_failures_count_up(db: Database) -> None:
    store = _lockout(db, max_failures=3)
    assert store.record_failure("PRIMARY/alice", NOW) == LockState(1, 0.0)
    assert store.state("PRIMARY/alice") == LockState(1, 0.0)
    assert store.record_failure("PRIMARY/alice", NOW + 1) == LockState(2, 0.0)
    assert store.state("PRIMARY/alice") == LockState(2, 0.0)


def test_lockout_keys_are_independent(db: Database) -> None:
    store = _lockout(db, max_failures=3)
    _fail(store, "PRIMARY/alice", 2, NOW)
    assert store.record_failure("PRIMARY/bob", NOW) == LockState(1, 0.0)
    assert store.state("PRIMARY/alice") == LockState(2, 0.0)


def test_lockout_locks_at_max_failures_for_duration(db: Database) -> None:  # A03
    store = _lockout(db, max_failures=3)
    _fail(store, "PRIMARY/alice", 2, NOW)
    state = store.record_failure("PRIMARY/alice", NOW + 10)
    assert state == LockState(0, NOW + 10 + DURATION)
    assert store.state("PRIMARY/alice") == LockState(0, NOW + 10 + DURATION)
    assert _level(db, "PRIMARY/alice") == 1


def test_lockout_failures_while_locked_do_not_extend(db: Database) -> None:
    store = _lockout(db, max_failures=3)
    _fail(store, "PRIMARY/alice", 3, NOW)
    for offset in (1, 100, DURATION - 1):
        assert store.record_failure("PRIMARY/alice", NOW + offset) == LockState(0, NOW + DURATION)
    assert store.state("PRIMARY/alice") == LockState(0, NOW + DURATION)
    assert _level(db, "PRIMARY/alice") == 1


def test_lockout_periods_double_and_are_capped(db: Database) -> None:
    store = _lockout(db, max_failures=3)
    now = NOW
    expected_durations = [DURATION, 2 * DURATION, 4 * DURATION, 8 * DURATION, MAX_DURATION, MAX_DURATION]
    for level, duration in enumerate(expected_durations, start=1):
        assert _fail(store, "PRIMARY/alice", 2, now) == LockState(2, 0.0 if level == 1 else now - 1), level
        state = store.record_failure("PRIMARY/alice", now)
        assert state == LockState(0, now + duration), level
        assert _level(db, "PRIMARY/alice") == level
        now = state.locked_until + 1  # the lock has expired


def test_lockout_expired_lock_counts_from_zero(db: Database) -> None:
    store = _lockout(db, max_failures=3)
    _fail(store, "PRIMARY/alice", 3, NOW)
    after = NOW + DURATION  # locked_until <= now: expired (the lock is [now, now + duration))
    assert store.record_failure("PRIMARY/alice", after) == LockState(1, NOW + DURATION)
    assert store.record_failure("PRIMARY/alice", after) == LockState(2, NOW + DURATION)
    assert store.record_failure("PRIMARY/alice", after) == LockState(0, after + 2 * DURATION)


def test_lockout_reset_clears_count_and_level(db: Database) -> None:
    store = _lockout(db, max_failures=3)
    _fail(store, "PRIMARY/alice", 3, NOW)  # level 1
    _fail(store, "PRIMARY/alice", 3, NOW + DURATION + 1)  # level 2
    store.reset("PRIMARY/alice")
    assert store.state("PRIMARY/alice") is None
    later = NOW + 10 * DURATION
    assert store.record_failure("PRIMARY/alice", later) == LockState(1, 0.0)
    assert _fail(store, "PRIMARY/alice", 2, later) == LockState(0, later + DURATION)  # back to 1x duration


def test_lockout_reset_of_one_key_keeps_others(db: Database) -> None:
    store = _lockout(db, max_failures=3)
    _fail(store, "PRIMARY/alice", 2, NOW)
    _fail(store, "PRIMARY/bob", 2, NOW)
    store.reset("PRIMARY/alice")
    assert store.state("PRIMARY/alice") is None
    assert store.state("PRIMARY/bob") == LockState(2, 0.0)


def test_lockout_reset_unknown_key_is_harmless(db: Database) -> None:
    _lockout(db).reset("PRIMARY/nobody")
    assert _lockout(db).state("PRIMARY/nobody") is None


def test_lockout_max_failures_one_locks_at_first_failure(db: Database) -> None:
    store = _lockout(db, max_failures=1)
    assert store.record_failure("PRIMARY/alice", NOW) == LockState(0, NOW + DURATION)
    assert store.state("PRIMARY/alice") == LockState(0, NOW + DURATION)
    assert _level(db, "PRIMARY/alice") == 1
    assert store.record_failure("PRIMARY/alice", NOW + 1) == LockState(0, NOW + DURATION)
    later = NOW + DURATION + 1
    assert store.record_failure("PRIMARY/alice", later) == LockState(0, later + 2 * DURATION)
    assert _level(db, "PRIMARY/alice") == 2


def _lockout_worker(path: Path, barrier: object, results: object, attempts: int) -> None:
    database = Database(path)
    store = SqliteLockoutStore(database, max_failures=5, duration=DURATION, max_duration=MAX_DURATION)
    barrier.wait()  # type: ignore[attr-defined]
    try:
        states = [store.record_failure("PRIMARY/victim", NOW) for _ in range(attempts)]
        results.put(("ok", [(s.failures, s.locked_until) for s in states]))  # type: ignore[attr-defined]
    except Exception as exc:
        results.put(("error", repr(exc)))  # type: ignore[attr-defined]
    finally:
        database.close()


def test_lockout_race_between_processes_locks_exactly_once(db_path: Path, db: Database) -> None:  # A03
    outcomes = _run_processes(_lockout_worker, db_path, processes=4, attempts=5)
    assert [kind for kind, _ in outcomes] == ["ok"] * 4, outcomes
    states = [state for _, per_process in outcomes for state in per_process]  # type: ignore[attr-defined]
    assert len(states) == 20
    # Exactly four failures counted before the lock, each count seen once; then 16 answers "locked".
    assert sorted(f for f, until in states if until == 0.0) == [1, 2, 3, 4]
    assert [s for s in states if s[1] != 0.0] == [(0, NOW + DURATION)] * 16
    assert _lockout(db).state("PRIMARY/victim") == LockState(0, NOW + DURATION)
    assert _level(db, "PRIMARY/victim") == 1


# --- threads (issue 12, item 1: a worker serves requests on several threads) -----------------------------------


def _in_thread(work: Callable[[], object]) -> object:
    results: list[object] = []
    thread = threading.Thread(target=lambda: results.append(work()))
    thread.start()
    thread.join(timeout=30)
    return results[0]


def test_a_transaction_in_one_thread_never_takes_in_another_threads_write(db_path: Path) -> None:
    """On one shared connection the second thread's INSERT would join the first thread's transaction and vanish
    with its ROLLBACK; with a connection per thread it waits for the lock like any other writer."""
    db = Database(db_path, busy_timeout_ms=100)
    db.conn.execute("BEGIN IMMEDIATE")
    db.conn.execute("INSERT INTO meta(key, value) VALUES ('first', '1')")

    def write() -> str:
        try:
            db.conn.execute("INSERT INTO meta(key, value) VALUES ('second', '2')")
        except sqlite3.OperationalError as exc:
            return str(exc)
        return "written"  # this thread's connection is closed by db.close() below (it closes every thread's)

    outcome = _in_thread(write)
    db.conn.execute("ROLLBACK")
    db.close()
    assert outcome == "database is locked"
