"""The user store: users, roles and per-user claim values (WSO2's user-store model).

Names are domain-qualified as WSO2 writes them (``PRIMARY/alice``, or ``alice`` meaning PRIMARY). One documented
normalisation (catalogue X20): Unicode NFC, surrounding whitespace trimmed, control and format characters
refused; uniqueness and lookups use the case-folded form, so ``Alice`` and ``alice`` are the same user, while
``ａｌｉｃｅ`` (fullwidth) stays a different name.

``/`` separates the domain from the name (as in WSO2), so neither part may contain it: otherwise the PRIMARY user
``SECONDARY/carol`` and the user ``carol`` of domain SECONDARY would be the same NameID. :func:`normalize_user_name`
is that rule; every place a user name enters (the command line, requests, any user store) goes through it.
"""

from __future__ import annotations

import sqlite3
import time
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol

from sts.auth.passwords import PasswordHasher
from sts.crypto.secretbox import SecretBox
from sts.stores.sqlite import Database

PRIMARY = "PRIMARY"
DOMAIN_SEPARATOR = "/"
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


@dataclass(frozen=True, slots=True)
class StoredUser:
    """What the authenticator needs from the store for one user."""

    user_id: int
    principal: Principal
    password_hash: str
    digest_secret: bytes | None = field(repr=False)


def normalize_name(text: str) -> str:
    """NFC, trimmed; refuse empty names, over-long names and control/format characters."""
    name = unicodedata.normalize("NFC", text).strip()
    if not name or len(name) > MAX_NAME_LENGTH:
        raise UserStoreError("names must be 1 to 256 characters")
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Zl", "Zp") for ch in name):
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


def valid_user_name(name: str) -> bool:
    """Whether a stored name passes :func:`normalize_user_name` (rows written before the rule may not)."""
    try:
        normalize_user_name(name)
    except UserStoreError:
        return False
    return True


def normalize_domain(text: str) -> str:
    """A user-store domain: a normalised name without ``/``, upper-cased as WSO2 writes it."""
    domain = normalize_name(text).upper()
    if _has_separator(domain):
        raise UserStoreError("domain names must not contain '/'")
    return domain


def canonical(name: str) -> str:
    """The case-folded form used for uniqueness and lookups."""
    return normalize_name(name).casefold()


def split_qualified(qualified: str, default_domain: str = PRIMARY) -> tuple[str, str]:
    """``"PRIMARY/alice"`` → ``("PRIMARY", "alice")``; ``"alice"`` → ``(default_domain, "alice")``.

    The text before the first ``/`` is the domain; a second ``/`` (``PRIMARY/SECONDARY/carol``) is refused.
    """
    domain, sep, name = qualified.partition(DOMAIN_SEPARATOR)
    if not sep:
        return default_domain, normalize_user_name(qualified)
    return normalize_domain(domain), normalize_user_name(name)


def check_password(password: str) -> None:
    """Provisioning rule: non-empty, at most 1024 UTF-8 bytes, no NUL."""
    if not password:
        raise UserStoreError("empty passwords are not allowed")
    if len(password.encode("utf-8")) > MAX_PASSWORD_BYTES or "\x00" in password:
        raise UserStoreError("passwords must be at most 1024 bytes and contain no NUL")


