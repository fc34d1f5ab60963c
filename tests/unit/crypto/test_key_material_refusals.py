"""Key material the STS refuses or protects: non-RSA keys, unreadable files, wrong-size credential keys.

Covers sts.crypto.keystore (start-up checks: every problem listed), sts.crypto.keygen (imports for ``sts init``)
and sts.crypto.secretbox (AES-256-GCM sealing of PasswordDigest secrets; opened here independently with
``cryptography``, NIST SP 800-38D: 96-bit nonce, 128-bit tag, the user as associated data).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from sts.config.settings import IssuerSettings, Settings
from sts.crypto import keygen
from sts.crypto.keystore import PASSPHRASE_ENV, KeyStoreError, check_certificate, check_key, load_keystore
from sts.crypto.secretbox import KEY_BYTES, SecretBox, SecretBoxError, generate_key_file
from sts.files import UnsafePath

NOW = dt.datetime.now(dt.UTC)


def _certificate(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, cn: str = "sts") -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )


def _pem_key(path: Path, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> Path:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return path


def _pem_cert(path: Path, cert: x509.Certificate) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return keygen.generate_rsa_key(2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(autouse=True)
def _no_passphrase_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PASSPHRASE_ENV, raising=False)


def _settings(tmp_path: Path, key: Path, cert: Path, previous: tuple[Path, ...] = ()) -> Settings:
    base = Settings(config_path=tmp_path / "sts.toml")
    issuer = dataclasses.replace(IssuerSettings(), signing_key=key, signing_cert=cert, previous_certs=previous)
    return dataclasses.replace(base, issuer=issuer)


def _problems(settings: Settings) -> list[str]:
    with pytest.raises(KeyStoreError) as raised:
        load_keystore(settings, NOW)
    return raised.value.problems


@pytest.fixture
def unreadable(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path], None]:
    """Make one file unreadable. The suite may run as root, which reads through mode 000: then the refusal the
    kernel would give another user is raised by ``Path.read_bytes`` for that file alone."""

    def make(path: Path) -> None:
        path.chmod(0)
        if os.geteuid() != 0:
            return
        original = Path.read_bytes

        def read_bytes(self: Path) -> bytes:
            if self == path:
                raise PermissionError(13, "Permission denied", str(self))
            return original(self)

        monkeypatch.setattr(Path, "read_bytes", read_bytes)

    return make


# --- keystore -------------------------------------------------------------------------------------------------------


def test_certificate_without_an_rsa_key_is_a_problem(ec_key: ec.EllipticCurvePrivateKey) -> None:
    cert = _certificate(ec_key)
    assert check_key(cert, "issuer.signing_cert") == ["issuer.signing_cert: only RSA keys are supported"]
    assert check_certificate(cert, "issuer.signing_cert", NOW) == (
        ["issuer.signing_cert: only RSA keys are supported"],
        [],
    )


def test_non_rsa_signing_key_and_certificate_refused(tmp_path: Path, ec_key: ec.EllipticCurvePrivateKey) -> None:
    key, cert = _pem_key(tmp_path / "k.pem", ec_key), _pem_cert(tmp_path / "c.pem", _certificate(ec_key))
    settings = _settings(tmp_path, key, cert)
    assert _problems(settings) == [
        "issuer.signing_key: only RSA keys are supported",
        "issuer.signing_cert: only RSA keys are supported",
    ]


def test_unreadable_signing_key_is_reported(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey, unreadable: Callable[[Path], None]
) -> None:
    key = _pem_key(tmp_path / "k.pem", rsa_key)
    settings = _settings(tmp_path, key, _pem_cert(tmp_path / "c.pem", _certificate(rsa_key)))
    assert load_keystore(settings, NOW).signing_key.private_numbers() == rsa_key.private_numbers()
    unreadable(key)
    assert _problems(settings) == [f"issuer.signing_key: {key} not readable"]


def test_unreadable_certificates_are_reported(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey, unreadable: Callable[[Path], None]
) -> None:
    cert = _pem_cert(tmp_path / "c.pem", _certificate(rsa_key))
    old = _pem_cert(tmp_path / "old.pem", _certificate(rsa_key, "old"))
    settings = _settings(tmp_path, _pem_key(tmp_path / "k.pem", rsa_key), cert, (old,))
    unreadable(old)
    assert _problems(settings) == [f"issuer.previous_certs[0]: {old} not readable"]
    unreadable(cert)
    assert _problems(settings) == [
        f"issuer.signing_cert: {cert} not readable",
        f"issuer.previous_certs[0]: {old} not readable",
    ]


# --- keygen imports -------------------------------------------------------------------------------------------------


def test_pkcs12_with_an_rsa_key_and_certificate_loads(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    cert = _certificate(rsa_key)
    path = tmp_path / "sts.p12"
    path.write_bytes(
        pkcs12.serialize_key_and_certificates(b"sts", rsa_key, cert, None, serialization.BestAvailableEncryption(b"pw"))
    )
    key, loaded = keygen.load_pkcs12(path, b"pw")
    assert key.private_numbers() == rsa_key.private_numbers()
    assert loaded == cert


@pytest.mark.parametrize("content", ["ec_key", "certificate_only"])
def test_pkcs12_without_an_rsa_key_and_its_certificate_refused(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey, content: str
) -> None:
    if content == "ec_key":
        data = pkcs12.serialize_key_and_certificates(
            b"sts", ec_key, _certificate(ec_key), None, serialization.NoEncryption()
        )
    else:
        data = pkcs12.serialize_key_and_certificates(
            b"sts", None, _certificate(rsa_key), None, serialization.NoEncryption()
        )
    path = tmp_path / "sts.p12"
    path.write_bytes(data)
    with pytest.raises(ValueError, match="^the PKCS#12 file must hold an RSA private key and its certificate$"):
        keygen.load_pkcs12(path, None)


def test_pem_private_key_must_be_rsa(tmp_path: Path, ec_key: ec.EllipticCurvePrivateKey) -> None:
    with pytest.raises(ValueError, match="^only RSA keys are supported$"):
        keygen.load_private_key(_pem_key(tmp_path / "ec.pem", ec_key), None)


# --- secretbox ------------------------------------------------------------------------------------------------------


def test_sealed_secret_is_aes_gcm_bound_to_its_context() -> None:
    key = os.urandom(KEY_BYTES)
    sealed = SecretBox(key).seal("pässwörd", "PRIMARY/alice")
    assert len(sealed) == 12 + len("pässwörd".encode()) + 16
    assert AESGCM(key).decrypt(sealed[:12], sealed[12:], b"PRIMARY/alice") == "pässwörd".encode()
    assert SecretBox(key).open(sealed, "PRIMARY/alice") == "pässwörd"


def test_sealing_twice_differs() -> None:
    box = SecretBox(os.urandom(KEY_BYTES))
    first, second = box.seal("secret", "u"), box.seal("secret", "u")
    assert first[:12] != second[:12] and first != second


@pytest.mark.parametrize(
    ("damage", "context"),
    [
        (lambda sealed: sealed, "PRIMARY/mallory"),  # another user's secret copied over
        (lambda sealed: sealed[:-1], "PRIMARY/alice"),
        (lambda sealed: sealed[:12], "PRIMARY/alice"),
        (lambda sealed: b"", "PRIMARY/alice"),
        (lambda sealed: sealed[:20] + bytes([sealed[20] ^ 1]) + sealed[21:], "PRIMARY/alice"),
    ],
    ids=["other_context", "truncated_tag", "nonce_only", "empty", "flipped_bit"],
)
def test_a_sealed_secret_that_does_not_open(damage: Callable[[bytes], bytes], context: str) -> None:
    box = SecretBox(os.urandom(KEY_BYTES))
    sealed = box.seal("secret", "PRIMARY/alice")
    with pytest.raises(SecretBoxError, match="^sealed secret does not open$"):
        box.open(damage(sealed), context)


def test_another_key_does_not_open_it() -> None:
    sealed = SecretBox(os.urandom(KEY_BYTES)).seal("secret", "u")
    with pytest.raises(SecretBoxError, match="^sealed secret does not open$"):
        SecretBox(os.urandom(KEY_BYTES)).open(sealed, "u")


@pytest.mark.parametrize("size", [0, 16, 31, 33, 64])
def test_credential_key_must_be_32_bytes(tmp_path: Path, size: int) -> None:
    with pytest.raises(SecretBoxError, match="^the credential key must be 32 bytes$"):
        SecretBox(os.urandom(size))
    path = tmp_path / "credentials.key"
    path.write_bytes(os.urandom(size))
    with pytest.raises(SecretBoxError, match="^the credential key must be 32 bytes$"):
        SecretBox.from_file(path)


def test_missing_key_file(tmp_path: Path) -> None:
    path = tmp_path / "credentials.key"
    with pytest.raises(SecretBoxError) as raised:
        SecretBox.from_file(path)
    assert str(raised.value) == f"{path}: No such file or directory"


def test_generated_key_file_is_private_and_usable(tmp_path: Path) -> None:
    path = tmp_path / "credentials.key"
    path.write_bytes(b"old")
    path.chmod(0o644)
    generate_key_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = path.read_bytes()
    assert len(key) == KEY_BYTES and key != bytes(KEY_BYTES)
    sealed = SecretBox.from_file(path).seal("secret", "u")
    assert AESGCM(key).decrypt(sealed[:12], sealed[12:], b"u") == b"secret"


def test_key_file_is_never_written_through_a_link(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_bytes(b"keep")
    (tmp_path / "credentials.key").symlink_to(target)
    with pytest.raises(UnsafePath):
        generate_key_file(tmp_path / "credentials.key")
    assert target.read_bytes() == b"keep"
