"""PostgreSQL connections: the one module that imports psycopg (3) and psycopg-pool.

Each process has its own pool, created on first use in that process (a gunicorn worker after ``fork()``: a pool's
connections and threads never cross a fork), opened explicitly, with a short wait for a free connection. Every store
operation runs under a client-side deadline (``[store] operation_timeout_ms``) covering the checkout, the pool's
liveness check and the statements: when it passes, the connection's socket is shut down, so a hung server or
backend turns into an error at the deadline (the server enforces ``statement_timeout`` itself, so that bound cannot
fire on a stopped server, and TCP keepalives are answered by the kernel). Every failure becomes
:class:`~sts.errors.ServiceUnavailable`; a broken connection is discarded by the pool, which reconnects in the
background, so the store heals when the server is back.

Connection settings (libpq "Connection Strings" and "Parameter Key Words"): ``[store] url`` without a password
(``password_file``, ``$PGPASSWORD`` or ``~/.pgpass`` supply it); ``sslmode=verify-full`` with ``ca_file`` (or the
system's CAs) unless the host is loopback or the URL chooses an ``sslmode`` itself; ``statement_timeout``,
``lock_timeout`` and ``idle_in_transaction_session_timeout`` in ``options``.
"""

from __future__ import annotations

import heapq
import ipaddress
import itertools
import os
import socket
import threading
import time
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NoReturn

import psycopg
from psycopg import conninfo as libpq
from psycopg_pool import ConnectionPool

from sts.config.settings import StoreSettings
from sts.errors import ServiceUnavailable
from sts.stores.migrations import DatabaseError, Migration, pending, require_current

DIALECT = "postgresql"
# How a migration step's transaction starts (PostgreSQL manual: "Client Connection Defaults" and "Advisory Lock
# Functions"). No statement_timeout: a step is bulk work (an index over every row of a table) that the serving
# limit cancelled, and raising that limit also raised lock_timeout. lock_timeout is off only while waiting for the
# migration lock (keys of one bigint space per database), whose holder is another `sts db upgrade` applying a step:
# waiting is taking turns. RESET then restores the configured lock_timeout, so a table lock the step needs is
# waited for, and serving requests queue behind that pending lock, no longer than a request would wait.
_TAKE_TURN = (
    "SET LOCAL statement_timeout = 0; SET LOCAL lock_timeout = 0;"
    " SELECT pg_advisory_xact_lock(hashtextextended('sts:migrate', 0)); RESET lock_timeout"
)
# Without statement_timeout, the backend of a killed `sts db upgrade` would run its step to the end before noticing:
# PostgreSQL 14+ checks the client every second instead and rolls back (manual: "Connection Settings",
# client_connection_check_interval).
_CHECK_CLIENT = "SET LOCAL client_connection_check_interval = 1000"
_CHECK_CLIENT_SINCE = 140000
_WEAK_SSLMODES = frozenset({"disable", "allow", "prefer", "require"})
_INHERITED: list[ConnectionPool] = []
"""Pools a forked child inherited: kept referenced, never closed or used. Closing (or collecting) one would send
libpq's Terminate message on sockets the parent still uses, ending its sessions."""

Params = Sequence[Any] | Mapping[str, Any]
ALIVE_BYPASS_SECONDS = 0.5
"""A pooled connection that completed an operation this recently is handed out without the liveness round trip
(HikariCP's ``aliveBypassWindowMs``, 500 ms by default): under load the check would double every operation's round
trips. A connection that broke within the window fails that one operation (closed: ServiceUnavailable) and is
discarded by the pool; an idle connection is still checked before use, so the store still heals without a restart."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where and how to connect: the libpq string (password left out) and the keyword arguments added to it."""

    conninfo: str
    kwargs: Mapping[str, Any]
    host: str

    def describe(self) -> str:
        """The server, for messages: never the password."""
        params = libpq.conninfo_to_dict(self.conninfo)
        return f"postgresql://{params.get('host', 'localhost')}:{params.get('port', 5432)}/{params.get('dbname', '')}"


