"""``build_stores(settings, clock)``: every shared store of one instance, from ``[store]``; and the schema checks.

This module is the only one that names a storage backend; the rest of the package sees the protocols of
:mod:`sts.stores.base`, the relying-party registry, the :class:`~sts.auth.router.UserStoreRouter` and, for
provisioning, :class:`~sts.auth.builtin_users.BuiltinUserStore`. ``[store] backend`` selects SQLite (everything in
the one database file ``sts init`` created) or PostgreSQL (shared by every node); the PostgreSQL modules, and with
them psycopg, are imported only when that backend is configured, so a single-host instance never loads them.

``[cache]`` chooses where the hot, expiring state lives (:func:`build_cache`): replay nonces, lockout and throttle
counters and the credential versions that invalidate every node's verified-credential cache. ``local`` keeps them in
the ``[store]`` database; ``redis`` in a Redis shared by several nodes (:mod:`sts.stores.redis`, imported only then).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sts.auth.builtin_users import BuiltinUserStore
from sts.auth.passwords import PasswordHasher
from sts.auth.router import UserStoreRouter
from sts.auth.sqlite_users import SqliteUserStore
from sts.auth.users import PRIMARY, UserStore
from sts.clock import Clock
from sts.config.settings import Settings, StoreSettings
from sts.config.user_stores import down_level_domains
from sts.crypto.secretbox import SecretBox
from sts.errors import ConfigError, ServiceUnavailable
from sts.netaddr import AddressSet
from sts.relying_parties.registry import RelyingPartyStore
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
from sts.stores.certificate_index import CertificateStore
from sts.stores.migrations import DatabaseError
from sts.stores.sqlite import Database, check_database
from sts.stores.sqlite import upgrade as sqlite_upgrade
from sts.stores.sqlite_relying_parties import SqliteRelyingPartyStore
from sts.stores.sqlite_stores import SqliteClientThrottle, SqliteLockoutStore, SqliteReplayCache, SqliteTokenStore
from sts.telemetry import timed
from sts.wss.timestamp import FreshnessPolicy

Probe = tuple[str, Callable[[], object]]


@dataclass(frozen=True, slots=True)
class Stores:
    """The shared state of one instance, each part behind its contract.

    ``tokens`` is None when ``[lifecycle] token_store`` is off (Issue only). ``builtin`` is the built-in user store
    (also behind ``users``), for provisioning. ``close`` releases the connections the stores opened in this
    process, every thread's: for tools and tests, and for a server worker as it exits. ``probes``: a cheap round
    trip to each store and directory behind them, by name, for ``GET /readyz``. The stores' method calls are timed
    into the current request's trace (:func:`sts.telemetry.timed`) as ``store`` or ``directory`` round trips.
    """

    replay: ReplayCache
    lockout: LockoutStore
    throttle: ClientThrottle
    versions: CredentialVersions
    accounts: AccountReader
    tokens: TokenStore | None
    relying_parties: RelyingPartyStore
    users: UserStoreRouter
    builtin: BuiltinUserStore
    close: Callable[[], None]
    # Client certificates registered to built-in users (sts user add-cert): X.509 client authentication.
    certificates: CertificateStore | None = None
    probes: tuple[Probe, ...] = field(default=())


def build_stores(settings: Settings, clock: Clock, hasher: PasswordHasher | None = None) -> Stores:
    """The stores of the configured backend, its schema checked first (:func:`check_schema`); ``hasher`` checks
    the built-in store's passwords, shared with the authenticator so that a failure that checked no password
    costs the same."""
    hasher = hasher or PasswordHasher()
    if settings.store.backend == "postgresql":
        return postgres_stores(settings, clock, hasher)
    return sqlite_stores(settings, clock, hasher)


def check_schema(store: StoreSettings) -> None:
    """Raise :class:`ConfigError` unless the database answers with the schema version this release runs on."""
    try:
        if store.backend == "postgresql":
            from sts.stores import postgres

            with postgres.PostgresDatabase(store) as db:
                postgres.check_schema(db)
        else:
            check_database(store.database)
    except DatabaseError as exc:
        raise ConfigError([_problem(store, exc)]) from None


def _problem(store: StoreSettings, exc: DatabaseError) -> str:
    """The problem as ``sts check-config`` lists it: prefixed with the setting it concerns."""
    text = str(exc)
    if text.startswith("store."):
        return text
    return f"store.{'url' if store.backend == 'postgresql' else 'database'}: {text}"


def upgrade_schema(store: StoreSettings) -> tuple[int, int]:
    """Apply the pending migrations of the configured database (``sts db upgrade``); the versions before and
    after. :class:`DatabaseError` when it cannot."""
    if store.backend == "postgresql":
        from sts.stores import postgres

        with postgres.PostgresDatabase(store) as db:
            return postgres.upgrade(db)
    if not store.database.is_file():
        raise DatabaseError(f"{store.database}: database not found (run `sts init`)")
    return sqlite_upgrade(store.database)


def _secret_box(store: StoreSettings) -> SecretBox | None:
    return SecretBox.from_file(store.credential_key) if store.credential_key.is_file() else None


@dataclass(frozen=True, slots=True)
class _Durable:
    """What one database backend supplies; :func:`_assemble` adds the ``[cache]``, the user-store router (with the
    ``[[user_stores]]`` directories), the timing wrappers and the readiness probes, the same for every backend."""

    builtin: BuiltinUserStore
    replay: ReplayCache
    lockout: LockoutStore
    throttle: ClientThrottle
    tokens: TokenStore | None
    relying_parties: RelyingPartyStore
    ping: Callable[[], None]
    close: Callable[[], None]


def _counter_settings(settings: Settings) -> tuple[tuple[int, int, int], tuple[int, int, AddressSet]]:
    """The lockout ``(max_failures, duration, max_duration)`` and throttle ``(limit, window, exempt)`` settings."""
    security, lockout = settings.security, settings.lockout
    return (
        (lockout.max_failures, lockout.duration, lockout.max_duration),
        (security.client_failure_limit, security.client_failure_window,
         AddressSet.parse(security.client_failure_exempt)),
    )


def _assemble(settings: Settings, clock: Clock, durable: _Durable) -> Stores:
    users = user_store_router(settings, timed(durable.builtin, "store"))
    cache = build_cache(settings, clock, local_cache(
        timed(durable.replay, "store"), timed(durable.lockout, "store"), timed(durable.throttle, "store")
    ))

    def close() -> None:
        cache.close()
        users.close()
        durable.close()

    return Stores(
        replay=cache.replay,
        lockout=cache.lockout,
        throttle=cache.throttle,
        versions=cache.versions,
        accounts=cache.accounts,
        tokens=timed(durable.tokens, "store") if durable.tokens is not None else None,
        relying_parties=timed(durable.relying_parties, "store"),
        users=users,
        builtin=durable.builtin,
        close=close,
        certificates=timed(durable.builtin.certificate_store, "store"),
        probes=(("store", durable.ping), *cache.probes, *directory_probes(users)),
    )


def sqlite_stores(settings: Settings, clock: Clock, hasher: PasswordHasher) -> Stores:
    """Every store in the instance's SQLite database (WAL mode, one connection per process and thread)."""
    store = settings.store
    check_schema(store)
    db = Database(store.database, store.busy_timeout_ms)
    lockout, throttle = _counter_settings(settings)
    return _assemble(settings, clock, _Durable(
        builtin=SqliteUserStore(db, hasher, _secret_box(store)),
        replay=SqliteReplayCache(db, clock),
        lockout=SqliteLockoutStore(db, *lockout),
        throttle=SqliteClientThrottle(db, *throttle),
        tokens=SqliteTokenStore(db, clock) if settings.lifecycle.token_store else None,
        relying_parties=SqliteRelyingPartyStore(db),
        ping=db.ping,
        close=db.close,
    ))


