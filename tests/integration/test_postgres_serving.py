"""``sts serve`` (gunicorn, 2 workers, TLS) on a PostgreSQL store over HTTP: Issue, Validate, Renew and Cancel, the
records in the shared database, a relying party registered from another host's instance directory (its certificate
in the database, no shared truststore) served within a second, and a stopped database answered with faults until it
is back (no restart)."""

from __future__ import annotations

import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from lxml import etree

from sts.cli import main as sts_main
from sts.crypto import keygen
from tests.integration.test_lifecycle import first_token, issue, lifecycle_request, post_ok, status_of
from tests.servers.postgres import PostgresServer
from tests.support import WST, Instance, Server, fault_qname, fault_string, rst_envelope, start_server
from tests.token_checks import decrypt_with_python_xmlsec

pytestmark = pytest.mark.integration

SAML2 = "urn:oasis:names:tc:SAML:2.0:assertion"
S11 = "http://schemas.xmlsoap.org/soap/envelope/"
XENC = "http://www.w3.org/2001/04/xmlenc#"
PROPAGATION = 1.0  # seconds within which every node serves a relying party the CLI registered (issue 15)


@pytest.fixture(scope="module")
def pg_instance(tmp_path_factory: pytest.TempPathFactory, postgres_session: PostgresServer) -> Instance:
    base = tmp_path_factory.mktemp("pg-serve")
    url = postgres_session.create_database(f"serve_{time.monotonic_ns()}")
    url = url.replace(f":{postgres_session.password}@", "@")
    secret = base / "pg-password"
    secret.write_text(postgres_session.password + "\n")
    args = ["init", "--demo", "--key-size", "2048", "--store-url", url, "--store-password-file", str(secret)]
    assert sts_main([*args, str(base / "var")]) == 0
    return Instance(base / "var")


@pytest.fixture(scope="module")
def pg_server(pg_instance: Instance) -> Iterator[Server]:
    server = start_server(pg_instance, workers=2, env={"STS_STORE_OPERATION_TIMEOUT_MS": "1000"})
    yield server
    server.stop()


def token_rows(instance: Instance) -> dict[str, str]:
    store = tomllib.loads((instance.base / "sts.toml").read_text())["store"]
    url, password = store["url"], Path(store["password_file"]).read_text().strip()
    with psycopg.connect(url, password=password, autocommit=True) as conn:
        return {str(row[0]): str(row[1]) for row in conn.execute("SELECT id, status FROM tokens").fetchall()}


def test_issue_validate_renew_cancel_on_postgres(pg_server: Server, pg_instance: Instance) -> None:
    token = first_token(issue(pg_server, pg_instance, SAML2, '<wst:Renewing Allow="true"/>'))
    rows = token_rows(pg_instance)
    assert list(rows.values()) == ["issued"]

    def validate(target: object) -> str:
        body = lifecycle_request(pg_instance, "Validate", target, SAML2)  # type: ignore[arg-type]
        return status_of(post_ok(pg_server, body, f"{WST}/RST/Validate"))

    assert validate(token) == "valid"
    renewed = first_token(post_ok(pg_server, lifecycle_request(pg_instance, "Renew", token, SAML2), f"{WST}/RST/Renew"))
    assert sorted(token_rows(pg_instance).values()) == ["issued", "renewed"]
    assert validate(renewed) == "valid"
    refused = pg_server.post(lifecycle_request(pg_instance, "Renew", token, SAML2), action=f"{WST}/RST/Renew")
    assert fault_qname(refused.content) == (WST, "UnableToRenew")  # renewed once only, whichever worker asked
    post_ok(pg_server, lifecycle_request(pg_instance, "Cancel", renewed, SAML2), f"{WST}/RST/Cancel")
    assert sorted(token_rows(pg_instance).values()) == ["cancelled", "cancelled"]
    assert validate(renewed) == "invalid"


def test_an_rp_added_from_another_instance_directory_is_served_encrypted_within_a_second(
    pg_server: Server, pg_instance: Instance, tmp_path: Path
) -> None:
    # The administrator's host: its own instance directory on the same database, so no truststore in common.
    store = tomllib.loads(pg_instance.config.read_text())["store"]
    admin_host = Instance(tmp_path / "admin-host")
    init = ["init", "--key-size", "2048", "--store-url", store["url"], "--store-password-file", store["password_file"]]
    assert sts_main([*init, str(admin_host.base)]) == 0
    rp_key = keygen.generate_rsa_key(2048)
    keygen.write_private_key(tmp_path / "new-rp.key.pem", rp_key)
    keygen.write_certificate(tmp_path / "new-rp.crt.pem", keygen.self_signed_certificate(rp_key, "new rp"))
    address = "https://new-rp.example.org/app"
    served_files = sorted((pg_instance.base / "keystore" / "truststore").iterdir())

    def request() -> bytes:
        return rst_envelope("admin", pg_instance.demo_password, applies_to=address)

    assert fault_qname(pg_server.post(request()).content) == (WST, "InvalidScope")
    assert admin_host.cli("rp", "add", address, "--cert", str(tmp_path / "new-rp.crt.pem")) == 0
    added = time.monotonic()
    while True:  # each worker re-reads the registry at most a second after it changed
        sent = time.monotonic()
        response = pg_server.post(request())
        if response.status_code == 200:
            break
        assert sent - added < PROPAGATION + 1.0, response.content[:300]  # slack: a loaded machine schedules late
        assert fault_qname(response.content) == (WST, "InvalidScope")
        time.sleep(0.05)
    for _ in range(4):  # both workers
        response = pg_server.post(request())
        assert response.status_code == 200, response.content[:300]
        encrypted = etree.fromstring(response.content).find(f".//{{{XENC}}}EncryptedData")
        assert encrypted is not None  # encrypted for the new relying party's certificate, read from the database
        assertion = etree.fromstring(decrypt_with_python_xmlsec(encrypted, tmp_path / "new-rp.key.pem"))
        assert [a.text for a in assertion.iter(f"{{{SAML2}}}Audience")] == [address]
    assert list((admin_host.base / "keystore" / "truststore").iterdir()) == []
    assert sorted((pg_instance.base / "keystore" / "truststore").iterdir()) == served_files
    assert admin_host.cli("rp", "remove", address) == 0


def test_a_stopped_database_is_a_server_fault_until_it_is_back(
    pg_server: Server, pg_instance: Instance, postgres_server: PostgresServer
) -> None:
    body = rst_envelope("admin", pg_instance.demo_password)
    assert pg_server.post(body, action=f"{WST}/RST/Issue").status_code == 200
    postgres_server.stop()
    try:
        for _ in range(4):  # both workers, each bounded by the store's deadline
            started = time.monotonic()
            response = pg_server.post(rst_envelope("admin", pg_instance.demo_password), action=f"{WST}/RST/Issue")
            assert time.monotonic() - started < 5
            assert response.status_code == 500
            assert fault_qname(response.content) == (S11, "Server")
            assert fault_string(response.content) == "Service unavailable"
    finally:
        postgres_server.start()
    deadline = time.monotonic() + 30
    while True:  # the workers' pools reconnect by themselves (backoff 1, 2, 4 … s)
        response = pg_server.post(rst_envelope("admin", pg_instance.demo_password), action=f"{WST}/RST/Issue")
        if response.status_code == 200:
            break
        assert time.monotonic() < deadline, response.content[:500]
        time.sleep(0.3)
