"""Tests for sts.stores.factory.build_stores: every shared store of an instance from ``[store]``, on one clock."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sts.auth.passwords import HashPolicy, PasswordHasher
from sts.auth.sqlite_users import SqliteUserStore
from sts.auth.users import PRIMARY, DigestSecret, Principal
from sts.clock import FrozenClock
from sts.config.settings import (
    CacheSettings,
    LifecycleSettings,
    LockoutSettings,
    SecuritySettings,
    Settings,
    StoreSettings,
)
from sts.crypto.secretbox import SecretBox, generate_key_file
from sts.errors import ConfigError
from sts.relying_parties.model import RelyingParty
from sts.relying_parties.registry import RelyingPartyRegistry
from sts.stores.base import TokenRecord
from sts.stores.factory import Stores, build_stores
from sts.stores.sqlite import Database, initialize
from sts.telemetry import unwrap
from tests.servers.redis import RedisServer
from tests.unit.stores.backends import settings_with, store_settings

FAST = PasswordHasher(HashPolicy(memory_kib=1024, time_cost=1))
# Years away from the wall clock: a store that read the wall clock instead of this one would be seen doing it.
FROZEN = datetime(2041, 3, 4, 5, 6, 7, tzinfo=UTC)


def _settings(tmp_path: Path, token_store: bool = True) -> Settings:
    return Settings(
        config_path=tmp_path / "sts.toml",
        store=StoreSettings(database=tmp_path / "sts.db", credential_key=tmp_path / "credentials.key"),
        lifecycle=LifecycleSettings(token_store=token_store),
        lockout=LockoutSettings(max_failures=2, duration=60, max_duration=600),
        security=SecuritySettings(client_failure_limit=1, client_failure_exempt=()),
    )


@pytest.fixture
def instance(tmp_path: Path) -> Path:
    initialize(tmp_path / "sts.db")
    generate_key_file(tmp_path / "credentials.key")
    return tmp_path


@pytest.fixture
def stores(instance: Path) -> Iterator[Stores]:
    built = build_stores(_settings(instance), FrozenClock(FROZEN), FAST)
    yield built
    built.close()


def test_users_are_those_of_the_database_with_the_credential_key(instance: Path, stores: Stores) -> None:
    db = Database(instance / "sts.db")
    try:
        provisioning = SqliteUserStore(db, FAST, SecretBox.from_file(instance / "credentials.key"))
        provisioning.add_role("admin")
        provisioning.add_user("PARTNER", "ann", "pw-ann", roles=["admin"], digest=True)
    finally:
        db.close()
    principal = stores.users.authenticate("PARTNER", "ann", "pw-ann")
    assert isinstance(principal, Principal) and principal.qualified_name == "PARTNER/ann"
    secret = stores.users.digest_secret("PARTNER", "ann")
    assert isinstance(secret, DigestSecret) and secret.secret == "pw-ann"  # sealed and opened with the same key
    assert stores.users.lookup(PRIMARY, "ann") is None


def test_replay_cache_expires_entries_on_the_given_clock(instance: Path) -> None:
    clock = FrozenClock(FROZEN)
    stores = build_stores(_settings(instance), clock, FAST)
    try:
        expires = (FROZEN + timedelta(seconds=10)).timestamp()
        assert stores.replay.check_and_add("wsse-nonce", b"n", expires) is True
        assert stores.replay.check_and_add("wsse-nonce", b"n", expires) is False
        clock.advance(10)  # the entry's time has come on this clock (the wall clock is years before it)
        assert stores.replay.check_and_add("wsse-nonce", b"n", expires + 10) is True
    finally:
        stores.close()


def test_counters_follow_the_settings(stores: Stores) -> None:
    now = FROZEN.timestamp()
    assert stores.lockout.record_failure("PRIMARY/bob", now).locked_until == 0
    assert stores.lockout.record_failure("PRIMARY/bob", now).locked_until == now + 60  # [lockout] 2 failures, 60 s
    assert stores.throttle.record_failure("192.0.2.1", now) == 1
    assert stores.throttle.throttled("192.0.2.1", now)  # [security] client_failure_limit = 1


def test_tokens_and_relying_parties_share_the_database(instance: Path, stores: Stores) -> None:
    assert stores.tokens is not None
    record = TokenRecord("_t1", "PRIMARY/bob", "https://rp.example/", "saml2", 0.0, 1.0, "issued", False, False,
                         "d", "{}")
    stores.tokens.put(record, FROZEN.timestamp() + 60)
    assert stores.tokens.get("_t1") == record
    registry = RelyingPartyRegistry(stores.relying_parties)
    registry.add(RelyingParty(address="https://rp.example/", encrypt=False))
    assert [rp.address for rp in registry.all()] == ["https://rp.example/"]
    db = Database(instance / "sts.db")
    try:
        assert db.conn.execute("SELECT COUNT(*) FROM tokens").fetchone()[0] == 1
    finally:
        db.close()


def test_no_token_store_when_the_lifecycle_bindings_keep_none(instance: Path) -> None:
    stores = build_stores(_settings(instance, token_store=False), FrozenClock(FROZEN))
    assert stores.tokens is None
    stores.close()


def test_a_missing_database_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        build_stores(_settings(tmp_path), FrozenClock(FROZEN))
    assert caught.value.problems == [f"store.database: {tmp_path / 'sts.db'}: database not found (run `sts init`)"]


# --- [cache] ----------------------------------------------------------------------------------------------------


def test_local_cache_is_the_database_and_never_loads_redis(instance: Path) -> None:
    """A single host on SQLite does not pay for redis-py (checked in a fresh interpreter: the test servers load it)."""
    script = (
        "import sys; from pathlib import Path; from sts.clock import SystemClock;"
        "from sts.config.settings import Settings, StoreSettings; from sts.stores.factory import build_stores;"
        f"base = Path({str(instance)!r});"
        "store = StoreSettings(database=base / 'sts.db', credential_key=base / 'x');"
        "settings = Settings(base / 'sts.toml', store=store);"
        "stores = build_stores(settings, SystemClock());"
        "from sts.telemetry import unwrap;"
        "print(type(unwrap(stores.replay)).__name__, type(unwrap(stores.versions)).__name__); stores.close();"
        "print('redis' in sys.modules)"
    )
    root = Path(__file__).resolve().parents[3]
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=root).stdout
    assert out.split() == ["SqliteReplayCache", "LocalCredentialVersions", "False"]


def test_redis_cache_without_url_is_a_config_error(instance: Path) -> None:
    settings = dataclasses.replace(_settings(instance), cache=CacheSettings(backend="redis"))
    with pytest.raises(ConfigError) as caught:
        build_stores(settings, FrozenClock(FROZEN), FAST)
    assert caught.value.problems == ['cache.url: required with backend = "redis" (redis://HOST:PORT/DB or rediss://…)']


@pytest.mark.integration
def test_redis_cache_holds_the_hot_state(instance: Path, redis_server: RedisServer) -> None:
    settings = dataclasses.replace(_settings(instance), cache=CacheSettings(backend="redis", url=redis_server.url))
    with redis_server.client() as client:
        client.flushdb()
    built = build_stores(settings, FrozenClock(FROZEN), FAST)
    try:
        assert [type(unwrap(s)).__name__ for s in (built.replay, built.lockout, built.throttle, built.versions)] == [
            "RedisReplayCache", "RedisLockoutStore", "RedisClientThrottle", "RedisCredentialVersions"
        ]
        assert built.accounts is built.versions  # one round trip for lock state and version
        # The frozen clock is the one the replay window is measured on; lockout settings are [lockout]'s.
        expires = FROZEN.timestamp() + 360
        assert built.replay.check_and_add("wsse-nonce", b"n", expires) is True
        assert built.replay.check_and_add("wsse-nonce", b"n", expires) is False
        assert [built.lockout.record_failure("PRIMARY/x", 1000.0).locked_until for _ in range(2)] == [0.0, 1060.0]
        assert built.throttle.record_failure("192.0.2.1", 1000.0) == 1
        assert built.throttle.throttled("192.0.2.1", 1000.0)  # client_failure_limit = 1
    finally:
        built.close()


@pytest.mark.integration
def test_postgresql_store_with_redis_cache(
    tmp_path: Path, redis_server: RedisServer, request: pytest.FixtureRequest
) -> None:
    """Several nodes' set-up: durable state on PostgreSQL, hot state in Redis."""
    store = store_settings(tmp_path, "postgresql", request.getfixturevalue("postgres_database"))
    settings = settings_with(tmp_path, store, cache=CacheSettings(backend="redis", url=redis_server.url))
    with redis_server.client() as client:
        client.flushdb()
    built = build_stores(settings, FrozenClock(FROZEN), FAST)
    try:
        assert [type(unwrap(s)).__name__ for s in (built.replay, built.lockout, built.throttle, built.tokens)] == [
            "RedisReplayCache", "RedisLockoutStore", "RedisClientThrottle", "PostgresTokenStore"
        ]
        assert built.lockout.record_failure("PRIMARY/x", 1000.0).failures == 1
    finally:
        built.close()