def postgres_stores(settings: Settings, clock: Clock, hasher: PasswordHasher) -> Stores:
    """Every store in the shared PostgreSQL database (a pool per process, opened on first use after fork)."""
    from sts.auth.postgres_users import PostgresUserStore
    from sts.stores.postgres import PostgresDatabase
    from sts.stores.postgres_relying_parties import PostgresRelyingPartyStore
    from sts.stores.postgres_stores import (
        PostgresClientThrottle,
        PostgresLockoutStore,
        PostgresReplayCache,
        PostgresTokenStore,
    )

    store = settings.store
    check_schema(store)  # on a connection of its own, closed before gunicorn forks the workers
    try:
        db = PostgresDatabase(store)
    except DatabaseError as exc:
        raise ConfigError([_problem(store, exc)]) from None
    lockout, throttle = _counter_settings(settings)
    return _assemble(settings, clock, _Durable(
        builtin=PostgresUserStore(db, hasher, _secret_box(store)),
        replay=PostgresReplayCache(db, clock),
        lockout=PostgresLockoutStore(db, *lockout),
        throttle=PostgresClientThrottle(db, *throttle),
        tokens=PostgresTokenStore(db, clock) if settings.lifecycle.token_store else None,
        relying_parties=PostgresRelyingPartyStore(db),
        ping=db.ping,
        close=db.close,
    ))


