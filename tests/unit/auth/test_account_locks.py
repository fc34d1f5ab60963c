"""The lock states of one login: each key read once, failures on the accounts a store named, resets only where a
counter exists."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from sts.auth.account_locks import AccountLocks
from sts.auth.users import Principal
from sts.stores.base import LockState
from sts.stores.sqlite import Database, initialize
from sts.stores.sqlite_stores import SqliteLockoutStore

NOW = 1_800_000_000.0


class Counting(SqliteLockoutStore):
    """The SQLite lockout store, counting reads and resets."""

    reads: list[str]
    resets: list[str]

    def state(self, key: str) -> LockState | None:
        self.reads.append(key)
        return super().state(key)

    def reset(self, key: str) -> None:
        self.resets.append(key)
        super().reset(key)


@pytest.fixture
def lockout(tmp_path: Path) -> Iterator[Counting]:
    initialize(tmp_path / "sts.db")
    with Database(tmp_path / "sts.db") as db:
        store = Counting(db, max_failures=2, duration=300, max_duration=3600)
        store.reads, store.resets = [], []
        yield store


def test_the_typed_state_is_not_read_again_and_other_keys_once(lockout: Counting) -> None:
    locks = AccountLocks(lockout, NOW, "CORP/alice@corp.example", None)
    assert not locks.locked("CORP/alice@corp.example")
    assert not locks.locked("CORP/alice") and not locks.locked("CORP/alice")
    assert lockout.reads == ["CORP/alice"]


def test_failures_count_on_the_named_accounts_and_the_lock_is_logged_once(
    lockout: Counting, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="sts.auth"):
        AccountLocks(lockout, NOW, "CORP/alice@corp.example", None).record_failures(("CORP/alice",))
        AccountLocks(lockout, NOW, "CORP/alice", lockout.state("CORP/alice")).record_failures(())  # the typed key
    state = lockout.state("CORP/alice")
    assert state is not None and state.locked_until == NOW + 300
    assert lockout.state("CORP/alice@corp.example") is None
    assert [record.getMessage() for record in caplog.records] == ["account locked"]
    later = AccountLocks(lockout, NOW + 1, "CORP/alice", lockout.state("CORP/alice"))
    assert later.locked("CORP/alice")


def test_a_success_resets_only_counters_that_exist(lockout: Counting) -> None:
    alice = Principal("CORP", "alice", frozenset())
    AccountLocks(lockout, NOW, "CORP/alice", None).reset(alice)
    assert lockout.resets == []  # nothing to end: nothing written
    AccountLocks(lockout, NOW, "CORP/alice@corp.example", None).record_failures(("CORP/alice",))
    locks = AccountLocks(lockout, NOW, "CORP/alice@corp.example", None)
    assert not locks.locked("CORP/alice")  # the store asked about the account it found
    locks.reset(alice)
    assert lockout.resets == ["CORP/alice"] and lockout.state("CORP/alice") is None
