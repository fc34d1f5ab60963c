"""The directory side of ``sts user``: directory users are shown, never written (shared by ``sts user`` and
``sts user-store``; python-ldap is imported only when a directory is used)."""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, TypeVar

from sts.auth.users import DIRECTORY_REQUIRES_TLS, DIRECTORY_REQUIRES_TLS_FIX, Principal, account_key
from sts.cli.common import CommandError, open_stores
from sts.clock import format_instant
from sts.config.settings import Settings
from sts.config.user_stores import UserStoreSettings
from sts.errors import ServiceUnavailable
from sts.stores.base import LockState

if TYPE_CHECKING:  # python-ldap is an optional extra: imported only when a directory is used
    from sts.auth.directory_store import DirectoryUserStore

_T = TypeVar("_T")


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
    with open_directory(store) as directory:
        found = directory_call(lambda: directory.find(name))
    if found is None:
        raise CommandError(f"no user {domain}/{name} in the directory")
    lines = [f"dn:       {found.dn}", *principal_lines(found.principal, found.refusal)]
    lock = _lock_line(settings, account_key(found.principal.domain, found.principal.name))
    return "\n".join(lines[:3] + lock + lines[3:])


def unlock_directory_user(settings: Settings, domain: str, name: str) -> str:
    """Clear the STS's own lock of a directory user (the directory's lockout is the directory's).

    The lock belongs to the account the directory names (``alice`` for ``alice@corp.example``): it is looked up,
    and the key of the name as given is cleared as well, so an account the directory no longer has (or cannot
    be asked about) can still be unlocked by its name.
    """
    keys, note = [account_key(domain, name)], ""
    store = directory_settings(settings, domain)
    if store is not None:
        try:
            with open_directory(store) as directory:
                found = directory_call(lambda: directory.find(name))
        except CommandError as exc:
            found, note = None, f"\n({exc}: only the lock of the name as given was cleared)"
        if found is not None:
            keys.append(account_key(found.principal.domain, found.principal.name))
    with open_stores(settings) as stores:
        for key in dict.fromkeys(keys):
            stores.lockout.reset(key)
    return f"unlocked {keys[-1]}{note}"


def principal_lines(principal: Principal, refusal: str | None) -> list[str]:
    lines = [
        f"user:     {principal.qualified_name}",
        f"enabled:  {'yes' if refusal is None else 'no (' + refusal + ')'}",
        f"roles:    {', '.join(sorted(principal.roles)) or '-'}",
    ]
    claims = sorted(principal.claims.items())
    return lines + [f"claim:    {uri} = {value}" for uri, values in claims for value in values]


def _lock_line(settings: Settings, key: str) -> list[str]:
    with open_stores(settings) as stores:
        lock = stores.lockout.state(key)
    return [] if lock is None else [lock_line(lock)]


def lock_line(lock: LockState, now: float | None = None) -> str:
    """``sts user show``'s lockout line: consecutive failures, and the lock's end as an xsd:dateTime in UTC while it
    lasts (a count left from before a lock that has ended says ``not locked``)."""
    now = time.time() if now is None else now
    if lock.locked_until > now:
        until = format_instant(dt.datetime.fromtimestamp(lock.locked_until, dt.UTC))
        return f"failures: {lock.failures} (locked until {until})"
    return f"failures: {lock.failures} (not locked)"


@contextlib.contextmanager
def open_directory(store: UserStoreSettings) -> Iterator[DirectoryUserStore]:
    """The directory store of ``store``, its connections closed when the block ends."""
    from sts.auth.directory_store import DirectoryUserStore

    directory = DirectoryUserStore(store)
    try:
        yield directory
    finally:
        directory.close()


def directory_call(operation: Callable[[], _T]) -> _T:
    """A directory operation; a directory that does not answer is a command error, not a traceback. One that
    answered that it takes passwords only over TLS says so, with the settings that fix it."""
    try:
        return operation()
    except ServiceUnavailable as exc:
        if exc.reason == DIRECTORY_REQUIRES_TLS:
            raise CommandError(
                f"the directory refuses simple binds without TLS ({exc.reason}): {DIRECTORY_REQUIRES_TLS_FIX}"
            ) from None
        raise CommandError(f"the directory did not answer: {exc.reason}") from None

