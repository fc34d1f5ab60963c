"""What a worker keeps per relying party: certificates parsed once per file version or inline PEM text (an unusable
one disables encryption for that RP, with an error in the log), encrypters built once per certificate and
algorithms."""

from __future__ import annotations

import datetime as dt
import logging
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa

from sts.clock import FrozenClock
from sts.crypto import keygen
from sts.crypto.algorithms import CipherName, KeyTransportName
from sts.relying_parties.caches import CertificateCache, EncrypterCache, LoadedCertificate
from sts.relying_parties.model import RelyingParty

T0 = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
RP = RelyingParty(address="https://rp.example/app/", cert_file="rp.crt.pem")


def test_certificate_parsed_again_only_when_its_file_changes(tmp_path: Path) -> None:
    first = keygen.self_signed_certificate(keygen.generate_rsa_key(2048), "first")
    keygen.write_certificate(tmp_path / "rp.crt.pem", first)
    cache = CertificateCache(tmp_path, FrozenClock(T0))
    loaded = cache.load(RP)
    assert loaded is not None and loaded.certificate == first
    assert cache.load(RP) is loaded  # the same object: not parsed again
    second = keygen.self_signed_certificate(keygen.generate_rsa_key(2048), "second, a longer name")
    keygen.write_certificate(tmp_path / "rp.crt.pem", second)
    os.utime(tmp_path / "rp.crt.pem", ns=(1, 1))
    reloaded = cache.load(RP)
    assert reloaded is not None and reloaded.certificate == second
    assert cache.load(RelyingParty(address="https://plain.example/", encrypt=False)) is None  # no certificate


def test_unusable_certificates_disable_encryption_and_say_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = CertificateCache(tmp_path, FrozenClock(T0))
    with caplog.at_level(logging.ERROR, logger="sts.rp"):
        assert cache.load(RP) is None  # missing
        (tmp_path / "rp.crt.pem").write_text("not a certificate")
        assert cache.load(RP) is None  # unreadable
        weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - the point
        keygen.write_certificate(tmp_path / "rp.crt.pem", keygen.self_signed_certificate(weak, "weak"))
        os.utime(tmp_path / "rp.crt.pem", ns=(2, 2))
        assert cache.load(RP) is None
    assert [record.getMessage() for record in caplog.records] == [
        "relying party certificate unreadable",
        "relying party certificate unreadable",
        "relying party https://rp.example/app/: RSA key of 1024 bits; at least 2048 required",
    ]


def test_one_encrypter_per_certificate_and_algorithms_cbc_noted(caplog: pytest.LogCaptureFixture) -> None:
    cert = LoadedCertificate.of(keygen.self_signed_certificate(keygen.generate_rsa_key(2048), "rp"))
    cache = EncrypterCache()
    gcm = cache.get(RP, cert, CipherName.AES256_GCM, KeyTransportName.RSA_OAEP_MGF1P)
    assert cache.get(RP, cert, CipherName.AES256_GCM, KeyTransportName.RSA_OAEP_MGF1P) is gcm
    assert cache.get(RP, cert, CipherName.AES256_GCM, KeyTransportName.RSA_OAEP) is not gcm
    with caplog.at_level(logging.WARNING, logger="sts.rp"):
        cbc = cache.get(RP, cert, CipherName.AES256_CBC, KeyTransportName.RSA_OAEP_MGF1P)
        assert cache.get(RP, cert, CipherName.AES256_CBC, KeyTransportName.RSA_OAEP_MGF1P) is cbc
    assert [record.getMessage() for record in caplog.records] == ["AES-CBC encryption for a legacy relying party"]


