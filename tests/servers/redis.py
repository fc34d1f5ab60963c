"""A real ``redis-server`` (Debian's package) in a temporary directory on 127.0.0.1.

Not the system service: a private process on a free port with ``bind 127.0.0.1``, ``protected-mode yes``, a
password for the default user (``requirepass``), no persistence (``save ''``, ``appendonly no``: a restart comes back
empty, like a Redis that lost its data) and, with ``tls=True``, only a TLS port with a certificate from a private CA.

Use :func:`redis_server` as a context manager, or the fixtures (registered from tests/conftest.py): ``redis_session``
/ ``redis_tls_session`` (one server per test session, started on first use) and ``redis_server`` /
``redis_tls_server`` (the same server, brought back up after a test that stopped, killed or paused it).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.servers._process import LOOPBACK, ServerError, ServerProcess, TlsFiles, log_tail, make_tls_files
from tests.support import free_port

START_DEADLINE = 10.0  # seconds until the server must answer an authenticated PING
PORT_ATTEMPTS = 3  # a free port can be taken by someone else before the server binds it


def executable() -> str:
    """Debian's redis-server."""
    found = shutil.which("redis-server", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/bin"]))
    if found is None:
        raise ServerError("redis-server is not installed: Debian package 'redis-server' (make system-test-deps)")
    return found


class RedisServer:
    """A password-protected Redis; ``url`` is ``redis://:password@127.0.0.1:port/0`` (``rediss://`` with TLS)."""

    def __init__(self, base: Path, *, tls: bool = False) -> None:
        self.base = base
        self.tls = tls
        self.host = LOOPBACK
        self.port = free_port()
        self.db = 0
        self.password = secrets.token_urlsafe(18)
        self.tls_files: TlsFiles | None = make_tls_files(base, None) if tls else None
        self.process = ServerProcess("redis-server", base / "redis.log", None)  # Redis runs fine as root

    # --- addresses -----------------------------------------------------------------------------------------------

    @property
    def ca_file(self) -> Path | None:
        """The CA that signed the server certificate (TLS only)."""
        return self.tls_files.ca if self.tls_files else None

    @property
    def url(self) -> str:
        """``redis://:password@127.0.0.1:port/0``; ``rediss://`` with TLS (the CA is :attr:`ca_file`)."""
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://:{self.password}@{self.host}:{self.port}/{self.db}"

    @property
    def log(self) -> Path:
        """The server's log (stdout and stderr)."""
        return self.process.log

    @property
    def pid(self) -> int:
        """The server's PID."""
        return self.process.pid

    @property
    def running(self) -> bool:
        """True while the server lives (also when paused)."""
        return self.process.running

    def client(self, *, timeout: float = 1.0, **kwargs: Any) -> redis.Redis:
        """A redis-py client with bounded timeouts and no retries (the settings the product should use)."""
        options: dict[str, Any] = {
            "socket_timeout": timeout, "socket_connect_timeout": timeout, "retry": Retry(NoBackoff(), 0),
        }
        if self.tls_files:
            options["ssl_ca_certs"] = str(self.tls_files.ca)
        options.update(kwargs)
        return redis.Redis.from_url(self.url, **options)

    # --- life cycle ----------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start and wait for an authenticated PING; after :meth:`stop` or :meth:`kill`: same port, empty data."""
        for attempt in range(PORT_ATTEMPTS):
            self.process.spawn(self._argv(), {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}, self.base)
            try:
                self.process.wait_ready(self._probe, START_DEADLINE)
                return
            except ServerError as exc:
                if attempt + 1 == PORT_ATTEMPTS or "already in use" not in str(exc):
                    raise
                self.port = free_port()  # lost the race for the port: take another

    def stop(self) -> None:
        """Clean shutdown (SIGTERM); nothing is saved."""
        self.process.terminate(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL (a crash)."""
        self.process.kill()

    def pause(self) -> None:
        """SIGSTOP: connections stay open, commands get no answer (a hung server)."""
        self.process.pause()

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`; commands sent meanwhile are then executed."""
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

    # --- internals -----------------------------------------------------------------------------------------------

    def _argv(self) -> list[str]:
        conf = self.base / "redis.conf"
        if not conf.exists():
            self._write_conf(conf)
        # The port on the command line (it overrides the file), so that a retry on another port needs no file edit.
        ports = ["--port", "0", "--tls-port", str(self.port)] if self.tls else ["--port", str(self.port)]
        return [executable(), str(conf), *ports]

    def _write_conf(self, conf: Path) -> None:
        # The password goes in a 0600 file, not on the command line where `ps` shows it.
        lines = [
            "bind 127.0.0.1",
            "protected-mode yes",
            f"dir {self.base}",
            'save ""',
            "appendonly no",
            f"requirepass {self.password}",
            "daemonize no",
            "timeout 0",
            'logfile ""',
            "always-show-logo no",
        ]
        if self.tls_files:
            lines += [
                f"tls-cert-file {self.tls_files.cert}",
                f"tls-key-file {self.tls_files.key}",
                f"tls-ca-cert-file {self.tls_files.ca}",
                "tls-auth-clients no",
            ]
        fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write("\n".join(lines) + "\n")

    def _probe(self) -> None:
        with self.client() as client:
            if client.ping() is not True:
                raise ServerError("PING did not answer PONG")


@contextmanager
def redis_server(*, tls: bool = False) -> Iterator[RedisServer]:
    """A started :class:`RedisServer` in a temporary directory, stopped and removed afterwards."""
    base = Path(tempfile.mkdtemp(prefix="sts-redis-"))
    try:
        server = RedisServer(base, tls=tls)
        server.start()
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_session() -> Iterator[RedisServer]:
    """One plain-TCP Redis for the whole test session."""
    with redis_server() as server:
        yield server


@pytest.fixture(scope="session")
def redis_tls_session() -> Iterator[RedisServer]:
    """One TLS-only Redis for the whole test session."""
    with redis_server(tls=True) as server:
        yield server


@pytest.fixture(name="redis_server")
def redis_server_fixture(redis_session: RedisServer) -> Iterator[RedisServer]:
    """The session's Redis, running again after the test whatever the test did to it (its data may be gone)."""
    yield redis_session
    redis_session.ensure_running()


@pytest.fixture(name="redis_tls_server")
def redis_tls_server_fixture(redis_tls_session: RedisServer) -> Iterator[RedisServer]:
    """The session's TLS Redis, running again after the test whatever the test did to it (its data may be gone)."""
    yield redis_tls_session
    redis_tls_session.ensure_running()