class UserStore(Protocol):
    """What authentication needs; LDAP can implement it later.

    Implementations resolve names with :func:`normalize_user_name` (a name it refuses is no user: ``find``
    answers None) and never return a user whose stored name breaks that rule.
    """

    def find(self, domain: str, name: str) -> StoredUser | None:
        """The user, or None."""
        ...

    def update_password_hash(self, user_id: int, new_hash: str) -> None:
        """Store an upgraded hash after a successful login."""
        ...


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` on an autocommit connection; rolls back on error."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


class SqliteUserStore:
    """Users, roles and claims in the STS database."""

    def __init__(self, db: Database, hasher: PasswordHasher, secret_box: SecretBox | None = None) -> None:
        self._db = db
        self._hasher = hasher
        self._box = secret_box

    @property
    def database(self) -> Database:
        """The database the store lives in (shared with the lockout counters)."""
        return self._db

    # --- lookups used on the request path ---------------------------------------------------------------

    def find(self, domain: str, name: str) -> StoredUser | None:
        """Look a user up by domain and (case-insensitive) name; a store that cannot answer fails closed."""
        try:
            return self._find(domain, name)
        except sqlite3.Error as exc:
            raise self._db.unavailable("user store", exc, "user_store_down") from None

    def _find(self, domain: str, name: str) -> StoredUser | None:
        try:
            key = canonical(normalize_user_name(name))
        except UserStoreError:
            return None
        row = self._db.conn.execute(
            "SELECT id, name, password_hash, digest_secret, enabled FROM users WHERE domain = ? AND canonical = ?",
            (domain.upper(), key),
        ).fetchone()
        if row is None:
            return None
        user_id, stored_name, password_hash, digest_secret, enabled = row
        principal = Principal(domain.upper(), stored_name, self._roles(user_id), self._claims(user_id), bool(enabled))
        return StoredUser(user_id, principal, password_hash, digest_secret)

    def update_password_hash(self, user_id: int, new_hash: str) -> None:
        """Replace a user's hash (rehash on login)."""
        self._db.conn.execute(
            "UPDATE users SET password_hash = ?, updated = ? WHERE id = ?", (new_hash, time.time(), user_id)
        )

    def _roles(self, user_id: int) -> frozenset[str]:
        rows = self._db.conn.execute("SELECT role FROM user_roles WHERE user_id = ?", (user_id,))
        return frozenset(row[0] for row in rows)

    def _claims(self, user_id: int) -> dict[str, tuple[str, ...]]:
        claims: dict[str, list[str]] = {}
        rows = self._db.conn.execute(
            "SELECT uri, value FROM user_claims WHERE user_id = ? ORDER BY uri, position", (user_id,)
        )
        for uri, value in rows:
            claims.setdefault(uri, []).append(value)
        return {uri: tuple(values) for uri, values in claims.items()}

    # --- provisioning (CLI) ------------------------------------------------------------------------------

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
        name, domain = normalize_user_name(name), normalize_domain(domain)
        check_password(password)
        now = time.time()
        conn = self._db.conn
        with _transaction(conn):
            if self._user_id(domain, name) is not None:
                raise UserStoreError(f"user {domain}/{name} already exists")
            cursor = conn.execute(
                "INSERT INTO users(domain, name, canonical, password_hash, digest_secret, enabled, created, updated)"
                " VALUES (?, ?, ?, ?, ?, 1, ?, ?)",
                (domain, name, canonical(name), self._hasher.hash(password),
                 self._seal(domain, name, password) if digest else None, now, now),
            )
            user_id = int(cursor.lastrowid or 0)
            for role in roles:
                self._grant(user_id, role)
            for uri, values in (claims or {}).items():
                self._set_claim(user_id, uri, list(values))

    def set_password(self, domain: str, name: str, password: str, digest: bool = False) -> None:
        """Replace a user's password; ``digest`` keeps (or adds) the sealed secret for PasswordDigest."""
        check_password(password)
        user_id = self._require(domain, name)
        stored = self._db.conn.execute("SELECT name FROM users WHERE id = ?", (user_id,)).fetchone()[0]
        self._db.conn.execute(
            "UPDATE users SET password_hash = ?, digest_secret = ?, updated = ? WHERE id = ?",
            (self._hasher.hash(password), self._seal(domain.upper(), stored, password) if digest else None,
             time.time(), user_id),
        )

    def set_enabled(self, domain: str, name: str, enabled: bool) -> None:
        """Enable or disable a user."""
        user_id = self._require(domain, name)
        self._db.conn.execute(
            "UPDATE users SET enabled = ?, updated = ? WHERE id = ?", (int(enabled), time.time(), user_id)
        )

    def remove_user(self, domain: str, name: str) -> None:
        """Delete a user with its roles and claims.

        ``name`` may break :func:`normalize_user_name` when it names a row stored before that rule existed
        (see :meth:`list_users`): such a user can no longer sign in, and removing it must stay possible.
        """
        row = self._db.conn.execute(
            "SELECT id FROM users WHERE domain = ? AND canonical = ?", (normalize_domain(domain), canonical(name))
        ).fetchone()
        if row is None:
            raise UserStoreError(f"no user {domain.upper()}/{name}")
        self._db.conn.execute("DELETE FROM users WHERE id = ?", (int(row[0]),))

    def grant(self, domain: str, name: str, role: str) -> None:
        """Give a user a role (which must exist)."""
        self._grant(self._require(domain, name), role)

    def revoke(self, domain: str, name: str, role: str) -> None:
        """Take a role from a user."""
        user_id, role_name = self._require(domain, name), self._role_name(role)
        cursor = self._db.conn.execute(
            "DELETE FROM user_roles WHERE user_id = ? AND role = ?", (user_id, role_name)
        )
        if cursor.rowcount == 0:
            raise UserStoreError(f"{domain}/{name} does not hold role {role_name}")

    def set_claims(self, domain: str, name: str, claims: Mapping[str, Iterable[str]]) -> None:
        """Replace the values of the given claim URIs (an empty list removes the claim)."""
        user_id = self._require(domain, name)
        with _transaction(self._db.conn):
            for uri, values in claims.items():
                self._set_claim(user_id, uri, list(values))

    def list_users(self) -> list[tuple[str, str, bool, bool]]:
        """``(domain, name, enabled, digest_enrolled)`` for every user, sorted.

        Rows stored before the ``/`` rule are listed too (:func:`valid_user_name` tells them apart).
        """
        rows = self._db.conn.execute(
            "SELECT domain, name, enabled, digest_secret IS NOT NULL FROM users ORDER BY domain, canonical"
        )
        return [(d, n, bool(e), bool(g)) for d, n, e, g in rows]

    def add_role(self, role: str) -> None:
        """Create a role; duplicates (case-insensitive) are refused."""
        role = normalize_name(role)
        conn = self._db.conn
        if conn.execute("SELECT 1 FROM roles WHERE canonical = ?", (canonical(role),)).fetchone():
            raise UserStoreError(f"role {role} already exists")
        conn.execute("INSERT INTO roles(name, canonical) VALUES (?, ?)", (role, canonical(role)))

    def remove_role(self, role: str) -> None:
        """Delete a role (and every grant of it)."""
        self._db.conn.execute("DELETE FROM roles WHERE name = ?", (self._role_name(role),))

    def list_roles(self) -> list[tuple[str, int]]:
        """``(role, number of holders)`` for every role."""
        rows = self._db.conn.execute(
            "SELECT r.name, COUNT(ur.user_id) FROM roles r LEFT JOIN user_roles ur ON ur.role = r.name"
            " GROUP BY r.name ORDER BY r.canonical"
        )
        return [(name, int(count)) for name, count in rows]

    # --- helpers -----------------------------------------------------------------------------------------

    def _seal(self, domain: str, name: str, password: str) -> bytes:
        if self._box is None:
            raise UserStoreError("no credential key configured: PasswordDigest enrolment is unavailable")
        return self._box.seal(password, f"{domain}/{canonical(name)}")

    def _require(self, domain: str, name: str) -> int:
        user_id = self._user_id(domain, name)
        if user_id is None:
            raise UserStoreError(f"no user {domain.upper()}/{name}")
        return user_id

    def _user_id(self, domain: str, name: str) -> int | None:
        row = self._db.conn.execute(
            "SELECT id FROM users WHERE domain = ? AND canonical = ?",
            (domain.upper(), canonical(normalize_user_name(name))),
        ).fetchone()
        return None if row is None else int(row[0])

    def _role_name(self, role: str) -> str:
        row = self._db.conn.execute("SELECT name FROM roles WHERE canonical = ?", (canonical(role),)).fetchone()
        if row is None:
            raise UserStoreError(f"unknown role {role} (create it with `sts role add`)")
        return str(row[0])

    def _grant(self, user_id: int, role: str) -> None:
        self._db.conn.execute(
            "INSERT INTO user_roles(user_id, role) VALUES (?, ?) ON CONFLICT DO NOTHING",
            (user_id, self._role_name(role)),
        )

    def _set_claim(self, user_id: int, uri: str, values: list[str]) -> None:
        if not uri or any(ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf") for ch in uri):
            raise UserStoreError(f"invalid claim URI {uri!r}")
        for value in values:
            if any(unicodedata.category(ch) == "Cc" and ch not in "\t\n" for ch in value):
                raise UserStoreError("claim values must not contain control characters")
        self._db.conn.execute("DELETE FROM user_claims WHERE user_id = ? AND uri = ?", (user_id, uri))
        self._db.conn.executemany(
            "INSERT INTO user_claims(user_id, uri, position, value) VALUES (?, ?, ?, ?)",
            [(user_id, uri, position, value) for position, value in enumerate(values)],
        )


def open_digest_secret(box: SecretBox, user: StoredUser) -> str | None:
    """The recoverable secret of a digest-enrolled user, or None."""
    if user.digest_secret is None:
        return None
    return box.open(user.digest_secret, f"{user.principal.domain}/{canonical(user.principal.name)}")
