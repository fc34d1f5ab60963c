"""The SQLite token store: renew as one compare-and-set transaction, Cancel of a whole chain (issue 12, item 4)."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from sts.errors import ServiceUnavailable
from sts.stores.base import TokenRecord
from sts.stores.sqlite import Database, initialize
from sts.stores.sqlite_stores import SqliteTokenStore

FORK = multiprocessing.get_context("fork")
KEEP = time.time() + 3600


def record(token_id: str, chain: str = "") -> TokenRecord:
    return TokenRecord(
        token_id=token_id,
        subject="PRIMARY/bob",
        relying_party="https://rp.example.com/",
        token_type="urn:oasis:names:tc:SAML:2.0:assertion",
        not_before=0.0,
        not_on_or_after=KEEP,
        status="issued",
        renewable=True,
        renew_after_expiry=False,
        digest=f"digest-{token_id}",
        data=json.dumps({"chain": chain or token_id}),
    )


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


def statuses(store: SqliteTokenStore, *ids: str) -> list[str | None]:
    return [(r.status if (r := store.get(token_id)) else None) for token_id in ids]


def test_renew_retires_the_old_token_and_records_the_successor(db: Database) -> None:
    store = SqliteTokenStore(db)
    store.put(record("_a"), KEEP)
    assert store.renew("_a", record("_b", chain="_a"), KEEP) is True
    assert statuses(store, "_a", "_b") == ["renewed", "issued"]


@pytest.mark.parametrize("status", ["renewed", "cancelled"])
def test_renew_of_a_retired_token_writes_nothing(db: Database, status: str) -> None:
    store = SqliteTokenStore(db)
    store.put(replace(record("_a"), status=status), KEEP)
    assert store.renew("_a", record("_b", chain="_a"), KEEP) is False
    assert statuses(store, "_a", "_b") == [status, None]


def test_renew_of_an_unknown_token_writes_nothing(db: Database) -> None:
    store = SqliteTokenStore(db)
    assert store.renew("_gone", record("_b"), KEEP) is False
    assert store.get("_b") is None


def test_a_failed_insert_rolls_the_retirement_back(db: Database) -> None:
    store = SqliteTokenStore(db)
    store.put(record("_a"), KEEP)
    store.put(record("_taken"), KEEP)
    with pytest.raises(ServiceUnavailable):  # the successor's ID exists: the INSERT fails inside the transaction
        store.renew("_a", record("_taken", chain="_a"), KEEP)
    assert statuses(store, "_a") == ["issued"]  # never neither token live
    assert store.renew("_a", record("_b", chain="_a"), KEEP) is True


def test_cancel_ends_the_whole_chain_from_any_member(db: Database) -> None:
    store = SqliteTokenStore(db)
    store.put(record("_a"), KEEP)
    store.renew("_a", record("_b", chain="_a"), KEEP)
    store.renew("_b", record("_c", chain="_a"), KEEP)
    store.put(record("_other"), KEEP)
    assert store.cancel("_a") is True
    assert statuses(store, "_a", "_b", "_c", "_other") == ["cancelled", "cancelled", "cancelled", "issued"]
    assert store.renew("_c", record("_d", chain="_a"), KEEP) is False


def test_cancel_of_an_unknown_token_is_false(db: Database) -> None:
    store = SqliteTokenStore(db)
    store.put(record("_a"), KEEP)
    assert store.cancel("_nope") is False
    assert statuses(store, "_a") == ["issued"]


def test_cancel_uses_the_chain_index(db: Database) -> None:
    plan = db.conn.execute("EXPLAIN QUERY PLAN " + SqliteTokenStore._CANCEL, {"id": "_a"}).fetchall()  # noqa: SLF001
    assert any("tokens_chain" in str(row) for row in plan), plan


# --- races: exactly one renewal of one token, across processes and threads --------------------------------------


def _renew_in_threads(path: Path, barrier: object, results: object, worker: int, threads: int) -> None:
    database = Database(path)
    store = SqliteTokenStore(database)
    wins: list[bool] = []
    errors: list[str] = []

    def attempt(index: int) -> None:
        barrier.wait()  # type: ignore[attr-defined]
        try:
            wins.append(store.renew("_root", record(f"_w{worker}t{index}", chain="_root"), KEEP))
        except Exception as exc:  # report, do not hide, a failure in a thread
            errors.append(repr(exc))

    pool = [threading.Thread(target=attempt, args=(index,)) for index in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout=30)
    database.close()  # every thread's connection
    results.put((errors, sum(wins)))  # type: ignore[attr-defined]


def test_concurrent_renewals_across_processes_and_threads_exactly_one_wins(db_path: Path, db: Database) -> None:
    SqliteTokenStore(db).put(record("_root"), KEEP)
    processes, threads = 2, 10
    barrier = FORK.Barrier(processes * threads)
    results = FORK.Queue()
    children = [
        FORK.Process(target=_renew_in_threads, args=(db_path, barrier, results, worker, threads))
        for worker in range(processes)
    ]
    for child in children:
        child.start()
    outcomes = [results.get(timeout=60) for _ in children]
    for child in children:
        child.join(timeout=30)
        assert child.exitcode == 0
    assert [errors for errors, _ in outcomes] == [[], []], outcomes
    assert sum(wins for _, wins in outcomes) == 1
    rows = db.conn.execute("SELECT status, COUNT(*) FROM tokens GROUP BY status ORDER BY status").fetchall()
    assert rows == [("issued", 1), ("renewed", 1)]  # one successor, one retired token: one live token per chain


def test_each_thread_has_its_own_connection(db: Database) -> None:
    """A transaction on a connection shared by threads would take in the other threads' statements."""
    seen: list[sqlite3.Connection] = []
    thread = threading.Thread(target=lambda: seen.append(db.conn))
    thread.start()
    thread.join()
    assert seen[0] is not db.conn
