"""PostgreSQL implementations of the replay cache, the counters and the token store: one statement per
check-and-set, so the answers hold across every worker of every node sharing the database.

``INSERT … ON CONFLICT`` is atomic under concurrent inserts (PostgreSQL "INSERT", ON CONFLICT clause): of many
nodes inserting one nonce at once exactly one inserts it. In ``ON CONFLICT DO UPDATE`` every SET expression sees the
row as it was, as in SQLite, so the counter statements are those of :mod:`sts.stores.sqlite_stores`. Renew is a
conditional ``UPDATE`` and an ``INSERT`` in one transaction: a connection lost before ``COMMIT`` rolls both back
(the old token stays live), after it both hold (the new one is live) — never both live, never neither.
"""

from __future__ import annotations

import hashlib
from typing import Any

from sts.clock import Clock, SystemClock
from sts.netaddr import AddressSet
from sts.stores.base import LockState, TokenRecord
from sts.stores.postgres import PostgresDatabase, Session
from sts.stores.sqlite_stores import THROTTLE_PURGE_SECONDS

_PURGE_EVERY = 1000


class PostgresReplayCache:
    """Replay cache in the ``replay`` table; values are stored as SHA-256 digests (bounded key size)."""

    def __init__(self, db: PostgresDatabase, clock: Clock | None = None) -> None:
        self._db = db
        self._clock = clock or SystemClock()
        self._inserts = 0

    def check_and_add(self, namespace: str, value: bytes, expires_at: float, created: float | None = None) -> bool:
        """True when first seen; an expired entry counts as not seen."""
        key = hashlib.sha256(value).hexdigest()
        now = self._clock.now().timestamp()
        with self._db.session("replay store", "replay_store_down") as session:
            first = session.execute(
                "INSERT INTO replay(ns, key, expires) VALUES (%s, %s, %s)"
                " ON CONFLICT (ns, key) DO UPDATE SET expires = excluded.expires WHERE replay.expires <= %s",
                (namespace, key, expires_at, now),
            ).rowcount == 1
            self._inserts += 1
            if self._inserts % _PURGE_EVERY == 0:
                session.execute("DELETE FROM replay WHERE expires <= %s", (now,))
        return first


class PostgresClientThrottle:
    """Per-client failure counters in the ``counters`` table (namespace ``throttle``); fails closed."""

    def __init__(self, db: PostgresDatabase, limit: int, window: int, exempt: AddressSet | None = None) -> None:
        self._db = db
        self._limit = limit
        self._window = window
        self._exempt = exempt or AddressSet()
        self._next_purge = 0.0

    def throttled(self, client: str, now: float) -> bool:
        """True when ``client`` has ``limit`` failures in the current window."""
        if self._limit <= 0 or client in self._exempt:
            return False
        with self._db.session("throttle store", "throttle_store_down") as session:
            row = session.execute(
                "SELECT count, expires FROM counters WHERE ns = 'throttle' AND key = %s", (client,)
            ).one()
        return row is not None and float(row[1]) > now and int(row[0]) >= self._limit

    def record_failure(self, client: str, now: float) -> int:
        """One statement: a new window starts when the old one has expired."""
        if self._limit <= 0 or client in self._exempt:
            return 0
        with self._db.session("throttle store", "throttle_store_down") as session:
            row = session.execute(
                """
                INSERT INTO counters(ns, key, count, level, locked_until, expires)
                VALUES ('throttle', %(key)s, 1, 0, 0, %(now)s + %(window)s)
                ON CONFLICT (ns, key) DO UPDATE SET
                  count = CASE WHEN counters.expires <= %(now)s THEN 1 ELSE counters.count + 1 END,
                  expires = CASE WHEN counters.expires <= %(now)s THEN %(now)s + %(window)s ELSE counters.expires END
                RETURNING count
                """,
                {"key": client, "now": now, "window": float(self._window)},
            ).one()
            if now >= self._next_purge:
                self._next_purge = now + THROTTLE_PURGE_SECONDS
                session.execute("DELETE FROM counters WHERE ns = 'throttle' AND expires <= %s", (now,))
        return int(row[0]) if row else 0


