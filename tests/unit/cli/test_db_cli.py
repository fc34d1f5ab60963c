"""``sts db upgrade``, ``sts db copy`` and the other commands against PostgreSQL, in-process on real databases."""

from __future__ import annotations

import io
import shutil
import sqlite3
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from sts.auth.users import PRIMARY, DigestSecret, Refusal
from sts.cli import main
from sts.clock import SystemClock
from sts.config import load_settings
from sts.crypto import keygen
from sts.crypto.keystore import fingerprint
from sts.relying_parties.certificates import inline_pem
from sts.relying_parties.model import RelyingParty
from sts.relying_parties.registry import RelyingPartyRegistry
from sts.stores.base import TokenRecord
from sts.stores.factory import build_stores
from sts.stores.migrations import latest, migrations
from tests.servers.postgres import PostgresServer
from tests.x509_support import make_cert, rsa_key

EMAIL = "http://wso2.org/claims/emailaddress"
GIVEN = "http://wso2.org/claims/givenname"
LATEST = latest("sqlite")


@dataclass
class Run:
    code: int
    out: str
    err: str


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("db-cli") / "var"
    assert main(["init", "--demo", "--key-size", "2048", str(base)]) == 0
    return base


@pytest.fixture
def base(template: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "var"
    shutil.copytree(template, copy)
    return copy


def sts(base: Path, capsys: pytest.CaptureFixture[str], *args: str, stdin: str = "") -> Run:
    capsys.readouterr()
    saved, sys.stdin = sys.stdin, io.StringIO(stdin)
    try:
        code = main(["--config", str(base / "sts.toml"), *args])
    finally:
        sys.stdin = saved
    captured = capsys.readouterr()
    return Run(code, captured.out, captured.err)


def test_upgrade_of_a_current_and_of_a_v1_database(base: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert sts(base, capsys, "db", "upgrade").out == f"schema is current (version {LATEST})\n"
    conn = sqlite3.connect(base / "sts.db")  # back to what a release before versioned migrations left
    conn.executescript(
        "DROP TABLE schema_version; INSERT INTO meta(key, value) VALUES ('schema_version', '1');"
    )
    conn.close()
    refused = sts(base, capsys, "check-config")
    assert refused.code == 1
    needs = f"has schema version 1; this release needs version {LATEST}: run `sts db upgrade`"
    assert needs in refused.out + refused.err
    assert sts(base, capsys, "db", "upgrade").out == f"schema upgraded from version 1 to {LATEST}\n"
    assert sts(base, capsys, "check-config").code == 0


def test_serve_refuses_a_newer_schema(base: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conn = sqlite3.connect(base / "sts.db")
    conn.execute("INSERT INTO schema_version(version, applied_at) VALUES (?, 0)", (LATEST + 1,))
    conn.commit()
    conn.close()
    refused = sts(base, capsys, "serve")
    assert refused.code == 1
    assert f"schema version {LATEST + 1} is newer than this release knows ({LATEST})" in refused.err


def _url_without_password(server: PostgresServer, url: str) -> str:
    return url.replace(f":{server.password}@", "@")


def test_copy_to_postgres_then_every_command_on_it(
    base: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    postgres_server: PostgresServer, postgres_database: str,
) -> None:
    pw = "Carol-Pass-1"
    assert sts(base, capsys, "role", "add", "staff").code == 0
    assert sts(base, capsys, "user", "add", "PARTNER/carol", "--role", "staff", "--digest", "--password-stdin",
               "--claim", f"{EMAIL}=c@x", "--claim", f"{EMAIL}=c2@x", stdin=pw + "\n").code == 0
    settings = load_settings(base / "sts.toml")
    stores = build_stores(settings, SystemClock())
    now = time.time()
    assert stores.tokens is not None
    for token_id, until in (("live-1", now + 600), ("live-2", now + 600), ("expired", now - 1)):
        stores.tokens.put(TokenRecord(token_id, "PRIMARY/admin", "https://localhost:8443/demo-rp/", "saml2", now,
                                      until, "issued", True, False, f"d-{token_id}", '{"chain": "x"}'), until)
    assert stores.replay.check_and_add("nonce", b"seen-before", now + 600)
    stores.close()

    url = _url_without_password(postgres_server, postgres_database)
    secret = base / "pg-password"
    secret.write_text(postgres_server.password + "\n")
    copied = sts(base, capsys, "db", "copy", "--to", url, "--password-file", str(secret))
    assert copied.code == 0, copied.err
    assert "users            2" in copied.out and "tokens           2" in copied.out
    assert "relying_parties  1" in copied.out and postgres_server.password not in copied.out

    again = sts(base, capsys, "db", "copy", "--to", url, "--password-file", str(secret))
    assert again.code == 1 and "already holds STS data" in again.err and "--replace" in again.err
    assert sts(base, capsys, "db", "copy", "--to", url, "--password-file", str(secret), "--replace").code == 0

    # Every node now points at PostgreSQL (here through the environment, as a deployment may).
    monkeypatch.setenv("STS_STORE_BACKEND", "postgresql")
    monkeypatch.setenv("STS_STORE_URL", url)
    monkeypatch.setenv("STS_STORE_PASSWORD_FILE", str(secret))
    assert sts(base, capsys, "check-config").code == 0
    listed = sts(base, capsys, "user", "list").out
    assert "PARTNER/carol" in listed and "PRIMARY/admin" in listed
    shown = sts(base, capsys, "user", "show", "PARTNER/carol").out
    assert "roles:    staff" in shown and f"claim:    {EMAIL} = c2@x" in shown
    assert "https://localhost:8443/demo-rp/" in sts(base, capsys, "rp", "list").out
    assert sts(base, capsys, "user", "add", "dave", "--password-stdin", stdin="Dave-Pass-1\n").code == 0
    assert sts(base, capsys, "user", "disable", "dave").code == 0
    assert sts(base, capsys, "user", "unlock", "PARTNER/carol").code == 0
    assert sts(base, capsys, "rp", "remove", "https://localhost:8443/demo-rp/").code == 0

    on_pg = build_stores(load_settings(base / "sts.toml"), SystemClock())
    try:
        secret_of = on_pg.users.digest_secret("PARTNER", "carol")
        assert isinstance(secret_of, DigestSecret) and secret_of.secret == pw  # sealed secret moved intact
        assert not isinstance(on_pg.users.authenticate("PARTNER", "carol", pw), Refusal)
        assert not isinstance(on_pg.users.authenticate(PRIMARY, "admin", (base / "demo-admin-password.txt")
                                                       .read_text().strip()), Refusal)
        assert on_pg.tokens is not None and on_pg.tokens.get("live-1") is not None
        assert on_pg.tokens.get("expired") is None
        assert on_pg.replay.check_and_add("nonce", b"seen-before", now + 600) is False  # still a replay
        assert on_pg.relying_parties.all() == []
    finally:
        on_pg.close()


def test_copy_refuses_a_source_that_is_not_sqlite_and_a_url_with_garbage(
    base: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = sts(base, capsys, "db", "copy", "--to", "postgresql://u:s3cret@[bad")
    assert bad.code == 1 and "not a PostgreSQL URL" in bad.err and "s3cret" not in bad.err
    monkeypatch.setenv("STS_STORE_BACKEND", "postgresql")
    monkeypatch.setenv("STS_STORE_URL", "postgresql://127.0.0.1:1/x")
    refused = sts(base, capsys, "db", "copy", "--to", "postgresql://127.0.0.1/y")
    assert refused.code == 1 and "[store] backend must be sqlite" in refused.err


def test_init_on_postgres_and_the_password_never_in_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], postgres_server: PostgresServer, postgres_database: str
) -> None:
    refused = main(["init", "--key-size", "2048", "--store-url", postgres_database, str(tmp_path / "a")])
    assert refused == 1 and "must not hold the password" in capsys.readouterr().err
    url = _url_without_password(postgres_server, postgres_database)
    secret = tmp_path / "pg-password"
    secret.write_text(postgres_server.password)
    base = tmp_path / "b"
    args = ["init", "--demo", "--key-size", "2048", "--store-url", url, "--store-password-file", str(secret)]
    assert main([*args, str(base)]) == 0
    config = (base / "sts.toml").read_text()
    assert 'backend = "postgresql"' in config and postgres_server.password not in config
    assert not (base / "sts.db").exists()
    assert "PRIMARY/admin" in sts(base, capsys, "user", "list").out
    assert sts(base, capsys, "db", "upgrade").out == f"schema is current (version {len(migrations('postgresql'))})\n"


# --- relying-party certificates on PostgreSQL ----------------------------------------------------------------------

DEMO_RP = "https://localhost:8443/demo-rp/"


def _on_postgres(base: Path, server: PostgresServer, url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point the instance at PostgreSQL (through the environment); the URL without the password."""
    url = _url_without_password(server, url)
    secret = base / "pg-password"
    secret.write_text(server.password + "\n")
    monkeypatch.setenv("STS_STORE_BACKEND", "postgresql")
    monkeypatch.setenv("STS_STORE_URL", url)
    monkeypatch.setenv("STS_STORE_PASSWORD_FILE", str(secret))
    return url


def _registered(base: Path, address: str) -> RelyingParty:
    stores = build_stores(load_settings(base / "sts.toml"), SystemClock())
    try:
        return RelyingPartyRegistry(stores.relying_parties).get(address)
    finally:
        stores.close()


def test_copy_puts_truststore_certificates_into_the_database(
    base: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    postgres_server: PostgresServer, postgres_database: str,
) -> None:
    truststore = base / "keystore" / "truststore"
    demo_pem = (truststore / "demo-rp.crt.pem").read_text()
    url = _url_without_password(postgres_server, postgres_database)
    secret = base / "pg-password"
    secret.write_text(postgres_server.password + "\n")
    copied = sts(base, capsys, "db", "copy", "--to", url, "--password-file", str(secret))
    assert copied.code == 0, copied.err
    assert f"  1 relying-party certificate(s) from {truststore} now stored in the database\n" in copied.out

    _on_postgres(base, postgres_server, postgres_database, monkeypatch)
    (truststore / "demo-rp.crt.pem").unlink()  # another node: nothing in its truststore
    moved = _registered(base, DEMO_RP)
    assert (moved.cert_file, moved.cert_pem, moved.claims) == ("", demo_pem, (EMAIL, GIVEN))
    checked = sts(base, capsys, "check-config")
    assert checked.code == 0, checked.out
    shown = sts(base, capsys, "rp", "show", DEMO_RP).out
    assert "certificate file:       - (stored in the database)\n" in shown
    assert "certificate subject:    CN=demo relying party\n" in shown


def test_copy_refuses_a_relying_party_whose_certificate_file_is_missing(
    base: Path, capsys: pytest.CaptureFixture[str], postgres_server: PostgresServer, postgres_database: str,
) -> None:
    missing = base / "keystore" / "truststore" / "demo-rp.crt.pem"
    missing.unlink()
    url = _url_without_password(postgres_server, postgres_database)
    secret = base / "pg-password"
    secret.write_text(postgres_server.password + "\n")
    refused = sts(base, capsys, "db", "copy", "--to", url, "--password-file", str(secret))
    assert refused.code == 1
    assert refused.err == (
        f"sts: error: nothing copied: relying parties cannot be moved ({DEMO_RP}: certificate file {missing} missing or"
        " unreadable); restore the file, give a new certificate (`sts rp update ADDRESS --cert FILE`) or"
        " `sts rp remove ADDRESS`, then copy again\n"
    )
    with psycopg.connect(postgres_database, autocommit=True) as conn:  # the target was not touched
        assert conn.execute("SELECT to_regclass('relying_parties')").fetchone() == (None,)


def test_rp_commands_on_postgres_keep_certificates_in_the_database(
    base: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    postgres_server: PostgresServer, postgres_database: str, tmp_path: Path,
) -> None:
    _on_postgres(base, postgres_server, postgres_database, monkeypatch)
    assert sts(base, capsys, "db", "upgrade").code == 0
    truststore = base / "keystore" / "truststore"
    before = sorted(truststore.iterdir())
    # A relying party's certificate allows key transport (RFC 5280 §4.2.1.3): add and update refuse one that does not.
    first = make_cert("rp one", rsa_key(), days=(-1, 400), key_usage="keyEncipherment")
    second = make_cert("rp two", rsa_key(), days=(-1, 400), key_usage="keyEncipherment")
    for name, cert in (("one", first), ("two", second)):
        keygen.write_certificate(tmp_path / f"{name}.crt.pem", cert)
    address = "https://rp.example.org/app"

    added = sts(base, capsys, "rp", "add", address, "--cert", str(tmp_path / "one.crt.pem"))
    assert added.code == 0, added.err
    assert f"  certificate: stored in the database  SHA-256 {fingerprint(first)}\n" in added.out
    assert _registered(base, address).cert_pem == inline_pem(first)
    updated = sts(base, capsys, "rp", "update", address, "--cert", str(tmp_path / "two.crt.pem"))
    assert f"  certificate: stored in the database  SHA-256 {fingerprint(second)}\n" in updated.out
    assert _registered(base, address).cert_pem == inline_pem(second)
    shown = sts(base, capsys, "rp", "show", address).out
    assert "certificate file:       - (stored in the database)\n" in shown
    assert f"certificate SHA-256:    {fingerprint(second)}\n" in shown
    assert sorted(truststore.iterdir()) == before  # nothing written on this host
    assert sts(base, capsys, "check-config").code == 0

    # check-config reads the stored certificates: one expiring soon is a warning, an unreadable one a problem.
    soon = make_cert("rp soon", rsa_key(), days=(-1, 10), key_usage="keyEncipherment")
    keygen.write_certificate(tmp_path / "soon.crt.pem", soon)
    assert sts(base, capsys, "rp", "update", address, "--cert", str(tmp_path / "soon.crt.pem")).code == 0
    warned = sts(base, capsys, "check-config")
    assert warned.code == 0 and f"warning: relying party {address}: certificate expires on" in warned.out
    stores = build_stores(load_settings(base / "sts.toml"), SystemClock())
    try:
        broken = '{"address": "https://broken.example/", "cert_pem": "-----BEGIN CERTIFICATE-----\\nAAAA\\n"}'
        assert stores.relying_parties.insert("https://broken.example/", broken)
    finally:
        stores.close()
    problem = sts(base, capsys, "check-config")
    assert problem.code == 1
    assert (
        "problem: relying party https://broken.example/: certificate (stored in the database) missing or unreadable"
        in problem.out
    )
    assert sts(base, capsys, "rp", "remove", address).code == 0


def test_init_demo_on_postgres_keeps_the_demo_certificate_in_the_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    postgres_server: PostgresServer, postgres_database: str,
) -> None:
    url = _url_without_password(postgres_server, postgres_database)
    secret = tmp_path / "pg-password"
    secret.write_text(postgres_server.password)
    base = tmp_path / "node"
    args = ["init", "--demo", "--key-size", "2048", "--store-url", url, "--store-password-file", str(secret)]
    assert main([*args, str(base)]) == 0
    assert list((base / "keystore" / "truststore").iterdir()) == []
    demo = _registered(base, DEMO_RP)
    assert demo.cert_file == "" and demo.cert_pem == (base / "demo-rp" / "rp.crt.pem").read_text()
    capsys.readouterr()
    # A second node's `sts init --demo` on the shared database: refused whole, with the first demo left as it was.
    for removed_user in (False, True):
        if removed_user:  # only the relying party is left: still no half demo
            assert sts(base, capsys, "user", "remove", "admin").code == 0
        other = tmp_path / f"node-{removed_user}"
        assert main([*args, str(other)]) == 1
        assert "already has the user admin or the relying party" in capsys.readouterr().err
        assert not (other / "demo.json").exists() and not (other / "demo-rp" / "rp.key.pem").exists()
        assert _registered(base, DEMO_RP).cert_pem == demo.cert_pem
    assert "PRIMARY/admin" not in sts(base, capsys, "user", "list").out
