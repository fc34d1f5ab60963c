"""Tests for ``sts init`` and ``sts check-config`` (sts.cli.init, sts.cli.instance)."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import sqlite3
import stat
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from sts.auth.passwords import PasswordHasher
from sts.auth.sqlite_users import SqliteUserStore
from sts.auth.users import PRIMARY
from sts.cli import main
from sts.cli.init import DEMO_APPLIES_TO, DEMO_USER, toml_string
from sts.config import load_settings
from sts.crypto import keygen
from sts.crypto.keystore import load_keystore, same_public_key
from sts.relying_parties.registry import RelyingPartyRegistry
from sts.stores.sqlite import Database, check_database
from sts.stores.sqlite_relying_parties import SqliteRelyingPartyStore

BITS = ["--key-size", "2048"]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("STS_"):
            monkeypatch.delenv(name)


def _init(directory: Path, *extra: str) -> int:
    return main(["init", str(directory), *BITS, *extra])


def _check(directory: Path) -> int:
    return main(["--config", str(directory / "sts.toml"), "check-config"])


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("demo") / "instance"
    assert _init(directory, "--demo") == 0
    return directory


@pytest.fixture(scope="module")
def rsa_material() -> Iterator[tuple[rsa.RSAPrivateKey, x509.Certificate]]:
    key = keygen.generate_rsa_key(2048)
    yield key, keygen.self_signed_certificate(key, "imported signing")


# --- a plain init ------------------------------------------------------------------------------------------------


def test_init_creates_the_instance(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = tmp_path / "var"
    assert _init(directory) == 0
    out = capsys.readouterr().out
    assert f"Created STS instance in {directory}/" in out
    keystore = directory / "keystore"
    for private in (keystore / "sts-signing.key.pem", keystore / "tls.key.pem"):
        assert private.is_file()
        assert _mode(private) == 0o600
    for public in (keystore / "sts-signing.crt.pem", keystore / "tls.crt.pem"):
        assert public.is_file()
        assert _mode(public) == 0o644
    assert (keystore / "truststore").is_dir()
    assert (directory / "sts.toml").is_file()
    assert (directory / "sts.db").is_file()
    assert _mode(directory / "sts.db") == 0o600
    check_database(directory / "sts.db")
    assert not (directory / "demo.json").exists()
    assert not (directory / "demo-admin-password.txt").exists()


def test_init_writes_a_loadable_config_and_matching_keys(tmp_path: Path) -> None:
    directory = tmp_path / "var"
    assert _init(directory, "--bind", "0.0.0.0:9555") == 0
    settings = load_settings(directory / "sts.toml", env={})
    assert settings.server.bind == "0.0.0.0:9555"
    assert settings.issuer.name == "https://localhost:9555/services/wso2carbon-sts"
    assert settings.issuer.signing_key == directory.resolve() / "keystore/sts-signing.key.pem"
    keystore = load_keystore(settings)
    assert keystore.signing_key.key_size == 2048
    assert same_public_key(keystore.signing_cert, keystore.signing_key)
    tls_cert = x509.load_pem_x509_certificate((directory / "keystore/tls.crt.pem").read_bytes())
    san = tls_cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in san.get_values_for_type(x509.DNSName)


def test_init_issuer_option(tmp_path: Path) -> None:
    assert _init(tmp_path / "var", "--issuer", "https://sts.example.com/") == 0
    assert load_settings(tmp_path / "var/sts.toml", env={}).issuer.name == "https://sts.example.com/"


@pytest.mark.parametrize(
    "issuer",
    [
        "urn:example:a\\u0062c",  # a TOML escape sequence: read back as "b" when pasted unescaped
        'https://sts.example/"quoted"',  # a quote: the file did not parse, after the keys were written
        'urn:x" [security] allowed_roles = ["everyone"] [tokens] x = "',  # a quote: the file did not parse
        "urn:sts:caf\u00e9:\U0001f600",  # beyond U+FFFF: json.dumps's surrogate-pair escapes are not TOML
    ],
    ids=repr,
)
def test_init_writes_the_issuer_as_given(tmp_path: Path, issuer: str) -> None:
    directory = tmp_path / "var"
    assert _init(directory, "--issuer", issuer) == 0
    settings = load_settings(directory / "sts.toml", env={})
    assert settings.issuer.name == issuer
    assert settings.security.allowed_roles == ("admin",)


@pytest.mark.parametrize(
    "issuer",
    ["  ", "urn:a\uffff", "urn:a\x00b", "urn:a\x7fb",
     'urn:x"\n[security]\nallowed_roles = ["everyone"]\n[tokens]\nx = "'],  # with newlines: tables of its own
    ids=repr,
)
def test_init_refuses_an_issuer_xml_cannot_carry_before_writing_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], issuer: str
) -> None:
    assert _init(tmp_path / "var", "--issuer", issuer) == 1
    assert "sts: error: --issuer must be a non-empty name" in capsys.readouterr().err
    assert not (tmp_path / "var").exists()


def test_toml_string_round_trips() -> None:
    value = 'a"b\\c\u0062\n\t\x00\x7f\u00e9\U0001f600'
    assert tomllib.loads(f"v = {toml_string(value)}")["v"] == value


def test_init_creates_admin_role_without_users(tmp_path: Path) -> None:
    assert _init(tmp_path / "var") == 0
    db = Database(tmp_path / "var/sts.db")
    try:
        roles = [row[0] for row in db.conn.execute("SELECT name FROM roles")]
        assert roles == ["admin"]
        assert db.conn.execute("SELECT COUNT(*) FROM users").fetchone()[0] == 0
    finally:
        db.close()


def test_second_init_refused_without_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = tmp_path / "var"
    assert _init(directory) == 0
    key_before = (directory / "keystore/sts-signing.key.pem").read_bytes()
    capsys.readouterr()
    assert _init(directory) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("sts: error: ")
    assert "already exists; use --force" in captured.err
    assert captured.out == ""
    assert (directory / "keystore/sts-signing.key.pem").read_bytes() == key_before


def test_force_overwrites(tmp_path: Path) -> None:
    directory = tmp_path / "var"
    assert _init(directory, "--demo") == 0
    key_before = (directory / "keystore/sts-signing.key.pem").read_bytes()
    assert _init(directory, "--force") == 0
    assert (directory / "keystore/sts-signing.key.pem").read_bytes() != key_before
    assert _mode(directory / "keystore/sts-signing.key.pem") == 0o600
    db = Database(directory / "sts.db")
    try:  # the database was recreated: the demo user is gone
        assert db.conn.execute("SELECT COUNT(*) FROM users").fetchone()[0] == 0
    finally:
        db.close()
    assert _check(directory) == 0


@pytest.mark.parametrize("bind", ["localhost", "127.0.0.1:99999", ":", "127.0.0.1:0", "::1:9443", "unix:/run/s"])
def test_bad_bind_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str], bind: str) -> None:
    assert _init(tmp_path / "var", "--bind", bind) == 1
    assert "--bind must be HOST:PORT" in capsys.readouterr().err
    assert not (tmp_path / "var").exists()


def test_key_size_1024_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["init", str(tmp_path / "var"), "--key-size", "1024"]) == 1
    assert "--key-size must be at least 2048" in capsys.readouterr().err
    assert not (tmp_path / "var").exists()


# --- --demo -------------------------------------------------------------------------------------------------------


def test_demo_files(demo: Path) -> None:
    password_file = demo / "demo-admin-password.txt"
    assert _mode(password_file) == 0o600
    password = password_file.read_text()
    assert password.endswith("\n") and len(password.strip()) >= 20
    assert _mode(demo / "demo-rp/rp.key.pem") == 0o600
    rp_cert = x509.load_pem_x509_certificate((demo / "demo-rp/rp.crt.pem").read_bytes())
    rp_key = keygen.load_private_key(demo / "demo-rp/rp.key.pem", None)
    assert same_public_key(rp_cert, rp_key)
    assert (demo / "keystore/truststore/demo-rp.crt.pem").read_bytes() == (demo / "demo-rp/rp.crt.pem").read_bytes()
    info = json.loads((demo / "demo.json").read_text())
    assert info == {
        "applies_to": DEMO_APPLIES_TO,
        "username": DEMO_USER,
        "password_file": "demo-admin-password.txt",
        "rp_key": "demo-rp/rp.key.pem",
    }


def test_demo_registers_rp_and_admin(demo: Path) -> None:
    db = Database(demo / "sts.db")
    try:
        [rp] = RelyingPartyRegistry(SqliteRelyingPartyStore(db)).all()
        assert rp.address == DEMO_APPLIES_TO
        assert rp.cert_file == "demo-rp.crt.pem"
        assert rp.encrypt is True
        user = SqliteUserStore(db, PasswordHasher()).find(PRIMARY, DEMO_USER)
        assert user is not None
        assert user.principal.roles == frozenset({"admin"})
        # Only claims `sts user set-claim` would accept: a role is granted, never stored as a claim.
        assert sorted(user.principal.claims) == [
            "http://wso2.org/claims/emailaddress", "http://wso2.org/claims/givenname", "http://wso2.org/claims/lastname"
        ]
        password = (demo / "demo-admin-password.txt").read_text().strip()
        assert PasswordHasher().verify(password, user.password_hash)[0] is True
    finally:
        db.close()


def test_check_config_ok_on_demo(demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert _check(demo) == 0
    out = capsys.readouterr().out
    assert f"configuration OK: {(demo / 'sts.toml').resolve()}" in out
    assert "problem:" not in out


def test_init_and_check_config_close_every_connection(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Checked here on every Python: only 3.13 and later report a connection left open (ResourceWarning)."""
    opened: list[sqlite3.Connection] = []
    connect = sqlite3.connect

    def recording(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn = connect(*args, **kwargs)
        opened.append(conn)
        return conn

    monkeypatch.setattr(sqlite3, "connect", recording)
    assert _init(tmp_path / "var", "--demo") == 0
    assert _check(tmp_path / "var") == 0
    assert len(opened) >= 3  # init's schema, init's users and relying party, check-config's
    for conn in opened:
        with pytest.raises(sqlite3.ProgrammingError, match="closed database"):
            conn.execute("SELECT 1")


# --- check-config failures ------------------------------------------------------------------------------------------


def test_check_config_reports_missing_signing_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = tmp_path / "var"
    assert _init(directory) == 0
    key = directory / "keystore/sts-signing.key.pem"
    key.unlink()
    capsys.readouterr()
    assert _check(directory) == 1
    out = capsys.readouterr().out
    assert f"problem: issuer.signing_key: {key.resolve()} not found" in out
    assert "configuration OK" not in out


def test_check_config_reports_several_problems(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = tmp_path / "var"
    assert _init(directory) == 0
    (directory / "keystore/sts-signing.crt.pem").unlink()
    (directory / "keystore/tls.key.pem").unlink()
    (directory / "sts.db").unlink()
    capsys.readouterr()
    assert _check(directory) == 1
    problems = [line for line in capsys.readouterr().out.splitlines() if line.startswith("problem: ")]
    assert any("issuer.signing_cert" in p and "not found" in p for p in problems)
    assert any(p.startswith("problem: server: ") and "tls.key.pem not found" in p for p in problems)
    assert any(p.startswith("problem: store.database: ") for p in problems)


def test_check_config_missing_rp_certificate(demo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(demo, copy)
    (copy / "keystore/truststore/demo-rp.crt.pem").unlink()
    capsys.readouterr()
    assert _check(copy) == 1
    out = capsys.readouterr().out
    assert f"problem: relying party {DEMO_APPLIES_TO}: certificate" in out


def test_check_config_invalid_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = tmp_path / "var"
    assert _init(directory) == 0
    with (directory / "sts.toml").open("a") as handle:
        handle.write("\n[bogus]\nx = 1\n")
    capsys.readouterr()
    assert _check(directory) == 1
    assert "unknown table [bogus]" in capsys.readouterr().out


def test_check_config_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _check(tmp_path / "nothing") == 1
    assert "config file not found" in capsys.readouterr().out


# --- environment variables that are not ours -------------------------------------------------------------------------


def test_help_works_with_a_foreign_sts_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("STS_FOO", "1")
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    assert "usage: sts" in capsys.readouterr().out


def test_commands_work_with_a_foreign_sts_variable(
    demo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("STS_FOO", "1")
    monkeypatch.setenv("STS_PIDFILE", "/run/sts.pid")
    capsys.readouterr()
    assert _check(demo) == 0
    out = capsys.readouterr().out
    assert "warning: environment: STS_FOO names no sts setting; ignored" in out
    assert "STS_PIDFILE" not in out  # ours: gunicorn's pid file
    assert "problem:" not in out
    assert main(["--config", str(demo / "sts.toml"), "user", "list"]) == 0
    assert DEMO_USER in capsys.readouterr().out


def test_misspelt_key_of_a_known_table_is_still_a_problem(
    demo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("STS_SERVER_WORKRES", "2")
    capsys.readouterr()
    assert _check(demo) == 1
    assert "problem: environment: STS_SERVER_WORKRES names no setting" in capsys.readouterr().out


# --- importing signing material --------------------------------------------------------------------------------------


def test_import_signing_key_and_cert(
    tmp_path: Path, rsa_material: tuple[rsa.RSAPrivateKey, x509.Certificate]
) -> None:
    key, cert = rsa_material
    keygen.write_private_key(tmp_path / "in.key", key)
    keygen.write_certificate(tmp_path / "in.crt", cert)
    directory = tmp_path / "var"
    assert _init(directory, "--signing-key", str(tmp_path / "in.key"), "--signing-cert", str(tmp_path / "in.crt")) == 0
    written = x509.load_pem_x509_certificate((directory / "keystore/sts-signing.crt.pem").read_bytes())
    assert written == cert
    assert _mode(directory / "keystore/sts-signing.key.pem") == 0o600
    assert _check(directory) == 0


def test_import_encrypted_key_with_passphrase_env(
    tmp_path: Path, rsa_material: tuple[rsa.RSAPrivateKey, x509.Certificate], monkeypatch: pytest.MonkeyPatch
) -> None:
    key, cert = rsa_material
    (tmp_path / "in.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"imp-pass"),
        )
    )
    keygen.write_certificate(tmp_path / "in.crt", cert)
    monkeypatch.setenv("IMPORT_PASS", "imp-pass")
    directory = tmp_path / "var"
    args = ["--signing-key", str(tmp_path / "in.key"), "--signing-cert", str(tmp_path / "in.crt"),
            "--passphrase-env", "IMPORT_PASS"]
    assert _init(directory, *args) == 0
    # written unencrypted (0600), so the instance starts without the passphrase
    written = keygen.load_private_key(directory / "keystore/sts-signing.key.pem", None)
    assert written.private_numbers() == key.private_numbers()


def test_import_key_without_cert_refused(
    tmp_path: Path, rsa_material: tuple[rsa.RSAPrivateKey, x509.Certificate], capsys: pytest.CaptureFixture[str]
) -> None:
    keygen.write_private_key(tmp_path / "in.key", rsa_material[0])
    assert _init(tmp_path / "var", "--signing-key", str(tmp_path / "in.key")) == 1
    assert "--signing-key and --signing-cert go together" in capsys.readouterr().err


def test_import_mismatched_pair_refused(
    tmp_path: Path, rsa_material: tuple[rsa.RSAPrivateKey, x509.Certificate], capsys: pytest.CaptureFixture[str]
) -> None:
    other = keygen.generate_rsa_key(2048)
    keygen.write_private_key(tmp_path / "in.key", other)
    keygen.write_certificate(tmp_path / "in.crt", rsa_material[1])
    pair = ["--signing-key", str(tmp_path / "in.key"), "--signing-cert", str(tmp_path / "in.crt")]
    assert _init(tmp_path / "var", *pair) == 1
    assert "the signing key does not match the certificate" in capsys.readouterr().err
    assert not (tmp_path / "var/keystore/sts-signing.key.pem").exists()


def test_import_missing_file_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pair = ["--signing-key", str(tmp_path / "no.key"), "--signing-cert", str(tmp_path / "no.crt")]
    code = _init(tmp_path / "var", *pair)
    assert code == 1
    assert "cannot read the signing key or certificate" in capsys.readouterr().err


@pytest.mark.parametrize("password", [b"p12-pass", None], ids=["with-password", "no-password"])
def test_import_pkcs12(
    tmp_path: Path,
    rsa_material: tuple[rsa.RSAPrivateKey, x509.Certificate],
    monkeypatch: pytest.MonkeyPatch,
    password: bytes | None,
) -> None:
    key, cert = rsa_material
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    )
    (tmp_path / "in.p12").write_bytes(pkcs12.serialize_key_and_certificates(b"sts", key, cert, None, encryption))
    args = ["--signing-pkcs12", str(tmp_path / "in.p12")]
    if password:
        monkeypatch.setenv("P12_PASS", password.decode())
        args += ["--passphrase-env", "P12_PASS"]
    directory = tmp_path / "var"
    assert _init(directory, *args) == 0
    assert x509.load_pem_x509_certificate((directory / "keystore/sts-signing.crt.pem").read_bytes()) == cert
    assert _check(directory) == 0


def test_import_pkcs12_unset_passphrase_env(
    tmp_path: Path, rsa_material: tuple[rsa.RSAPrivateKey, x509.Certificate], capsys: pytest.CaptureFixture[str]
) -> None:
    key, cert = rsa_material
    data = pkcs12.serialize_key_and_certificates(b"sts", key, cert, None, serialization.BestAvailableEncryption(b"x"))
    (tmp_path / "in.p12").write_bytes(data)
    assert _init(tmp_path / "var", "--signing-pkcs12", str(tmp_path / "in.p12"), "--passphrase-env", "NOPE_VAR") == 1
    assert "environment variable NOPE_VAR is not set" in capsys.readouterr().err


def test_import_pkcs12_wrong_passphrase(
    tmp_path: Path,
    rsa_material: tuple[rsa.RSAPrivateKey, x509.Certificate],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    key, cert = rsa_material
    data = pkcs12.serialize_key_and_certificates(b"sts", key, cert, None, serialization.BestAvailableEncryption(b"x"))
    (tmp_path / "in.p12").write_bytes(data)
    monkeypatch.setenv("P12_PASS", "wrong")
    assert _init(tmp_path / "var", "--signing-pkcs12", str(tmp_path / "in.p12"), "--passphrase-env", "P12_PASS") == 1
    assert "cannot read the signing key or certificate" in capsys.readouterr().err


def _small_pair() -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - the "too small" case
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "weak")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30 * 12))
        .sign(key, hashes.SHA256())
    )
    return key, cert


