"""Tests for sts.crypto.keystore (and keygen): key/cert pair checks, RSA >= 2048, validity, passphrases."""

from __future__ import annotations

import dataclasses
import datetime as dt
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from sts.config.settings import IssuerSettings, Settings
from sts.crypto import keygen
from sts.crypto.keystore import (
    PASSPHRASE_ENV,
    KeyStore,
    KeyStoreError,
    check_certificate,
    fingerprint,
    load_certificate,
    load_keystore,
    same_public_key,
)

PASSPHRASE = "correct horse battery staple"


@dataclasses.dataclass(frozen=True)
class Material:
    key: rsa.RSAPrivateKey
    cert: x509.Certificate
    other_key: rsa.RSAPrivateKey
    other_cert: x509.Certificate
    small_key: rsa.RSAPrivateKey
    small_cert: x509.Certificate
    expired_cert: x509.Certificate
    future_cert: x509.Certificate
    expiring_cert: x509.Certificate


def _cert(
    key: rsa.RSAPrivateKey, not_before: dt.datetime, not_after: dt.datetime, cn: str = "test"
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )


@pytest.fixture(scope="module")
def material() -> Material:
    now = dt.datetime.now(dt.UTC)
    key = keygen.generate_rsa_key(2048)
    other = keygen.generate_rsa_key(2048)
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - the "too small" case
    return Material(
        key=key,
        cert=keygen.self_signed_certificate(key, "STS signing"),
        other_key=other,
        other_cert=keygen.self_signed_certificate(other, "other"),
        small_key=small,
        small_cert=_cert(small, now - dt.timedelta(days=1), now + dt.timedelta(days=365)),
        expired_cert=_cert(key, now - dt.timedelta(days=400), now - dt.timedelta(days=1)),
        future_cert=_cert(key, now + dt.timedelta(days=10), now + dt.timedelta(days=400)),
        expiring_cert=keygen.self_signed_certificate(key, "STS signing", days=10),
    )


def _write_key(path: Path, key: rsa.RSAPrivateKey, passphrase: str | None = None) -> Path:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase.encode()) if passphrase else serialization.NoEncryption()
    )
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption))
    return path


def _write_cert(path: Path, cert: x509.Certificate, der: bool = False) -> Path:
    encoding = serialization.Encoding.DER if der else serialization.Encoding.PEM
    path.write_bytes(cert.public_bytes(encoding))
    return path


def _settings(tmp_path: Path, **issuer: object) -> Settings:
    base = Settings(config_path=tmp_path / "sts.toml")
    defaults: dict[str, object] = {
        "signing_key": tmp_path / "sign.key.pem",
        "signing_cert": tmp_path / "sign.crt.pem",
    }
    defaults.update(issuer)
    return dataclasses.replace(base, issuer=dataclasses.replace(IssuerSettings(), **defaults))  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _no_passphrase_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PASSPHRASE_ENV, raising=False)


@pytest.fixture
def good(tmp_path: Path, material: Material) -> Settings:
    _write_key(tmp_path / "sign.key.pem", material.key)
    _write_cert(tmp_path / "sign.crt.pem", material.cert)
    return _settings(tmp_path)


def _problems(settings: Settings) -> list[str]:
    with pytest.raises(KeyStoreError) as caught:
        load_keystore(settings)
    assert caught.value.problems
    assert str(caught.value) == "\n".join(caught.value.problems)
    return caught.value.problems


# --- the good case ---------------------------------------------------------------------------------------------


def test_good_keystore_loads(good: Settings, material: Material) -> None:
    keystore = load_keystore(good)
    assert isinstance(keystore, KeyStore)
    assert keystore.signing_key.private_numbers() == material.key.private_numbers()
    assert keystore.signing_cert == material.cert
    assert keystore.previous_certs == ()
    assert keystore.warnings == ()
    assert keystore.accepted_certs == (material.cert,)
    assert keystore.signing_cert_pem == material.cert.public_bytes(serialization.Encoding.PEM)


def test_previous_certs_loaded_in_order(tmp_path: Path, good: Settings, material: Material) -> None:
    old1 = _write_cert(tmp_path / "old1.crt.pem", material.other_cert)
    old2 = _write_cert(tmp_path / "old2.crt.der", material.expiring_cert, der=True)
    settings = dataclasses.replace(good, issuer=dataclasses.replace(good.issuer, previous_certs=(old1, old2)))
    keystore = load_keystore(settings)
    assert keystore.previous_certs == (material.other_cert, material.expiring_cert)
    assert keystore.accepted_certs == (material.cert, material.other_cert, material.expiring_cert)


def test_der_signing_certificate_accepted(tmp_path: Path, material: Material) -> None:
    _write_key(tmp_path / "sign.key.pem", material.key)
    _write_cert(tmp_path / "sign.crt.der", material.cert, der=True)
    keystore = load_keystore(_settings(tmp_path, signing_cert=tmp_path / "sign.crt.der"))
    assert keystore.signing_cert == material.cert


