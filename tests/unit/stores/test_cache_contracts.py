"""The hot-state contracts of sts.stores.base, the same tests for every ``[cache]`` backend: SQLite (``local``) and a
real Redis (tests/servers/redis.py). Replay (W16-W18, O01), lockout (A03) and client throttling (A04) must mean
the same thing whichever backend holds them."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sts.clock import SystemClock
from sts.config.settings import CacheSettings
from sts.netaddr import AddressSet
from sts.stores.base import ClientThrottle, LockoutStore, LockState, ReplayCache
from sts.stores.redis.client import RedisConnection
from sts.stores.redis.stores import RedisClientThrottle, RedisLockoutStore, RedisReplayCache
from sts.stores.sqlite import Database, initialize
from sts.stores.sqlite_stores import SqliteClientThrottle, SqliteLockoutStore, SqliteReplayCache
from tests.servers.redis import RedisServer

NOW = 1_800_000_000.0
DURATION = 300
MAX_DURATION = 3600
RACERS = 50


@dataclass
class Backend:
    """Builds the stores of one backend; ``peer`` builds a second, independent connection (another worker/node)."""

    name: str
    replay: Callable[[], ReplayCache]
    lockout: Callable[[int], LockoutStore]
    throttle: Callable[[int, int, AddressSet | None], ClientThrottle]


def _sqlite_backend(path: Path, opened: list[Callable[[], None]]) -> Backend:
    initialize(path)

    def db() -> Database:
        database = Database(path)
        opened.append(database.close)
        return database

    return Backend(
        "sqlite",
        lambda: SqliteReplayCache(db()),
        lambda max_failures: SqliteLockoutStore(db(), max_failures, DURATION, MAX_DURATION),
        lambda limit, window, exempt: SqliteClientThrottle(db(), limit, window, exempt),
    )


def _redis_backend(server: RedisServer, opened: list[Callable[[], None]]) -> Backend:
    with server.client() as client:
        client.flushdb()

    def conn() -> RedisConnection:
        connection = RedisConnection(
            CacheSettings(backend="redis", url=server.url, max_connections=RACERS), SystemClock()
        )
        opened.append(connection.close)
        return connection

    return Backend(
        "redis",
        lambda: RedisReplayCache(conn(), window=None),
        lambda max_failures: RedisLockoutStore(conn(), max_failures, DURATION, MAX_DURATION),
        lambda limit, window, exempt: RedisClientThrottle(conn(), limit, window, exempt),
    )


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.integration)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    opened: list[Callable[[], None]] = []
    if request.param == "sqlite":
        built = _sqlite_backend(tmp_path / "sts.db", opened)
    else:
        built = _redis_backend(request.getfixturevalue("redis_server"), opened)
    yield built
    for close in opened:
        close()


def _fail(store: LockoutStore, key: str, times: int, now: float) -> LockState:
    state = LockState(0, 0.0)
    for _ in range(times):
        state = store.record_failure(key, now)
    return state


# --- replay ---------------------------------------------------------------------------------------------------


def test_replay_first_true_then_false(backend: Backend) -> None:  # W16
    cache = backend.replay()
    expires = time.time() + 360
    assert cache.check_and_add("wsse-nonce", b"nonce-1", expires) is True
    assert cache.check_and_add("wsse-nonce", b"nonce-1", expires) is False
    assert cache.check_and_add("wsse-nonce", b"nonce-2", expires) is True


def test_replay_same_value_other_namespace_is_new(backend: Backend) -> None:
    cache = backend.replay()
    expires = time.time() + 360
    assert cache.check_and_add("wsse-nonce", b"value", expires) is True
    assert cache.check_and_add("signature", b"value", expires) is True
    assert cache.check_and_add("signature", b"value", expires) is False


def test_replay_seen_by_another_connection(backend: Backend) -> None:  # W17: shared, not per worker or node
    expires = time.time() + 360
    assert backend.replay().check_and_add("wsse-nonce", b"shared", expires) is True
    assert backend.replay().check_and_add("wsse-nonce", b"shared", expires) is False


def test_replay_expired_entry_accepted_again(backend: Backend) -> None:  # O03
    cache = backend.replay()
    assert cache.check_and_add("wsse-nonce", b"old", time.time() - 1) is True
    assert cache.check_and_add("wsse-nonce", b"old", time.time() + 360) is True
    assert cache.check_and_add("wsse-nonce", b"old", time.time() + 360) is False


def test_replay_entry_expires_at_its_time(backend: Backend) -> None:
    cache = backend.replay()
    # A second of life: the replay below must come before it ends, which a 0.3 s life did not leave room for on a
    # busy machine (a write, or a Redis round trip, delayed that long).
    expires = time.time() + 1.0
    assert cache.check_and_add("wsse-nonce", b"short", expires) is True
    assert cache.check_and_add("wsse-nonce", b"short", time.time() + 360) is False
    time.sleep(max(0.0, expires - time.time()) + 0.1)
    assert cache.check_and_add("wsse-nonce", b"short", time.time() + 360) is True


def test_replay_race_exactly_one_of_fifty_wins(backend: Backend) -> None:  # W18, O01
    """50 threads, each with its own connection, submit one nonce at the same moment."""
    caches = [backend.replay() for _ in range(RACERS)]
    barrier = threading.Barrier(RACERS)
    results: list[bool | BaseException] = []
    expires = time.time() + 360

    def submit(cache: ReplayCache) -> None:
        barrier.wait(timeout=30)
        try:
            results.append(cache.check_and_add("wsse-nonce", b"the-same-nonce", expires))
        except BaseException as exc:  # reported by the assertion below, not lost in the thread
            results.append(exc)

    threads = [threading.Thread(target=submit, args=(cache,)) for cache in caches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(map(repr, results)) == ["False"] * (RACERS - 1) + ["True"]


# --- lockout --------------------------------------------------------------------------------------------------


def test_lockout_unknown_key_has_no_state(backend: Backend) -> None:
    assert backend.lockout(3).state("PRIMARY/nobody") is None


def test_lockout_failures_count_up_per_key(backend: Backend) -> None:
    store = backend.lockout(3)
    assert store.record_failure("PRIMARY/alice", NOW) == LockState(1, 0.0)
    assert store.state("PRIMARY/alice") == LockState(1, 0.0)
    assert store.record_failure("PRIMARY/alice", NOW + 1) == LockState(2, 0.0)
    assert store.record_failure("PRIMARY/bob", NOW) == LockState(1, 0.0)
    assert backend.lockout(3).state("PRIMARY/alice") == LockState(2, 0.0)  # seen through another connection


def test_lockout_locks_and_failures_while_locked_do_not_extend(backend: Backend) -> None:  # A03
    store = backend.lockout(3)
    _fail(store, "PRIMARY/alice", 2, NOW)
    assert store.record_failure("PRIMARY/alice", NOW + 10) == LockState(0, NOW + 10 + DURATION)
    for offset in (11, 100, DURATION + 9):
        assert store.record_failure("PRIMARY/alice", NOW + offset) == LockState(0, NOW + 10 + DURATION)
    assert store.state("PRIMARY/alice") == LockState(0, NOW + 10 + DURATION)


def test_lockout_periods_double_and_are_capped(backend: Backend) -> None:
    store = backend.lockout(3)
    now = NOW
    for level, duration in enumerate([DURATION, 2 * DURATION, 4 * DURATION, 8 * DURATION, MAX_DURATION], 1):
        assert _fail(store, "PRIMARY/alice", 2, now) == LockState(2, 0.0 if level == 1 else now - 1), level
        state = store.record_failure("PRIMARY/alice", now)
        assert state == LockState(0, now + duration), level
        now = state.locked_until + 1


def test_lockout_expired_lock_counts_from_zero(backend: Backend) -> None:
    store = backend.lockout(3)
    _fail(store, "PRIMARY/alice", 3, NOW)
    after = NOW + DURATION
    assert store.record_failure("PRIMARY/alice", after) == LockState(1, NOW + DURATION)
    assert store.record_failure("PRIMARY/alice", after) == LockState(2, NOW + DURATION)
    assert store.record_failure("PRIMARY/alice", after) == LockState(0, after + 2 * DURATION)


def test_lockout_reset_clears_count_and_level_of_that_key_only(backend: Backend) -> None:
    store = backend.lockout(3)
    _fail(store, "PRIMARY/alice", 3, NOW)
    _fail(store, "PRIMARY/alice", 3, NOW + DURATION + 1)  # level 2
    _fail(store, "PRIMARY/bob", 2, NOW)
    store.reset("PRIMARY/alice")
    store.reset("PRIMARY/nobody")
    assert store.state("PRIMARY/alice") is None
    assert store.state("PRIMARY/bob") == LockState(2, 0.0)
    later = NOW + 10 * DURATION
    assert _fail(store, "PRIMARY/alice", 3, later) == LockState(0, later + DURATION)  # back to 1x duration


def test_lockout_max_failures_one_locks_at_first_failure(backend: Backend) -> None:
    store = backend.lockout(1)
    assert store.record_failure("PRIMARY/alice", NOW) == LockState(0, NOW + DURATION)
    assert store.record_failure("PRIMARY/alice", NOW + 1) == LockState(0, NOW + DURATION)
    later = NOW + DURATION + 1
    assert store.record_failure("PRIMARY/alice", later) == LockState(0, later + 2 * DURATION)


def test_lockout_race_locks_exactly_once(backend: Backend) -> None:  # A03: concurrent failures, no lost update
    stores = [backend.lockout(5) for _ in range(4)]
    barrier = threading.Barrier(len(stores))
    states: list[LockState] = []

    def fail(store: LockoutStore) -> None:
        barrier.wait(timeout=30)
        states.extend(store.record_failure("PRIMARY/victim", NOW) for _ in range(5))

    threads = [threading.Thread(target=fail, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(s.failures for s in states if s.locked_until == 0.0) == [1, 2, 3, 4]
    assert [s for s in states if s.locked_until != 0.0] == [LockState(0, NOW + DURATION)] * 16


# --- client throttle ------------------------------------------------------------------------------------------


def test_throttle_limit_reached_within_the_window(backend: Backend) -> None:  # A04
    throttle = backend.throttle(3, 60, None)
    assert [throttle.record_failure("192.0.2.1", 1000.0) for _ in range(3)] == [1, 2, 3]
    assert throttle.throttled("192.0.2.1", 1001.0)
    assert backend.throttle(3, 60, None).throttled("192.0.2.1", 1001.0)  # shared
    assert not throttle.throttled("192.0.2.2", 1001.0)


def test_throttle_window_expiry_starts_a_new_count(backend: Backend) -> None:
    throttle = backend.throttle(3, 60, None)
    for _ in range(3):
        throttle.record_failure("192.0.2.1", 1000.0)
    assert throttle.throttled("192.0.2.1", 1059.0)
    assert not throttle.throttled("192.0.2.1", 1060.0)
    assert throttle.record_failure("192.0.2.1", 1061.0) == 1


def test_throttle_exempt_addresses_and_disabled_limit(backend: Backend) -> None:
    throttle = backend.throttle(1, 60, AddressSet.parse(["127.0.0.1", "10.1.0.0/16"]))
    for exempt in ("127.0.0.1", "10.1.200.3"):
        assert throttle.record_failure(exempt, 1.0) == 0
        assert not throttle.throttled(exempt, 1.0)
    assert throttle.record_failure("10.2.0.1", 1.0) == 1
    disabled = backend.throttle(0, 60, None)
    assert disabled.record_failure("192.0.2.1", 1.0) == 0 and not disabled.throttled("192.0.2.1", 1.0)