def test_import_1024_bit_key_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key, cert = _small_pair()
    keygen.write_private_key(tmp_path / "in.key", key)
    keygen.write_certificate(tmp_path / "in.crt", cert)
    directory = tmp_path / "var"
    assert _init(directory, "--signing-key", str(tmp_path / "in.key"), "--signing-cert", str(tmp_path / "in.crt")) == 1
    err = capsys.readouterr().err
    assert "signing key has 1024 bits; at least 2048 required" in err
    assert not (directory / "keystore/sts-signing.key.pem").exists()
    assert not (directory / "sts.toml").exists()


def test_import_1024_bit_pkcs12_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key, cert = _small_pair()
    data = pkcs12.serialize_key_and_certificates(b"weak", key, cert, None, serialization.NoEncryption())
    (tmp_path / "in.p12").write_bytes(data)
    assert _init(tmp_path / "var", "--signing-pkcs12", str(tmp_path / "in.p12")) == 1
    assert "at least 2048 required" in capsys.readouterr().err


# --- file modes and symbolic links (issue 12, item 15) ----------------------------------------------------------------


@pytest.fixture
def umask_000() -> Iterator[None]:
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


PRIVATE_FOLDERS = ("", "keystore", "keystore/truststore", "keystore/clients", "demo-rp")
SECRET_FILES = (
    "sts.toml", "sts.db", "demo.json", "demo-admin-password.txt", "demo-rp/rp.key.pem",
    "keystore/sts-signing.key.pem", "keystore/tls.key.pem", "keystore/credentials.key",
)
PUBLIC_FILES = (
    "keystore/sts-signing.crt.pem", "keystore/tls.crt.pem", "keystore/truststore/demo-rp.crt.pem", "demo-rp/rp.crt.pem",
)


