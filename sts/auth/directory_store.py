"""A read-only user store over an LDAP directory or Active Directory: one ``[[user_stores]]`` domain.

Authentication is search, then bind (RFC 4513 §5.1.3): the service account searches the user with the
operator's filter, the typed name filled in escaped (RFC 4515 §3), exactly one entry must match, and the password
is checked by binding as the DN the directory returned; a DN is never built from input. The user's groups are read
only once that bind succeeded. A login refused before its bind (unknown, ambiguous, an account state or lock that
refuses it) still costs one bind, as a DN that cannot exist, so every refusal costs the directory the same round
trips as a wrong password. An empty password is refused before any bind (RFC 4513 §5.1.2: a DN with an empty
password is an *unauthenticated* bind, which Active Directory accepts). PasswordDigest cannot be checked (a
directory keeps no clear password).

The principal is named by the entry's ``user_name_attribute`` (not the typed text), its roles are the directory's
groups, nested ones included, shown as WSO2 shows them (``CORP/sts-users``; bare for PRIMARY), and its claims come
from the attributes of ``claim_map`` (several values stay several; binary attributes are base64-encoded). In Active
Directory a name at the domain's DNS name may be an implicit UPN (``sam@dns.domain``): its account part is searched
too, and used when the name as typed matches nothing (:func:`~sts.auth.active_directory.implicit_upn_account`).
"""

from __future__ import annotations

import base64
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from sts.auth.active_directory import (
    STATE_ATTRIBUTES,
    account_refusal,
    bind_refusal,
    dns_domain_name,
    implicit_upn_account,
)
from sts.auth.directory_groups import PRIMARY_GROUP_ATTRIBUTES, GroupResolver
from sts.auth.ldap_client import DirectoryClient, DirectoryUnavailable, Entry, TooManyEntries
from sts.auth.users import (
    ACCOUNT_LOCKED,
    PRIMARY,
    UNKNOWN_USER,
    WRONG_PASSWORD,
    DigestSecret,
    LockCheck,
    Principal,
    Refusal,
    UserStoreError,
    account_key,
    canonical,
    normalize_user_name,
    valid_user_name,
)
from sts.config.user_stores import UserStoreSettings
from sts.errors import ServiceUnavailable

_LOG = logging.getLogger("sts.auth")
_T = TypeVar("_T")
DIGEST_NOT_SUPPORTED = "digest_not_supported_by_directory_store"
EMPTY_PASSWORD = "empty_password"  # noqa: S105 - a reason code
AMBIGUOUS_USER = "ambiguous_user"
UNUSABLE_NAME = "unusable_user_name"
TOO_MANY_GROUPS = "too_many_groups"  # roles from a partial list of groups could refuse or admit wrongly


@dataclass(frozen=True, slots=True)
class _Match:
    """The one entry the user filter matched and the principal's name read from it (no roles yet)."""

    entry: Entry
    name: str


@dataclass(frozen=True, slots=True)
class DirectoryUser:
    """A user found in the directory: the entry's DN, the principal, and why it may not log in (if so)."""

    dn: str
    principal: Principal
    refusal: str | None = None