def test_keystore_is_immutable(good: Settings) -> None:
    keystore = load_keystore(good)
    with pytest.raises(dataclasses.FrozenInstanceError):
        keystore.warnings = ("x",)  # type: ignore[misc]


# --- refusals --------------------------------------------------------------------------------------------------


def test_key_cert_mismatch(tmp_path: Path, material: Material) -> None:
    _write_key(tmp_path / "sign.key.pem", material.key)
    _write_cert(tmp_path / "sign.crt.pem", material.other_cert)
    assert _problems(_settings(tmp_path)) == ["issuer.signing_key does not match issuer.signing_cert"]


def test_rsa_1024_refused(tmp_path: Path, material: Material) -> None:
    _write_key(tmp_path / "sign.key.pem", material.small_key)
    _write_cert(tmp_path / "sign.crt.pem", material.small_cert)
    problems = _problems(_settings(tmp_path))
    assert "issuer.signing_key: RSA key of 1024 bits; at least 2048 required" in problems
    assert "issuer.signing_cert: RSA key of 1024 bits; at least 2048 required" in problems


def test_expired_certificate_refused(tmp_path: Path, material: Material) -> None:
    _write_key(tmp_path / "sign.key.pem", material.key)
    _write_cert(tmp_path / "sign.crt.pem", material.expired_cert)
    [problem] = _problems(_settings(tmp_path))
    assert problem.startswith("issuer.signing_cert: certificate expired on ")


def test_not_yet_valid_certificate_refused(tmp_path: Path, material: Material) -> None:
    _write_key(tmp_path / "sign.key.pem", material.key)
    _write_cert(tmp_path / "sign.crt.pem", material.future_cert)
    [problem] = _problems(_settings(tmp_path))
    assert problem.startswith("issuer.signing_cert: certificate not valid before ")


def test_expired_relative_to_the_given_now(good: Settings) -> None:
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=2000)
    with pytest.raises(KeyStoreError) as caught:
        load_keystore(good, now=later)
    assert caught.value.problems[0].startswith("issuer.signing_cert: certificate expired on ")


def test_certificate_expiring_within_30_days_warns(tmp_path: Path, material: Material) -> None:
    _write_key(tmp_path / "sign.key.pem", material.key)
    _write_cert(tmp_path / "sign.crt.pem", material.expiring_cert)
    keystore = load_keystore(_settings(tmp_path))
    [warning] = keystore.warnings
    expiry = material.expiring_cert.not_valid_after_utc
    assert warning == f"issuer.signing_cert: certificate expires on {expiry:%Y-%m-%d}"


def test_certificate_expiring_in_31_days_does_not_warn(good: Settings, material: Material) -> None:
    now = material.cert.not_valid_after_utc - dt.timedelta(days=31)
    assert load_keystore(good, now=now).warnings == ()
    now = material.cert.not_valid_after_utc - dt.timedelta(days=29)
    assert len(load_keystore(good, now=now).warnings) == 1


# --- passphrases ------------------------------------------------------------------------------------------------


@pytest.fixture
def encrypted(tmp_path: Path, material: Material) -> Settings:
    _write_key(tmp_path / "sign.key.pem", material.key, PASSPHRASE)
    _write_cert(tmp_path / "sign.crt.pem", material.cert)
    return _settings(tmp_path)


def test_encrypted_key_with_passphrase_from_env(
    encrypted: Settings, material: Material, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSPHRASE_ENV, PASSPHRASE)
    keystore = load_keystore(encrypted)
    assert keystore.signing_key.private_numbers() == material.key.private_numbers()


@pytest.mark.parametrize("ending", ["", "\n", "\r\n"])
def test_encrypted_key_with_passphrase_file(
    tmp_path: Path, encrypted: Settings, material: Material, ending: str
) -> None:
    secret = tmp_path / "passphrase"
    secret.write_text(PASSPHRASE + ending)
    settings = dataclasses.replace(
        encrypted, issuer=dataclasses.replace(encrypted.issuer, signing_key_passphrase_file=secret)
    )
    keystore = load_keystore(settings)
    assert keystore.signing_key.private_numbers() == material.key.private_numbers()


