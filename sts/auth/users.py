"""The user store: users, roles and per-user claim values (WSO2's user-store model).

Names are domain-qualified as WSO2 writes them (``PRIMARY/alice``, or ``alice`` meaning PRIMARY). One documented
normalisation (catalogue X20): Unicode NFC, surrounding whitespace trimmed, control and format characters
refused; uniqueness and lookups use the case-folded form, so ``Alice`` and ``alice`` are the same user.
"""

from __future__ import annotations

import sqlite3
import time
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from sts.auth.passwords import PasswordHasher
from sts.stores.sqlite import Database

PRIMARY = "PRIMARY"
MAX_NAME_LENGTH = 256


class UserStoreError(Exception):
    """A provisioning error with a message fit for the command line (duplicate, unknown name, bad value)."""


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated (or looked-up) user: domain, name, roles and claim values."""

    domain: str
    name: str
    roles: frozenset[str]
    claims: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    enabled: bool = True

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
    digest_secret: bytes | None


def normalize_name(text: str) -> str:
    """NFC, trimmed; refuse empty names, over-long names and control/format characters."""
    name = unicodedata.normalize("NFC", text).strip()
    if not name or len(name) > MAX_NAME_LENGTH:
        raise UserStoreError("names must be 1 to 256 characters")
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Zl", "Zp") for ch in name):
        raise UserStoreError("names must not contain control or format characters")
    return name


def canonical(name: str) -> str:
    """The case-folded form used for uniqueness and lookups."""
    return normalize_name(name).casefold()


def split_qualified(qualified: str, default_domain: str = PRIMARY) -> tuple[str, str]:
    """``"PRIMARY/alice"`` → ``("PRIMARY", "alice")``; ``"alice"`` → ``(default_domain, "alice")``."""
    domain, sep, name = qualified.partition("/")
    if not sep:
        return default_domain, normalize_name(qualified)
    return normalize_name(domain).upper(), normalize_name(name)


class UserStore(Protocol):
    """What authentication needs; LDAP can implement it later."""

    def find(self, domain: str, name: str) -> StoredUser | None:
        """The user, or None."""
        ...

    def update_password_hash(self, user_id: int, new_hash: str) -> None:
        """Store an upgraded hash after a successful login."""
        ...


class SqliteUserStore:
    """Users, roles and claims in the STS database."""

    def __init__(self, db: Database, hasher: PasswordHasher) -> None:
        self._db = db
        self._hasher = hasher

    # --- lookups used on the request path ---------------------------------------------------------------

    def find(self, domain: str, name: str) -> StoredUser | None:
        """Look a user up by domain and (case-insensitive) name."""
        try:
            key = canonical(name)
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
    ) -> None:
        """Create a user with a hashed password, roles (which must exist) and claim values."""
        name, domain = normalize_name(name), normalize_name(domain).upper()
        if not password:
            raise UserStoreError("empty passwords are not allowed")
        now = time.time()
        conn = self._db.conn
        with _transaction(conn):
            if self._user_id(domain, name) is not None:
                raise UserStoreError(f"user {domain}/{name} already exists")
            cursor = conn.execute(
                "INSERT INTO users(domain, name, canonical, password_hash, enabled, created, updated)"
                " VALUES (?, ?, ?, ?, 1, ?, ?)",
                (domain, name, canonical(name), self._hasher.hash(password), now, now),
            )
            user_id = int(cursor.lastrowid or 0)
            for role in roles:
                self._grant(user_id, role)
            for uri, values in (claims or {}).items():
                self._set_claim(user_id, uri, list(values))

    def add_role(self, role: str) -> None:
        """Create a role; duplicates (case-insensitive) are refused."""
        role = normalize_name(role)
        conn = self._db.conn
        if conn.execute("SELECT 1 FROM roles WHERE canonical = ?", (canonical(role),)).fetchone():
            raise UserStoreError(f"role {role} already exists")
        conn.execute("INSERT INTO roles(name, canonical) VALUES (?, ?)", (role, canonical(role)))

    def _user_id(self, domain: str, name: str) -> int | None:
        row = self._db.conn.execute(
            "SELECT id FROM users WHERE domain = ? AND canonical = ?", (domain.upper(), canonical(name))
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
        for value in values:
            if any(unicodedata.category(ch) == "Cc" and ch not in "\t\n" for ch in value):
                raise UserStoreError("claim values must not contain control characters")
        self._db.conn.execute("DELETE FROM user_claims WHERE user_id = ? AND uri = ?", (user_id, uri))
        self._db.conn.executemany(
            "INSERT INTO user_claims(user_id, uri, position, value) VALUES (?, ?, ?, ?)",
            [(user_id, uri, position, value) for position, value in enumerate(values)],
        )


class _transaction:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` on an autocommit connection; rolls back on error."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._conn.execute("ROLLBACK" if exc_type else "COMMIT")

