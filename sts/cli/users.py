"""``sts user ...`` and ``sts role ...``: provision the embedded user store.

Passwords are never taken from the command line: ``--password-stdin`` reads the first line of stdin,
otherwise the command prompts. Names are ``NAME`` (domain PRIMARY) or ``DOMAIN/NAME``, or ``--domain D``;
a name never contains ``/`` (it separates the domain, so ``PRIMARY/SECONDARY/carol`` is refused).

Every change to an account (password, enabled, roles, claims, removal) is followed by a bump of its credential
version in the ``[cache]`` (:class:`~sts.stores.base.CredentialVersions`): with Redis, every node's cached logins of
that account stop matching at once; with the local cache they expire within ``credential_cache_ttl``.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable, Iterator
from typing import TypeVar

from sts.auth.builtin_users import BuiltinUserStore
from sts.auth.users import (
    PRIMARY,
    UserStoreError,
    account_key,
    normalize_domain,
    normalize_name,
    parse_user_name,
    user_name_problem,
)
from sts.cli import user_certs
from sts.cli.common import CommandError, SubParsers, open_stores, read_secret, settings_from
from sts.cli.directory_users import (
    directory_settings,
    lock_line,
    refuse_directory_write,
    show_directory_user,
    unlock_directory_user,
)
from sts.config.settings import Settings
from sts.config.user_stores import down_level_domains
from sts.policy.claims import is_role_claim
from sts.stores.base import LockoutStore


def register(commands: SubParsers) -> None:
    """Add the ``user`` and ``role`` command groups."""
    _register_user(commands)
    _register_role(commands)


def _name_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="NAME or DOMAIN/NAME")
    parser.add_argument("--domain", help="user-store domain (default: PRIMARY, or the DOMAIN/ prefix)")


def _register_user(commands: SubParsers) -> None:
    user = commands.add_parser("user", help="manage users", description=__doc__)
    sub = user.add_subparsers(dest="user_command", metavar="ACTION", required=True)
    add = sub.add_parser("add", help="create a user")
    _name_args(add)
    add.add_argument("--role", action="append", default=[], help="role to grant (repeatable; may be none)")
    add.add_argument("--claim", action="append", default=[], metavar="URI=VALUE", help="claim value (repeatable)")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    add.add_argument("--digest", action="store_true", help="also keep an encrypted secret for PasswordDigest")
    add.set_defaults(handler=_user_add)
    sub.add_parser("list", help="list users").set_defaults(handler=_user_list)
    for action, handler, text in (
        ("show", _user_show, "show a user's roles and claims"),
        ("disable", _user_disable, "disable a user"),
        ("enable", _user_enable, "enable a user"),
        ("unlock", _user_unlock, "clear a user's failed-login lock"),
    ):
        parser = sub.add_parser(action, help=text)
        _name_args(parser)
        parser.set_defaults(handler=handler)
    remove = sub.add_parser("remove", help="delete a user")
    _name_args(remove)
    remove.set_defaults(handler=_user_remove)
    passwd = sub.add_parser("passwd", help="change a user's password")
    _name_args(passwd)
    passwd.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    passwd.add_argument("--digest", action="store_true", help="keep an encrypted secret for PasswordDigest")
    passwd.set_defaults(handler=_user_passwd)
    claim = sub.add_parser("set-claim", help="set (or with no VALUE, remove) claim values of a user")
    _name_args(claim)
    claim.add_argument("claim", nargs="+", metavar="URI=VALUE", help="values; repeat a URI for several values")
    claim.set_defaults(handler=_user_set_claim)
    for action, handler, text in (("grant", _user_grant, "give a user a role"), ("revoke", _user_revoke, "take it")):
        parser = sub.add_parser(action, help=text)
        _name_args(parser)
        parser.add_argument("role")
        parser.set_defaults(handler=handler)
    cert_parsers = user_certs.add_parsers(sub, _name_args)
    for parser, handler in zip(cert_parsers, (_user_add_cert, _user_remove_cert), strict=True):
        parser.set_defaults(handler=handler)


def _register_role(commands: SubParsers) -> None:
    role = commands.add_parser("role", help="manage roles", description="Roles gate who may use the STS.")
    sub = role.add_subparsers(dest="role_command", metavar="ACTION", required=True)
    for action, handler, text in (("add", _role_add, "create a role"), ("remove", _role_remove, "delete a role")):
        parser = sub.add_parser(action, help=text)
        parser.add_argument("role")
        parser.set_defaults(handler=handler)
    sub.add_parser("list", help="list roles and how many users hold each").set_defaults(handler=_role_list)


@contextlib.contextmanager
def _store(args: argparse.Namespace) -> Iterator[tuple[BuiltinUserStore, Settings]]:
    """The built-in user store of the configured instance (either backend), closed when the command is done."""
    settings = settings_from(args)
    with open_stores(settings) as stores:
        yield stores.builtin, settings


def _who(args: argparse.Namespace, settings: Settings) -> tuple[str, str]:
    """The user NAME names: ``DOMAIN/NAME``, ``NETBIOS\\NAME`` of a directory with that ``netbios_name`` (as at
    login, so ``sts user unlock 'TEST\\alice'`` clears the lock that login counted on), or NAME with ``--domain``."""
    try:
        down_level = down_level_domains(settings.user_stores)
        domain, name, qualified = parse_user_name(args.name, down_level=down_level)
        if args.domain:
            if qualified:
                raise CommandError("give the domain either as DOMAIN/NAME or with --domain, not both")
            domain = normalize_domain(args.domain)
        return domain, name
    except UserStoreError as exc:
        raise CommandError(str(exc)) from None


def _claims(items: list[str]) -> dict[str, list[str]]:
    claims: dict[str, list[str]] = {}
    for item in items:
        uri, sep, value = item.partition("=")
        if not sep or not uri:
            raise CommandError(f"--claim expects URI=VALUE, got {item!r}")
        if value and is_role_claim(uri):  # removing a value stored before this rule stays possible
            raise CommandError(f"{uri} is issued from role membership: use `sts user grant` / `sts role add`")
        values = claims.setdefault(uri, [])
        if value:
            values.append(value)
    return claims


_T = TypeVar("_T")
UserAction = Callable[[BuiltinUserStore, Settings, str, str, argparse.Namespace], str]
RoleAction = Callable[[BuiltinUserStore, Settings, str], str]


def _user_command(action: UserAction) -> Callable[[argparse.Namespace], int]:
    """A handler: open the store, resolve NAME, run ``action``, print what it reports."""

    def handler(args: argparse.Namespace) -> int:
        settings = settings_from(args)
        domain, name = _who(args, settings)
        if directory_settings(settings, domain) is not None:  # a read-only directory owns the domain
            if action.__name__ == "_user_show":
                print(show_directory_user(settings, domain, name))
            elif action.__name__ == "_user_unlock":
                print(unlock_directory_user(settings, domain, name))
            else:
                refuse_directory_write(settings, domain)
            return 0
        with _store(args) as (store, settings):
            try:
                print(action(store, settings, domain, name, args))
            except UserStoreError as exc:
                raise CommandError(str(exc)) from None
        return 0

    return handler


def _role_command(action: RoleAction) -> Callable[[argparse.Namespace], int]:
    """A handler for ``sts role add|remove ROLE``."""

    def handler(args: argparse.Namespace) -> int:
        with _store(args) as (store, settings):
            try:
                print(action(store, settings, args.role))
            except UserStoreError as exc:
                raise CommandError(str(exc)) from None
        return 0

    return handler


def _require(store: BuiltinUserStore, domain: str, name: str) -> None:
    if store.find(domain, name) is None:
        raise CommandError(f"no user {domain}/{name}")


def _lockout(settings: Settings, use: Callable[[LockoutStore], _T]) -> _T:
    """``use`` applied to the instance's lockout counters (in the same database as the users, or beside them)."""
    with open_stores(settings) as stores:
        return use(stores.lockout)