@pytest.mark.usefixtures("umask_000")
def test_init_under_umask_000_writes_private_modes(tmp_path: Path) -> None:
    directory = tmp_path / "missing-parent" / "var"
    assert _init(directory, "--demo") == 0
    assert _mode(tmp_path / "missing-parent") == 0o700
    for folder in PRIVATE_FOLDERS:
        assert _mode(directory / folder) == 0o700, folder
    for name in SECRET_FILES:
        assert _mode(directory / name) == 0o600, name
    for name in PUBLIC_FILES:
        assert _mode(directory / name) == 0o644, name
    for path in directory.rglob("*"):  # nothing at all writable by others (the database's -wal/-shm included)
        assert not _mode(path) & 0o022, path


def test_init_fixes_loose_modes_of_existing_files_and_folders(tmp_path: Path) -> None:
    directory = tmp_path / "var"
    (directory / "keystore").mkdir(parents=True)
    os.chmod(directory, 0o777)  # noqa: S103 - the loose mode under test
    os.chmod(directory / "keystore", 0o777)  # noqa: S103 - the loose mode under test
    (directory / "keystore/credentials.key").write_bytes(b"old key")
    os.chmod(directory / "keystore/credentials.key", 0o666)  # noqa: S103 - the loose mode under test
    (directory / "demo-admin-password.txt").write_text("old password\n")
    os.chmod(directory / "demo-admin-password.txt", 0o644)
    assert _init(directory, "--demo") == 0
    assert _mode(directory) == 0o755 and _mode(directory / "keystore") == 0o755  # others' write taken away
    assert _mode(directory / "keystore/credentials.key") == 0o600
    assert _mode(directory / "demo-admin-password.txt") == 0o600
    assert (directory / "keystore/credentials.key").read_bytes() != b"old key"


