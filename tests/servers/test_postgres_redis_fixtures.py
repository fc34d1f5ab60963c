"""The real PostgreSQL and Redis of tests/servers/ with the clients the product uses (psycopg 3, redis-py).

Besides proving the fixtures (password login, TLS, loopback only, stop/start, pause/resume, kill), these tests pin
the client behaviour the shared-state backends rely on: every failure arrives within a bound (the issue asks for
bounded failure, so these tests assert times), and the clients recover by themselves when the server returns.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from psycopg_pool import ConnectionPool, PoolTimeout
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.servers._process import LOOPBACK, alive, descendants, make_tls_files
from tests.servers.postgres import PostgresServer
from tests.servers.redis import RedisServer

pytestmark = pytest.mark.integration

CONNECT_TIMEOUT = 2  # libpq's smallest effective connect_timeout (1 is read as 2)
POOL_TIMEOUT = 1.0
REDIS_TIMEOUT = 0.25
RECOVERY_DEADLINE = 15.0  # the pool reconnects with a 1 s, 2 s, 4 s ... backoff


def elapsed(action: Callable[[], object], expected: type[BaseException] | tuple[type[BaseException], ...]) -> float:
    """Seconds until ``action`` raised ``expected`` (it must raise)."""
    start = time.monotonic()
    with pytest.raises(expected):
        action()
    return time.monotonic() - start


def eventually(action: Callable[[], object], deadline: float = RECOVERY_DEADLINE) -> object:
    """``action``'s result once it stops raising; fails after ``deadline`` seconds."""
    end = time.monotonic() + deadline
    while True:
        try:
            return action()
        except Exception:
            if time.monotonic() > end:
                raise
            time.sleep(0.1)


def wait_for(condition: Callable[[], bool], deadline: float) -> None:
    """Return once ``condition()`` is true; fails after ``deadline`` seconds."""
    end = time.monotonic() + deadline
    while not condition():
        assert time.monotonic() < end, "condition not met in time"
        time.sleep(0.01)


def listening_addresses(port: int) -> set[str]:
    """Addresses with a TCP socket listening on ``port`` (/proc/net/tcp and tcp6; IPv4 shown dotted)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:
                found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]) if len(address) == 8 else address)
    return found


def run_with_deadline(conn: psycopg.Connection[tuple[object, ...]], query: str, deadline: float) -> None:
    """Run ``query``, shutting the socket down after ``deadline`` s: the only bound on a hung backend.

    statement_timeout is enforced by the backend itself and TCP keepalives are answered by the kernel, so neither
    fires when the server process is stopped.
    """

    def cut() -> None:
        with socket.socket(fileno=os.dup(conn.fileno())) as sock:
            sock.shutdown(socket.SHUT_RDWR)

    timer = threading.Timer(deadline, cut)
    timer.start()
    try:
        conn.execute(query)
    finally:
        timer.cancel()


def redis_client(server: RedisServer, *, password: str | None) -> redis.Redis:
    """A plain-TCP client with another password (or none) and no retries.

    Not retrying matters here too: AuthenticationError is a ConnectionError, which redis-py's default Retry repeats.
    """
    return redis.Redis(host=server.host, port=server.port, password=password, socket_timeout=1,
                       socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))


@pytest.fixture
def pool(postgres_server: PostgresServer) -> Iterator[ConnectionPool]:
    """A pool configured as the product's per-worker pool (bounded waits, connections checked on checkout)."""
    with ConnectionPool(
        postgres_server.url, min_size=1, max_size=2, open=False, timeout=POOL_TIMEOUT,
        check=ConnectionPool.check_connection, kwargs={"connect_timeout": CONNECT_TIMEOUT},
    ) as opened:
        opened.open(wait=True, timeout=10)
        yield opened


def select_one(pool: ConnectionPool) -> object:
    with pool.connection() as conn:
        return conn.execute("SELECT 1").fetchone()


# --- PostgreSQL --------------------------------------------------------------------------------------------------


