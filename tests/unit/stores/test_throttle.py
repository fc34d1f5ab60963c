"""Per-client failure throttling (catalogue A04): shared counters, window reset, exemptions, fail closed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sts import errors
from sts.netaddr import AddressSet
from sts.stores.sqlite import Database, initialize
from sts.stores.sqlite_stores import THROTTLE_PURGE_SECONDS, SqliteClientThrottle


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    initialize(tmp_path / "sts.db")
    with Database(tmp_path / "sts.db") as database:
        yield database


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
    with Database(tmp_path / "sts.db") as other:
        second = SqliteClientThrottle(other, limit=2, window=60)
        first.record_failure("192.0.2.9", 10.0)
        second.record_failure("192.0.2.9", 10.0)
        assert first.throttled("192.0.2.9", 11.0)


def test_exempt_addresses_and_disabled_limit(db: Database) -> None:
    throttle = SqliteClientThrottle(db, limit=1, window=60, exempt=AddressSet.parse(["127.0.0.1", "10.1.0.0/16"]))
    for exempt in ("127.0.0.1", "10.1.200.3"):
        assert throttle.record_failure(exempt, 1.0) == 0
        assert not throttle.throttled(exempt, 1.0)
    assert throttle.record_failure("10.2.0.1", 1.0) == 1
    disabled = SqliteClientThrottle(db, limit=0, window=60)
    assert disabled.record_failure("192.0.2.1", 1.0) == 0 and not disabled.throttled("192.0.2.1", 1.0)


def _throttle_rows(db: Database) -> int:
    return int(db.conn.execute("SELECT COUNT(*) FROM counters WHERE ns = 'throttle'").fetchone()[0])


def test_expired_windows_are_purged(db: Database) -> None:
    """One row per failing address must not stay forever (issue 12, item 16)."""
    throttle = SqliteClientThrottle(db, limit=3, window=60)
    for n in range(50):
        throttle.record_failure(f"192.0.2.{n}", 1000.0)
    assert _throttle_rows(db) == 50
    throttle.record_failure("198.51.100.1", 1000.0 + 60 + THROTTLE_PURGE_SECONDS)
    assert _throttle_rows(db) == 1  # only the live window is left
    assert throttle.throttled("198.51.100.1", 1000.0 + 61 + THROTTLE_PURGE_SECONDS) is False


def test_purge_keeps_live_windows_and_runs_at_most_once_per_period(db: Database) -> None:
    throttle = SqliteClientThrottle(db, limit=2, window=60)
    throttle.record_failure("192.0.2.1", 1000.0)  # first failure of the process: purges (nothing to purge)
    throttle.record_failure("192.0.2.2", 1030.0)
    throttle.record_failure("192.0.2.2", 1030.0)
    throttle.record_failure("192.0.2.3", 1059.0)  # 192.0.2.1 expired at 1060: not yet
    throttle.record_failure("192.0.2.4", 1061.0)  # a period after the first purge: purges again
    assert _throttle_rows(db) == 3  # 192.0.2.1 (expired at 1060) is gone
    assert throttle.throttled("192.0.2.2", 1061.0)  # a live window is untouched
    throttle.record_failure("192.0.2.5", 1095.0)  # 192.0.2.2 expired at 1090, but no purge before 1121
    assert _throttle_rows(db) == 4


def test_store_failure_fails_closed(tmp_path: Path) -> None:
    (tmp_path / "broken.db").write_bytes(b"not a database" * 100)
    throttle = SqliteClientThrottle(Database(tmp_path / "broken.db"), limit=3, window=60)
    with pytest.raises(errors.ServiceUnavailable):
        throttle.throttled("192.0.2.1", 1.0)
    with pytest.raises(errors.ServiceUnavailable):
        throttle.record_failure("192.0.2.1", 1.0)
