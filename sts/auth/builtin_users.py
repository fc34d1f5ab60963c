"""What the built-in user store does whatever database keeps it: checking passwords, opening digest secrets, the
provisioning rules, and the provisioning interface ``sts user`` and ``sts role`` use.

The SQLite store (:mod:`sts.auth.sqlite_users`) and the PostgreSQL store (:mod:`sts.auth.postgres_users`) supply
the rows; this base class turns rows into principals and refusals, so both answer a credential alike.
"""

from __future__ import annotations

import logging
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from sts.auth.passwords import PasswordHasher
from sts.auth.users import (
    ACCOUNT_LOCKED,
    DIGEST_SECRET_BROKEN,
    DIGEST_UNSUPPORTED,
    UNKNOWN_USER,
    USER_DISABLED,
    WRONG_PASSWORD,
    DigestSecret,
    LockCheck,
    Principal,
    Refusal,
    UserStoreError,
    account_key,
    canonical,
)
from sts.crypto.secretbox import SecretBox, SecretBoxError
from sts.stores.certificate_index import CertificateStore
from sts.xmlutil import is_xml_text

_LOG = logging.getLogger("sts.auth")


@dataclass(frozen=True, slots=True)
class StoredUser:
    """A user's row: the principal with the credentials the store checks (never leaves this store's callers)."""

    user_id: int
    principal: Principal
    password_hash: str
    digest_secret: bytes | None = field(repr=False)


