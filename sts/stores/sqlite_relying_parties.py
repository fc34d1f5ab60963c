"""The relying-party registry in SQLite: the ``relying_parties`` table and the ``rp_version`` counter in ``meta``.

Implements :class:`sts.relying_parties.registry.RelyingPartyStore` (rows only: what a row means is the registry's
business). Every change bumps ``rp_version``: SQLite's ``PRAGMA data_version`` moves with every write by another
connection, replay and token records included, so caches keyed on it would reload the registry on nearly every
request. Any SQLite error fails closed as :class:`~sts.errors.ServiceUnavailable`.
"""

from __future__ import annotations

import sqlite3
import time

from sts.errors import ServiceUnavailable
from sts.stores.sqlite import Database


class SqliteRelyingPartyStore:
    """Relying-party rows in the STS database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def insert(self, address: str, config: str) -> bool:
        """Add a row unless ``address`` is taken (one statement: two racing registrations cannot both win)."""
        now = time.time()
        try:
            added = self._insert(address, config, now)
            if added:
                self._bump()
        except sqlite3.Error as exc:
            raise self._unavailable(exc) from None
        return added

    def update(self, address: str, config: str) -> bool:
        """Replace the settings of ``address``."""
        try:
            cursor = self._db.conn.execute(
                "UPDATE relying_parties SET config = ?, updated = ? WHERE address = ?", (config, time.time(), address)
            )
            if cursor.rowcount == 1:
                self._bump()
        except sqlite3.Error as exc:
            raise self._unavailable(exc) from None
        return cursor.rowcount == 1

    def replace(self, old_address: str, address: str, config: str) -> bool:
        """Remove ``old_address`` and add ``address`` in one ``BEGIN IMMEDIATE`` transaction."""
        try:
            conn = self._db.conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                deleted = conn.execute("DELETE FROM relying_parties WHERE address = ?", (old_address,)).rowcount
                done = deleted == 1 and self._insert(address, config, time.time())
                if done:
                    self._bump()
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT" if done else "ROLLBACK")
        except sqlite3.Error as exc:
            raise self._unavailable(exc) from None
        return done

    def delete(self, address: str) -> bool:
        """Remove the row of ``address``."""
        try:
            cursor = self._db.conn.execute("DELETE FROM relying_parties WHERE address = ?", (address,))
            if cursor.rowcount == 1:
                self._bump()
        except sqlite3.Error as exc:
            raise self._unavailable(exc) from None
        return cursor.rowcount == 1

    def get(self, address: str) -> str | None:
        """The settings registered under exactly ``address``."""
        try:
            row = self._db.conn.execute("SELECT config FROM relying_parties WHERE address = ?", (address,)).fetchone()
        except sqlite3.Error as exc:
            raise self._unavailable(exc) from None
        return None if row is None else str(row[0])

    def all(self) -> list[str]:
        """Every row's settings, ordered by address."""
        try:
            rows = self._db.conn.execute("SELECT config FROM relying_parties ORDER BY address").fetchall()
        except sqlite3.Error as exc:
            raise self._unavailable(exc) from None
        return [str(row[0]) for row in rows]

    def version(self) -> int:
        """The ``rp_version`` counter (0 before the first change)."""
        try:
            row = self._db.conn.execute("SELECT value FROM meta WHERE key = 'rp_version'").fetchone()
        except sqlite3.Error as exc:
            raise self._unavailable(exc) from None
        return 0 if row is None else int(row[0])

    def _insert(self, address: str, config: str, now: float) -> bool:
        # The registered address is also its canonical form (the registry normalises before storing); the UNIQUE
        # constraints on both make a duplicate a no-op rather than an error.
        cursor = self._db.conn.execute(
            "INSERT INTO relying_parties(address, canonical, config, created, updated) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT DO NOTHING",
            (address, address, config, now, now),
        )
        return cursor.rowcount == 1

    def _bump(self) -> None:
        self._db.conn.execute(
            "INSERT INTO meta(key, value) VALUES ('rp_version', '1')"
            " ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1"
        )

    def _unavailable(self, exc: sqlite3.Error) -> ServiceUnavailable:
        """The fail-closed error when the registry cannot be used (the next call reconnects)."""
        return self._db.unavailable("relying-party store", exc, "rp_store_down")
