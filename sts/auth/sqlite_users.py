"""The built-in user store: users, roles and per-user claim values in the STS's SQLite database.

It keeps what WSO2's JDBC user store keeps: an argon2id hash per user (older hashes are upgraded at the next
successful login), and for users enrolled for PasswordDigest a recoverable secret sealed with the credential key.
It serves every domain it has users for (domains are labels on its rows); ``sts user`` and ``sts role`` provision it.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager

from sts.auth.builtin_users import BuiltinUserStore, StoredUser, check_claim, open_digest_secret
from sts.auth.passwords import PasswordHasher
from sts.auth.users import (
    Principal,
    UserStoreError,
    canonical,
    check_password,
    normalize_domain,
    normalize_name,
    normalize_user_name,
)
from sts.crypto.secretbox import SecretBox
from sts.stores.sqlite import Database
from sts.stores.sqlite_certificates import SqliteCertificateStore

__all__ = ["SqliteUserStore", "StoredUser", "open_digest_secret"]


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


class SqliteUserStore(BuiltinUserStore):
    """Users, roles and claims in the STS's SQLite database."""

    def __init__(self, db: Database, hasher: PasswordHasher, secret_box: SecretBox | None = None) -> None:
        super().__init__(hasher, secret_box)
        self._db = db

    @property
    def database(self) -> Database:
        """The database the store lives in (shared with the lockout counters)."""
        return self._db

    # --- lookups ---------------------------------------------------------------------------------------------

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

    def users_with_claims(self, uris: Iterable[str]) -> list[tuple[str, str]]:
        """``(domain, name)`` of every user with a value stored under one of ``uris``, sorted."""
        found: set[tuple[str, str, str]] = set()
        for uri in set(uris):
            found.update(self._db.conn.execute(
                "SELECT domain, canonical, name FROM users WHERE id IN (SELECT user_id FROM user_claims WHERE uri = ?)",
                (uri,),
            ))
        return [(domain, name) for domain, _, name in sorted(found)]

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

    # --- client certificates (sts user add-cert / remove-cert / show) -----------------------------------------

    @property
    def certificate_store(self) -> SqliteCertificateStore:
        """The registered client certificates, in the same database."""
        return SqliteCertificateStore(self._db)

    def user_id(self, domain: str, name: str) -> int:
        """The user's row id, or a :class:`UserStoreError`."""
        return self._require(domain, name)

    # --- helpers -----------------------------------------------------------------------------------------

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
        check_claim(uri, values)
        self._db.conn.execute("DELETE FROM user_claims WHERE user_id = ? AND uri = ?", (user_id, uri))
        self._db.conn.executemany(
            "INSERT INTO user_claims(user_id, uri, position, value) VALUES (?, ?, ?, ?)",
            [(user_id, uri, position, value) for position, value in enumerate(values)],
        )