class BuiltinUserStore(ABC):
    """Users, roles and claims in the STS database: the user-store contract plus provisioning."""

    def __init__(self, hasher: PasswordHasher, secret_box: SecretBox | None = None) -> None:
        self._hasher = hasher
        self._box = secret_box

    # --- the user-store contract (sts.auth.users.UserStore) ------------------------------------------------------

    def authenticate(
        self, domain: str, name: str, password: str, *, locked: LockCheck | None = None
    ) -> Principal | Refusal:
        """Verify the password against the stored hash; a hash older than the current parameters is replaced."""
        user = self.find(domain, name)
        if user is None:
            return Refusal(UNKNOWN_USER, "unknown user")
        account = account_key(user.principal.domain, user.principal.name)
        if not user.principal.enabled:
            return Refusal(USER_DISABLED, "user disabled", account=account)
        if locked is not None and locked(account):
            return Refusal(ACCOUNT_LOCKED, "account locked", account=account)
        matches, needs_rehash = self._hasher.verify(password, user.password_hash)
        if needs_rehash:
            self.update_password_hash(user.user_id, self._hasher.hash(password))
        if not matches:
            return Refusal(WRONG_PASSWORD, "wrong password", password_checked=True, accounts=(account,),
                           account=account)
        return user.principal

    def digest_secret(self, domain: str, name: str) -> DigestSecret | Refusal:
        """The secret sealed at enrolment, opened with the credential key."""
        user = self.find(domain, name)
        if user is None:
            return Refusal(UNKNOWN_USER, "unknown user")
        if not user.principal.enabled:
            return Refusal(USER_DISABLED, "user disabled", account=account_key(user.principal.domain,
                                                                                user.principal.name))
        if self._box is None or user.digest_secret is None:
            # Not a password failure: the user simply cannot use PasswordDigest (it needs a
            # reversible secret: UsernameToken Profile 1.1 §3.1 hashes the password itself with the nonce).
            return Refusal(DIGEST_UNSUPPORTED, "user not enrolled for PasswordDigest")
        try:
            secret = open_digest_secret(self._box, user)
        except SecretBoxError:
            _LOG.error("sealed digest secret does not open", extra={"user": user.principal.qualified_name})
            return Refusal(DIGEST_SECRET_BROKEN, "digest secret unusable")
        if secret is None:
            return Refusal(DIGEST_UNSUPPORTED, "user not enrolled for PasswordDigest")
        return DigestSecret(user.principal, secret)

    def lookup(self, domain: str, name: str) -> Principal | None:
        """The user's current principal, enabled or not."""
        user = self.find(domain, name)
        return None if user is None else user.principal

    # --- rows (each database) ------------------------------------------------------------------------------------

    @abstractmethod
    def find(self, domain: str, name: str) -> StoredUser | None:
        """Look a user up by domain and (case-insensitive) name; a store that cannot answer fails closed."""

    @abstractmethod
    def update_password_hash(self, user_id: int, new_hash: str) -> None:
        """Replace a user's hash (rehash on login)."""

    @abstractmethod
    def add_user(
        self,
        domain: str,
        name: str,
        password: str,
        roles: Iterable[str] = (),
        claims: Mapping[str, Iterable[str]] | None = None,
        digest: bool = False,
    ) -> None:
        """Create a user with a hashed password (and, with ``digest``, a sealed secret), roles and claims."""

    @abstractmethod
    def set_password(self, domain: str, name: str, password: str, digest: bool = False) -> None:
        """Replace a user's password; ``digest`` keeps (or adds) the sealed secret for PasswordDigest."""

    @abstractmethod
    def set_enabled(self, domain: str, name: str, enabled: bool) -> None:
        """Enable or disable a user."""

    @abstractmethod
    def remove_user(self, domain: str, name: str) -> None:
        """Delete a user with its roles and claims (also one stored under a name that breaks today's rules)."""

    @abstractmethod
    def grant(self, domain: str, name: str, role: str) -> None:
        """Give a user a role (which must exist)."""

    @abstractmethod
    def revoke(self, domain: str, name: str, role: str) -> None:
        """Take a role from a user."""

    @abstractmethod
    def set_claims(self, domain: str, name: str, claims: Mapping[str, Iterable[str]]) -> None:
        """Replace the values of the given claim URIs (an empty list removes the claim)."""

    @abstractmethod
    def list_users(self) -> list[tuple[str, str, bool, bool]]:
        """``(domain, name, enabled, digest_enrolled)`` for every user, sorted."""

    @abstractmethod
    def users_with_claims(self, uris: Iterable[str]) -> list[tuple[str, str]]:
        """``(domain, name)`` of every user with a value stored under one of ``uris``, sorted (``sts check-config``:
        role claims stored by an earlier release)."""

    @abstractmethod
    def add_role(self, role: str) -> None:
        """Create a role; duplicates (case-insensitive) are refused."""

    @abstractmethod
    def remove_role(self, role: str) -> None:
        """Delete a role (and every grant of it)."""

    @abstractmethod
    def list_roles(self) -> list[tuple[str, int]]:
        """``(role, number of holders)`` for every role."""

    # --- client certificates (sts user add-cert / remove-cert / show) -----------------------------------------

    @property
    @abstractmethod
    def certificate_store(self) -> CertificateStore:
        """The registered client certificates, in this store's database."""

    @abstractmethod
    def user_id(self, domain: str, name: str) -> int:
        """The user's row id, or a :class:`UserStoreError` naming the missing user."""

    def add_certificate(self, domain: str, name: str, der: bytes) -> str:
        """Register a client certificate (DER) to a user; returns its SHA-256 fingerprint."""
        return self.certificate_store.add(self.user_id(domain, name), der)

    def remove_certificate(self, domain: str, name: str, fingerprint: str) -> None:
        """Unregister one of the user's certificates by its SHA-256 fingerprint."""
        if not self.certificate_store.remove(self.user_id(domain, name), fingerprint):
            raise UserStoreError(f"{domain.upper()}/{name} has no certificate with that fingerprint")

    def certificates(self, domain: str, name: str) -> list[bytes]:
        """The DER of each certificate registered to the user."""
        return self.certificate_store.of_user(self.user_id(domain, name))

    # --- rules shared by the databases ---------------------------------------------------------------------------

    def _seal(self, domain: str, name: str, password: str) -> bytes:
        if self._box is None:
            raise UserStoreError("no credential key configured: PasswordDigest enrolment is unavailable")
        return self._box.seal(password, f"{domain}/{canonical(name)}")


def check_claim(uri: str, values: list[str]) -> None:
    """A claim URI without whitespace or control characters; values without control characters but tab and
    newline (they end up in XML text, and a terminal shows them). Both must be XML 1.0 text (§2.2 [2] Char):
    a value such as U+FFFF, once stored, would make every token of this user fail to build."""
    if not uri or not is_xml_text(uri) or any(ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf") for ch in uri):
        raise UserStoreError(f"invalid claim URI {uri!r}")
    for value in values:
        if any(unicodedata.category(ch) == "Cc" and ch not in "\t\n" for ch in value):
            raise UserStoreError("claim values must not contain control characters")
        if not is_xml_text(value):
            raise UserStoreError("claim values must be XML text (no U+FFFE, U+FFFF or unpaired surrogates)")


def open_digest_secret(box: SecretBox, user: StoredUser) -> str | None:
    """The recoverable secret of a digest-enrolled user, or None."""
    if user.digest_secret is None:
        return None
    return box.open(user.digest_secret, f"{user.principal.domain}/{canonical(user.principal.name)}")