def test_env_passphrase_wins_over_the_file(
    tmp_path: Path, encrypted: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "passphrase"
    secret.write_text("wrong")
    settings = dataclasses.replace(
        encrypted, issuer=dataclasses.replace(encrypted.issuer, signing_key_passphrase_file=secret)
    )
    monkeypatch.setenv(PASSPHRASE_ENV, PASSPHRASE)
    assert load_keystore(settings).signing_key.key_size == 2048


def test_encrypted_key_without_passphrase(encrypted: Settings) -> None:
    [problem] = _problems(encrypted)
    assert problem.startswith("issuer.signing_key: ")
    assert "not a PEM private key (or the passphrase is wrong)" in problem
    assert PASSPHRASE not in problem


def test_encrypted_key_with_wrong_passphrase(encrypted: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSPHRASE_ENV, "wrong passphrase")
    [problem] = _problems(encrypted)
    assert "passphrase is wrong" in problem
    assert "wrong passphrase" not in problem.replace("passphrase is wrong", "")


def test_missing_passphrase_file_is_named(tmp_path: Path, encrypted: Settings) -> None:
    missing = tmp_path / "no-such-passphrase"
    settings = dataclasses.replace(
        encrypted, issuer=dataclasses.replace(encrypted.issuer, signing_key_passphrase_file=missing)
    )
    problems = _problems(settings)
    assert any(str(missing) in p for p in problems), problems
    assert not any(p == f"issuer.signing_key: {encrypted.issuer.signing_key} not found" for p in problems)


# --- missing and unreadable files ------------------------------------------------------------------------------


def test_missing_key_file(tmp_path: Path, material: Material) -> None:
    _write_cert(tmp_path / "sign.crt.pem", material.cert)
    settings = _settings(tmp_path)
    assert _problems(settings) == [f"issuer.signing_key: {settings.issuer.signing_key} not found"]


def test_missing_cert_file(tmp_path: Path, material: Material) -> None:
    _write_key(tmp_path / "sign.key.pem", material.key)
    settings = _settings(tmp_path)
    assert _problems(settings) == [f"issuer.signing_cert: {settings.issuer.signing_cert} not found"]


def test_missing_previous_cert(good: Settings, tmp_path: Path) -> None:
    settings = dataclasses.replace(good, issuer=dataclasses.replace(good.issuer, previous_certs=(tmp_path / "old",)))
    assert _problems(settings) == [f"issuer.previous_certs[0]: {tmp_path / 'old'} not found"]


def test_garbage_files(tmp_path: Path) -> None:
    (tmp_path / "sign.key.pem").write_text("not a key")
    (tmp_path / "sign.crt.pem").write_text("-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n")
    problems = _problems(_settings(tmp_path))
    assert problems == [
        f"issuer.signing_key: {tmp_path / 'sign.key.pem'} is not a PEM private key (or the passphrase is wrong)",
        f"issuer.signing_cert: {tmp_path / 'sign.crt.pem'} is not a certificate",
    ]


def test_all_problems_reported_together(tmp_path: Path, material: Material) -> None:
    _write_key(tmp_path / "sign.key.pem", material.small_key)
    _write_cert(tmp_path / "sign.crt.pem", material.expired_cert)
    settings = _settings(tmp_path, previous_certs=(tmp_path / "gone1", tmp_path / "gone2"))
    problems = _problems(settings)
    assert problems[0] == "issuer.signing_key: RSA key of 1024 bits; at least 2048 required"
    assert problems[1].startswith("issuer.signing_cert: certificate expired on ")
    assert problems[2:] == [
        f"issuer.previous_certs[0]: {tmp_path / 'gone1'} not found",
        f"issuer.previous_certs[1]: {tmp_path / 'gone2'} not found",
    ]


def test_missing_key_and_cert_together(tmp_path: Path) -> None:
    problems = _problems(_settings(tmp_path))
    assert len(problems) == 2
    assert problems[0].startswith("issuer.signing_key:") and problems[0].endswith("not found")
    assert problems[1].startswith("issuer.signing_cert:") and problems[1].endswith("not found")


# --- helpers and keygen ---------------------------------------------------------------------------------------


def test_check_certificate_helper(material: Material) -> None:
    now = dt.datetime.now(dt.UTC)
    assert check_certificate(material.cert, "x", now) == ([], [])
    problems, warnings = check_certificate(material.small_cert, "rp", now)
    assert problems == ["rp: RSA key of 1024 bits; at least 2048 required"]
    assert warnings == []


def test_same_public_key_and_fingerprint(material: Material) -> None:
    assert same_public_key(material.cert, material.key) is True
    assert same_public_key(material.cert, material.other_key) is False
    digest = material.cert.fingerprint(hashes.SHA256())
    assert fingerprint(material.cert) == ":".join(f"{b:02X}" for b in digest)


def test_load_certificate_pem_and_der(tmp_path: Path, material: Material) -> None:
    assert load_certificate(_write_cert(tmp_path / "c.pem", material.cert)) == material.cert
    assert load_certificate(_write_cert(tmp_path / "c.der", material.cert, der=True)) == material.cert


def test_keygen_certificate_properties(material: Material) -> None:
    cert = material.cert
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "STS signing"
    assert cert.signature_hash_algorithm is not None and cert.signature_hash_algorithm.name == "sha256"
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature is True
    assert material.key.key_size == 2048
    assert material.key.public_key().public_numbers().e == 65537
    validity = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert dt.timedelta(days=825) <= validity <= dt.timedelta(days=825, minutes=6)


def test_keygen_write_private_key_mode_0600(tmp_path: Path, material: Material) -> None:
    path = tmp_path / "sub" / "k.pem"
    keygen.write_private_key(path, material.key)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert keygen.load_private_key(path, None).private_numbers() == material.key.private_numbers()