@pytest.mark.parametrize(
    ("target", "flags"),
    [
        ("keystore/credentials.key", ()),
        ("demo-admin-password.txt", ("--demo",)),
        ("keystore/tls.key.pem", ("--force",)),
        ("sts.toml", ("--force",)),
        ("sts.db", ()),
        ("keystore/truststore/demo-rp.crt.pem", ("--demo",)),
    ],
)
def test_init_refuses_to_write_through_a_symlink(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], target: str, flags: tuple[str, ...]
) -> None:
    directory = tmp_path / "var"
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    os.chmod(victim, 0o644)
    link = directory / target
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(victim)
    assert _init(directory, *flags) == 1
    assert f"{link}: is a symbolic link; refusing to write through it" in capsys.readouterr().err
    assert victim.read_text() == "precious\n" and _mode(victim) == 0o644
    assert not (directory / "keystore/sts-signing.key.pem").exists()  # refused before anything was written


def test_init_refuses_a_symlinked_keystore_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = tmp_path / "var"
    directory.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (directory / "keystore").symlink_to(elsewhere)
    assert _init(directory) == 1
    assert f"{directory / 'keystore'}: is a symbolic link" in capsys.readouterr().err
    assert list(elsewhere.iterdir()) == []


def test_init_refuses_a_hard_linked_secret_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = tmp_path / "var"
    (directory / "keystore").mkdir(parents=True)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    os.link(victim, directory / "keystore/credentials.key")
    assert _init(directory) == 1
    assert "credentials.key: has other hard links; remove it first" in capsys.readouterr().err
    assert victim.read_text() == "precious\n"


