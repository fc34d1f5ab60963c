"""The relying-party registry in PostgreSQL: the ``relying_parties`` table and the ``rp_version`` counter in ``meta``.

Implements :class:`sts.relying_parties.registry.RelyingPartyStore` like :mod:`sts.stores.sqlite_relying_parties`:
every change bumps ``rp_version`` in the same transaction, so each node's cache sees a change made on any node at
its next version check. Any failure fails closed as :class:`~sts.errors.ServiceUnavailable`.
"""

from __future__ import annotations

import time

from sts.stores.postgres import PostgresDatabase, Session

_WHAT, _REASON = "relying-party store", "rp_store_down"


class PostgresRelyingPartyStore:
    """Relying-party rows in the shared database."""

    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    def insert(self, address: str, config: str) -> bool:
        """Add a row unless ``address`` is taken (two racing registrations cannot both win)."""
        with self._db.session(_WHAT, _REASON, transaction=True) as session:
            added = _insert(session, address, config, time.time())
            if added:
                _bump(session)
        return added

    def update(self, address: str, config: str) -> bool:
        """Replace the settings of ``address``."""
        with self._db.session(_WHAT, _REASON, transaction=True) as session:
            changed = session.execute(
                "UPDATE relying_parties SET config = %s, updated = %s WHERE address = %s",
                (config, time.time(), address),
            ).rowcount == 1
            if changed:
                _bump(session)
        return changed

    def replace(self, old_address: str, address: str, config: str) -> bool:
        """Remove ``old_address`` and add ``address`` in one transaction (nothing changes unless both happen)."""
        with self._db.session(_WHAT, _REASON, transaction=True) as session:
            deleted = session.execute("DELETE FROM relying_parties WHERE address = %s", (old_address,)).rowcount
            done = deleted == 1 and _insert(session, address, config, time.time())
            if not done:
                session.rollback()  # the deletion too: the new address was taken
            _bump(session)
        return done

    def delete(self, address: str) -> bool:
        """Remove the row of ``address``."""
        with self._db.session(_WHAT, _REASON, transaction=True) as session:
            deleted = session.execute("DELETE FROM relying_parties WHERE address = %s", (address,)).rowcount == 1
            if deleted:
                _bump(session)
        return deleted

    def get(self, address: str) -> str | None:
        """The settings registered under exactly ``address``."""
        with self._db.session(_WHAT, _REASON) as session:
            row = session.execute("SELECT config FROM relying_parties WHERE address = %s", (address,)).one()
        return None if row is None else str(row[0])

    def all(self) -> list[str]:
        """Every row's settings, ordered by address."""
        with self._db.session(_WHAT, _REASON) as session:
            rows = session.execute("SELECT config FROM relying_parties ORDER BY address").rows
        return [str(row[0]) for row in rows]

    def version(self) -> int:
        """The ``rp_version`` counter (0 before the first change)."""
        with self._db.session(_WHAT, _REASON) as session:
            row = session.execute("SELECT value FROM meta WHERE key = 'rp_version'").one()
        return 0 if row is None else int(row[0])


def _insert(session: Session, address: str, config: str, now: float) -> bool:
    # The registered address is also its canonical form (the registry normalises before storing); the UNIQUE
    # constraints on both make a duplicate a no-op rather than an error.
    return session.execute(
        "INSERT INTO relying_parties(address, canonical, config, created, updated) VALUES (%s, %s, %s, %s, %s)"
        " ON CONFLICT DO NOTHING",
        (address, address, config, now, now),
    ).rowcount == 1


def _bump(session: Session) -> None:
    session.execute(
        "INSERT INTO meta(key, value) VALUES ('rp_version', '1')"
        " ON CONFLICT (key) DO UPDATE SET value = (CAST(meta.value AS BIGINT) + 1)::text"
    )
