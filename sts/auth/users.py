"""The user-store model: domain-qualified names, the principal, and the contract every user store keeps.

Names are domain-qualified as WSO2 writes them (``PRIMARY/alice``, or ``alice`` meaning PRIMARY). One documented
normalisation, so lockout, audit and lookups all key on one form: Unicode NFC (UAX #15), surrounding whitespace trimmed,
control and format characters refused; uniqueness and lookups use the case-folded form, so ``Alice`` and ``alice`` are
the same user, while ``ａｌｉｃｅ`` (fullwidth) stays a different name.

``/`` separates the domain from the name (as in WSO2), so neither part may contain it: otherwise the PRIMARY user
``SECONDARY/carol`` and the user ``carol`` of domain SECONDARY would be the same NameID. :func:`normalize_user_name`
is that rule; every place a user name enters (the command line, requests, any user store) goes through it.

A user store (:class:`UserStore`) checks credentials itself, because a directory can only check a password by
binding with it: the SQLite store (:mod:`sts.auth.sqlite_users`) verifies its argon2id hash, a directory store binds.
:class:`~sts.auth.router.UserStoreRouter` sends each ``DOMAIN/name`` to the store owning that domain.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from sts.xmlutil import is_xml_text

PRIMARY = "PRIMARY"
DOMAIN_SEPARATOR = "/"
DOWN_LEVEL_SEPARATOR = "\\"  # NETBIOS\\name, the down-level logon name of Active Directory
MAX_NAME_LENGTH = 256
MAX_PASSWORD_BYTES = 1024


class UserStoreError(Exception):
    """A provisioning error with a message fit for the command line (duplicate, unknown name, bad value)."""


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated (or looked-up) user: domain, name, roles and claim values.

    Neither part contains the domain separator, so :attr:`qualified_name` names exactly one user whatever store
    made the principal (a store that skipped :func:`normalize_user_name` fails here instead of aliasing a user).
    """

    domain: str
    name: str
    roles: frozenset[str]
    claims: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    enabled: bool = True

    def __post_init__(self) -> None:
        if _has_separator(self.domain) or _has_separator(self.name):
            raise ValueError("a principal's domain and name must not contain the domain separator")

    @property
    def qualified_name(self) -> str:
        """``DOMAIN/name``."""
        return f"{self.domain}/{self.name}"

    def holds_any_role(self, allowed: frozenset[str]) -> bool:
        """Whether the principal holds one of ``allowed`` (case-folded role names; roles compare without case).

        The one place roles are matched, for the authenticator and for a subject checked again at Renew. A role
        qualified by its store's domain (``CORP/sts-users``, as WSO2 shows directory groups) matches that qualified
        name, and also its plain name (``sts-users``): an allowed role without a domain admits the group of that
        name in every allowed domain, a qualified one only in its own.

        A role is qualified only by the principal's own domain, once: a group named ``CORP/sts-users`` in another
        directory (``LDAP/CORP/sts-users``, or bare in a PRIMARY directory) is nobody's ``CORP/sts-users``. The
        directory stores drop such group names already; this rule keeps any other source from confusing domains.
        """
        own = self.domain.casefold()
        for role in self.roles:
            folded = role.casefold()
            qualifier, qualified, plain = folded.partition(DOMAIN_SEPARATOR)
            if not qualified:
                if not _has_separator(folded) and folded in allowed:
                    return True
            elif qualifier == own and not _has_separator(plain) and (folded in allowed or plain in allowed):
                return True
        return False


def normalize_name(text: str) -> str:
    """NFC, trimmed; refuse empty names, over-long names and control/format characters."""
    name = unicodedata.normalize("NFC", text).strip()
    if not name or len(name) > MAX_NAME_LENGTH:
        raise UserStoreError("names must be 1 to 256 characters")
    # The name is written into tokens (NameID, role values): it must be XML 1.0 text (§2.2 [2] Char) too, which
    # the categories leave open for the noncharacters U+FFFE and U+FFFF (category Cn).
    if not is_xml_text(name) or any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Zl", "Zp") for ch in name):
        raise UserStoreError("names must not contain control or format characters")
    return name


def _has_separator(text: str) -> bool:
    """Whether ``text`` holds ``/``, or a character whose compatibility form is ``/`` (fullwidth ``／``), which
    an application that applies NFKC to a NameID would turn into the separator."""
    return DOMAIN_SEPARATOR in text or any(
        DOMAIN_SEPARATOR in unicodedata.normalize("NFKC", ch) for ch in text if not ch.isascii()
    )