def _changed(settings: Settings, domain: str | None = None, name: str = "") -> None:
    """Invalidate cached logins of the changed account (of every account without ``domain``); called after the
    change is stored, so a login verified before it cannot be cached under the new version."""
    try:
        with open_stores(settings) as stores:
            if domain is None:
                stores.versions.bump_all()
            else:
                stores.versions.bump(account_key(domain, name))
    except CommandError as exc:
        raise CommandError(
            f"the change is stored, but running nodes could not be told: {exc}; their cached logins expire"
            f" within [security] credential_cache_ttl ({settings.security.credential_cache_ttl} s)"
        ) from None


@_user_command
def _user_add(store: BuiltinUserStore, settings: Settings, domain: str, name: str, args: argparse.Namespace) -> str:
    claims = _claims(args.claim)
    password = read_secret(f"Password for {domain}/{name}: ", args.password_stdin, confirm=True)
    store.add_user(domain, name, password, args.role, claims, digest=args.digest)
    # A login cached under this name may have been answered by another store of the chain (unqualified_login).
    _changed(settings, domain, name)
    return f"created user {domain}/{name}"


@_user_command
def _user_passwd(store: BuiltinUserStore, settings: Settings, domain: str, name: str, args: argparse.Namespace) -> str:
    _require(store, domain, name)
    password = read_secret(f"New password for {domain}/{name}: ", args.password_stdin, confirm=True)
    store.set_password(domain, name, password, digest=args.digest)
    _changed(settings, domain, name)
    return f"password changed for {domain}/{name}"