def target(store: StoreSettings, url: str | None = None) -> Target:
    """The connection target of ``[store]`` (or of ``url`` with the other settings of ``[store]``).

    Raises :class:`DatabaseError` with a message that never holds the URL (it may hold a password).
    """
    if not (url if url is not None else store.url).strip():
        raise DatabaseError("store.url: required with backend = \"postgresql\" (or set $STS_STORE_URL)")
    try:
        params = libpq.conninfo_to_dict(url if url is not None else store.url)
    except psycopg.ProgrammingError:
        raise DatabaseError("store.url: not a PostgreSQL URL or key=value connection string") from None
    host = str(params.get("host") or params.get("hostaddr") or "localhost")
    kwargs: dict[str, Any] = {"connect_timeout": store.connect_timeout, "application_name": "sts"}
    if store.password_file is not None:
        try:
            kwargs["password"] = store.password_file.read_text(encoding="utf-8").strip("\r\n")
        except OSError as exc:
            raise DatabaseError(f"store.password_file: {store.password_file}: {exc.strerror or exc}") from None
        except UnicodeDecodeError:  # the bytes are never echoed: they may be the password
            raise DatabaseError(f"store.password_file: {store.password_file}: not UTF-8 text") from None
    if store.ca_file is not None:
        kwargs.update(sslmode="verify-full", sslrootcert=str(store.ca_file))
    elif "sslmode" not in params and not is_local(host):
        kwargs.update(sslmode="verify-full", sslrootcert="system")
    limits = (
        f"-c statement_timeout={store.statement_timeout_ms} -c lock_timeout={max(store.statement_timeout_ms // 2, 1)}"
        f" -c idle_in_transaction_session_timeout={max(store.operation_timeout_ms * 2, 5000)}"
    )
    kwargs["options"] = f"{params['options']} {limits}" if params.get("options") else limits
    # The string as given (libpq reads URLs and key=value strings alike); the keyword arguments override it.
    return Target(url if url is not None else store.url, kwargs, host)


def is_local(host: str) -> bool:
    """Whether every host of a (possibly comma-separated) libpq host list is loopback or a Unix socket directory."""
    for part in host.split(","):
        part = part.strip()
        if part.startswith("/") or part == "localhost":
            continue
        try:
            if not ipaddress.ip_address(part).is_loopback:
                return False
        except ValueError:
            return False
    return True


def tls_warning(store: StoreSettings) -> str | None:
    """A warning for ``sts check-config`` when the URL itself weakens TLS to a remote server."""
    try:
        params = libpq.conninfo_to_dict(store.url)
    except psycopg.ProgrammingError:
        return None
    host = str(params.get("host") or params.get("hostaddr") or "localhost")
    if store.ca_file is None and params.get("sslmode") in _WEAK_SSLMODES and not is_local(host):
        return (
            f"store.url: sslmode={params['sslmode']} does not verify the server {host}: use sslmode=verify-full"
            " (set [store] ca_file, or leave sslmode out for the system's CAs)"
        )
    return None


@dataclass(frozen=True, slots=True)
class Result:
    """The rows a statement returned and how many rows it changed."""

    rows: list[tuple[Any, ...]]
    rowcount: int

    def one(self) -> tuple[Any, ...] | None:
        """The first row, or None."""
        return self.rows[0] if self.rows else None


class Session:
    """Statements on one checked-out connection (inside one transaction when opened with ``transaction=True``)."""

    def __init__(self, conn: psycopg.Connection[tuple[Any, ...]]) -> None:
        self._conn = conn

    def execute(self, query: str, params: Params | None = None) -> Result:
        """Run one statement (``%s`` or ``%(name)s`` placeholders; several statements only without params)."""
        cursor = self._conn.execute(query, params)
        rows = cursor.fetchall() if cursor.description is not None else []
        return Result(rows, cursor.rowcount)

    def rollback(self) -> NoReturn:
        """End the transaction without committing; the ``with`` block ends here, without an error."""
        raise psycopg.Rollback()

    def executemany(self, query: str, params: Sequence[Params]) -> None:
        """Run one statement for each parameter set."""
        with self._conn.cursor() as cursor:
            cursor.executemany(query, params)


class _Watch:
    """One operation's deadline: its connection's socket is shut down if the operation still runs then."""

    __slots__ = ("fd", "running")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.running = True

    def stop(self) -> None:
        """The operation ended: never cut after this returns."""
        _WATCHDOG.stop(self)