class PostgresLockoutStore:
    """Lockout counters in the ``counters`` table (namespace ``lockout``)."""

    def __init__(self, db: PostgresDatabase, max_failures: int, duration: int, max_duration: int) -> None:
        self._db = db
        self._max = max_failures
        self._duration = duration
        self._max_duration = max_duration

    def state(self, key: str) -> LockState | None:
        """Current failures and lock, or None."""
        with self._db.session("lockout store", "lockout_store_down") as session:
            row = session.execute(
                "SELECT count, locked_until FROM counters WHERE ns = 'lockout' AND key = %s", (key,)
            ).one()
        return None if row is None else LockState(int(row[0]), float(row[1]))

    def record_failure(self, key: str, now: float) -> LockState:
        """One statement: count the failure, or lock (duration × 2^level, capped) when it reaches the threshold;
        while locked, failures change nothing."""
        first_lock = self._max <= 1
        params: dict[str, Any] = {
            "key": key,
            "now": now,
            "max": self._max,
            "dur": float(self._duration),
            "maxdur": float(self._max_duration),
            "expires": now + max(self._max_duration, 86400),
            "c0": 0 if first_lock else 1,
            "l0": now + self._duration if first_lock else 0.0,
            "v0": 1 if first_lock else 0,
        }
        with self._db.session("lockout store", "lockout_store_down") as session:
            row = session.execute(
                """
                INSERT INTO counters(ns, key, count, level, locked_until, expires)
                VALUES ('lockout', %(key)s, %(c0)s, %(v0)s, %(l0)s, %(expires)s)
                ON CONFLICT (ns, key) DO UPDATE SET
                  count = CASE WHEN counters.locked_until > %(now)s THEN counters.count
                               WHEN counters.count + 1 >= %(max)s THEN 0 ELSE counters.count + 1 END,
                  locked_until = CASE WHEN counters.locked_until > %(now)s THEN counters.locked_until
                               WHEN counters.count + 1 >= %(max)s
                               THEN %(now)s + LEAST(%(dur)s * power(2, LEAST(counters.level, 20)), %(maxdur)s)
                               ELSE counters.locked_until END,
                  level = CASE WHEN counters.locked_until <= %(now)s AND counters.count + 1 >= %(max)s
                               THEN counters.level + 1 ELSE counters.level END,
                  expires = %(expires)s
                RETURNING count, locked_until
                """,
                params,
            ).one()
        assert row is not None  # noqa: S101 - INSERT … RETURNING returns the row it wrote
        return LockState(int(row[0]), float(row[1]))

    def reset(self, key: str) -> None:
        """Forget the key."""
        with self._db.session("lockout store", "lockout_store_down") as session:
            session.execute("DELETE FROM counters WHERE ns = 'lockout' AND key = %s", (key,))


