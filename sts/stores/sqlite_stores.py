"""SQLite implementations of the replay cache and the lockout counters (one statement per check-and-set).

``INSERT … ON CONFLICT`` is atomic in SQLite across processes sharing the file, which is what makes the
replay check hold when the same nonce reaches two gunicorn workers at once (https://sqlite.org/lang_upsert.html): a
contains-then-add sequence would race (WSS4J's ``ReplayCache`` does).
"""

from __future__ import annotations

import hashlib
import sqlite3

from sts.clock import Clock, SystemClock
from sts.netaddr import AddressSet
from sts.stores.base import LockState, TokenRecord
from sts.stores.sqlite import Database

_PURGE_EVERY = 1000
# Expired throttle windows are deleted at most this often per process: one row per failing client address
# would otherwise stay forever, and a purge per request would cost every failure a table scan.
THROTTLE_PURGE_SECONDS = 60.0


_REPLAY_UPSERT = (
    "INSERT INTO replay(ns, key, expires) VALUES (?, ?, ?)"
    " ON CONFLICT(ns, key) DO UPDATE SET expires = excluded.expires WHERE replay.expires <= ?"
)
_THROTTLE_UPSERT = """
    INSERT INTO counters(ns, key, count, level, locked_until, expires)
    VALUES ('throttle', :key, 1, 0, 0, :now + :window)
    ON CONFLICT(ns, key) DO UPDATE SET
      count = CASE WHEN expires <= :now THEN 1 ELSE count + 1 END,
      expires = CASE WHEN expires <= :now THEN :now + :window ELSE expires END
    RETURNING count
"""
# SQLite evaluates every SET expression against the row as it was, so the CASEs see the old values.
_LOCKOUT_UPSERT = """
    INSERT INTO counters(ns, key, count, level, locked_until, expires)
    VALUES ('lockout', :key, :c0, :v0, :l0, :expires)
    ON CONFLICT(ns, key) DO UPDATE SET
      count = CASE WHEN locked_until > :now THEN count
                   WHEN count + 1 >= :max THEN 0 ELSE count + 1 END,
      locked_until = CASE WHEN locked_until > :now THEN locked_until
                   WHEN count + 1 >= :max THEN :now + MIN(:dur * (1 << MIN(level, 20)), :maxdur)
                   ELSE locked_until END,
      level = CASE WHEN locked_until <= :now AND count + 1 >= :max THEN level + 1 ELSE level END,
      expires = :expires
    RETURNING count, locked_until
"""


class SqliteReplayCache:
    """Replay cache in the ``replay`` table; values are stored as SHA-256 digests (bounded key size).

    An entry has expired when ``clock`` says its time has passed: the same clock that set ``expires_at``.
    """

    def __init__(self, db: Database, clock: Clock | None = None) -> None:
        self._db = db
        self._clock = clock or SystemClock()
        self._inserts = 0

    def check_and_add(self, namespace: str, value: bytes, expires_at: float, created: float | None = None) -> bool:
        """True when first seen; an expired entry counts as not seen."""
        key = hashlib.sha256(value).hexdigest()
        now = self._clock.now().timestamp()
        try:
            # One statement a write: a retried one had no effect (SQLITE_BUSY), so the nonce counts once.
            params = (namespace, key, expires_at, now)
            first = self._db.write(lambda conn: conn.execute(_REPLAY_UPSERT, params).rowcount) == 1
            self._inserts += 1
            if self._inserts % _PURGE_EVERY == 0:
                self._db.write(lambda conn: conn.execute("DELETE FROM replay WHERE expires <= ?", (now,)))
        except sqlite3.Error as exc:
            raise self._db.unavailable("replay store", exc, "replay_store_down") from None
        return first


