"""A real PostgreSQL (Debian's ``postgresql`` package) in a temporary directory on 127.0.0.1.

Nothing of the system cluster is used: the binaries of /usr/lib/postgresql/<version>/bin run ``initdb`` into a
fresh directory and ``postgres`` on a free port, as the ``postgres`` system user when the tests run as root
(PostgreSQL refuses root). Only TCP on 127.0.0.1 is accepted, with scram-sha-256 passwords; with ``tls=True`` only
TLS (``hostssl``) with a certificate from a private CA. Durability is traded for speed (``fsync=off``) in a way that
still survives :meth:`PostgresServer.kill`: see ``_SETTINGS``.

Use :func:`postgres_server` as a context manager, or the fixtures (registered from tests/conftest.py):
``postgres_session`` / ``postgres_tls_session`` (one server per test session, started on first use) and
``postgres_server`` / ``postgres_tls_server`` (the same server, brought back up after a test that stopped, killed or
paused it).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from psycopg import sql

from tests.servers._process import LOOPBACK, Account, ServerError, ServerProcess, TlsFiles, log_tail, make_tls_files
from tests.support import free_port

START_DEADLINE = 20.0  # seconds until the server must accept an authenticated connection
PORT_ATTEMPTS = 3  # a free port can be taken by someone else before the server binds it

# Speed over crash safety, but only against an OS crash: with fsync=off a commit is still written to the kernel
# before the client hears of it, so a SIGKILLed server (kill()) keeps every acknowledged commit. That is why
# synchronous_commit stays on: "off" would lose acknowledged commits on kill(), which tests of "a lost connection
# leaves the old or the new token, never both" must not see.
_SETTINGS = """
listen_addresses = '127.0.0.1'
unix_socket_permissions = 0700
password_encryption = 'scram-sha-256'
fsync = off
full_page_writes = off
wal_level = minimal
max_wal_senders = 0
shared_buffers = 32MB
max_connections = 100
jit = off
timezone = 'UTC'
log_timezone = 'UTC'
logging_collector = off
log_line_prefix = '%m [%p] %q%u@%d '
"""
_TLS_SETTINGS = """
ssl = on
ssl_cert_file = '{cert}'
ssl_key_file = '{key}'
ssl_min_protocol_version = 'TLSv1.2'
"""


def bindir() -> Path:
    """The newest Debian PostgreSQL bin directory (``initdb`` and ``postgres`` are not on PATH there)."""
    candidates = sorted(
        (p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "initdb").exists() and p.parent.name.isdigit()),
        key=lambda p: int(p.parent.name),
    )
    if candidates:
        return candidates[-1]
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise ServerError("PostgreSQL is not installed: Debian package 'postgresql' (make system-test-deps)")


class PostgresServer:
    """A PostgreSQL server with one database owned by one password-authenticated role.

    ``url`` connects as that role (``user``/``password``/``database``); ``admin_url`` as the bootstrap superuser.
    With TLS both URLs carry ``sslmode=verify-full`` and ``sslrootcert`` = :attr:`ca_file`.
    """

    def __init__(self, base: Path, *, tls: bool = False, database: str = "sts", user: str = "sts") -> None:
        self.base = base
        self.tls = tls
        self.host = LOOPBACK
        self.port = free_port()
        self.database = database
        self.user = user
        self.password = secrets.token_urlsafe(18)
        self.admin_user = "sts_admin"
        self.admin_password = secrets.token_urlsafe(18)
        self.data_dir = base / "data"
        self.bindir = bindir()
        self.account = Account.for_root("postgres")
        self.tls_files: TlsFiles | None = None
        self.process = ServerProcess("postgres", base / "postgres.log", self.account)
        self._bootstrapped = False

    # --- addresses -----------------------------------------------------------------------------------------------

    @property
    def ca_file(self) -> Path | None:
        """The CA that signed the server certificate (TLS only)."""
        return self.tls_files.ca if self.tls_files else None

    def _url(self, user: str, password: str, database: str) -> str:
        url = f"postgresql://{quote(user)}:{quote(password, safe='')}@{self.host}:{self.port}/{quote(database)}"
        if self.tls_files:
            url += f"?sslmode=verify-full&sslrootcert={quote(str(self.tls_files.ca))}"
        return url

    @property
    def url(self) -> str:
        """``postgresql://user:password@127.0.0.1:port/database`` (plus the TLS parameters with TLS)."""
        return self._url(self.user, self.password, self.database)

    @property
    def admin_url(self) -> str:
        """The same server as the superuser, for setting up and inspecting (``pg_stat_activity``)."""
        return self._url(self.admin_user, self.admin_password, "postgres")

    @property
    def log(self) -> Path:
        """The server's log (stderr)."""
        return self.process.log

    @property
    def pid(self) -> int:
        """The postmaster's PID (also its process group: backends are in it)."""
        return self.process.pid

    @property
    def running(self) -> bool:
        """True while the postmaster lives (also when paused)."""
        return self.process.running

    # --- life cycle ----------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start (the first time: create the cluster, role and database) and wait for an authenticated login.

        After :meth:`stop` or :meth:`kill` the server comes back on the same port with the same data.
        """
        if not self.data_dir.exists():
            self._initdb()
        for attempt in range(PORT_ATTEMPTS):
            self.process.spawn(self._argv(), self._env(), self.base)
            try:
                self.process.wait_ready(self._probe, START_DEADLINE)
                break
            except ServerError as exc:
                if self._bootstrapped or attempt + 1 == PORT_ATTEMPTS or "already in use" not in str(exc):
                    raise
                self.port = free_port()  # lost the race for the port before the first start: take another
        if not self._bootstrapped:
            self._bootstrap()

    def stop(self) -> None:
        """Fast shutdown (SIGINT, as ``pg_ctl stop -m fast``): sessions are terminated, data is kept."""
        self.process.terminate(signal.SIGINT)

    def kill(self) -> None:
        """SIGKILL the postmaster and every backend at once (a crash); :meth:`start` runs crash recovery."""
        self.process.kill()

    def pause(self) -> None:
        """SIGSTOP postmaster and backends: connected clients and new connections get no answer (a hung host)."""
        self.process.pause()

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        self.process.resume()

    def ensure_running(self) -> None:
        """Undo what a test did: resume if paused, start if stopped or killed."""
        if self.process.paused:
            self.resume()
        if not self.running:
            self.start()

    def log_text(self) -> str:
        """The end of the server log."""
        return log_tail(self.log)

    def create_database(self, name: str) -> str:
        """A new empty database owned by :attr:`user`; returns its URL (for tests that need a clean schema)."""
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
            raise ValueError(f"not a plain database name: {name!r}")
        with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(self.user)))
        return self._url(self.user, self.password, name)

    # --- internals -----------------------------------------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "TZ": "UTC"}

    def _argv(self) -> list[str]:
        # The port and socket directory on the command line, so that a retry on another port needs no file edit.
        return [str(self.bindir / "postgres"), "-D", str(self.data_dir), "-p", str(self.port), "-k", str(self.base)]

    def _run(self, argv: list[str]) -> None:
        extra: dict[str, object] = {}
        if self.account is not None:
            extra = {"user": self.account.uid, "group": self.account.gid, "extra_groups": []}
        result = subprocess.run(  # type: ignore[call-overload]
            argv, env=self._env(), cwd=self.base, capture_output=True, text=True, timeout=60, **extra
        )
        if result.returncode != 0:
            raise ServerError(f"{argv[0]} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")

    def _initdb(self) -> None:
        if self.account is not None:
            self.account.own(self.base)
        pwfile = self.base / "admin-password"
        pwfile.write_text(self.admin_password + "\n")
        pwfile.chmod(0o600)
        if self.account is not None:
            self.account.own(pwfile)
        try:
            self._run([
                str(self.bindir / "initdb"), "-D", str(self.data_dir), "-U", self.admin_user, f"--pwfile={pwfile}",
                "--auth=scram-sha-256", "-E", "UTF8", "--no-locale", "--no-sync", "--no-instructions",
            ])
        finally:
            pwfile.unlink()
        settings = _SETTINGS
        if self.tls:
            self.tls_files = make_tls_files(self.base, self.account)
            settings += _TLS_SETTINGS.format(cert=self.tls_files.cert, key=self.tls_files.key)
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write(settings)
        # 127.0.0.1 only, passwords only; no "local" line, so the Unix socket (in our directory) admits nobody.
        connection = "hostssl" if self.tls else "host"
        (self.data_dir / "pg_hba.conf").write_text(f"{connection} all all 127.0.0.1/32 scram-sha-256\n")

    def _probe(self) -> None:
        """An authenticated round trip as the superuser (as the app role once it exists)."""
        url = self.url if self._bootstrapped else self.admin_url
        with psycopg.connect(url, connect_timeout=2) as conn:
            conn.execute("SELECT 1").fetchone()

    def _bootstrap(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=5) as conn:
            role, database = sql.Identifier(self.user), sql.Identifier(self.database)
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(role, sql.Literal(self.password)))
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(database, role))
        self._bootstrapped = True
        self._probe()


@contextmanager
def postgres_server(*, tls: bool = False) -> Iterator[PostgresServer]:
    """A started :class:`PostgresServer` in a temporary directory, stopped and removed afterwards."""
    base = Path(tempfile.mkdtemp(prefix="sts-pg-"))
    try:
        server = PostgresServer(base, tls=tls)
        try:
            server.start()
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_session() -> Iterator[PostgresServer]:
    """One plain-TCP PostgreSQL for the whole test session."""
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="session")
def postgres_tls_session() -> Iterator[PostgresServer]:
    """One TLS-only PostgreSQL for the whole test session."""
    with postgres_server(tls=True) as server:
        yield server


@pytest.fixture(name="postgres_server")
def postgres_server_fixture(postgres_session: PostgresServer) -> Iterator[PostgresServer]:
    """The session's PostgreSQL, running again after the test whatever the test did to it."""
    yield postgres_session
    postgres_session.ensure_running()


@pytest.fixture(name="postgres_tls_server")
def postgres_tls_server_fixture(postgres_tls_session: PostgresServer) -> Iterator[PostgresServer]:
    """The session's TLS PostgreSQL, running again after the test whatever the test did to it."""
    yield postgres_tls_session
    postgres_tls_session.ensure_running()


@pytest.fixture
def postgres_database(postgres_server: PostgresServer) -> Iterator[str]:
    """The URL of a new, empty database on the session's server (owned by the app role), dropped after the test
    with whatever connections the test left open."""
    name = f"t_{secrets.token_hex(6)}"
    url = postgres_server.create_database(name)
    yield url
    postgres_server.ensure_running()
    with psycopg.connect(postgres_server.admin_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