class _Watchdog:
    """One thread per process over a heap of deadlines: a ``threading.Timer`` per operation started a thread per
    operation, about 0.1 ms of CPU each, two per store operation. A finished operation's entry is only marked
    stopped; the thread drops stopped entries from the top of the heap whenever it wakes and sleeps until the
    earliest running one, so it wakes about once per ``operation_timeout_ms``, not once per operation."""

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)  # the parent's thread and lock state never cross a fork

    def _reset(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._heap: list[tuple[float, int, _Watch]] = []
        self._order = itertools.count()  # ties on the deadline never compare two watches
        self._thread: threading.Thread | None = None

    def watch(self, conn: psycopg.Connection[Any], deadline: float) -> _Watch:
        """Watch ``conn`` until ``deadline`` (``time.monotonic()``) or until the watch is stopped."""
        watch = _Watch(conn.fileno())
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="sts-pg-watchdog", daemon=True)
                self._thread.start()
            earliest = not self._heap or deadline < self._heap[0][0]
            heapq.heappush(self._heap, (deadline, next(self._order), watch))
            if earliest:  # the thread sleeps until the old earliest deadline: wake it for the new one
                self._cond.notify()
        return watch

    def stop(self, watch: _Watch) -> None:
        """Under the lock the cut runs under, so no cut can follow."""
        with self._cond:
            watch.running = False

    def _run(self) -> None:
        cond, heap = self._cond, self._heap
        with cond:
            while True:
                while heap and not heap[0][2].running:
                    heapq.heappop(heap)
                if not heap:
                    cond.wait()
                    continue
                wait = heap[0][0] - time.monotonic()
                if wait > 0:
                    cond.wait(wait)
                    continue
                watch = heapq.heappop(heap)[2]
                watch.running = False
                _cut(watch.fd)


def _cut(fd: int) -> None:
    try:
        # A duplicate descriptor: shutting it down ends the TCP connection under libpq, which then fails the
        # statement and marks the connection BAD; closing it leaves libpq's descriptor alone.
        with socket.socket(fileno=os.dup(fd)) as sock:
            sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed: the operation is failing anyway


_WATCHDOG = _Watchdog()


class PostgresDatabase:
    """A lazily created connection pool per process, and bounded operations on it."""

    def __init__(self, store: StoreSettings, url: str | None = None) -> None:
        self.target = target(store, url)
        self._pool_size = store.pool_size
        self._pool_timeout = store.pool_timeout_ms / 1000
        self._operation_timeout = store.operation_timeout_ms / 1000
        self._lock = threading.Lock()
        self._local = threading.local()
        self._pool: ConnectionPool | None = None
        self._pid = os.getpid()
        # When each pooled connection last completed an operation (see ALIVE_BYPASS_SECONDS); weak, so a
        # connection the pool discards is forgotten with it.
        self._answered: weakref.WeakKeyDictionary[psycopg.Connection[Any], float] = weakref.WeakKeyDictionary()

    def __enter__(self) -> PostgresDatabase:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def session(self, what: str, reason: str, transaction: bool = False) -> Iterator[Session]:
        """One store operation within the deadline; any database failure is :class:`ServiceUnavailable` (what
        failed, never the data), and leaves no transaction open (an error inside rolls back)."""
        deadline = time.monotonic() + self._operation_timeout
        self._local.deadline = deadline
        try:
            pool = self._current_pool()
            with pool.connection(timeout=min(self._pool_timeout, self._operation_timeout)) as conn:
                watch = _WATCHDOG.watch(conn, deadline)
                try:
                    if transaction:
                        with conn.transaction():
                            yield Session(conn)
                    else:
                        yield Session(conn)
                finally:
                    watch.stop()
                self._answered[conn] = time.monotonic()  # reached only when the operation succeeded
        except psycopg.Error as exc:  # PoolTimeout is an OperationalError
            raise ServiceUnavailable(f"{what}: {type(exc).__name__}", reason=reason) from None

    def _check(self, conn: psycopg.Connection[Any]) -> None:
        """The pool's liveness check on checkout, under the operation's deadline (it runs a query, which a hung
        server would never answer)."""
        answered = self._answered.get(conn)
        if answered is not None and time.monotonic() - answered < ALIVE_BYPASS_SECONDS:
            return
        deadline: float = getattr(self._local, "deadline", time.monotonic() + self._operation_timeout)
        watch = _WATCHDOG.watch(conn, deadline)
        try:
            ConnectionPool.check_connection(conn)
        finally:
            watch.stop()

    def _current_pool(self) -> ConnectionPool:
        with self._lock:
            if self._pid != os.getpid():  # a forked child: the parent's pool is not ours
                if self._pool is not None:
                    _INHERITED.append(self._pool)
                self._pool, self._pid = None, os.getpid()
            if self._pool is None:
                pool = ConnectionPool(
                    self.target.conninfo,
                    kwargs={**self.target.kwargs, "autocommit": True},
                    min_size=1,
                    max_size=self._pool_size,
                    open=False,
                    timeout=self._pool_timeout,
                    max_lifetime=3600,
                    max_idle=600,
                    check=self._check,
                    name="sts",
                )
                pool.open(wait=False)  # connects in the background; a request waits at most the pool timeout
                self._pool = pool
            return self._pool

    def ping(self) -> None:
        """A cheap round trip within the operation deadline, for the readiness probe (:class:`ServiceUnavailable`
        when the server does not answer)."""
        with self.session("readiness", "store_unavailable") as session:
            session.execute("SELECT 1")

    @contextmanager
    def tool_session(self, what: str) -> Iterator[Session]:
        """One transaction on a connection of its own, without the per-operation deadline (``sts db copy``: bulk
        work); a failure is :class:`DatabaseError`."""
        try:
            with self.connect() as conn, conn.transaction():
                yield Session(conn)
        except psycopg.Error as exc:
            raise DatabaseError(f"{self.target.describe()}: {what} failed ({_first_line(exc)})") from None

    def connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        """A connection outside the pool (for the start-up check in a process about to fork, and for tools)."""
        try:
            return psycopg.connect(self.target.conninfo, **{**self.target.kwargs, "autocommit": True})
        except psycopg.Error as exc:
            raise DatabaseError(f"{self.target.describe()}: cannot connect ({_first_line(exc)})") from None

    def close(self) -> None:
        """Close this process's pool (never a parent's)."""
        with self._lock:
            pool, self._pool = (self._pool, None) if self._pid == os.getpid() else (None, self._pool)
        if pool is not None:
            pool.close(timeout=1.0)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


