"""Load the STS signing key and certificates once, and check them, so a bad key fails the boot.

Keys become ``cryptography`` objects at start-up: parsing a PEM with key validation costs ~45 ms, so it must
never happen per request.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa

MIN_RSA_BITS = 2048
EXPIRY_WARNING = dt.timedelta(days=30)
PASSPHRASE_ENV = "STS_SIGNING_KEY_PASSPHRASE"  # noqa: S105 - the variable name, not a secret


class SigningFiles(Protocol):
    """Where the signing material lies: what ``[issuer]`` names (``sts.config.settings.IssuerSettings``).

    A protocol rather than the settings class, so that cryptography does not depend on the configuration layer.
    """

    @property
    def signing_key(self) -> Path:
        """PEM private key (possibly encrypted)."""
        ...

    @property
    def signing_cert(self) -> Path:
        """The certificate of that key."""
        ...

    @property
    def signing_key_passphrase_file(self) -> Path | None:
        """A file holding the key's passphrase, if any."""
        ...

    @property
    def previous_certs(self) -> Sequence[Path]:
        """Certificates of earlier signing keys whose signatures are still accepted."""
        ...

    @property
    def pkcs11_module(self) -> Path | None:
        """The PKCS#11 library of the token holding the signing key (None: the PEM ``signing_key``)."""
        ...

    @property
    def pkcs11_token_label(self) -> str:
        """The token's label."""
        ...

    @property
    def pkcs11_key_label(self) -> str:
        """The private key's label (CKA_LABEL) in the token."""
        ...

    @property
    def pkcs11_pin_file(self) -> Path | None:
        """A file holding the user PIN (else ``$STS_PKCS11_PIN``)."""
        ...

    @property
    def pkcs11_timeout_ms(self) -> int:
        """How long a call into the token is awaited before the request fails closed."""
        ...


class IssuerConfig(Protocol):
    """Anything with an ``issuer`` naming the signing files (the loaded ``Settings``)."""

    @property
    def issuer(self) -> SigningFiles:
        """The ``[issuer]`` table."""
        ...


class KeyStoreError(Exception):
    """The keystore cannot be loaded; ``problems`` lists every reason."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class KeyStore:
    """The STS signing material, parsed once."""

    signing_key: rsa.RSAPrivateKey
    signing_cert: x509.Certificate
    previous_certs: tuple[x509.Certificate, ...]
    warnings: tuple[str, ...]

    @property
    def signing_cert_pem(self) -> bytes:
        """The signing certificate as PEM."""
        return self.signing_cert.public_bytes(serialization.Encoding.PEM)

    @property
    def accepted_certs(self) -> tuple[x509.Certificate, ...]:
        """Certificates whose signatures Validate accepts: the current one, then still-accepted previous ones."""
        return (self.signing_cert, *self.previous_certs)

    def close(self) -> None:
        """Release what the signing key holds in this process (a PKCS#11 key's token thread; nothing for a PEM
        key), once nothing signs with it any more."""
        close = getattr(self.signing_key, "close", None)
        if callable(close):
            close()


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 fingerprint as colon-separated hex (what operators compare)."""
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def same_public_key(cert: x509.Certificate, key: rsa.RSAPrivateKey) -> bool:
    """Whether the certificate certifies this private key."""
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return cert.public_key().public_bytes(*spki) == key.public_key().public_bytes(*spki)


def load_certificate(path: Path) -> x509.Certificate:
    """Read one PEM or DER certificate."""
    data = path.read_bytes()
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_certificate(data)
    return x509.load_der_x509_certificate(data)


def check_certificate(cert: x509.Certificate, label: str, now: dt.datetime) -> tuple[list[str], list[str]]:
    """Problems (RSA < 2048, expired, not yet valid) and warnings (expiring within 30 days) of a certificate."""
    problems, warnings = check_validity(cert, label, now)
    return check_key(cert, label) + problems, warnings


def check_key(cert: x509.Certificate, label: str) -> list[str]:
    """Problems of the certificate's key, which never change while it is in use (RSA of 2048 bits or more)."""
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        return [f"{label}: only RSA keys are supported"]
    if key.key_size < MIN_RSA_BITS:
        return [f"{label}: RSA key of {key.key_size} bits; at least {MIN_RSA_BITS} required"]
    return []


def check_validity(cert: x509.Certificate, label: str, now: dt.datetime) -> tuple[list[str], list[str]]:
    """Date problems (expired, not yet valid) and the warning of an expiry within 30 days, at ``now``."""
    problems: list[str] = []
    warnings: list[str] = []
    if cert.not_valid_after_utc <= now:
        problems.append(f"{label}: certificate expired on {cert.not_valid_after_utc:%Y-%m-%d}")
    elif cert.not_valid_after_utc - now < EXPIRY_WARNING:
        warnings.append(f"{label}: certificate expires on {cert.not_valid_after_utc:%Y-%m-%d}")
    if cert.not_valid_before_utc > now:
        problems.append(f"{label}: certificate not valid before {cert.not_valid_before_utc:%Y-%m-%d}")
    return problems, warnings


