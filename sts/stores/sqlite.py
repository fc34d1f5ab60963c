"""The SQLite database: schema, per-process connections, WAL mode (https://sqlite.org/wal.html).

Connections per process and thread, opened lazily, re-opened after ``fork()`` (a connection must never
cross a fork: sqlite.org "How To Corrupt An SQLite Database File" §2.6) and closed, every thread's, by the
owner of the :class:`Database` when it is done. WAL mode and ``busy_timeout`` let the gunicorn workers share
the file; every check-and-set is a single statement or one ``BEGIN IMMEDIATE`` transaction, so it is atomic
across processes; a transaction is only safe on a connection no other thread uses at the same time, hence
connections per thread.

Writes of the request path go through :meth:`Database.write`: the threads of one process queue on a lock, and a
writer that meets another process's write lock retries within microseconds instead of in SQLite's busy handler,
whose sleeps (1, 2, 5, 10 ms ... per ``sqliteDefaultBusyCallback``) are long next to a write lock held for
tens of microseconds. ``busy_timeout`` stays the bound of the whole wait. Those writes run on a second connection
per thread, opened with ``busy_timeout = 0`` (SQLITE_BUSY at once, the pauses are ours), so the connection of the
reads keeps SQLite's busy handler without two ``PRAGMA busy_timeout`` statements around every write.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from sts.errors import ServiceUnavailable
from sts.files import make_dirs, refuse_link
from sts.stores.migrations import DatabaseError, latest, pending, require_current, split_statements

__all__ = [
    "Database", "DatabaseError", "DatabaseNotFound", "check_database", "connect", "initialize", "latest_version",
    "schema_version", "upgrade",
]
DIALECT = "sqlite"
_T = TypeVar("_T")
# Pauses between attempts of a write that met the lock: doubling from 20 µs up to 500 µs (a write holds the lock for
# tens of microseconds; the cap keeps a long wait from spinning).
_FIRST_PAUSE = 20e-6
_LONGEST_PAUSE = 500e-6


class DatabaseNotFound(DatabaseError):
    """No database file at the configured path."""


def connect(path: Path, busy_timeout_ms: int = 5000, *, writer: bool = False) -> sqlite3.Connection:
    """Open a connection in WAL mode with a busy timeout; autocommit, so each statement is its own transaction.

    A ``writer`` (for :meth:`Database.write`) is left with ``busy_timeout = 0`` once open: opening still waits
    in SQLite's busy handler (the pragmas read the schema, e.g. while another process recovers the WAL)."""
    conn = sqlite3.connect(path, timeout=busy_timeout_ms / 1000, isolation_level=None, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA synchronous = NORMAL")
        if writer:
            conn.execute("PRAGMA busy_timeout = 0")
    except sqlite3.Error:
        conn.close()  # e.g. a file that is not a database: the caller never sees this connection
        raise
    return conn


def initialize(path: Path) -> None:
    """Create the database file (mode 0600) with the current schema, or upgrade it; never through a symbolic
    link."""
    make_dirs(path.parent)
    refuse_link(path)
    # It holds password hashes and sealed secrets: 0600, also when it existed (O_CREAT applies no mode then).
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    upgrade(path)


def upgrade(path: Path) -> tuple[int, int]:
    """Apply the pending migrations, each in one ``BEGIN IMMEDIATE`` transaction (so two upgraders cannot both
    apply one); returns the versions before and after. A database of the releases before versioned migrations
    (``meta.schema_version`` = 1) is recognised as version 1."""
    conn = connect(path)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        before: int | None = None
        while True:
            conn.execute("BEGIN IMMEDIATE")
            try:
                current = schema_version(conn)
                before = current if before is None else before  # read in turn: not what an upgrade before us did
                steps = pending(DIALECT, current)
                if steps:
                    _apply(conn, current, steps[0].version, steps[0].sql)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            if not steps:
                return before, current
    except sqlite3.Error as exc:
        raise DatabaseError(f"{path}: cannot upgrade ({exc.__class__.__name__}: {exc})") from None
    finally:
        conn.close()


def _apply(conn: sqlite3.Connection, current: int, version: int, script: str) -> None:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)"
    )
    if current and not conn.execute("SELECT 1 FROM schema_version WHERE version = ?", (current,)).fetchone():
        # The legacy marker: record the version it stood for, as if its migration had run here.
        conn.execute("INSERT INTO schema_version(version, applied_at) VALUES (?, ?)", (current, time.time()))
    for statement in split_statements(script):
        conn.execute(statement)
    conn.execute("INSERT INTO schema_version(version, applied_at) VALUES (?, ?)", (version, time.time()))


def schema_version(conn: sqlite3.Connection) -> int:
    """The applied schema version: 0 for an empty file, 1 for the legacy marker; :class:`DatabaseError` for a
    file with tables of something else."""
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "schema_version" in tables:
        return int(conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0])
    if "meta" in tables:
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is not None and row[0] == "1":
            return 1
    if tables:
        raise DatabaseError("not an STS database (unknown tables, no schema version)")
    return 0


def check_database(path: Path) -> None:
    """Raise :class:`DatabaseError` unless the file exists with the schema version this code runs on."""
    if not path.is_file():
        raise DatabaseNotFound(f"{path}: database not found (run `sts init`)")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            current = schema_version(conn)
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise DatabaseError(f"{path}: not an STS database ({exc.__class__.__name__})") from None
    except DatabaseError as exc:
        raise DatabaseError(f"{path}: {exc}") from None
    require_current(DIALECT, current, str(path))


