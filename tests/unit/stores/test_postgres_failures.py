"""PostgreSQL down, hung and lost mid-Renew: the stores fail closed (ServiceUnavailable) within the configured bound
and heal by themselves when the server is back; and the connection settings (TLS, password) of ``[store]``.

The bounds asserted are those the issue asks for: an operation ends within ``operation_timeout_ms`` (plus slack for
a loaded machine), whatever the server does.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from sts.clock import SystemClock
from sts.config.settings import StoreSettings
from sts.errors import ServiceUnavailable
from sts.stores.base import TokenRecord
from sts.stores.factory import Stores, build_stores, upgrade_schema
from sts.stores.migrations import DatabaseError, latest
from sts.stores.postgres import PostgresDatabase, check_schema, target
from tests.servers._process import make_tls_files
from tests.servers.postgres import PostgresServer
from tests.unit.stores.backends import settings_with

OPERATION_TIMEOUT = 1.0
SLACK = 1.5  # scheduling on a shared 2-core machine
RECOVERY = 20.0  # psycopg-pool reconnects with backoff (1, 2, 4 … s)
_T = TypeVar("_T")


@pytest.fixture
def stores(tmp_path: Path, postgres_database: str) -> Iterator[Stores]:
    store = StoreSettings(
        backend="postgresql", url=postgres_database, operation_timeout_ms=int(OPERATION_TIMEOUT * 1000),
        pool_timeout_ms=300, credential_key=tmp_path / "none.key",
    )
    upgrade_schema(store)
    built = build_stores(settings_with(tmp_path, store), SystemClock())
    yield built
    built.close()


def failing_within(action: Callable[[], object], bound: float) -> float:
    """Seconds ``action`` took to raise ServiceUnavailable (``soap:Server`` "Service unavailable"); fails if it
    answered or took longer than ``bound``."""
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable) as caught:
        action()
    elapsed = time.monotonic() - started
    assert caught.value.fault_string == "Service unavailable" and caught.value.sender is False
    assert elapsed < bound, f"took {elapsed:.2f} s"
    return elapsed


def eventually(action: Callable[[], _T], deadline: float = RECOVERY) -> _T:
    end = time.monotonic() + deadline
    while True:
        try:
            return action()
        except ServiceUnavailable:
            assert time.monotonic() < end, "the store did not recover"
            time.sleep(0.2)


def nonce() -> bytes:
    return f"n-{time.monotonic_ns()}".encode()


def test_server_down_fails_within_the_bound_then_heals_without_a_restart(
    stores: Stores, postgres_server: PostgresServer
) -> None:
    assert stores.replay.check_and_add("ns", nonce(), time.time() + 60) is True
    postgres_server.stop()
    try:
        failing_within(lambda: stores.replay.check_and_add("ns", nonce(), time.time() + 60), OPERATION_TIMEOUT + SLACK)
        failing_within(lambda: stores.lockout.state("PRIMARY/ann"), OPERATION_TIMEOUT + SLACK)
        failing_within(lambda: stores.builtin.find("PRIMARY", "ann"), OPERATION_TIMEOUT + SLACK)
    finally:
        postgres_server.start()
    assert eventually(lambda: stores.replay.check_and_add("ns", nonce(), time.time() + 60)) is True


def test_hung_server_fails_at_the_client_deadline_then_heals(stores: Stores, postgres_server: PostgresServer) -> None:
    assert stores.relying_parties.version() == 0  # a pooled connection exists before the server hangs
    postgres_server.pause()
    try:
        # The server cannot enforce statement_timeout while stopped: only the client's deadline ends these.
        failing_within(stores.relying_parties.version, OPERATION_TIMEOUT + SLACK)
        failing_within(lambda: stores.replay.check_and_add("ns", nonce(), time.time() + 60), OPERATION_TIMEOUT + SLACK)
    finally:
        postgres_server.resume()
    assert eventually(stores.relying_parties.version) == 0


def token(token_id: str) -> TokenRecord:
    now = time.time()
    return TokenRecord(token_id, "PRIMARY/ann", "https://rp.example/", "saml2", now, now + 300, "issued", True, False,
                       f"d-{token_id}", json.dumps({"chain": "old"}))


def test_renew_with_the_connection_lost_leaves_exactly_one_live_token(
    stores: Stores, postgres_server: PostgresServer
) -> None:
    tokens = stores.tokens
    assert tokens is not None
    tokens.put(token("old"), time.time() + 600)
    postgres_server.pause()  # the UPDATE is sent and never answered; the deadline cuts the connection
    try:
        failing_within(lambda: tokens.renew("old", token("new"), time.time() + 600), OPERATION_TIMEOUT + SLACK)
    finally:
        postgres_server.resume()

    def live() -> list[str]:
        return [t for t in ("old", "new") if (r := tokens.get(t)) is not None and r.status == "issued"]

    # The transaction never reached COMMIT: the server rolls it back when it sees the connection gone.
    assert eventually(live) == ["old"]
    assert tokens.renew("old", token("new"), time.time() + 600) is True  # and the token can be renewed again
    assert live() == ["new"]


def test_a_remote_server_is_verified_with_tls_by_default(tmp_path: Path) -> None:
    remote = target(StoreSettings(url="postgresql://sts@db.example.net/sts"))
    assert (remote.kwargs["sslmode"], remote.kwargs["sslrootcert"]) == ("verify-full", "system")
    with_ca = target(StoreSettings(url="postgresql://sts@db.example.net/sts", ca_file=tmp_path / "ca.pem"))
    assert (with_ca.kwargs["sslmode"], with_ca.kwargs["sslrootcert"]) == ("verify-full", str(tmp_path / "ca.pem"))
    assert "sslmode" not in target(StoreSettings(url="postgresql://sts@127.0.0.1/sts")).kwargs
    assert "sslmode" not in target(StoreSettings(url="host=/run/postgresql dbname=sts")).kwargs
    chosen = target(StoreSettings(url="postgresql://sts@db.example.net/sts?sslmode=require"))
    assert "sslmode" not in chosen.kwargs  # the operator's explicit choice (check-config warns about it)
    limits = target(StoreSettings(url="postgresql://127.0.0.1/sts", statement_timeout_ms=800)).kwargs["options"]
    assert "-c statement_timeout=800" in limits and "-c lock_timeout=400" in limits


def test_password_from_a_file_and_never_in_messages(tmp_path: Path, postgres_server: PostgresServer) -> None:
    url = f"postgresql://{postgres_server.user}@{postgres_server.host}:{postgres_server.port}/{postgres_server.database}"
    secret = tmp_path / "pg-password"
    secret.write_text(postgres_server.password + "\n")
    with PostgresDatabase(StoreSettings(backend="postgresql", url=url, password_file=secret)) as db:
        with pytest.raises(DatabaseError, match="has no STS schema|has schema version"):
            check_schema(db)  # connected: the schema is all it complains about
    secret.write_text("wrong-password\n")
    with PostgresDatabase(StoreSettings(backend="postgresql", url=url, password_file=secret)) as db:
        with pytest.raises(DatabaseError, match="password authentication failed") as caught:
            check_schema(db)
    assert "wrong-password" not in str(caught.value)


def test_a_password_file_that_is_not_utf8_is_a_database_error(tmp_path: Path) -> None:
    secret = tmp_path / "pg-password"
    secret.write_bytes(b"\xffs3cr\xe9t\n")
    with pytest.raises(DatabaseError) as caught:
        target(StoreSettings(backend="postgresql", url="postgresql://127.0.0.1/sts", password_file=secret))
    assert str(caught.value) == f"store.password_file: {secret}: not UTF-8 text"
    with pytest.raises(DatabaseError, match="not a PostgreSQL URL") as bad:
        target(StoreSettings(url="postgresql://sts:s3cret@[bad"))
    assert "s3cret" not in str(bad.value)


def test_tls_server_with_the_ca_file(tmp_path: Path, postgres_tls_server: PostgresServer) -> None:
    server = postgres_tls_server
    assert server.ca_file is not None
    name = f"tls_{time.monotonic_ns()}"
    url = server.create_database(name).split("?")[0]  # the URL without the test's own TLS parameters
    store = StoreSettings(backend="postgresql", url=url, ca_file=server.ca_file)
    assert upgrade_schema(store)[1] == latest("postgresql")
    with PostgresDatabase(store) as db, db.connect() as conn:
        assert conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone() == (True,)
    other = make_tls_files(tmp_path, None).ca
    with pytest.raises(DatabaseError, match="certificate verify failed"):
        upgrade_schema(StoreSettings(backend="postgresql", url=url, ca_file=other))


def test_a_connection_that_just_answered_skips_the_liveness_round_trip(
    stores: Stores, postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under load the pool's check would double every operation's round trips (HikariCP's aliveBypassWindowMs);
    an idle connection is still checked, and a server restart is still healed."""
    from psycopg_pool import ConnectionPool

    import sts.stores.postgres as postgres

    checks: list[object] = []
    real = ConnectionPool.check_connection
    counted = staticmethod(lambda conn: (checks.append(conn), real(conn)))
    monkeypatch.setattr(ConnectionPool, "check_connection", counted)
    monkeypatch.setattr(postgres, "ALIVE_BYPASS_SECONDS", 3600.0)
    eventually(stores.relying_parties.version)
    for _ in range(8):  # every connection the pool holds (it hands its idle ones out in turn) has answered
        stores.relying_parties.version()
    checks.clear()
    for _ in range(10):
        stores.relying_parties.version()
    # A connection that just completed an operation is handed out unchecked: only one the pool opened meanwhile
    # (its background filler may, on a loaded machine) is checked, once. Before the bypass, every checkout was
    # checked, so the pool's few connections were each checked several times in ten operations.
    assert len({id(conn) for conn in checks}) == len(checks), checks
    checks.clear()
    monkeypatch.setattr(postgres, "ALIVE_BYPASS_SECONDS", 0.0)
    stores.relying_parties.version()
    assert len(checks) == 1  # past the window: checked before use
    postgres_server.stop()
    postgres_server.start()
    monkeypatch.setattr(postgres, "ALIVE_BYPASS_SECONDS", 3600.0)
    assert eventually(lambda: stores.replay.check_and_add("ns", nonce(), time.time() + 60)) is True