class PostgresTokenStore:
    """Issued tokens in the ``tokens`` table; expired rows are purged as new ones arrive."""

    _SELECT = (
        "SELECT id, subject, relying_party, token_type, not_before, not_on_or_after, status, renewable,"
        " renew_after_expiry, digest, data FROM tokens"
    )
    _INSERT = (
        "INSERT INTO tokens(id, subject, relying_party, token_type, not_before, not_on_or_after, status, renewable,"
        " renew_after_expiry, digest, data, expires) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
    )
    _REPLACE = _INSERT + (
        " ON CONFLICT (id) DO UPDATE SET subject = excluded.subject, relying_party = excluded.relying_party,"
        " token_type = excluded.token_type, not_before = excluded.not_before,"
        " not_on_or_after = excluded.not_on_or_after, status = excluded.status, renewable = excluded.renewable,"
        " renew_after_expiry = excluded.renew_after_expiry, digest = excluded.digest, data = excluded.data,"
        " expires = excluded.expires"
    )
    # Renew and Cancel of one chain take turns on a transaction-scoped advisory lock named after the chain: on READ
    # COMMITTED a Cancel statement that waited for a renewal's row lock cancelled the rows of its snapshot only,
    # never the successor that renewal inserted, which stayed live. Taken in a statement of its own, so the
    # statement after it reads a snapshot that holds whatever the previous holder committed (a chain's first
    # token, or the token itself for a record without one). No row, no lock: an unknown token changes nothing.
    _TAKE_CHAIN = (
        "SELECT pg_advisory_xact_lock(hashtextextended("
        "'sts:chain:' || coalesce((data::jsonb) ->> 'chain', id), 0)) FROM tokens WHERE id = %s"
    )
    # One statement: the token and every token of its chain (``data.chain``, the chain's first token ID); the
    # expression is that of the index tokens_chain.
    _CANCEL = """
        UPDATE tokens SET status = 'cancelled'
        WHERE status <> 'cancelled'
          AND (id = %(id)s OR ((data::jsonb) ->> 'chain') = (SELECT (data::jsonb) ->> 'chain' FROM tokens
                                                             WHERE id = %(id)s))
    """

    def __init__(self, db: PostgresDatabase, clock: Clock | None = None) -> None:
        self._db = db
        self._clock = clock or SystemClock()
        self._puts = 0

    def put(self, record: TokenRecord, keep_until: float) -> None:
        """Insert (or replace) a record, kept until ``keep_until``."""
        with self._db.session("token store", "token_store_down") as session:
            session.execute(self._REPLACE, _row(record, keep_until))
            if self._due():
                self._purge(session)

    def get(self, token_id: str) -> TokenRecord | None:
        """A record by assertion ID."""
        return self._one(self._SELECT + " WHERE id = %s", (token_id,))

    def find_by_digest(self, digest: str) -> TokenRecord | None:
        """A record by token digest."""
        return self._one(self._SELECT + " WHERE digest = %s", (digest,))

    def renew(self, old_id: str, successor: TokenRecord, keep_until: float) -> bool:
        """Retire ``old_id`` (issued → renewed) and insert its successor in one transaction."""
        with self._db.session("token store", "token_store_down", transaction=True) as session:
            session.execute(self._TAKE_CHAIN, (old_id,))  # a Cancel of its chain ends before or after, not during
            retired = session.execute(
                "UPDATE tokens SET status = 'renewed' WHERE id = %s AND status = 'issued'", (old_id,)
            ).rowcount
            if retired == 1:
                session.execute(self._INSERT, _row(successor, keep_until))
        if retired == 1 and self._due():
            with self._db.session("token store", "token_store_down") as session:
                self._purge(session)
        return retired == 1

    def cancel(self, token_id: str) -> bool:
        """Cancel the token's whole renewal chain; True when the token is known (also if already cancelled)."""
        with self._db.session("token store", "token_store_down", transaction=True) as session:
            session.execute(self._TAKE_CHAIN, (token_id,))  # waits for a renewal of the chain to commit
            session.execute(self._CANCEL, {"id": token_id})
            return session.execute("SELECT 1 FROM tokens WHERE id = %s", (token_id,)).one() is not None

    def _due(self) -> bool:
        """Every so many new tokens (per process), expired rows are deleted."""
        self._puts += 1
        return self._puts % _PURGE_EVERY == 0

    def _purge(self, session: Session) -> None:
        session.execute("DELETE FROM tokens WHERE expires <= %s", (self._clock.now().timestamp(),))

    def _one(self, sql: str, params: tuple[object, ...]) -> TokenRecord | None:
        with self._db.session("token store", "token_store_down") as session:
            row = session.execute(sql, params).one()
        return None if row is None else TokenRecord(*row)


def _row(record: TokenRecord, keep_until: float) -> tuple[object, ...]:
    return (
        record.token_id,
        record.subject,
        record.relying_party,
        record.token_type,
        record.not_before,
        record.not_on_or_after,
        record.status,
        record.renewable,
        record.renew_after_expiry,
        record.digest,
        record.data,
        keep_until,
    )
