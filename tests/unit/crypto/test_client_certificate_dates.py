"""Registered client certificates (PublicKey UseKey) count only while they are valid, judged at each use against
the caller's clock: one that expires while the server runs stops counting, without a restart."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from sts.crypto.keywrap import TrustedClientKeys

T0 = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def certificate(key: rsa.RSAPrivateKey, not_before: dt.datetime, not_after: dt.datetime) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dated")])
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


def test_client_certificate_key_counts_only_while_the_certificate_is_valid(
    tmp_path: Path, key: rsa.RSAPrivateKey, caplog: pytest.LogCaptureFixture
) -> None:
    clients = tmp_path / "clients"
    clients.mkdir()
    cert = certificate(key, T0 - dt.timedelta(days=1), T0 + dt.timedelta(days=10))
    (clients / "alice.crt.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    trusted = TrustedClientKeys(clients)
    with caplog.at_level(logging.WARNING, logger="sts.clients"):
        assert trusted.contains(key.public_key(), T0) is True
        assert trusted.contains(key.public_key(), T0 + dt.timedelta(days=10)) is False
        assert trusted.contains(key.public_key(), T0 + dt.timedelta(days=11)) is False
        assert trusted.contains(key.public_key(), T0 - dt.timedelta(days=2)) is False
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "client certificate alice.crt.pem: expires on 2030-01-11",
        "client certificate alice.crt.pem: expired on 2030-01-11; its key is refused for UseKey",
        "client certificate alice.crt.pem: not valid before 2029-12-31; its key is refused for UseKey",
    ]


def test_client_key_with_one_valid_certificate_of_several_counts(tmp_path: Path, key: rsa.RSAPrivateKey) -> None:
    """A renewed client certificate for the same key keeps the key usable after the old one expires."""
    clients = tmp_path / "clients"
    clients.mkdir()
    old = certificate(key, T0 - dt.timedelta(days=400), T0 - dt.timedelta(days=1))
    new = certificate(key, T0 - dt.timedelta(days=2), T0 + dt.timedelta(days=400))
    (clients / "old.crt.pem").write_bytes(old.public_bytes(serialization.Encoding.PEM))
    (clients / "new.crt.pem").write_bytes(new.public_bytes(serialization.Encoding.PEM))
    assert TrustedClientKeys(clients).contains(key.public_key(), T0) is True