def test_postgres_password_login_and_wrong_password_refused(postgres_server: PostgresServer) -> None:
    with psycopg.connect(postgres_server.url, connect_timeout=CONNECT_TIMEOUT) as conn:
        row = conn.execute(
            "SELECT current_user, current_database(), inet_server_addr()::text, "
            "(SELECT rolsuper FROM pg_roles WHERE rolname = current_user)"
        ).fetchone()
    assert row == (postgres_server.user, postgres_server.database, "127.0.0.1/32", False)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(
            host=postgres_server.host, port=postgres_server.port, dbname=postgres_server.database,
            user=postgres_server.user, password="wrong", connect_timeout=CONNECT_TIMEOUT,
        )


def test_postgres_listens_on_loopback_tcp_only(postgres_server: PostgresServer) -> None:
    assert listening_addresses(postgres_server.port) == {LOOPBACK}
    # The Unix socket lives in the server's temporary directory and pg_hba.conf has no "local" line.
    with pytest.raises(psycopg.OperationalError, match="no pg_hba.conf entry"):
        psycopg.connect(
            host=str(postgres_server.base), port=postgres_server.port, dbname=postgres_server.database,
            user=postgres_server.user, password=postgres_server.password, connect_timeout=CONNECT_TIMEOUT,
        )


def test_postgres_tls_verified_with_the_ca(postgres_tls_server: PostgresServer, tmp_path: Path) -> None:
    server = postgres_tls_server
    assert server.ca_file is not None and "sslmode=verify-full" in server.url
    with psycopg.connect(server.url, connect_timeout=CONNECT_TIMEOUT) as conn:
        assert conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone() == (True,)
    parts: dict[str, Any] = {"host": server.host, "port": server.port, "dbname": server.database, "user": server.user,
             "password": server.password, "connect_timeout": CONNECT_TIMEOUT}
    with pytest.raises(psycopg.OperationalError, match="no encryption"):
        psycopg.connect(**parts, sslmode="disable")
    other_ca = make_tls_files(tmp_path, None).ca
    with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
        psycopg.connect(**parts, sslmode="verify-full", sslrootcert=str(other_ca))