def normalize_user_name(text: str) -> str:
    """The name part of a user name: :func:`normalize_name`, and no ``/`` (the domain separator, as in WSO2).

    The one rule for user names: the CLI, the authenticator (through :func:`split_qualified`) and every user
    store (the SQLite store here, directory stores later) call it before creating or looking up a user.
    """
    name = normalize_name(text)
    if _has_separator(name):
        raise UserStoreError("user names must not contain '/': it separates the domain (DOMAIN/NAME)")
    return name


def plain_role_name(name: str) -> bool:
    """Whether a role name as a store holds it is unqualified: no ``/`` (nor a look-alike), so the store's domain
    qualifies it once (``DOMAIN/role``) and it cannot pass for another domain's role."""
    return not _has_separator(name)


def valid_user_name(name: str) -> bool:
    """Whether a stored name passes :func:`normalize_user_name` (rows written before the rule may not)."""
    return user_name_problem(name) is None


def user_name_problem(name: str) -> str | None:
    """Why a stored name fails :func:`normalize_user_name` (release 0.1.0 stored ``PRIMARY/SECONDARY/carol`` and
    names holding U+FFFF), or ``None`` when it passes."""
    try:
        normalize_user_name(name)
    except UserStoreError as exc:
        return str(exc)
    return None


def normalize_domain(text: str) -> str:
    """A user-store domain: a normalised name without ``/``, upper-cased as WSO2 writes it."""
    domain = normalize_name(text).upper()
    if _has_separator(domain):
        raise UserStoreError("domain names must not contain '/'")
    return domain


def canonical(name: str) -> str:
    """The case-folded form used for uniqueness and lookups."""
    return normalize_name(name).casefold()


class UserName(NamedTuple):
    """A user name as typed, split: its domain, its name, and whether the text named the domain itself."""

    domain: str
    name: str
    qualified: bool


def parse_user_name(
    text: str, default_domain: str = PRIMARY, down_level: Mapping[str, str] | None = None
) -> UserName:
    """The one parser of typed user names: ``DOMAIN/name``, a down-level ``NETBIOS\\name``, or a bare name.

    The text before the first ``/`` is the domain; a second ``/`` (``PRIMARY/SECONDARY/carol``) is refused. A name
    without ``/`` whose text before the first ``\\`` is a NetBIOS name of ``down_level`` (case-folded NetBIOS name
    to domain, from the ``netbios_name`` of Active Directory stores) is a down-level logon name (Microsoft, "User
    Name Formats": NetBIOS domain name, ``\\``, account name) of that domain; any other name is a name of
    ``default_domain``, backslashes and all, as it was before down-level names (so no configured NetBIOS name
    changes what the built-in store accepts).
    """
    domain, sep, name = text.partition(DOMAIN_SEPARATOR)
    if sep:
        return UserName(normalize_domain(domain), normalize_user_name(name), True)
    found = _down_level(text, down_level or {})
    if found is not None:
        return found
    return UserName(default_domain, normalize_user_name(text), False)


def _down_level(text: str, down_level: Mapping[str, str]) -> UserName | None:
    prefix, sep, account = text.partition(DOWN_LEVEL_SEPARATOR)
    domain = down_level.get(unicodedata.normalize("NFC", prefix).strip().casefold()) if sep else None
    if domain is None:
        return None
    name = normalize_user_name(account)
    if DOWN_LEVEL_SEPARATOR in name:
        # No AD account name holds one (Microsoft's AD schema, SAM-Account-Name: none of " / \ [ ] : ; | = , + * ? < >).
        raise UserStoreError("a down-level name is NETBIOS\\name, with one '\\'")
    return UserName(domain, name, True)


def split_qualified(
    qualified: str, default_domain: str = PRIMARY, down_level: Mapping[str, str] | None = None
) -> tuple[str, str]:
    """``"PRIMARY/alice"`` → ``("PRIMARY", "alice")``; ``"alice"`` → ``(default_domain, "alice")``; with
    ``down_level``, ``"TEST\\alice"`` → ``("CORP", "alice")`` when TEST is CORP's NetBIOS name
    (:func:`parse_user_name`)."""
    domain, name, _ = parse_user_name(qualified, default_domain, down_level)
    return domain, name


