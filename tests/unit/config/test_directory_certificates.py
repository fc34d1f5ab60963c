"""Certificate dates at use time (issue 12, item 14): relying-party certificates in the directory and registered
client certificates (PublicKey UseKey) stop counting when they expire, without a restart, with an injected clock."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from sts import errors
from sts.clock import FrozenClock
from sts.config.directory import RelyingPartyDirectory
from sts.config.relying_parties import RelyingParty, RelyingPartyStore
from sts.crypto.keywrap import TrustedClientKeys
from sts.stores.sqlite import Database, initialize

T0 = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
RP = "https://rp.example/app/"


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


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    initialize(tmp_path / "sts.db")
    with Database(tmp_path / "sts.db") as database:
        yield database


def directory_with(db: Database, cert: x509.Certificate, clock: FrozenClock) -> RelyingPartyDirectory:
    truststore = db.path.parent / "truststore"
    truststore.mkdir()
    (truststore / "rp.crt.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    store = RelyingPartyStore(db)
    store.add(RelyingParty(address=RP, cert_file="rp.crt.pem"))
    return RelyingPartyDirectory(store, truststore, clock=clock)


def test_rp_certificate_expiring_while_running_stops_being_used(
    db: Database, key: rsa.RSAPrivateKey, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FrozenClock(T0)
    directory = directory_with(db, certificate(key, T0 - dt.timedelta(days=1), T0 + dt.timedelta(hours=1)), clock)
    party = directory.resolve(RP)
    assert party.certificate is not None
    assert directory.encrypter(party) is not None
    clock.advance(3600)  # notAfter itself: expired (RFC 5280 §4.1.2.5)
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="sts.rp"):
        for _ in range(3):
            party = directory.resolve(RP)
            assert party.certificate is None
            with pytest.raises(errors.RequestFailed) as refused:
                directory.encrypter(party)
            assert refused.value.reason == "rp_certificate_unusable"
    expired = [r.getMessage() for r in caplog.records if "certificate expired on" in r.getMessage()]
    assert expired == [f"relying party {RP}: certificate expired on 2030-01-01"]  # once, not per request


def test_rp_certificate_not_yet_valid_at_load_becomes_usable(db: Database, key: rsa.RSAPrivateKey) -> None:
    clock = FrozenClock(T0)
    start = T0 + dt.timedelta(minutes=10)
    directory = directory_with(db, certificate(key, start, start + dt.timedelta(days=365)), clock)
    assert directory.resolve(RP).certificate is None
    clock.advance(600)
    assert directory.resolve(RP).certificate is not None


def test_rp_certificate_expiring_within_30_days_is_logged_once(
    db: Database, key: rsa.RSAPrivateKey, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FrozenClock(T0)
    cert = certificate(key, T0 - dt.timedelta(days=1), T0 + dt.timedelta(days=40))
    directory = directory_with(db, cert, clock)
    with caplog.at_level(logging.WARNING, logger="sts.rp"):
        directory.resolve(RP)
        assert not [r for r in caplog.records if "expires on" in r.getMessage()]
        clock.advance(11 * 86400)  # 29 days left
        for _ in range(3):
            assert directory.resolve(RP).certificate is not None
    warned = [r.getMessage() for r in caplog.records if "expires on" in r.getMessage()]
    assert warned == [f"relying party {RP}: certificate expires on 2030-02-10"]


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