def test_postgres_pool_serves_queries(pool: ConnectionPool, postgres_server: PostgresServer) -> None:
    def backend(_: int) -> object:
        with pool.connection() as conn:
            return conn.execute("SELECT current_user").fetchone()

    threads = [threading.Thread(target=backend, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert backend(0) == (postgres_server.user,)
    assert pool.get_stats()["pool_max"] == 2


def test_postgres_stop_fails_within_timeouts_then_same_data_and_pool_recovers(
    postgres_server: PostgresServer, pool: ConnectionPool
) -> None:
    with psycopg.connect(postgres_server.url, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS kept (id int)")
        conn.execute("INSERT INTO kept VALUES (1)")
    held = psycopg.connect(postgres_server.url, connect_timeout=CONNECT_TIMEOUT)
    postgres_server.stop()
    try:
        assert elapsed(lambda: held.execute("SELECT 1"), psycopg.OperationalError) < 1
        assert elapsed(lambda: psycopg.connect(postgres_server.url, connect_timeout=CONNECT_TIMEOUT),
                       psycopg.OperationalError) < CONNECT_TIMEOUT + 1
        assert elapsed(lambda: select_one(pool), (PoolTimeout, psycopg.OperationalError)) < POOL_TIMEOUT + 2
    finally:
        held.close()
        postgres_server.start()
    assert eventually(lambda: select_one(pool)) == (1,)
    with psycopg.connect(postgres_server.url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM kept WHERE id = 1").fetchone() != (0,)
        conn.execute("DROP TABLE kept")


def test_postgres_pool_check_serves_the_first_request_after_an_idle_restart(
    postgres_server: PostgresServer, pool: ConnectionPool
) -> None:
    assert select_one(pool) == (1,)
    postgres_server.stop()
    postgres_server.start()
    # The pooled connection died with the old server; the checkout check replaces it instead of handing it out.
    assert select_one(pool) == (1,)


def test_postgres_pause_bounded_only_by_client_deadlines_then_resume(postgres_server: PostgresServer) -> None:
    held = psycopg.connect(postgres_server.url, connect_timeout=CONNECT_TIMEOUT, autocommit=True)
    # A server-side limit is set, but a stopped backend cannot enforce it: only the client's deadline fires.
    held.execute("SET statement_timeout = 500")
    postgres_server.pause()
    try:
        assert elapsed(lambda: psycopg.connect(postgres_server.url, connect_timeout=CONNECT_TIMEOUT),
                       psycopg.OperationalError) < CONNECT_TIMEOUT + 2
        assert elapsed(lambda: run_with_deadline(held, "SELECT 1", 1.0), psycopg.OperationalError) < 3
        assert held.broken
    finally:
        held.close()
        postgres_server.resume()
    with psycopg.connect(postgres_server.url, connect_timeout=CONNECT_TIMEOUT) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_postgres_kill_mid_query_then_restart_keeps_acknowledged_commits(
    postgres_server: PostgresServer, pool: ConnectionPool
) -> None:
    with psycopg.connect(postgres_server.url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS acked")
        conn.execute("CREATE TABLE acked (id int)")
        for i in range(200):  # each an acknowledged commit, the last ones just before the crash
            conn.execute("INSERT INTO acked VALUES (%s)", (i,))
    outcome: list[BaseException] = []
    started = threading.Event()

    def long_query() -> None:
        try:
            with psycopg.connect(postgres_server.url, autocommit=True) as conn:
                started.set()
                conn.execute("SELECT pg_sleep(30)")
        except psycopg.OperationalError as exc:
            outcome.append(exc)

    worker = threading.Thread(target=long_query)
    worker.start()
    assert started.wait(10)
    time.sleep(0.2)  # the query is on the server
    backends = descendants(postgres_server.pid)
    killed_at = time.monotonic()
    postgres_server.kill()
    worker.join(timeout=5)
    assert not worker.is_alive() and len(outcome) == 1 and time.monotonic() - killed_at < 3
    assert backends and not alive(backends)  # every backend died with the postmaster
    postgres_server.start()
    with psycopg.connect(postgres_server.url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM acked").fetchone() == (200,)
        conn.execute("DROP TABLE acked")
    assert eventually(lambda: select_one(pool)) == (1,)


def test_postgres_create_database_for_a_clean_schema(postgres_server: PostgresServer) -> None:
    name = f"t_{secrets.token_hex(4)}"
    url = postgres_server.create_database(name)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE owned (id int)")  # the app role owns the new database
        assert conn.execute("SELECT current_database()").fetchone() == (name,)
    with psycopg.connect(postgres_server.admin_url, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE {name}")


# --- Redis -------------------------------------------------------------------------------------------------------


def test_redis_password_set_nx_ex_and_incr(redis_server: RedisServer) -> None:
    with redis_server.client(timeout=REDIS_TIMEOUT) as client:
        key = f"sts:replay:test:{time.monotonic_ns()}"
        assert client.set(key, 1, nx=True, ex=60) is True  # first use
        assert client.set(key, 1, nx=True, ex=60) is None  # replay
        assert 0 < client.ttl(key) <= 60
        counter = f"sts:fail:test:{time.monotonic_ns()}"
        assert [client.incr(counter), client.incr(counter)] == [1, 2]
    with redis_client(redis_server, password="wrong") as wrong:
        with pytest.raises(redis.AuthenticationError):
            wrong.ping()
    with redis_client(redis_server, password=None) as anonymous:
        with pytest.raises(redis.AuthenticationError):
            anonymous.get("anything")


def test_redis_listens_on_loopback_only(redis_server: RedisServer) -> None:
    assert listening_addresses(redis_server.port) == {LOOPBACK}
    with redis_server.client() as client:
        config = client.config_get("protected-mode")
        assert config == {"protected-mode": "yes"}
        assert client.config_get("save") == {"save": ""} and client.config_get("appendonly") == {"appendonly": "no"}


def test_redis_tls_verified_with_the_ca(redis_tls_server: RedisServer, tmp_path: Path) -> None:
    assert redis_tls_server.ca_file is not None and redis_tls_server.url.startswith("rediss://")
    with redis_tls_server.client() as client:
        assert client.ping() is True
    other_ca = make_tls_files(tmp_path, None).ca
    with redis_tls_server.client(ssl_ca_certs=str(other_ca)) as untrusted:
        with pytest.raises(redis.ConnectionError, match="certificate verify failed"):
            untrusted.ping()
    with redis_client(redis_tls_server, password=redis_tls_server.password) as plain:
        with pytest.raises((redis.ConnectionError, redis.TimeoutError)):
            plain.ping()


def test_redis_stop_fails_at_once_then_restart_empty_and_client_reconnects(redis_server: RedisServer) -> None:
    with redis_server.client(timeout=REDIS_TIMEOUT) as client:
        client.set("sts:test:before", 1)
        redis_server.stop()
        try:
            assert elapsed(lambda: client.incr("sts:test:counter"), redis.ConnectionError) < 1
        finally:
            redis_server.start()
        assert client.get("sts:test:before") is None  # no persistence: a restart forgets
        assert client.incr("sts:test:counter") == 1


def test_redis_idle_client_first_command_after_restart_succeeds(redis_server: RedisServer) -> None:
    with redis_server.client(timeout=REDIS_TIMEOUT) as client:
        assert client.ping() is True
        redis_server.stop()
        redis_server.start()
        # No retry is configured: the pool notices the closed connection on checkout and reconnects.
        assert client.incr("sts:test:after-restart") == 1


def test_redis_pause_times_out_bounded_and_the_command_still_runs_after_resume(redis_server: RedisServer) -> None:
    key = f"sts:fail:paused:{time.monotonic_ns()}"
    with redis_server.client(timeout=REDIS_TIMEOUT) as client:
        client.ping()  # connected before the pause
        redis_server.pause()
        try:
            assert elapsed(lambda: client.incr(key), redis.TimeoutError) < REDIS_TIMEOUT + 1
        finally:
            redis_server.resume()
        # A timeout is not "not applied": the INCR waited in the socket and ran on resume, so never retry it.
        assert eventually(lambda: client.get(key), 5) == b"1"


def test_redis_kill_mid_load_then_restart(redis_server: RedisServer) -> None:
    outcome: list[BaseException] = []
    done = [0]

    def load() -> None:
        with redis_server.client(timeout=REDIS_TIMEOUT) as client:
            end = time.monotonic() + 20
            try:
                while time.monotonic() < end and done[0] < 2_000_000:
                    client.incr("sts:test:load")
                    done[0] += 1
            except redis.RedisError as exc:
                outcome.append(exc)

    worker = threading.Thread(target=load)
    worker.start()
    wait_for(lambda: done[0] > 100, 10)
    killed_at = time.monotonic()
    redis_server.kill()
    worker.join(timeout=5)
    assert not worker.is_alive() and time.monotonic() - killed_at < 2
    assert len(outcome) == 1 and isinstance(outcome[0], redis.ConnectionError)
    redis_server.start()
    with redis_server.client(timeout=REDIS_TIMEOUT) as client:
        assert client.incr("sts:test:load") == 1


_KILLED_RUN = """
import sys, time
from pathlib import Path
from tests.servers.redis import RedisServer
server = RedisServer(Path(sys.argv[1]))
server.start()
print(server.pid, flush=True)
time.sleep(60)
"""


def test_a_killed_test_run_takes_its_servers_with_it(tmp_path: Path) -> None:
    """SIGKILL runs no fixture teardown: the kernel's parent-death signal stops the server instead."""
    with subprocess.Popen(  # noqa: S603
        [sys.executable, "-c", _KILLED_RUN, str(tmp_path)],
        stdout=subprocess.PIPE, cwd=Path(__file__).resolve().parents[2], text=True,
    ) as run:
        try:
            assert run.stdout is not None
            pid = int(run.stdout.readline())
            assert alive({pid}) == {pid}
        finally:
            run.kill()
    try:
        wait_for(lambda: not alive({pid}), 5)
    finally:
        if alive({pid}):  # the failure is reported above; no orphan either way
            os.kill(pid, signal.SIGKILL)