@_user_command
def _user_show(store: BuiltinUserStore, settings: Settings, domain: str, name: str, _: argparse.Namespace) -> str:
    user = store.find(domain, name)
    if user is None:
        raise CommandError(f"no user {domain}/{name}")
    lock = _lockout(settings, lambda lockout: lockout.state(account_key(domain, name)))
    principal = user.principal
    lines = [
        f"user:     {principal.qualified_name}",
        f"enabled:  {'yes' if principal.enabled else 'no'}",
        f"digest:   {'enrolled' if user.digest_secret else 'no'}",
        f"roles:    {', '.join(sorted(principal.roles)) or '-'}",
    ]
    if lock is not None:
        lines.append(lock_line(lock))
    lines += [f"claim:    {uri} = {value}" for uri, values in sorted(principal.claims.items()) for value in values]
    lines += user_certs.certificate_lines(store, domain, name)
    return "\n".join(lines)


@_user_command
def _user_add_cert(store: BuiltinUserStore, _: Settings, domain: str, name: str, args: argparse.Namespace) -> str:
    return user_certs.add_certificate(store, domain, name, args.certificate)


@_user_command
def _user_remove_cert(store: BuiltinUserStore, _: Settings, domain: str, name: str, args: argparse.Namespace) -> str:
    return user_certs.remove_certificate(store, domain, name, args.certificate)


@_user_command
def _user_disable(store: BuiltinUserStore, settings: Settings, domain: str, name: str, _: argparse.Namespace) -> str:
    store.set_enabled(domain, name, False)
    _changed(settings, domain, name)
    return f"disabled {domain}/{name}"


@_user_command
def _user_enable(store: BuiltinUserStore, settings: Settings, domain: str, name: str, _: argparse.Namespace) -> str:
    store.set_enabled(domain, name, True)
    _changed(settings, domain, name)
    return f"enabled {domain}/{name}"


def _user_remove(args: argparse.Namespace) -> int:
    """Delete a user; also one stored under a name with ``/`` before names were checked (the first ``/`` ends
    the domain, the rest is the stored name), which ``user list`` flags and which can no longer sign in."""
    settings = settings_from(args)
    try:
        domain, name = _who(args, settings)
    except CommandError:
        if args.domain or "/" not in args.name:
            raise
        stored_domain, _, stored_name = args.name.partition("/")
        try:
            domain, name = normalize_domain(stored_domain), normalize_name(stored_name)
        except UserStoreError as exc:
            raise CommandError(str(exc)) from None
    refuse_directory_write(settings, domain)
    with _store(args) as (store, settings):
        try:
            store.remove_user(domain, name)
        except UserStoreError as exc:
            raise CommandError(str(exc)) from None
    _changed(settings, domain, name)
    print(f"removed {domain}/{name}")
    return 0


@_user_command
def _user_unlock(store: BuiltinUserStore, settings: Settings, domain: str, name: str, _: argparse.Namespace) -> str:
    _require(store, domain, name)
    _lockout(settings, lambda lockout: lockout.reset(account_key(domain, name)))
    return f"unlocked {domain}/{name}"


@_user_command
def _user_set_claim(
    store: BuiltinUserStore, settings: Settings, domain: str, name: str, args: argparse.Namespace
) -> str:
    store.set_claims(domain, name, _claims(args.claim))
    _changed(settings, domain, name)
    return f"claims updated for {domain}/{name}"


@_user_command
def _user_grant(
    store: BuiltinUserStore, settings: Settings, domain: str, name: str, args: argparse.Namespace
) -> str:
    store.grant(domain, name, args.role)
    _changed(settings, domain, name)
    return f"granted {args.role} to {domain}/{name}"


@_user_command
def _user_revoke(
    store: BuiltinUserStore, settings: Settings, domain: str, name: str, args: argparse.Namespace
) -> str:
    store.revoke(domain, name, args.role)
    _changed(settings, domain, name)
    return f"revoked {args.role} from {domain}/{name}"


def _user_list(args: argparse.Namespace) -> int:
    with _store(args) as (store, _):
        for domain, name, enabled, digest in store.list_users():
            flags = ("" if enabled else " (disabled)") + (" (digest)" if digest else "")
            if (problem := user_name_problem(name)) is not None:
                flags += f" (invalid name: {problem}; cannot sign in; remove it)"
            print(f"{domain}/{name}{flags}")
    return 0


@_role_command
def _role_add(store: BuiltinUserStore, _: Settings, role: str) -> str:
    store.add_role(role)
    return f"created role {role}"


@_role_command
def _role_remove(store: BuiltinUserStore, settings: Settings, role: str) -> str:
    store.remove_role(role)
    _changed(settings)  # every holder of the role
    return f"removed role {role}"


def _role_list(args: argparse.Namespace) -> int:
    with _store(args) as (store, _):
        for role, holders in store.list_roles():
            print(f"{role}\t{holders} user(s)")
    return 0


__all__ = ["PRIMARY", "register"]