class SqliteClientThrottle:
    """Per-client failure counters in the ``counters`` table (namespace ``throttle``); fails closed.

    A row lives for one window; expired rows are purged now and then as failures arrive.
    """

    def __init__(self, db: Database, limit: int, window: int, exempt: AddressSet | None = None) -> None:
        self._db = db
        self._limit = limit
        self._window = window
        self._exempt = exempt or AddressSet()
        self._next_purge = 0.0

    def throttled(self, client: str, now: float) -> bool:
        """True when ``client`` has ``limit`` failures in the current window."""
        if self._limit <= 0 or client in self._exempt:
            return False
        try:
            row = self._db.conn.execute(
                "SELECT count, expires FROM counters WHERE ns = 'throttle' AND key = ?", (client,)
            ).fetchone()
        except sqlite3.Error as exc:
            raise self._db.unavailable("throttle store", exc, "throttle_store_down") from None
        return row is not None and float(row[1]) > now and int(row[0]) >= self._limit

    def record_failure(self, client: str, now: float) -> int:
        """One statement: a new window starts when the old one has expired."""
        if self._limit <= 0 or client in self._exempt:
            return 0
        try:
            params = {"key": client, "now": now, "window": self._window}
            row = self._db.write(lambda conn: conn.execute(_THROTTLE_UPSERT, params).fetchone())
            if now >= self._next_purge:
                self._next_purge = now + THROTTLE_PURGE_SECONDS
                self._db.write(
                    lambda conn: conn.execute("DELETE FROM counters WHERE ns = 'throttle' AND expires <= ?", (now,))
                )
        except sqlite3.Error as exc:
            raise self._db.unavailable("throttle store", exc, "throttle_store_down") from None
        return int(row[0])


class SqliteLockoutStore:
    """Lockout counters in the ``counters`` table (namespace ``lockout``)."""

    def __init__(self, db: Database, max_failures: int, duration: int, max_duration: int) -> None:
        self._db = db
        self._max = max_failures
        self._duration = duration
        self._max_duration = max_duration

    def state(self, key: str) -> LockState | None:
        """Current failures and lock, or None."""
        try:
            row = self._db.conn.execute(
                "SELECT count, locked_until FROM counters WHERE ns = 'lockout' AND key = ?", (key,)
            ).fetchone()
        except sqlite3.Error as exc:
            raise self._db.unavailable("lockout store", exc, "lockout_store_down") from None
        return None if row is None else LockState(int(row[0]), float(row[1]))

    def record_failure(self, key: str, now: float) -> LockState:
        """One statement: count the failure, or lock (duration × 2^level, capped) when it reaches the threshold.

        While locked, further failures change nothing: the lock does not grow with an attacker's attempts
        (``_LOCKOUT_UPSERT``).
        """
        first_lock = self._max <= 1
        params = {
            "key": key,
            "now": now,
            "max": self._max,
            "dur": self._duration,
            "maxdur": self._max_duration,
            "expires": now + max(self._max_duration, 86400),
            "c0": 0 if first_lock else 1,
            "l0": now + self._duration if first_lock else 0.0,
            "v0": 1 if first_lock else 0,
        }
        try:
            row = self._db.write(lambda conn: conn.execute(_LOCKOUT_UPSERT, params).fetchone())
        except sqlite3.Error as exc:
            raise self._db.unavailable("lockout store", exc, "lockout_store_down") from None
        return LockState(int(row[0]), float(row[1]))

    def reset(self, key: str) -> None:
        """Forget the key."""
        try:
            self._db.write(
                lambda conn: conn.execute("DELETE FROM counters WHERE ns = 'lockout' AND key = ?", (key,))
            )
        except sqlite3.Error as exc:
            raise self._db.unavailable("lockout store", exc, "lockout_store_down") from None


