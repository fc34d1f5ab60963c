"""``sts user-store list|test``: the user-store domains, and a check of a directory store's settings.

``sts user-store test DOMAIN`` is what an operator runs after pasting a WSO2 user-store block: it connects with
the store's settings, binds as the service account, and with ``--user`` finds the user and prints its DN, roles and
the claims it would release, and (with ``--password-stdin``) whether the password binds.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from sts.auth.users import Principal, Refusal, UserStoreError, parse_user_name
from sts.cli.common import CommandError, SubParsers, read_secret, settings_from
from sts.cli.directory_users import directory_call, directory_settings, open_directory, principal_lines
from sts.config.user_stores import UserStoreSettings, down_level_domains

if TYPE_CHECKING:  # python-ldap is an optional extra: imported only when a directory is used
    from sts.auth.directory_store import DirectoryUserStore


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
    with open_directory(store) as directory:
        url = directory_call(directory.service_bind)
        print(f"connected: {url} (bound as {store.connection_name})")
        if not args.user:
            return 0
        name = _account_name(store, args.user, down_level_domains(settings.user_stores))
        return _test_user(directory, store, name, password)


def _test_user(directory: DirectoryUserStore, store: UserStoreSettings, name: str, password: str | None) -> int:
    found = directory_call(lambda: directory.find(name))
    if found is None:
        print(f"user:     no single entry matches {store.user_name_search_filter} for {name!r}")
        return 1
    print(f"dn:       {found.dn}")
    for line in principal_lines(found.principal, found.refusal):
        print(line)
    absent = _unmapped(store, found.principal)
    if absent:
        print(f"absent:   {', '.join(absent)} (mapped to claims, not on this entry)")
    if password is None:
        return 0
    verdict = directory_call(lambda: directory.authenticate(store.domain_name, name, password))
    if isinstance(verdict, Refusal):
        print(f"password: refused ({verdict.reason})")
        return 1
    print("password: binds")
    return 0


def _account_name(store: UserStoreSettings, typed: str, down_level: dict[str, str]) -> str:
    """The name the store looks up for ``typed``, read as a login reads it: ``alice``, ``alice@corp.example``,
    ``DOMAIN/alice`` or ``NETBIOS\\alice`` with any store's ``netbios_name`` (``down_level``); a name of another
    domain is refused, a down-level name of another store's NetBIOS name too."""
    try:
        domain, name, _ = parse_user_name(typed, store.domain_name, down_level)
    except UserStoreError as exc:
        raise CommandError(str(exc)) from None
    if domain != store.domain_name:
        raise CommandError(f"{typed!r} names a user of domain {domain}, not {store.domain_name}")
    return name


def _unmapped(store: UserStoreSettings, principal: Principal) -> list[str]:
    return sorted(attr for uri, attr in store.claim_map.items() if uri not in principal.claims)