@dataclass(frozen=True, slots=True)
class Validity:
    """A certificate's validity period (RFC 5280 §4.1.2.5), kept to re-check it cheaply at every use."""

    not_before: dt.datetime
    not_after: dt.datetime

    @classmethod
    def of(cls, cert: x509.Certificate) -> Validity:
        """The period of ``cert``."""
        return cls(cert.not_valid_before_utc, cert.not_valid_after_utc)

    def valid_at(self, now: dt.datetime) -> bool:
        """Whether ``now`` lies within the period (notAfter itself is past it, as above)."""
        return self.not_before <= now < self.not_after

    def expires_soon(self, now: dt.datetime) -> bool:
        """Whether it ends within the warning period (30 days)."""
        return self.not_after - now < EXPIRY_WARNING


def key_passphrase(settings: IssuerConfig) -> bytes | None:
    """The signing key's passphrase: ``$STS_SIGNING_KEY_PASSPHRASE``, else the passphrase file, else None."""
    from_env = os.environ.get(PASSPHRASE_ENV)
    if from_env:
        return from_env.encode()
    path = settings.issuer.signing_key_passphrase_file
    if path is not None:
        return path.read_bytes().rstrip(b"\r\n")
    return None


def load_keystore(settings: IssuerConfig, now: dt.datetime | None = None) -> KeyStore:
    """Load and check the signing key and certificates, or raise :class:`KeyStoreError` with every problem."""
    now = now or dt.datetime.now(dt.UTC)
    problems: list[str] = []
    warnings: list[str] = []
    in_token = settings.issuer.pkcs11_module is not None
    key = None if in_token else _load_key(settings, problems)  # key problems first, then the certificate's
    cert = _load_cert(settings.issuer.signing_cert, "issuer.signing_cert", problems)
    if in_token:
        key = _load_token_key(settings.issuer, cert, problems)
    if cert is not None:
        cert_problems, cert_warnings = check_certificate(cert, "issuer.signing_cert", now)
        problems += cert_problems
        warnings += cert_warnings
        if key is not None and not same_public_key(cert, key):
            problems.append("issuer.signing_key does not match issuer.signing_cert")
    previous: list[x509.Certificate] = []
    for index, path in enumerate(settings.issuer.previous_certs):
        label = f"issuer.previous_certs[{index}]"
        old = _load_cert(path, label, problems)
        if old is not None:
            old_problems, old_warnings = check_certificate(old, label, now)
            problems += [p for p in old_problems if "expired" not in p]  # an expired old cert just stops mattering
            warnings += old_warnings + [p for p in old_problems if "expired" in p]
            previous.append(old)
    if problems or key is None or cert is None:
        close = getattr(key, "close", None)
        if callable(close):
            close()  # a token's key loaded before another file failed: its thread would outlive the refusal
        raise KeyStoreError(problems)
    return KeyStore(key, cert, tuple(previous), tuple(warnings))


def _load_token_key(
    issuer: SigningFiles, cert: x509.Certificate | None, problems: list[str]
) -> rsa.RSAPrivateKey | None:
    """The signing key in a PKCS#11 token, checked against the certificate (README, "Signing key in an HSM")."""
    from sts.crypto.pkcs11_key import Pkcs11Error, load_pkcs11_key

    public = cert.public_key() if cert is not None else None
    if not isinstance(public, rsa.RSAPublicKey) or issuer.pkcs11_module is None:
        return None  # the certificate's problem is reported already
    if not issuer.pkcs11_token_label or not issuer.pkcs11_key_label:
        problems.append("issuer.pkcs11_token_label and pkcs11_key_label are required with pkcs11_module")
        return None
    try:
        return load_pkcs11_key(
            issuer.pkcs11_module, issuer.pkcs11_token_label, issuer.pkcs11_key_label, issuer.pkcs11_pin_file, public,
            issuer.pkcs11_timeout_ms / 1000,
        )
    except Pkcs11Error as exc:
        problems.append(str(exc))
        return None


def _load_key(settings: IssuerConfig, problems: list[str]) -> rsa.RSAPrivateKey | None:
    path = settings.issuer.signing_key
    try:
        passphrase = key_passphrase(settings)
    except OSError:
        problems.append(f"issuer.signing_key_passphrase_file: {settings.issuer.signing_key_passphrase_file} unreadable")
        return None
    try:
        data = path.read_bytes()
        key = serialization.load_pem_private_key(data, password=passphrase)
    except FileNotFoundError:
        problems.append(f"issuer.signing_key: {path} not found")
        return None
    except PermissionError:
        problems.append(f"issuer.signing_key: {path} not readable")
        return None
    except (ValueError, TypeError):
        problems.append(f"issuer.signing_key: {path} is not a PEM private key (or the passphrase is wrong)")
        return None
    if not isinstance(key, rsa.RSAPrivateKey):
        problems.append("issuer.signing_key: only RSA keys are supported")
        return None
    if key.key_size < MIN_RSA_BITS:
        problems.append(f"issuer.signing_key: RSA key of {key.key_size} bits; at least {MIN_RSA_BITS} required")
        return None
    return key


def _load_cert(path: Path, label: str, problems: list[str]) -> x509.Certificate | None:
    try:
        return load_certificate(path)
    except FileNotFoundError:
        problems.append(f"{label}: {path} not found")
    except PermissionError:
        problems.append(f"{label}: {path} not readable")
    except ValueError:
        problems.append(f"{label}: {path} is not a certificate")
    return None
