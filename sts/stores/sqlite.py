"""The SQLite database: schema, per-process connections, WAL mode (https://sqlite.org/wal.html).

One connection per process and thread, opened lazily and re-opened after ``fork()`` (a connection must never
cross a fork: sqlite.org "How To Corrupt An SQLite Database File" §2.6). WAL mode and ``busy_timeout`` let the
gunicorn workers share the file; every check-and-set is a single statement or one ``BEGIN IMMEDIATE``
transaction, so it is atomic across processes; a transaction is only safe on a connection no other thread
uses at the same time, hence one connection per thread.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

from sts.errors import ServiceUnavailable
from sts.files import make_dirs, refuse_link

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY,
    domain TEXT NOT NULL,
    name TEXT NOT NULL,
    canonical TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    digest_secret BLOB,
    enabled INTEGER NOT NULL DEFAULT 1,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    UNIQUE (domain, canonical)
);
CREATE TABLE IF NOT EXISTS roles (name TEXT PRIMARY KEY, canonical TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS user_roles (
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role TEXT NOT NULL REFERENCES roles(name) ON DELETE CASCADE,
    PRIMARY KEY (user_id, role)
);
CREATE TABLE IF NOT EXISTS user_claims (
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    uri TEXT NOT NULL,
    position INTEGER NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (user_id, uri, position)
);
CREATE TABLE IF NOT EXISTS relying_parties (
    address TEXT PRIMARY KEY,
    canonical TEXT NOT NULL UNIQUE,
    config TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS replay (
    ns TEXT NOT NULL,
    key TEXT NOT NULL,
    expires REAL NOT NULL,
    PRIMARY KEY (ns, key)
);
CREATE INDEX IF NOT EXISTS replay_expires ON replay(expires);
CREATE TABLE IF NOT EXISTS counters (
    ns TEXT NOT NULL,
    key TEXT NOT NULL,
    count INTEGER NOT NULL,
    level INTEGER NOT NULL DEFAULT 0,
    locked_until REAL NOT NULL DEFAULT 0,
    expires REAL NOT NULL,
    PRIMARY KEY (ns, key)
);
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY,
    subject TEXT NOT NULL,
    relying_party TEXT NOT NULL,
    token_type TEXT NOT NULL,
    not_before REAL NOT NULL,
    not_on_or_after REAL NOT NULL,
    status TEXT NOT NULL,
    renewable INTEGER NOT NULL,
    renew_after_expiry INTEGER NOT NULL,
    digest TEXT NOT NULL,
    data TEXT NOT NULL,
    expires REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS tokens_expires ON tokens(expires);
CREATE INDEX IF NOT EXISTS tokens_digest ON tokens(digest);
CREATE INDEX IF NOT EXISTS tokens_chain ON tokens(json_extract(data, '$.chain'));
"""


class DatabaseError(Exception):
    """The database is missing, unreadable or of an unknown schema."""


def connect(path: Path, busy_timeout_ms: int = 5000) -> sqlite3.Connection:
    """Open a connection in WAL mode with a busy timeout; autocommit, so each statement is its own transaction."""
    conn = sqlite3.connect(path, timeout=busy_timeout_ms / 1000, isolation_level=None, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA synchronous = NORMAL")
    except sqlite3.Error:
        conn.close()  # e.g. a file that is not a database: the caller never sees this connection
        raise
    return conn


def initialize(path: Path) -> None:
    """Create the database file (mode 0600) and its schema; idempotent; never through a symbolic link."""
    make_dirs(path.parent)
    refuse_link(path)
    # It holds password hashes and sealed secrets: 0600, also when it existed (O_CREAT applies no mode then).
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    conn = connect(path)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.executescript(_SCHEMA)
        conn.execute(
            "INSERT INTO meta(key, value) VALUES ('schema_version', ?) ON CONFLICT(key) DO NOTHING",
            (str(SCHEMA_VERSION),),
        )
    finally:
        conn.close()


def check_database(path: Path) -> None:
    """Raise :class:`DatabaseError` unless the file exists with the expected schema version."""
    if not path.is_file():
        raise DatabaseError(f"{path}: database not found (run `sts init`)")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise DatabaseError(f"{path}: not an STS database ({exc.__class__.__name__})") from None
    if row is None or row[0] != str(SCHEMA_VERSION):
        raise DatabaseError(f"{path}: unexpected schema version")


_INHERITED: list[sqlite3.Connection] = []
"""Connections a forked child inherited from its parent: kept referenced and never closed or used, since closing
one in the child could release the parent's POSIX locks (sqlite.org "How To Corrupt An SQLite Database File"
§2.2, §2.6), and letting it be garbage-collected would close it just the same."""


class Database:
    """Lazily opened connections to the database file: one per process and thread."""

    def __init__(self, path: Path, busy_timeout_ms: int = 5000) -> None:
        self.path = path
        self._busy_timeout_ms = busy_timeout_ms
        self._local = threading.local()

    @property
    def conn(self) -> sqlite3.Connection:
        """This thread's connection (re-opened in a forked child)."""
        local = self._local
        conn: sqlite3.Connection | None = getattr(local, "conn", None)
        if conn is None or getattr(local, "pid", -1) != os.getpid():
            if conn is not None:
                _INHERITED.append(conn)
            conn = connect(self.path, self._busy_timeout_ms)
            local.conn, local.pid = conn, os.getpid()
        return conn

    def unavailable(self, what: str, exc: sqlite3.Error, reason: str) -> ServiceUnavailable:
        """The fail-closed error for a failed statement; the connection is dropped so the next request
        reconnects (a connection that once saw a corrupt file stays broken after the file is repaired)."""
        self.close()
        return ServiceUnavailable(f"{what}: {type(exc).__name__}", reason=reason)

    def close(self) -> None:
        """Close this thread's connection, if open."""
        local = self._local
        conn: sqlite3.Connection | None = getattr(local, "conn", None)
        if conn is not None:
            if getattr(local, "pid", -1) == os.getpid():
                conn.close()
            else:
                _INHERITED.append(conn)
        local.conn = None