class DirectoryUserStore:
    """The :class:`~sts.auth.users.UserStore` of one directory domain (never writes to the directory)."""

    read_only = True

    def __init__(
        self,
        settings: UserStoreSettings,
        client: DirectoryClient | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self._client = client or DirectoryClient(settings)
        self._groups = GroupResolver(settings, self._client)
        self._now = now
        self._filter = settings.user_filter
        self._dns_domain = dns_domain_name(settings.user_search_base)
        attributes = {settings.user_name_attribute, *settings.claim_map.values()}
        if settings.is_active_directory:
            attributes.update(STATE_ATTRIBUTES, PRIMARY_GROUP_ATTRIBUTES)
        if settings.member_of_attribute:
            attributes.add(settings.member_of_attribute)
        self._attributes = tuple(sorted(attributes, key=str.casefold))
        # The DN of the bind a refusal decided before the bind still costs (_decoy_bind): a fresh 128-bit value
        # under the user search base, so no entry has it and none can be made to have it in advance.
        self._decoy_dn = ",".join(filter(None, (f"cn=sts-no-such-user-{secrets.token_hex(16)}",
                                                settings.user_search_base)))
        # ... with a password of its own: the one typed (the right one, perhaps, of a disabled or locked account)
        # has no business in a bind that is not the account's.
        self._decoy_password = secrets.token_urlsafe(24)
        # All round trips of one login together (a connection, the search, the bind and the group searches): one
        # connect and two operations' worth, well under gunicorn's worker timeout with the defaults (3 + 2 x 5 s).
        self._budget = (settings.ldap_connection_timeout + 2 * settings.read_timeout) / 1000

    @property
    def domain(self) -> str:
        """The domain the store owns."""
        return self.settings.domain_name

    # --- the user-store contract (sts.auth.users.UserStore) ------------------------------------------------------
    # Refusals say password_checked=True: the directory round trips are this store's cost of a failure, so the
    # authenticator does not add an argon2 verification that a bind never costs.

    def authenticate(
        self, domain: str, name: str, password: str, *, locked: LockCheck | None = None
    ) -> Principal | Refusal:
        """Search the user, check the account state (AD) and the STS's lock of the account the directory named
        (whatever spelling matched it: ``alice``, ``ALICE``, ``alice@corp.example``), bind as its DN with
        ``password``, then read its groups."""
        if not password:
            return Refusal(EMPTY_PASSWORD, "empty password refused before binding", password_checked=True)
        with self._client.deadline(self._budget):
            return self._authenticate(name, password, locked)

    def _authenticate(self, name: str, password: str, locked: LockCheck | None) -> Principal | Refusal:
        """:meth:`authenticate` within the login's deadline."""
        match = self._match_or_refusal(name)
        if isinstance(match, Refusal):
            return self._after_decoy_bind(match)
        account = account_key(self.domain, match.name)
        state = self._state(match.entry)
        if state is not None:  # checked before the bind: a refused account collects no bad-password count in AD
            return self._after_decoy_bind(Refusal(state, "account state refused by the directory",
                                                  password_checked=True, account=account))
        if locked is not None and locked(account):
            return self._after_decoy_bind(Refusal(ACCOUNT_LOCKED, "account locked", password_checked=True,
                                                  account=account))
        outcome = self._call(lambda: self._client.bind(match.entry.dn, password))
        if not outcome.accepted:
            reason = bind_refusal(outcome.ad_code)
            accounts = (account,) if reason == WRONG_PASSWORD else ()
            return Refusal(reason, f"bind refused ({outcome.result})", password_checked=True, accounts=accounts,
                           account=account)
        # Groups only now: a refused login never costs the group searches, which only a success needs.
        user = self._user(match, None)
        return user if isinstance(user, Refusal) else user.principal

    def _after_decoy_bind(self, refusal: Refusal) -> Refusal:
        """``refusal``, once :meth:`_decoy_bind` has cost what the bind of a wrong password costs."""
        self._decoy_bind()
        return refusal

    def _decoy_bind(self) -> None:
        """One simple bind (RFC 4513 §5.1.3) that cannot succeed and touches no account, its answer ignored.

        A refusal decided before the bind (unknown, ambiguous or unusable name, an AD account state, the STS's
        lock) would otherwise answer one round trip sooner than a wrong password, telling an attacker who times
        the answers which names are accounts. The bind is as ``_decoy_dn``, which no entry has: RFC 4513 §5.1.3
        answers such a DN, "syntactically correct but not valid for purposes of authentication", with
        invalidCredentials as it answers a wrong password (Samba AD: data 52e for both). It goes on an
        authentication connection, as a real bind does, with a random password of the store's own. No real
        account pays for it: Active Directory's lockout counts (badPwdCount, lockoutTime) are attributes of the
        account object a bind names, and this name names none. A directory that does not answer fails the
        request closed, as it would have at the real bind."""
        if self._call(lambda: self._client.bind(self._decoy_dn, self._decoy_password)).accepted:
            _LOG.error("the directory accepted a bind as a DN it does not hold", extra={"domain": self.domain})

    def digest_secret(self, domain: str, name: str) -> DigestSecret | Refusal:
        """Always refused: a directory keeps no password the STS could compute a digest over."""
        return Refusal(DIGEST_NOT_SUPPORTED, "PasswordDigest cannot be checked against a directory")

    def lookup(self, domain: str, name: str) -> Principal | None:
        """The user as the directory has it now (disabled, expired or locked AD accounts are not enabled)."""
        found = self.find(name)
        return None if found is None else found.principal

    # --- lookups ---------------------------------------------------------------------------------------------

    def find(self, name: str) -> DirectoryUser | None:
        """The one entry the user filter matches for ``name`` (None for none or several), with roles and claims."""
        with self._client.deadline(self._budget):
            found = self._find_or_refusal(name)
        return None if isinstance(found, Refusal) else found

    def service_bind(self) -> str:
        """Connect and bind as the service account (``sts user-store test``); the URL that answered."""
        return self._call(self._client.service_bind)

    def ping(self) -> None:
        """One round trip to the directory (readiness); :class:`ServiceUnavailable` when it does not answer."""
        self._call(self._client.ping)

    def close(self) -> None:
        """Release this process's connections."""
        self._client.close()

    def _find_or_refusal(self, name: str) -> DirectoryUser | Refusal:
        match = self._match_or_refusal(name)
        if isinstance(match, Refusal):
            return match
        return self._user(match, self._state(match.entry))

    def _match_or_refusal(self, name: str) -> _Match | Refusal:
        """The one entry the filter matches for ``name`` and its user name, or why there is none."""
        try:
            entries, name = self._search_user_or_account(name)
        except TooManyEntries:
            return Refusal(AMBIGUOUS_USER, "the user filter matches several entries", password_checked=True)
        if not entries:
            return Refusal(UNKNOWN_USER, "unknown user", password_checked=True)
        entry = entries[0]
        try:
            canonical_name = self._user_name(entry, name)
        except UserStoreError:
            _LOG.warning("directory entry has no usable user name", extra={"domain": self.domain})
            return Refusal(UNUSABLE_NAME, "entry without a usable user name", password_checked=True)
        if canonical_name is None:
            _LOG.warning("directory entry has several user names", extra={"domain": self.domain})
            return Refusal(UNUSABLE_NAME, "entry with several user names, none of them the one typed",
                           password_checked=True)
        return _Match(entry, canonical_name)

    def _user(self, match: _Match, refusal: str | None) -> DirectoryUser | Refusal:
        """The user with its roles (its groups, read now) and claims; ``refusal``: why it may not log in."""
        try:
            roles = self._call(lambda: self._groups.roles(match.entry))
        except TooManyEntries:
            _LOG.warning("more groups than the directory answers", extra={"domain": self.domain})
            return Refusal(TOO_MANY_GROUPS, "the user's groups could not all be read", password_checked=True)
        principal = Principal(
            self.domain, match.name, self._qualified(roles), self._claims(match.entry), enabled=refusal is None
        )
        return DirectoryUser(match.entry.dn, principal, refusal)

    def _user_name(self, entry: Entry, searched: str) -> str | None:
        """The principal's name: the entry's ``user_name_attribute`` value, or, when the attribute holds several
        (``uid`` and ``cn`` are multi-valued in OpenLDAP's schema), the one that was searched for (compared as
        :func:`~sts.auth.users.canonical`); None when none of several is (a login by another attribute, such as
        ``mail``): taking the first value would name the principal after whatever value the server lists
        first, possibly another user's name."""
        values = entry.values(self.settings.user_name_attribute)
        if len(values) <= 1:
            return normalize_user_name(entry.text(self.settings.user_name_attribute))
        wanted = canonical(searched)
        for value in values:
            text = value.decode("utf-8", "replace")
            if valid_user_name(text) and canonical(text) == wanted:
                return normalize_user_name(text)
        return None

    def _search_user_or_account(self, name: str) -> tuple[list[Entry], str]:
        """The entries the filter matches for ``name``, else for the account an implicit UPN names, and the name
        they matched. An explicit UPN (or account name) that matches comes first, as in AD, but the account is
        searched for every implicit UPN all the same: searched only when nothing matched, the answer to a wrong
        password would come one round trip sooner for a UPN that exists than for one that does not."""
        entries = self._search_user(name)
        implicit = self._implicit_upn_account(name)
        if implicit is None:
            return entries, name
        try:
            by_account = self._search_user(implicit)
        except TooManyEntries:
            if entries:
                return entries, name  # matched as typed: the account part's answer is not needed
            raise
        return (entries, name) if entries else (by_account, implicit)

    def _search_user(self, name: str) -> list[Entry]:
        return self._call(
            lambda: self._client.search(
                self.settings.user_search_base, self._filter.fill(name), self._attributes, size_limit=1
            )
        )

    def _implicit_upn_account(self, typed: str) -> str | None:
        """Active Directory only: the account an implicit UPN (``sam@dns.domain``) names; the domain's DNS name is
        read from ``user_search_base``."""
        if not self.settings.is_active_directory:
            return None
        return implicit_upn_account(typed, self._dns_domain)

    def _state(self, entry: Entry) -> str | None:
        if not self.settings.is_active_directory:
            return None
        return account_refusal(
            _integer(entry, "userAccountControl") or 0,
            _integer(entry, "msDS-User-Account-Control-Computed") or 0,
            _integer(entry, "pwdLastSet"),
            _integer(entry, "accountExpires"),
            self._now(),
        )

    def _qualified(self, roles: frozenset[str]) -> frozenset[str]:
        """WSO2 shows a secondary store's roles as ``DOMAIN/role`` and PRIMARY's bare."""
        if self.domain == PRIMARY:
            return roles
        return frozenset(f"{self.domain}/{role}" for role in roles)

    def _claims(self, entry: Entry) -> dict[str, tuple[str, ...]]:
        claims: dict[str, tuple[str, ...]] = {}
        binary = self.settings.binary_attributes
        for uri, attribute in self.settings.claim_map.items():
            values = entry.values(attribute)
            if values:
                claims[uri] = tuple(_text(value, attribute.casefold() in binary) for value in values)
        return claims

    def _call(self, operation: Callable[[], _T]) -> _T:
        """Run a directory operation; a directory that does not answer fails the request closed."""
        try:
            return operation()
        except DirectoryUnavailable as exc:
            raise ServiceUnavailable(f"user directory {self.domain}: {exc.reason}", reason=exc.reason) from None


def _text(value: bytes, binary: bool) -> str:
    """A claim value: base64 for binary attributes and for bytes that are not UTF-8, else the text."""
    if not binary:
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            pass
    return base64.b64encode(value).decode("ascii")


def _integer(entry: Entry, attribute: str) -> int | None:
    text = entry.text(attribute)
    try:
        return int(text) if text else None
    except ValueError:
        return None
