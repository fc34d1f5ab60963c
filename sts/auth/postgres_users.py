"""The built-in user store in PostgreSQL: the rows of :class:`~sts.auth.builtin_users.BuiltinUserStore`, shared by
every node, with the same rules and answers as the SQLite store (:mod:`sts.auth.sqlite_users`).

A login reads the user, its roles and its claims in one statement (one round trip); each provisioning command is
one transaction, so a failed command leaves nothing half-written. Any database failure is
:class:`~sts.errors.ServiceUnavailable` (fail closed).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

from sts.auth.builtin_users import BuiltinUserStore, StoredUser, check_claim
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
from sts.stores.postgres import PostgresDatabase, Session
from sts.stores.postgres_certificates import PostgresCertificateStore

_WHAT, _REASON = "user store", "user_store_down"
_FIND = """
    SELECT u.id, u.name, u.password_hash, u.digest_secret, u.enabled,
           ARRAY(SELECT role FROM user_roles WHERE user_id = u.id ORDER BY role),
           ARRAY(SELECT uri FROM user_claims WHERE user_id = u.id ORDER BY uri, position),
           ARRAY(SELECT value FROM user_claims WHERE user_id = u.id ORDER BY uri, position)
    FROM users u WHERE u.domain = %s AND u.canonical = %s
"""


class PostgresUserStore(BuiltinUserStore):
    """Users, roles and claims in the shared PostgreSQL database."""

    def __init__(self, db: PostgresDatabase, hasher: PasswordHasher, secret_box: SecretBox | None = None) -> None:
        super().__init__(hasher, secret_box)
        self._db = db

    @property
    def certificate_store(self) -> PostgresCertificateStore:
        """The registered client certificates, in the same database."""
        return PostgresCertificateStore(self._db)

    def user_id(self, domain: str, name: str) -> int:
        """The user's row id, or a :class:`UserStoreError`."""
        with self._db.session(_WHAT, _REASON) as session:
            return _require(session, domain, name)[0]

    def find(self, domain: str, name: str) -> StoredUser | None:
        """Look a user up by domain and (case-insensitive) name, with roles and claims, in one statement."""
        try:
            key = canonical(normalize_user_name(name))
        except UserStoreError:
            return None
        with self._db.session(_WHAT, _REASON) as session:
            row = session.execute(_FIND, (domain.upper(), key)).one()
        if row is None:
            return None
        user_id, stored_name, password_hash, digest_secret, enabled, roles, uris, values = row
        claims: dict[str, list[str]] = {}
        for uri, value in zip(uris, values, strict=True):
            claims.setdefault(uri, []).append(value)
        principal = Principal(
            domain.upper(), stored_name, frozenset(roles), {uri: tuple(v) for uri, v in claims.items()}, bool(enabled)
        )
        secret = bytes(digest_secret) if digest_secret is not None else None
        return StoredUser(int(user_id), principal, password_hash, secret)

    def update_password_hash(self, user_id: int, new_hash: str) -> None:
        """Replace a user's hash (rehash on login)."""
        with self._db.session(_WHAT, _REASON) as session:
            session.execute(
                "UPDATE users SET password_hash = %s, updated = %s WHERE id = %s", (new_hash, time.time(), user_id)
            )

    # --- provisioning (CLI) ------------------------------------------------------------------------------------

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
        password_hash = self._hasher.hash(password)
        sealed = self._seal(domain, name, password) if digest else None
        with self._db.session(_WHAT, _REASON, transaction=True) as session:
            row = session.execute(
                "INSERT INTO users(domain, name, canonical, password_hash, digest_secret, enabled, created, updated)"
                " VALUES (%s, %s, %s, %s, %s, TRUE, %s, %s) ON CONFLICT (domain, canonical) DO NOTHING RETURNING id",
                (domain, name, canonical(name), password_hash, sealed, now, now),
            ).one()
            if row is None:
                raise UserStoreError(f"user {domain}/{name} already exists")
            for role in roles:
                _grant(session, int(row[0]), role)
            for uri, values in (claims or {}).items():
                _set_claim(session, int(row[0]), uri, list(values))

    def set_password(self, domain: str, name: str, password: str, digest: bool = False) -> None:
        """Replace a user's password; ``digest`` keeps (or adds) the sealed secret for PasswordDigest."""
        check_password(password)
        password_hash = self._hasher.hash(password)
        with self._db.session(_WHAT, _REASON, transaction=True) as session:
            user_id, stored = _require(session, domain, name)
            session.execute(
                "UPDATE users SET password_hash = %s, digest_secret = %s, updated = %s WHERE id = %s",
                (password_hash, self._seal(domain.upper(), stored, password) if digest else None, time.time(),
                 user_id),
            )

    def set_enabled(self, domain: str, name: str, enabled: bool) -> None:
        """Enable or disable a user."""
        with self._db.session(_WHAT, _REASON, transaction=True) as session:
            user_id, _ = _require(session, domain, name)
            session.execute(
                "UPDATE users SET enabled = %s, updated = %s WHERE id = %s", (enabled, time.time(), user_id)
            )

    def remove_user(self, domain: str, name: str) -> None:
        """Delete a user with its roles and claims (also one stored before today's name rules)."""
        with self._db.session(_WHAT, _REASON) as session:
            deleted = session.execute(
                "DELETE FROM users WHERE domain = %s AND canonical = %s", (normalize_domain(domain), canonical(name))
            ).rowcount
        if deleted == 0:
            raise UserStoreError(f"no user {domain.upper()}/{name}")

    def grant(self, domain: str, name: str, role: str) -> None:
        """Give a user a role (which must exist)."""
        with self._db.session(_WHAT, _REASON, transaction=True) as session:
            _grant(session, _require(session, domain, name)[0], role)

    def revoke(self, domain: str, name: str, role: str) -> None:
        """Take a role from a user."""
        with self._db.session(_WHAT, _REASON, transaction=True) as session:
            user_id, role_name = _require(session, domain, name)[0], _role_name(session, role)
            revoked = session.execute(
                "DELETE FROM user_roles WHERE user_id = %s AND role = %s", (user_id, role_name)
            ).rowcount
        if revoked == 0:
            raise UserStoreError(f"{domain}/{name} does not hold role {role_name}")

    def set_claims(self, domain: str, name: str, claims: Mapping[str, Iterable[str]]) -> None:
        """Replace the values of the given claim URIs (an empty list removes the claim)."""
        with self._db.session(_WHAT, _REASON, transaction=True) as session:
            user_id, _ = _require(session, domain, name)
            for uri, values in claims.items():
                _set_claim(session, user_id, uri, list(values))

    def list_users(self) -> list[tuple[str, str, bool, bool]]:
        """``(domain, name, enabled, digest_enrolled)`` for every user, sorted."""
        with self._db.session(_WHAT, _REASON) as session:
            rows = session.execute(
                "SELECT domain, name, enabled, digest_secret IS NOT NULL FROM users ORDER BY domain, canonical"
            ).rows
        return [(d, n, bool(e), bool(g)) for d, n, e, g in rows]

    def users_with_claims(self, uris: Iterable[str]) -> list[tuple[str, str]]:
        """``(domain, name)`` of every user with a value stored under one of ``uris``, sorted."""
        wanted = sorted(set(uris))
        if not wanted:
            return []
        with self._db.session(_WHAT, _REASON) as session:
            rows = session.execute(
                "SELECT domain, name FROM users WHERE id IN (SELECT user_id FROM user_claims WHERE uri = ANY(%s))"
                " ORDER BY domain, canonical",
                (wanted,),
            ).rows
        return [(d, n) for d, n in rows]

    def add_role(self, role: str) -> None:
        """Create a role; duplicates (case-insensitive) are refused."""
        role = normalize_name(role)
        with self._db.session(_WHAT, _REASON) as session:
            added = session.execute(
                "INSERT INTO roles(name, canonical) VALUES (%s, %s) ON CONFLICT DO NOTHING", (role, canonical(role))
            ).rowcount
        if added == 0:
            raise UserStoreError(f"role {role} already exists")

    def remove_role(self, role: str) -> None:
        """Delete a role (and every grant of it)."""
        with self._db.session(_WHAT, _REASON, transaction=True) as session:
            session.execute("DELETE FROM roles WHERE name = %s", (_role_name(session, role),))

    def list_roles(self) -> list[tuple[str, int]]:
        """``(role, number of holders)`` for every role."""
        with self._db.session(_WHAT, _REASON) as session:
            rows = session.execute(
                "SELECT r.name, COUNT(ur.user_id) FROM roles r LEFT JOIN user_roles ur ON ur.role = r.name"
                " GROUP BY r.name, r.canonical ORDER BY r.canonical"
            ).rows
        return [(name, int(count)) for name, count in rows]