# --- schema ---------------------------------------------------------------------------------------------------------


def schema_version(conn: psycopg.Connection[Any]) -> int:
    """The applied schema version (0: no STS schema yet)."""
    # A query of the catalog, not to_regclass(): that reads the relation cache, which in a session that waited for
    # the migration lock may not yet know the table another node just created.
    exists = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_tables"
        " WHERE schemaname = current_schema() AND tablename = 'schema_version')"
    ).fetchone()
    if not exists or not exists[0]:
        return 0
    row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()
    return int(row[0]) if row else 0


def check_schema(db: PostgresDatabase) -> None:
    """Raise :class:`DatabaseError` unless the server answers with the schema this code runs on."""
    where = db.target.describe()
    try:
        with db.connect() as conn:
            current = schema_version(conn)
    except psycopg.Error as exc:
        raise DatabaseError(f"{where}: {_first_line(exc)}") from None
    require_current(DIALECT, current, where)


def upgrade(db: PostgresDatabase) -> tuple[int, int]:
    """Apply the pending migrations, each in its own transaction holding the migration advisory lock, so nodes
    upgrading at once take turns and apply each step exactly once; returns the versions before and after."""
    where = db.target.describe()
    try:
        with db.connect() as conn:
            before: int | None = None
            while True:
                with conn.transaction():
                    conn.execute(_TAKE_TURN)
                    if conn.info.server_version >= _CHECK_CLIENT_SINCE:
                        conn.execute(_CHECK_CLIENT)
                    current = schema_version(conn)
                    before = current if before is None else before  # read in turn: not what a node before us did
                    steps = pending(DIALECT, current)
                    if not steps:
                        return before, current
                    _apply(conn, steps[0], where)
    except psycopg.Error as exc:
        raise DatabaseError(f"{where}: cannot upgrade ({_first_line(exc)})") from None


def _apply(conn: psycopg.Connection[Any], step: Migration, where: str) -> None:
    """Apply ``step`` and record it, in the caller's transaction (PostgreSQL DDL is transactional: a failure leaves
    nothing of the step behind)."""
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version"
            " (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        conn.execute(step.sql.encode())  # several statements: no parameters
        conn.execute("INSERT INTO schema_version(version) VALUES (%s)", (step.version,))
    except psycopg.errors.LockNotAvailable:
        raise DatabaseError(
            f"{where}: cannot upgrade to version {step.version}: another session kept a table it changes locked"
            f" for longer than lock_timeout (a long transaction or a backup?); nothing of version {step.version}"
            " was applied: run `sts db upgrade` again"
        ) from None