def check_password(password: str) -> None:
    """Provisioning rule: non-empty, at most 1024 UTF-8 bytes, no NUL."""
    if not password:
        raise UserStoreError("empty passwords are not allowed")
    if len(password.encode("utf-8")) > MAX_PASSWORD_BYTES or "\x00" in password:
        raise UserStoreError("passwords must be at most 1024 bytes and contain no NUL")


# --- the user-store contract --------------------------------------------------------------------------------------

# Audit reasons of a refusal (the caller never sees them); a store may add reasons of its own.
UNKNOWN_USER = "unknown_user"
USER_DISABLED = "user_disabled"
WRONG_PASSWORD = "wrong_password"  # noqa: S105 - a reason code, not a password
DIGEST_UNSUPPORTED = "digest_unsupported"
DIGEST_SECRET_BROKEN = "digest_secret_broken"  # noqa: S105 - a reason code, not a secret
UNKNOWN_DOMAIN = "unknown_domain"
ACCOUNT_LOCKED = "account_locked"
# A directory that takes passwords only over TLS, asked on plain ldap:// (sts.auth.ldap_client), and its fix.
DIRECTORY_REQUIRES_TLS = "directory_requires_tls"
DIRECTORY_REQUIRES_TLS_FIX = "use an ldaps:// URL, or start_tls = true on ldap://"

# Whether the account of a lockout key (:func:`account_key`) is locked now. The authenticator checks the key of
# the name as typed before any store is asked; a store that finds the account under another name (a directory
# matching a UPN, or its own looser comparison; another domain of a chained login) asks this before it checks a
# password, so that no spelling of a name reaches a locked account's password check.
LockCheck = Callable[[str], bool]


def account_key(domain: str, name: str) -> str:
    """The key an account's lockout counter is kept under: ``DOMAIN/`` + the case-folded name."""
    return f"{domain}{DOMAIN_SEPARATOR}{canonical(name)}"


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a user store did not accept a credential: the audit reason; the caller only ever sees the one generic
    ``wsse:FailedAuthentication`` (WSS 1.1 §12), whatever the reason.

    ``password_checked``: the store spent a password check on it (a hash verification, a bind), so the
    authenticator does not spend another one to equalise the cost of failures. ``accounts``: for a wrong
    password, the :func:`account_key` of each account whose password was checked (the failures count there, whatever
    the spelling typed); empty when the store did not say (the name as typed is the key then). ``account``: the
    :func:`account_key` of the account the store found and refused (disabled, locked, refused by the directory's
    account state, a wrong password), for the audit; empty when it found none.
    """

    reason: str
    detail: str
    password_checked: bool = False
    accounts: tuple[str, ...] = ()
    account: str = ""

    @property
    def wrong_password(self) -> bool:
        """A failed password check: the only refusal that counts towards lockout."""
        return self.reason == WRONG_PASSWORD


@dataclass(frozen=True, slots=True)
class DigestSecret:
    """A user and the clear secret a PasswordDigest is computed over (UsernameToken Profile 1.1 §3.1)."""

    principal: Principal
    secret: str = field(repr=False)


class UserStore(Protocol):
    """A user store, as WSO2 has them per domain: checks credentials and looks users up.

    ``domain`` is a normalised domain (:func:`normalize_domain`) and ``name`` a name :func:`normalize_user_name`
    accepted; a store never answers with a user whose stored name breaks that rule. A store that cannot answer
    raises :class:`~sts.errors.ServiceUnavailable` (fail closed); every other outcome is a value. Client
    throttling, the lock of the name as typed and the verified-credential cache are applied by the authenticator
    before a store is asked; the store checks the lock of the account it finds (``locked``) and names it in a wrong
    password's refusal (:attr:`Refusal.accounts`).
    """

    def authenticate(
        self, domain: str, name: str, password: str, *, locked: LockCheck | None = None
    ) -> Principal | Refusal:
        """Check a PasswordText password: the enabled user, or why not (``unknown_user``, ``user_disabled``,
        ``wrong_password``, ``account_locked`` when ``locked`` says so of the account found, or a store-specific
        reason)."""
        ...

    def digest_secret(self, domain: str, name: str) -> DigestSecret | Refusal:
        """The enabled user and the secret a PasswordDigest is checked against; a store that keeps no clear
        secret (a directory) refuses with ``digest_unsupported``."""
        ...

    def lookup(self, domain: str, name: str) -> Principal | None:
        """The user as the store has it now, enabled or not, without any credential (Renew, previews)."""
        ...
