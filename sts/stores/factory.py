"""``build_stores(settings, clock)``: every shared store of one instance, from ``[store]``.

This module is the only one that names a storage backend; the rest of the package sees the protocols of
:mod:`sts.stores.base`, the relying-party registry and the :class:`~sts.auth.router.UserStoreRouter`. Another
backend (PostgreSQL, Redis) is one new module implementing those protocols, a function like :func:`sqlite_stores`
here and the ``[store]`` key that selects it; nothing else in the tree changes. The SQLite backend keeps
everything in the one database file ``sts init`` created.

``[cache]`` chooses where the hot, expiring state lives (:func:`build_cache`): replay nonces, lockout and throttle
counters and the credential versions that invalidate every node's verified-credential cache. ``local`` keeps them in
the ``[store]`` database; ``redis`` in a Redis shared by several nodes (:mod:`sts.stores.redis`, imported only then).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sts.auth.passwords import PasswordHasher
from sts.auth.router import UserStoreRouter
from sts.auth.sqlite_users import SqliteUserStore
from sts.clock import Clock
from sts.config.settings import Settings
from sts.crypto.secretbox import SecretBox
from sts.errors import ConfigError, ServiceUnavailable
from sts.netaddr import AddressSet
from sts.stores.base import (
    AccountReader,
    ClientThrottle,
    CredentialVersions,
    LocalCredentialVersions,
    LockoutStore,
    ReplayCache,
    SeparateAccountReader,
    TokenStore,
)
from sts.stores.sqlite import Database, DatabaseError, check_database
from sts.stores.sqlite_relying_parties import SqliteRelyingPartyStore
from sts.stores.sqlite_stores import SqliteClientThrottle, SqliteLockoutStore, SqliteReplayCache, SqliteTokenStore


@dataclass(frozen=True, slots=True)
class Stores:
    """The shared state of one instance, each part behind its contract.

    ``tokens`` is None when ``[lifecycle] token_store`` is off (Issue only). ``close`` releases the connections
    the stores opened in this process, every thread's: for tools and tests, and for a server worker as it exits.
    """

    replay: ReplayCache
    lockout: LockoutStore
    throttle: ClientThrottle
    versions: CredentialVersions
    accounts: AccountReader
    tokens: TokenStore | None
    relying_parties: SqliteRelyingPartyStore
    users: UserStoreRouter
    close: Callable[[], None]


def build_stores(settings: Settings, clock: Clock, hasher: PasswordHasher | None = None) -> Stores:
    """The stores of the configured backend (SQLite, the one backend so far); ``hasher`` checks the built-in
    store's passwords, shared with the authenticator so that a failure that checked no password costs the same."""
    return sqlite_stores(settings, clock, hasher or PasswordHasher())


def sqlite_stores(settings: Settings, clock: Clock, hasher: PasswordHasher) -> Stores:
    """Every store in the instance's SQLite database (WAL mode, one connection per process and thread); the
    hot state there too, or in Redis (``[cache]``)."""
    store = settings.store
    try:
        check_database(store.database)
    except DatabaseError as exc:
        raise ConfigError([f"store.database: {exc}"]) from None
    db = Database(store.database, store.busy_timeout_ms)
    cache = build_cache(settings, clock, db)
    box = SecretBox.from_file(store.credential_key) if store.credential_key.is_file() else None

    def close() -> None:
        cache.close()
        db.close()

    return Stores(
        replay=cache.replay,
        lockout=cache.lockout,
        throttle=cache.throttle,
        versions=cache.versions,
        accounts=cache.accounts,
        tokens=SqliteTokenStore(db, clock) if settings.lifecycle.token_store else None,
        relying_parties=SqliteRelyingPartyStore(db),
        # Domains are labels on the built-in store's users: it owns every domain.
        users=UserStoreRouter.single(SqliteUserStore(db, hasher, box)),
        close=close,
    )


@dataclass(frozen=True, slots=True)
class CacheStores:
    """The hot state of one instance (``[cache]``); ``close`` releases only what the cache itself opened."""

    replay: ReplayCache
    lockout: LockoutStore
    throttle: ClientThrottle
    versions: CredentialVersions
    accounts: AccountReader
    close: Callable[[], None]


def build_cache(settings: Settings, clock: Clock, db: Database) -> CacheStores:
    """The replay cache, counters and credential versions of the configured ``[cache]`` backend; ``local`` keeps
    them in ``db`` (the ``[store]`` database). Raises :class:`ConfigError` for an unusable ``[cache]``."""
    if settings.cache.backend == "redis":
        return _redis_cache(settings, clock)
    security, lockout = settings.security, settings.lockout
    exempt = AddressSet.parse(security.client_failure_exempt)
    lockouts = SqliteLockoutStore(db, lockout.max_failures, lockout.duration, lockout.max_duration)
    versions = LocalCredentialVersions()
    return CacheStores(
        replay=SqliteReplayCache(db, clock),
        lockout=lockouts,
        throttle=SqliteClientThrottle(db, security.client_failure_limit, security.client_failure_window, exempt),
        versions=versions,
        accounts=SeparateAccountReader(lockouts, versions),
        close=lambda: None,  # the database belongs to the caller
    )


def _redis_cache(settings: Settings, clock: Clock) -> CacheStores:
    # Imported here: a single host on SQLite never loads redis-py (docs/decisions/postgresql-redis-clients.md).
    from sts.stores.redis.client import RedisConnection
    from sts.stores.redis.stores import (
        RedisClientThrottle,
        RedisCredentialVersions,
        RedisLockoutStore,
        RedisReplayCache,
    )

    security, lockout = settings.security, settings.lockout
    conn = RedisConnection(settings.cache, clock)
    versions = RedisCredentialVersions(conn)
    return CacheStores(
        # The nonce window of the authenticator: a nonce is kept as long as its Created could be accepted.
        replay=RedisReplayCache(conn, window=security.timestamp_ttl + security.timestamp_future_ttl),
        lockout=RedisLockoutStore(conn, lockout.max_failures, lockout.duration, lockout.max_duration),
        throttle=RedisClientThrottle(
            conn,
            security.client_failure_limit,
            security.client_failure_window,
            AddressSet.parse(security.client_failure_exempt),
        ),
        versions=versions,
        accounts=versions,
        close=conn.close,
    )


def check_cache(settings: Settings, clock: Clock) -> list[str]:
    """Problems of the configured ``[cache]``, for ``sts check-config``: its settings, and whether Redis answers."""
    if settings.cache.backend != "redis":
        return []
    from sts.stores.redis.client import RedisConnection

    try:
        conn = RedisConnection(settings.cache, clock)
    except ConfigError as exc:
        return exc.problems
    try:
        conn.ping()
    except ServiceUnavailable as exc:
        return [f"cache: Redis does not answer ({exc.detail})"]
    finally:
        conn.close()
    return []