class SqliteTokenStore:
    """Issued tokens in the ``tokens`` table; expired rows are purged as new ones arrive.

    Renew is a compare-and-set in one ``BEGIN IMMEDIATE`` transaction: the conditional ``UPDATE`` retires the old
    token only while it is live, and the successor is inserted only by the request whose ``UPDATE`` did (never
    both tokens live, never neither), across processes and threads (each thread has its own connection).
    """

    _SELECT = (
        "SELECT id, subject, relying_party, token_type, not_before, not_on_or_after, status, renewable,"
        " renew_after_expiry, digest, data FROM tokens"
    )
    _COLUMNS = (
        "tokens(id, subject, relying_party, token_type, not_before, not_on_or_after,"
        " status, renewable, renew_after_expiry, digest, data, expires) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    _REPLACE = "INSERT OR REPLACE INTO " + _COLUMNS
    # One statement: the token and every token of its chain (``data.chain``, the chain's first token ID).
    _CANCEL = """
        UPDATE tokens SET status = 'cancelled'
        WHERE status != 'cancelled'
          AND (id = :id OR json_extract(data, '$.chain') = (SELECT json_extract(data, '$.chain') FROM tokens
                                                           WHERE id = :id))
    """

    def __init__(self, db: Database, clock: Clock | None = None) -> None:
        self._db = db
        self._clock = clock or SystemClock()
        self._puts = 0

    def put(self, record: TokenRecord, keep_until: float) -> None:
        """Insert (or replace) a record, kept until ``keep_until``."""
        try:
            row = _row(record, keep_until)
            self._db.write(lambda conn: conn.execute(self._REPLACE, row))
            self._purge_now_and_then()
        except sqlite3.Error as exc:
            raise self._db.unavailable("token store", exc, "token_store_down") from None

    def get(self, token_id: str) -> TokenRecord | None:
        """A record by assertion ID."""
        return self._one(self._SELECT + " WHERE id = ?", (token_id,))

    def find_by_digest(self, digest: str) -> TokenRecord | None:
        """A record by token digest."""
        return self._one(self._SELECT + " WHERE digest = ?", (digest,))

    def renew(self, old_id: str, successor: TokenRecord, keep_until: float) -> bool:
        """Retire ``old_id`` (issued → renewed) and insert its successor in one transaction."""
        row = _row(successor, keep_until)

        def transaction(conn: sqlite3.Connection) -> int:
            conn.execute("BEGIN IMMEDIATE")
            try:
                retired = conn.execute(
                    "UPDATE tokens SET status = 'renewed' WHERE id = ? AND status = 'issued'", (old_id,)
                ).rowcount
                if retired == 1:
                    conn.execute("INSERT INTO " + self._COLUMNS, row)
                conn.execute("COMMIT" if retired == 1 else "ROLLBACK")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")  # nothing written: Database.write may run it all again
                raise
            return int(retired)

        try:
            retired = self._db.write(transaction)
            if retired == 1:
                self._purge_now_and_then()
        except sqlite3.Error as exc:
            raise self._db.unavailable("token store", exc, "token_store_down") from None
        return retired == 1

    def cancel(self, token_id: str) -> bool:
        """Cancel the token's whole renewal chain; True when the token is known (also if already cancelled)."""
        try:
            self._db.write(lambda conn: conn.execute(self._CANCEL, {"id": token_id}))
        except sqlite3.Error as exc:
            raise self._db.unavailable("token store", exc, "token_store_down") from None
        return self.get(token_id) is not None

    def _purge_now_and_then(self) -> None:
        self._puts += 1
        if self._puts % _PURGE_EVERY == 0:
            now = self._clock.now().timestamp()
            self._db.write(lambda conn: conn.execute("DELETE FROM tokens WHERE expires <= ?", (now,)))

    def _one(self, sql: str, params: tuple[object, ...]) -> TokenRecord | None:
        try:
            row = self._db.conn.execute(sql, params).fetchone()
        except sqlite3.Error as exc:
            raise self._db.unavailable("token store", exc, "token_store_down") from None
        if row is None:
            return None
        values = list(row)
        values[7], values[8] = bool(values[7]), bool(values[8])
        return TokenRecord(*values)


def _row(record: TokenRecord, keep_until: float) -> tuple[object, ...]:
    return (
        record.token_id,
        record.subject,
        record.relying_party,
        record.token_type,
        record.not_before,
        record.not_on_or_after,
        record.status,
        int(record.renewable),
        int(record.renew_after_expiry),
        record.digest,
        record.data,
        keep_until,
    )
