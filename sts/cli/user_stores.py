"""``sts user-store list|test``, and the directory side of ``sts user``: directory users are shown, never written.

``sts user-store test DOMAIN`` is what an operator runs after pasting a WSO2 user-store block: it connects with
the store's settings, binds as the service account, and with ``--user`` finds the user and prints its DN, roles and
the claims it would release, and (with ``--password-stdin``) whether the password binds.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, TypeVar

from sts.auth.users import Principal, Refusal, UserStoreError, canonical, normalize_user_name
from sts.cli.common import CommandError, SubParsers, read_secret, settings_from
from sts.clock import SystemClock
from sts.config.settings import Settings
from sts.config.user_stores import UserStoreSettings
from sts.errors import ConfigError, ServiceUnavailable

if TYPE_CHECKING:  # python-ldap is an optional extra: imported only when a directory is used
    from sts.auth.directory_store import DirectoryUserStore
    from sts.stores.factory import Stores

_T = TypeVar("_T")


def register(commands: SubParsers) -> None:
    """Add the ``user-store`` command group."""
    group = commands.add_parser("user-store", help="list and test user stores (LDAP, Active Directory)",
                                description=__doc__)
    sub = group.add_subparsers(dest="user_store_command", metavar="ACTION", required=True)
    sub.add_parser("list", help="list the user-store domains").set_defaults(handler=_list)
    test = sub.add_parser("test", help="connect to a directory store, find a user, try a password")
    test.add_argument("domain", help="the store's domain_name")
    test.add_argument("--user", metavar="NAME", help="a user to look up (as typed at login)")
    test.add_argument("--password-stdin", action="store_true", help="read the user's password from stdin and bind")
    test.set_defaults(handler=_test)


def directory_settings(settings: Settings, domain: str) -> UserStoreSettings | None:
    """The directory store owning ``domain``, if a directory owns it."""
    for store in settings.user_stores:
        if store.domain_name == domain and store.is_directory:
            return store
    return None


def refuse_directory_write(settings: Settings, domain: str) -> None:
    """Raise the clear error for a write command aimed at a read-only directory domain."""
    store = directory_settings(settings, domain)
    if store is not None:
        raise CommandError(
            f"user store {domain} is a read-only directory ({store.type.value}): change its users and groups in"
            " the directory itself (only `sts user show` and `sts user unlock` work on them)"
        )


def show_directory_user(settings: Settings, domain: str, name: str) -> str:
    """``sts user show DOMAIN/name`` for a directory user: what the directory holds now, and the local lock."""
    store = directory_settings(settings, domain)
    if store is None:
        raise CommandError(f"no directory user store for domain {domain}")
    with _directory(store) as directory:
        found = _call(lambda: directory.find(name))
    if found is None:
        raise CommandError(f"no user {domain}/{name} in the directory")
    lines = [f"dn:       {found.dn}", *_principal_lines(found.principal, found.refusal)]
    lock = _lock_line(settings, domain, name)
    return "\n".join(lines[:3] + lock + lines[3:])


def unlock_directory_user(settings: Settings, domain: str, name: str) -> str:
    """Clear the STS's own lock of a directory user (the directory's lockout is the directory's)."""
    stores = _stores(settings)
    try:
        stores.lockout.reset(f"{domain}/{canonical(name)}")
    finally:
        stores.close()
    return f"unlocked {domain}/{name}"


def _list(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    print("DOMAIN        TYPE              CONNECTION")
    configured = {store.domain_name for store in settings.user_stores}
    for store in settings.user_stores:
        where = " ".join(store.connection_url) if store.is_directory else str(settings.store.database)
        print(f"{store.domain_name:<13} {store.type.value:<17} {where}")
    if "PRIMARY" not in configured:
        print(f"{'PRIMARY':<13} {'sqlite':<17} {settings.store.database}")
    print(f"(every other domain: the built-in store; unqualified logins: {settings.security.unqualified_login})")
    return 0


def _test(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    domain = args.domain.upper()
    store = directory_settings(settings, domain)
    if store is None:
        raise CommandError(f"no directory user store for domain {domain} (see `sts user-store list`)")
    password = read_secret("password: ", args.password_stdin) if args.password_stdin else None
    if password is not None and not args.user:
        raise CommandError("--password-stdin needs --user")
    with _directory(store) as directory:
        url = _call(directory.service_bind)
        print(f"connected: {url} (bound as {store.connection_name})")
        if not args.user:
            return 0
        return _test_user(directory, store, args.user, password)


def _test_user(directory: DirectoryUserStore, store: UserStoreSettings, typed: str, password: str | None) -> int:
    try:
        name = normalize_user_name(typed)
    except UserStoreError as exc:
        raise CommandError(str(exc)) from None
    found = _call(lambda: directory.find(name))
    if found is None:
        print(f"user:     no single entry matches {store.user_name_search_filter} for {name!r}")
        return 1
    print(f"dn:       {found.dn}")
    for line in _principal_lines(found.principal, found.refusal):
        print(line)
    absent = _unmapped(store, found.principal)
    if absent:
        print(f"absent:   {', '.join(absent)} (mapped to claims, not on this entry)")
    if password is None:
        return 0
    verdict = _call(lambda: directory.authenticate(store.domain_name, name, password))
    if isinstance(verdict, Refusal):
        print(f"password: refused ({verdict.reason})")
        return 1
    print("password: binds")
    return 0


def _principal_lines(principal: Principal, refusal: str | None) -> list[str]:
    lines = [
        f"user:     {principal.qualified_name}",
        f"enabled:  {'yes' if refusal is None else 'no (' + refusal + ')'}",
        f"roles:    {', '.join(sorted(principal.roles)) or '-'}",
    ]
    claims = sorted(principal.claims.items())
    return lines + [f"claim:    {uri} = {value}" for uri, values in claims for value in values]


def _unmapped(store: UserStoreSettings, principal: Principal) -> list[str]:
    return sorted(attr for uri, attr in store.claim_map.items() if uri not in principal.claims)


def _lock_line(settings: Settings, domain: str, name: str) -> list[str]:
    stores = _stores(settings)
    try:
        lock = stores.lockout.state(f"{domain}/{canonical(name)}")
    finally:
        stores.close()
    return [] if lock is None else [f"failures: {lock.failures} (locked until {lock.locked_until:.0f})"]


def _stores(settings: Settings) -> Stores:
    from sts.stores.factory import build_stores

    try:
        return build_stores(settings, SystemClock())
    except ConfigError as exc:  # a missing or damaged database: say so, no traceback
        raise CommandError("; ".join(exc.problems)) from None


@contextlib.contextmanager
def _directory(store: UserStoreSettings) -> Iterator[DirectoryUserStore]:
    from sts.auth.directory_store import DirectoryUserStore

    directory = DirectoryUserStore(store)
    try:
        yield directory
    finally:
        directory.close()


def _call(operation: Callable[[], _T]) -> _T:
    """A directory operation; a directory that does not answer is a command error, not a traceback."""
    try:
        return operation()
    except ServiceUnavailable as exc:
        raise CommandError(f"the directory did not answer: {exc.reason}") from None