def _require(session: Session, domain: str, name: str) -> tuple[int, str]:
    """The user's id and stored name, or a :class:`UserStoreError`."""
    row = session.execute(
        "SELECT id, name FROM users WHERE domain = %s AND canonical = %s",
        (domain.upper(), canonical(normalize_user_name(name))),
    ).one()
    if row is None:
        raise UserStoreError(f"no user {domain.upper()}/{name}")
    return int(row[0]), str(row[1])


def _role_name(session: Session, role: str) -> str:
    row = session.execute("SELECT name FROM roles WHERE canonical = %s", (canonical(role),)).one()
    if row is None:
        raise UserStoreError(f"unknown role {role} (create it with `sts role add`)")
    return str(row[0])


def _grant(session: Session, user_id: int, role: str) -> None:
    session.execute(
        "INSERT INTO user_roles(user_id, role) VALUES (%s, %s) ON CONFLICT DO NOTHING",
        (user_id, _role_name(session, role)),
    )


def _set_claim(session: Session, user_id: int, uri: str, values: list[str]) -> None:
    check_claim(uri, values)
    session.execute("DELETE FROM user_claims WHERE user_id = %s AND uri = %s", (user_id, uri))
    if values:
        session.executemany(
            "INSERT INTO user_claims(user_id, uri, position, value) VALUES (%s, %s, %s, %s)",
            [(user_id, uri, position, value) for position, value in enumerate(values)],
        )
