"""``build_stores(settings, clock)``: every shared store of one instance, from ``[store]``.

This module is the only one that names a storage backend; the rest of the package sees the protocols of
:mod:`sts.stores.base`, the relying-party registry and the :class:`~sts.auth.router.UserStoreRouter`. Another
backend (PostgreSQL, Redis) is one new module implementing those protocols, a function like :func:`sqlite_stores`
here and the ``[store]`` key that selects it; nothing else in the tree changes. The SQLite backend keeps
everything in the one database file ``sts init`` created.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sts.auth.passwords import PasswordHasher
from sts.auth.router import UserStoreRouter
from sts.auth.sqlite_users import SqliteUserStore
from sts.auth.users import PRIMARY, UserStore
from sts.clock import Clock
from sts.config.settings import Settings
from sts.crypto.secretbox import SecretBox
from sts.errors import ConfigError
from sts.netaddr import AddressSet
from sts.stores.base import ClientThrottle, LockoutStore, ReplayCache, TokenStore
from sts.stores.sqlite import Database, DatabaseError, check_database
from sts.stores.sqlite_certificates import SqliteCertificateStore
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
    tokens: TokenStore | None
    relying_parties: SqliteRelyingPartyStore
    users: UserStoreRouter
    close: Callable[[], None]
    # Client certificates registered to built-in users (sts user add-cert): X.509 client authentication.
    certificates: SqliteCertificateStore | None = None


def build_stores(settings: Settings, clock: Clock, hasher: PasswordHasher | None = None) -> Stores:
    """The stores of the configured backend (SQLite, the one backend so far); ``hasher`` checks the built-in
    store's passwords, shared with the authenticator so that a failure that checked no password costs the same."""
    return sqlite_stores(settings, clock, hasher or PasswordHasher())


def sqlite_stores(settings: Settings, clock: Clock, hasher: PasswordHasher) -> Stores:
    """Every store in the instance's SQLite database (WAL mode, one connection per process and thread)."""
    store = settings.store
    try:
        check_database(store.database)
    except DatabaseError as exc:
        raise ConfigError([f"store.database: {exc}"]) from None
    db = Database(store.database, store.busy_timeout_ms)
    security, lockout = settings.security, settings.lockout
    box = SecretBox.from_file(store.credential_key) if store.credential_key.is_file() else None
    users = user_store_router(settings, SqliteUserStore(db, hasher, box))

    def close() -> None:
        users.close()
        db.close()

    return Stores(
        replay=SqliteReplayCache(db, clock),
        lockout=SqliteLockoutStore(db, lockout.max_failures, lockout.duration, lockout.max_duration),
        throttle=SqliteClientThrottle(
            db,
            security.client_failure_limit,
            security.client_failure_window,
            AddressSet.parse(security.client_failure_exempt),
        ),
        tokens=SqliteTokenStore(db, clock) if settings.lifecycle.token_store else None,
        relying_parties=SqliteRelyingPartyStore(db),
        users=users,
        close=close,
        certificates=SqliteCertificateStore(db),
    )


def user_store_router(settings: Settings, builtin: UserStore) -> UserStoreRouter:
    """Each ``[[user_stores]]`` directory owns its domain; the built-in store owns every other domain (domains
    are labels on its users). Directory connections open lazily, in the worker that uses them."""
    directories: dict[str, UserStore] = {}
    if any(store.is_directory for store in settings.user_stores):
        # python-ldap is the optional extra wstrust-sts[ldap]: imported only when a directory is configured.
        from sts.auth.directory_store import DirectoryUserStore

        directories = {s.domain_name: DirectoryUserStore(s) for s in settings.user_stores if s.is_directory}
    chain: list[str] = []
    if settings.security.unqualified_login == "chain":
        chain = [PRIMARY] + [s.domain_name for s in settings.user_stores if s.domain_name != PRIMARY]
    return UserStoreRouter(directories, fallback=builtin, chain=chain)