@dataclass(frozen=True, slots=True)
class CacheStores:
    """The hot state of one instance (``[cache]``); ``close`` releases only what the cache itself opened."""

    replay: ReplayCache
    lockout: LockoutStore
    throttle: ClientThrottle
    versions: CredentialVersions
    accounts: AccountReader
    close: Callable[[], None]
    probes: tuple[Probe, ...] = ()  # readiness: the cache's own server, when it has one


def local_cache(replay: ReplayCache, lockout: LockoutStore, throttle: ClientThrottle) -> CacheStores:
    """``[cache] backend = "local"``: the hot state in the ``[store]`` database; no shared credential versions
    (cached logins expire by their TTL)."""
    versions = LocalCredentialVersions()
    return CacheStores(
        replay, lockout, throttle, versions, SeparateAccountReader(lockout, versions), close=lambda: None
    )


def build_cache(settings: Settings, clock: Clock, local: CacheStores) -> CacheStores:
    """The hot state of the configured ``[cache]``: ``local`` (built over the ``[store]`` database), or Redis.
    Raises :class:`ConfigError` for an unusable ``[cache]``."""
    if settings.cache.backend != "redis":
        return local
    # Imported here: a single host never loads redis-py (docs/decisions/postgresql-redis-clients.md).
    from sts.stores.redis.client import RedisConnection
    from sts.stores.redis.stores import (
        RedisClientThrottle,
        RedisCredentialVersions,
        RedisLockoutStore,
        RedisReplayCache,
    )

    security, lockout = settings.security, settings.lockout
    conn = RedisConnection(settings.cache, clock)
    versions = timed(RedisCredentialVersions(conn), "cache")
    return CacheStores(
        # The nonce window of the authenticator: a nonce is kept as long as its Created could be accepted.
        replay=timed(RedisReplayCache(conn, window=FreshnessPolicy(
            security.timestamp_ttl, security.timestamp_future_ttl).replay_window), "cache"),
        lockout=timed(RedisLockoutStore(conn, lockout.max_failures, lockout.duration, lockout.max_duration), "cache"),
        throttle=timed(RedisClientThrottle(
            conn,
            security.client_failure_limit,
            security.client_failure_window,
            AddressSet.parse(security.client_failure_exempt),
        ), "cache"),
        versions=versions,
        accounts=versions,  # the lock state and the version in one round trip
        close=conn.close,
        probes=(("cache", conn.ping),),
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


def user_store_router(settings: Settings, builtin: UserStore) -> UserStoreRouter:
    """Each ``[[user_stores]]`` directory owns its domain; the built-in store owns every other domain (domains
    are labels on its users). Directory connections open lazily, in the worker that uses them."""
    directories: dict[str, UserStore] = {}
    if any(store.is_directory for store in settings.user_stores):
        # python-ldap is the optional extra wstrust-sts[ldap]: imported only when a directory is configured.
        from sts.auth.directory_store import DirectoryUserStore

        directories = {
            s.domain_name: timed(DirectoryUserStore(s), "directory") for s in settings.user_stores if s.is_directory
        }
    chain: list[str] = []
    if settings.security.unqualified_login == "chain":
        chain = [PRIMARY] + [s.domain_name for s in settings.user_stores if s.domain_name != PRIMARY]
    return UserStoreRouter(
        directories, fallback=builtin, chain=chain, down_level=down_level_domains(settings.user_stores)
    )


def directory_probes(users: UserStoreRouter) -> list[Probe]:
    """A readiness probe per directory user store: one round trip each (``ping``)."""
    probes: list[Probe] = []
    for domain, store in users.directories.items():
        ping = getattr(store, "ping", None)
        if callable(ping):
            probes.append((f"directory {domain}", ping))
    return probes
