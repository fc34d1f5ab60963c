"""A certificate-authentication environment over a real SQLite database: users, registered certificates, a client
CA with its CRL, the per-client throttle and the replay cache, under a frozen clock."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from sts.auth.certificates import CertificateRules, CertificateTrust
from sts.auth.passwords import HashPolicy, PasswordHasher
from sts.auth.router import UserStoreRouter
from sts.auth.signed_requests import SignaturePolicy, SignedRequestAuthenticator
from sts.auth.sqlite_users import SqliteUserStore
from sts.auth.validators import CallerInfo
from sts.clock import FrozenClock
from sts.crypto.client_certs import ClientAuthority
from sts.netaddr import AddressSet
from sts.stores.sqlite import Database, initialize
from sts.stores.sqlite_stores import SqliteClientThrottle, SqliteReplayCache
from tests.x509_support import Client, make_cert, make_crl, rsa_key

INFO = CallerInfo(correlation_id="corr-1", client_address="192.0.2.10", secure_transport=True)
FAILURE_LIMIT = 3
FAST = HashPolicy(memory_kib=1024, time_cost=1)


@dataclass
class X509Env:
    """The collaborators, and the client material: ``alice`` registered to admin, ``bob`` registered to bob,
    ``carol`` to a disabled user, ``ca_admin`` issued by the client CA (CN=admin), ``ca_revoked`` listed in its CRL,
    ``stranger`` self-signed and unregistered."""

    db: Database
    users: SqliteUserStore
    trust: CertificateTrust
    throttle: SqliteClientThrottle
    replay: SqliteReplayCache
    clock: FrozenClock
    ca: tuple[x509.Certificate, object]
    alice: Client
    bob: Client
    carol: Client
    ca_admin: Client
    ca_revoked: Client
    stranger: Client

    def authenticator(self, *, legacy_sha1: bool = False, insecure: bool = False) -> SignedRequestAuthenticator:
        return SignedRequestAuthenticator(
            self.trust, self.replay, SignaturePolicy(legacy_sha1=legacy_sha1, allow_insecure_transport=insecure),
            self.clock,
        )


def _client(name: str, **kwargs: object) -> Client:
    key = rsa_key()
    return Client(make_cert(name, key, **kwargs), key, Path(), Path())  # type: ignore[arg-type]


def build_env(tmp_path: Path, user_rule: str = "cn") -> X509Env:
    path = tmp_path / "sts.db"
    initialize(path)
    db = Database(path)
    users = SqliteUserStore(db, PasswordHasher(FAST))
    users.add_role("admin")
    for name, roles in (("admin", ["admin"]), ("bob", ["admin"]), ("carol", ["admin"]), ("norole", [])):
        users.add_user("PRIMARY", name, "Not-used-1", roles=roles)
    users.set_enabled("PRIMARY", "carol", False)
    ca_key = rsa_key()
    ca = (make_cert("Client CA", ca_key, ca=True, extended=None, key_usage="none", days=(-1, 365)), ca_key)
    alice, bob, carol, stranger = (_client(n) for n in ("alice", "bob", "carol", "stranger"))
    ca_admin = _client("admin", issuer=ca)
    ca_revoked = _client("admin", issuer=ca)
    for user, client in (("admin", alice), ("bob", bob), ("carol", carol)):
        users.add_certificate("PRIMARY", user, client.cert.public_bytes(serialization.Encoding.DER))
    (tmp_path / "ca.pem").write_bytes(ca[0].public_bytes(serialization.Encoding.PEM))
    (tmp_path / "ca.crl").write_bytes(make_crl(ca, [ca_revoked.cert.serial_number]))
    clock = FrozenClock(datetime.now(UTC).replace(microsecond=0))
    throttle = SqliteClientThrottle(db, FAILURE_LIMIT, 60, AddressSet.parse(()))
    trust = CertificateTrust(
        users.certificate_store,
        ClientAuthority(tmp_path / "ca.pem", tmp_path / "ca.crl"),
        UserStoreRouter.single(users),
        CertificateRules(frozenset({"ALL-USER-STORE-DOMAINS"}), user_rule),
        clock,
        throttle,
    )
    return X509Env(db, users, trust, throttle, SqliteReplayCache(db, clock), clock, ca, alice, bob, carol, ca_admin,
                   ca_revoked, stranger)


def audit_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The ``sts.audit`` records captured so far."""
    return [record for record in caplog.records if record.name == "sts.audit"]
