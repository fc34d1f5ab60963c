"""The SQLite database: schema, per-process connections, WAL mode (https://sqlite.org/wal.html).

One connection per process and thread, opened lazily, re-opened after ``fork()`` (a connection must never
cross a fork: sqlite.org "How To Corrupt An SQLite Database File" §2.6) and closed, every thread's, by the
owner of the :class:`Database` when it is done. WAL mode and ``busy_timeout`` let the gunicorn workers share
the file; every check-and-set is a single statement or one ``BEGIN IMMEDIATE`` transaction, so it is atomic
across processes; a transaction is only safe on a connection no other thread uses at the same time, hence one
connection per thread.
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
CREATE TABLE IF NOT EXISTS user_certificates (
    sha256 TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    sha1 BLOB NOT NULL,
    ski BLOB,
    issuer BLOB NOT NULL,
    serial TEXT NOT NULL,
    der BLOB NOT NULL,
    added REAL NOT NULL
);
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
    """Lazily opened connections to the database file: one per process and thread, all closed by :meth:`close`.

    Its owner closes it when done (also usable as ``with Database(path) as db:``). The connection of a thread
    that has ended is closed when another thread next opens one, so short-lived threads leave none behind.
    """

    def __init__(self, path: Path, busy_timeout_ms: int = 5000) -> None:
        self.path = path
        self._busy_timeout_ms = busy_timeout_ms
        self._local = threading.local()
        # Every connection opened in process ``_pid``, with the thread it belongs to. The lock guards only these
        # dictionary updates, never I/O, so no thread holds it across a fork() for more than a few instructions.
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._open: dict[sqlite3.Connection, threading.Thread] = {}

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def conn(self) -> sqlite3.Connection:
        """This thread's connection (opened on first use, re-opened in a forked child and after :meth:`close`)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None or self._pid != os.getpid() or conn not in self._open:
            conn = self._connect()
        return conn

    def _connect(self) -> sqlite3.Connection:
        with self._lock:
            self._leave_parent()
            ended = [conn for conn, thread in self._open.items() if not thread.is_alive()]
            for conn in ended:
                del self._open[conn]
        for conn in ended:
            conn.close()
        conn = connect(self.path, self._busy_timeout_ms)
        with self._lock:
            self._open[conn] = threading.current_thread()
        self._local.conn = conn
        return conn

    def _leave_parent(self) -> None:
        """In a forked child, set the parent's connections aside (see ``_INHERITED``); call with the lock held."""
        if self._pid != os.getpid():
            _INHERITED.extend(self._open)
            self._open, self._pid = {}, os.getpid()

    def unavailable(self, what: str, exc: sqlite3.Error, reason: str) -> ServiceUnavailable:
        """The fail-closed error for a failed statement; this thread's connection is dropped so its next request
        reconnects (a connection that once saw a corrupt file stays broken after the file is repaired)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            with self._lock:
                self._leave_parent()
                owned = self._open.pop(conn, None) is not None
            if owned:
                conn.close()
        return ServiceUnavailable(f"{what}: {type(exc).__name__}", reason=reason)

    def close(self) -> None:
        """Close every connection opened in this process, each thread's: for the owner, once no statement runs."""
        with self._lock:
            self._leave_parent()
            owned, self._open = list(self._open), {}
        self._local.conn = None
        for conn in owned:
            conn.close()