def latest_version() -> int:
    """The SQLite schema version of this release."""
    return latest(DIALECT)


def _busy(exc: sqlite3.OperationalError) -> bool:
    """SQLITE_BUSY or one of its extended codes (the primary code is the low byte)."""
    code: int | None = getattr(exc, "sqlite_errorcode", None)  # absent on one raised by hand
    return code is not None and code & 0xFF == sqlite3.SQLITE_BUSY


_INHERITED: list[sqlite3.Connection] = []
"""Connections a forked child inherited from its parent: kept referenced and never closed or used, since closing
one in the child could release the parent's POSIX locks (sqlite.org "How To Corrupt An SQLite Database File"
§2.2, §2.6), and letting it be garbage-collected would close it just the same."""


class Database:
    """Lazily opened connections to the database file: two per process and thread (one for reads and statements
    of their own, one for :meth:`write`), all closed by :meth:`close`.

    Its owner closes it when done (also usable as ``with Database(path) as db:``). The connections of a thread
    that has ended are closed when another thread next opens one, so short-lived threads leave none behind.
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
        self._writer = threading.Lock()  # one writer per process at a time (see write())

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def conn(self) -> sqlite3.Connection:
        """This thread's connection for everything but :meth:`write` (opened on first use, re-opened in a forked
        child and after :meth:`close`)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None or self._pid != os.getpid() or conn not in self._open:
            conn = self._connect("conn")
        return conn

    @property
    def write_conn(self) -> sqlite3.Connection:
        """This thread's connection for :meth:`write`, with ``busy_timeout = 0`` (opened, re-opened and closed
        like :attr:`conn`)."""
        conn: sqlite3.Connection | None = getattr(self._local, "write_conn", None)
        if conn is None or self._pid != os.getpid() or conn not in self._open:
            conn = self._connect("write_conn")
        return conn

    def _connect(self, role: str) -> sqlite3.Connection:
        with self._lock:
            self._leave_parent()
            ended = [conn for conn, thread in self._open.items() if not thread.is_alive()]
            for conn in ended:
                del self._open[conn]
        for conn in ended:
            conn.close()
        conn = connect(self.path, self._busy_timeout_ms, writer=role == "write_conn")
        with self._lock:
            self._open[conn] = threading.current_thread()
        setattr(self._local, role, conn)
        return conn

    def _leave_parent(self) -> None:
        """In a forked child, set the parent's connections aside (see ``_INHERITED``); call with the lock held."""
        if self._pid != os.getpid():
            _INHERITED.extend(self._open)
            self._open, self._pid = {}, os.getpid()
            self._writer = threading.Lock()  # a fork may have copied it held by a thread the child does not have

    def write(self, statement: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``statement`` on this thread's :attr:`write_conn` as one write, retried while the database is
        locked, for at most ``busy_timeout`` in all; then the last ``database is locked`` error is raised (fail
        closed).

        ``statement`` must be one autocommit statement (with whatever reads its result) or one transaction that it
        opens with ``BEGIN IMMEDIATE`` and ends, rolling back on any error: SQLITE_BUSY then means that nothing
        was written, so the whole of it can run again (https://sqlite.org/rescode.html#busy). It must not call
        :meth:`write` itself.
        """
        conn = self.write_conn  # busy_timeout = 0: SQLITE_BUSY at once, the pauses are ours (_attempts)
        deadline = time.monotonic() + self._busy_timeout_ms / 1000
        # Threads of this process wait here, woken as soon as the lock is free, not in SQLite's sleeps.
        if not self._writer.acquire(timeout=self._busy_timeout_ms / 1000):
            raise sqlite3.OperationalError("database is locked")
        try:
            return self._attempts(conn, statement, deadline)
        finally:
            self._writer.release()

    @staticmethod
    def _attempts(conn: sqlite3.Connection, statement: Callable[[sqlite3.Connection], _T], deadline: float) -> _T:
        pause = _FIRST_PAUSE
        while True:
            try:
                return statement(conn)
            except sqlite3.OperationalError as exc:
                left = deadline - time.monotonic()
                if not _busy(exc) or conn.in_transaction or left <= 0:
                    raise
            time.sleep(min(pause, left))
            pause = min(pause * 2, _LONGEST_PAUSE)

    def unavailable(self, what: str, exc: sqlite3.Error, reason: str) -> ServiceUnavailable:
        """The fail-closed error for a failed statement; this thread's connections are dropped so its next request
        reconnects (a connection that once saw a corrupt file stays broken after the file is repaired)."""
        mine = [getattr(self._local, "conn", None), getattr(self._local, "write_conn", None)]
        self._local.conn = self._local.write_conn = None
        with self._lock:
            self._leave_parent()
            owned = [conn for conn in mine if conn is not None and self._open.pop(conn, None) is not None]
        for conn in owned:
            conn.close()
        return ServiceUnavailable(f"{what}: {type(exc).__name__}", reason=reason)

    def ping(self) -> None:
        """A cheap round trip for the readiness probe; :class:`ServiceUnavailable` when the file does not answer."""
        try:
            self.conn.execute("SELECT count(*) FROM schema_version").fetchone()
        except sqlite3.Error as exc:
            raise self.unavailable("readiness", exc, "store_unavailable") from None

    def close(self) -> None:
        """Close every connection opened in this process, both of each thread's: for the owner, once no statement
        runs."""
        with self._lock:
            self._leave_parent()
            owned, self._open = list(self._open), {}
        self._local.conn = self._local.write_conn = None
        for conn in owned:
            conn.close()