def test_encrypters_beyond_the_limit_go_least_recently_used_first() -> None:
    key = keygen.generate_rsa_key(2048)
    first, second, third = (LoadedCertificate.of(keygen.self_signed_certificate(key, name)) for name in "abc")
    cache = EncrypterCache(limit=2)
    kept = cache.get(RP, first, CipherName.AES256_GCM, KeyTransportName.RSA_OAEP_MGF1P)
    dropped = cache.get(RP, second, CipherName.AES256_GCM, KeyTransportName.RSA_OAEP_MGF1P)
    assert cache.get(RP, first, CipherName.AES256_GCM, KeyTransportName.RSA_OAEP_MGF1P) is kept  # used again
    cache.get(RP, third, CipherName.AES256_GCM, KeyTransportName.RSA_OAEP_MGF1P)
    assert len(cache) == 2
    assert cache.get(RP, first, CipherName.AES256_GCM, KeyTransportName.RSA_OAEP_MGF1P) is kept
    rebuilt = cache.get(RP, second, CipherName.AES256_GCM, KeyTransportName.RSA_OAEP_MGF1P)
    assert rebuilt is not dropped and len(cache) == 2  # built again, for the same certificate


def test_inline_certificate_parsed_once_per_content_and_no_file_needed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = keygen.self_signed_certificate(keygen.generate_rsa_key(2048), "first")
    inline = RelyingParty(address="https://rp.example/app/", cert_pem=keygen.certificate_pem(first).decode())
    cache = CertificateCache(tmp_path / "no-truststore", FrozenClock(T0))
    loaded = cache.load(inline)
    assert loaded is not None and loaded.certificate == first
    again = RelyingParty.from_json(inline.to_json())  # a re-read registry: another object, the same text
    assert cache.load(again) is loaded  # not parsed again
    second = keygen.self_signed_certificate(keygen.generate_rsa_key(2048), "second")
    replaced = RelyingParty(address=inline.address, cert_pem=keygen.certificate_pem(second).decode())
    changed = cache.load(replaced)
    assert changed is not None and changed.certificate == second
    cache.forget_others([replaced])  # the registry now holds only the new certificate
    reloaded = cache.load(inline)
    assert reloaded is not None and reloaded.certificate == first
    assert reloaded is not loaded  # parsed again: it had been dropped
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - the point
    weak_pem = keygen.certificate_pem(keygen.self_signed_certificate(weak, "weak")).decode()
    with caplog.at_level(logging.ERROR, logger="sts.rp"):
        assert cache.load(RelyingParty(address="https://weak.example/", cert_pem=weak_pem)) is None
        bad = RelyingParty(address="https://bad.example/", cert_pem="-----BEGIN CERTIFICATE-----\n")
        assert cache.load(bad) is None
    assert [record.getMessage() for record in caplog.records] == [
        "relying party https://weak.example/: RSA key of 1024 bits; at least 2048 required",
        "relying party certificate unreadable",
    ]


def test_a_changed_certificate_gets_a_new_encrypter(tmp_path: Path) -> None:
    """The encrypters are found by the certificate's SHA-256 fingerprint: a new certificate in the same file is
    never encrypted to with the old key, and the same DER parsed again finds the same encrypter."""
    first = keygen.self_signed_certificate(keygen.generate_rsa_key(2048), "first")
    keygen.write_certificate(tmp_path / "rp.crt.pem", first)
    certificates, encrypters = CertificateCache(tmp_path, FrozenClock(T0)), EncrypterCache()
    algorithms = (CipherName.AES256_GCM, KeyTransportName.RSA_OAEP_MGF1P)
    before = certificates.load(RP)
    assert before is not None and before.fingerprint == first.fingerprint(hashes.SHA256()).hex(":").upper()
    old = encrypters.get(RP, before, *algorithms)
    second = keygen.self_signed_certificate(keygen.generate_rsa_key(2048), "second")
    keygen.write_certificate(tmp_path / "rp.crt.pem", second)
    os.utime(tmp_path / "rp.crt.pem", ns=(3, 3))
    after = certificates.load(RP)
    assert after is not None and after.certificate == second
    new = encrypters.get(RP, after, *algorithms)
    assert new is not old and new is encrypters.get(RP, after, *algorithms)
    assert encrypters.get(RP, LoadedCertificate.of(first), *algorithms) is old  # the same DER, parsed again
