"""Per-client failure throttling (catalogue A04): shared counters, window reset, exemptions, fail closed."""

from __future__ import annotations

from pathlib import Path

import pytest

from sts import errors
from sts.stores.sqlite import Database, initialize
from sts.stores.sqlite_stores import SqliteClientThrottle


@pytest.fixture
def db(tmp_path: Path) -> Database:
    initialize(tmp_path / "sts.db")
    return Database(tmp_path / "sts.db")


def test_limit_reached_within_the_window(db: Database) -> None:
    throttle = SqliteClientThrottle(db, limit=3, window=60)
    assert [throttle.record_failure("192.0.2.1", 1000.0) for _ in range(3)] == [1, 2, 3]
    assert throttle.throttled("192.0.2.1", 1001.0)
    assert not throttle.throttled("192.0.2.2", 1001.0)


def test_window_expiry_starts_a_new_count(db: Database) -> None:
    throttle = SqliteClientThrottle(db, limit=3, window=60)
    for _ in range(3):
        throttle.record_failure("192.0.2.1", 1000.0)
    assert not throttle.throttled("192.0.2.1", 1061.0)
    assert throttle.record_failure("192.0.2.1", 1061.0) == 1


def test_counts_are_shared_between_connections(db: Database, tmp_path: Path) -> None:
    first = SqliteClientThrottle(db, limit=2, window=60)
    second = SqliteClientThrottle(Database(tmp_path / "sts.db"), limit=2, window=60)
    first.record_failure("192.0.2.9", 10.0)
    second.record_failure("192.0.2.9", 10.0)
    assert first.throttled("192.0.2.9", 11.0)


def test_exempt_addresses_and_disabled_limit(db: Database) -> None:
    throttle = SqliteClientThrottle(db, limit=1, window=60, exempt=frozenset({"127.0.0.1"}))
    assert throttle.record_failure("127.0.0.1", 1.0) == 0
    assert not throttle.throttled("127.0.0.1", 1.0)
    disabled = SqliteClientThrottle(db, limit=0, window=60)
    assert disabled.record_failure("192.0.2.1", 1.0) == 0 and not disabled.throttled("192.0.2.1", 1.0)


def test_store_failure_fails_closed(tmp_path: Path) -> None:
    (tmp_path / "broken.db").write_bytes(b"not a database" * 100)
    throttle = SqliteClientThrottle(Database(tmp_path / "broken.db"), limit=3, window=60)
    with pytest.raises(errors.ServiceUnavailable):
        throttle.throttled("192.0.2.1", 1.0)
    with pytest.raises(errors.ServiceUnavailable):
        throttle.record_failure("192.0.2.1", 1.0)