def test_init_into_a_symlinked_instance_directory_is_allowed(tmp_path: Path) -> None:
    """The directory the operator names may itself be a link (e.g. /srv/sts -> /data/sts)."""
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    (tmp_path / "named").symlink_to(real)
    assert _init(tmp_path / "named") == 0
    assert (real / "sts.toml").is_file() and _mode(real / "keystore") == 0o700


def test_check_config_warns_about_a_readable_secret(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = tmp_path / "var"
    assert _init(directory) == 0
    os.chmod(directory / "keystore/credentials.key", 0o644)
    capsys.readouterr()
    assert _check(directory) == 0
    key = (directory / "keystore/credentials.key").resolve()
    assert f"warning: {key}: mode 0644 lets other users read or change this secret; chmod 600 it" in (
        capsys.readouterr().out
    )


def test_check_config_refuses_a_default_relying_party_that_is_not_registered(
    demo: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """It failed closed at request time (wst:InvalidScope) with nothing said before."""
    monkeypatch.setenv("STS_TOKENS_DEFAULT_RELYING_PARTY", "https://nobody.example/")
    capsys.readouterr()
    assert _check(demo) == 1
    assert (
        "problem: tokens.default_relying_party: https://nobody.example/ matches no registered relying party"
        in capsys.readouterr().out
    )
    # Matched as an AppliesTo is: scheme and host in any case.
    monkeypatch.setenv("STS_TOKENS_DEFAULT_RELYING_PARTY", "HTTPS://LOCALHOST:8443/demo-rp/")
    assert _check(demo) == 0


def test_check_config_warns_about_every_readable_secret_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The password and PIN files and the next signing key were not looked at."""
    directory = tmp_path / "var"
    assert _init(directory) == 0
    secrets = {name: directory / name for name in ("cache.pw", "store.pw", "pkcs11.pin", "ldap.pw")}
    secrets["next"] = directory / "keystore/sts-signing-next.key.pem"
    for path in secrets.values():
        path.write_text("secret\n")
        os.chmod(path, 0o644)
    monkeypatch.setenv("STS_CACHE_PASSWORD_FILE", str(secrets["cache.pw"]))
    monkeypatch.setenv("STS_STORE_PASSWORD_FILE", str(secrets["store.pw"]))
    monkeypatch.setenv("STS_ISSUER_PKCS11_PIN_FILE", str(secrets["pkcs11.pin"]))
    (directory / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    with (directory / "sts.toml").open("a") as handle:
        handle.write(
            '\n[[user_stores]]\ndomain_name = "CORP"\ntype = "read_only_ldap"\n'
            'connection_url = "ldaps://dc1.corp.example:636"\nconnection_name = "cn=svc,dc=corp,dc=example"\n'
            'connection_password_file = "ldap.pw"\nuser_search_base = "ou=people,dc=corp,dc=example"\n'
            'group_search_base = "ou=groups,dc=corp,dc=example"\nca_file = "ca.pem"\n'
        )
    capsys.readouterr()
    _check(directory)
    out = capsys.readouterr().out
    for path in secrets.values():
        assert f"warning: {path.resolve()}: mode 0644 lets other users read or change this secret" in out, path


# --- check-config: proxies and certificate expiry (issue 12, items 13 and 14) ---------------------------------------


def test_check_config_refuses_a_star_proxy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = tmp_path / "var"
    assert _init(directory) == 0
    text = (directory / "sts.toml").read_text().replace("trusted_proxies = []", 'trusted_proxies = ["*"]')
    (directory / "sts.toml").write_text(text)
    capsys.readouterr()
    assert _check(directory) == 1
    out = capsys.readouterr().out
    assert "problem: " in out and "[server] trusted_proxies: must list IP addresses or networks" in out
    assert "('*' is refused)" in out


LOOPBACK_WARNING = "security.client_failure_exempt exempts loopback and server.trusted_proxies is empty"


@pytest.mark.parametrize(
    ("env", "warned"),
    [
        ({}, True),
        ({"STS_SERVER_TRUSTED_PROXIES": "127.0.0.1"}, False),
        ({"STS_SECURITY_CLIENT_FAILURE_EXEMPT": "10.0.0.0/8"}, False),
        ({"STS_SECURITY_CLIENT_FAILURE_EXEMPT": "127.0.0.0/8"}, True),
        ({"STS_SECURITY_CLIENT_FAILURE_LIMIT": "0"}, False),
    ],
)
def test_check_config_warns_when_loopback_is_exempt_without_proxies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, env: dict[str, str],
    warned: bool,
) -> None:
    directory = tmp_path / "var"
    assert _init(directory) == 0
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    capsys.readouterr()
    assert _check(directory) == 0
    assert (f"warning: {LOOPBACK_WARNING}" in capsys.readouterr().out) is warned


def _dated_cert(days_left: float) -> x509.Certificate:
    key = keygen.generate_rsa_key(2048)
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "client")])
    return (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=400))
        .not_valid_after(now + dt.timedelta(days=days_left)).sign(key, hashes.SHA256())
    )


def test_check_config_reports_client_certificates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = tmp_path / "var"
    assert _init(directory) == 0
    clients = directory / "keystore/clients"
    keygen.write_certificate(clients / "soon.crt.pem", _dated_cert(10))
    keygen.write_certificate(clients / "gone.crt.pem", _dated_cert(-1))
    capsys.readouterr()
    assert _check(directory) == 1
    out = capsys.readouterr().out
    assert "warning: client certificate soon.crt.pem: certificate expires on " in out
    assert "problem: client certificate gone.crt.pem: certificate expired on " in out


def test_check_config_warns_about_an_expiring_tls_certificate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "var"
    assert _init(directory) == 0
    keygen.write_certificate(directory / "keystore/tls.crt.pem", _dated_cert(5))
    capsys.readouterr()
    _check(directory)
    assert "warning: server.tls_cert: certificate expires on " in capsys.readouterr().out
