"""Tests for sts.crypto.client_certs: the checks every client certificate must pass (P02, P04; RFC 5280 §4.2.1.3,
§4.2.1.12) and the client CA with its CRL, failing closed (P03)."""

from __future__ import annotations

import datetime as dt
import os
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sts.crypto.client_certs import ClientAuthority, certificate_problem, load_client_certificate, same_key
from tests.x509_support import make_cert, make_crl, rsa_key, undecodable_name_der

NOW = dt.datetime.now(dt.UTC)
PEM = serialization.Encoding.PEM


def _bare(key: object, *, extensions: tuple[x509.ExtensionType, ...] = (), signer: object = None) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bare")])
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
               .public_key(key.public_key())  # type: ignore[attr-defined]
               .serial_number(1).not_valid_before(NOW - dt.timedelta(days=1))
               .not_valid_after(NOW + dt.timedelta(days=1)))
    for extension in extensions:
        builder = builder.add_extension(extension, critical=False)
    return builder.sign(signer or key, hashes.SHA256())  # type: ignore[arg-type]


def test_a_good_certificate_has_no_problem() -> None:
    assert certificate_problem(make_cert("ok", rsa_key()), NOW) is None
    ec_key = ec.generate_private_key(ec.SECP256R1())
    assert certificate_problem(_bare(ec_key), NOW) is None  # no KeyUsage, no EKU: nothing restricts it


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda: make_cert("old", rsa_key(), days=(-30, -1)), "certificate_expired"),
        (lambda: make_cert("future", rsa_key(), days=(1, 30)), "certificate_not_yet_valid"),
        (lambda: make_cert("weak", rsa_key(1024)), "certificate_weak_key"),
        (lambda: _bare(ec.generate_private_key(ec.SECP192R1()), signer=rsa_key()), "certificate_weak_key"),
        (lambda: make_cert("enc", rsa_key(), key_usage="keyEncipherment"), "certificate_key_usage"),
        (lambda: make_cert("srv", rsa_key(), extended=ExtendedKeyUsageOID.SERVER_AUTH),
         "certificate_extended_key_usage"),
    ],
    ids=["P02_expired", "P02_not_yet_valid", "P04_rsa_1024", "P04_small_curve", "P04_key_encipherment_only",
         "P04_server_auth_only"],
)
def test_certificates_that_may_not_authenticate_a_client(make: object, problem: str) -> None:
    assert certificate_problem(make(), NOW) == problem  # type: ignore[operator]


def test_dsa_keys_are_refused() -> None:
    dsa_key = dsa.generate_private_key(2048)
    assert certificate_problem(_bare(dsa_key, signer=rsa_key()), NOW) == "certificate_key_type"


def test_any_extended_key_usage_is_enough() -> None:
    any_usage = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE])
    assert certificate_problem(_bare(rsa_key(), extensions=(any_usage,)), NOW) is None


def test_same_key_compares_public_keys() -> None:
    key = rsa_key()
    cert = make_cert("a", key)
    assert same_key(cert, make_cert("b", key)) and same_key(cert, key.public_key())
    assert not same_key(cert, make_cert("c", rsa_key()))


@pytest.fixture
def ca(tmp_path: Path) -> tuple[x509.Certificate, object, Path]:
    key = rsa_key()
    cert = make_cert("Client CA", key, ca=True, extended=None, key_usage="none", days=(-1, 365))
    (tmp_path / "ca.pem").write_bytes(cert.public_bytes(PEM))
    return cert, key, tmp_path / "ca.pem"


def test_issuer_of_finds_the_signing_ca_only(ca: tuple[x509.Certificate, object, Path]) -> None:
    cert, key, path = ca
    authority = ClientAuthority(path)
    assert authority.check() == []
    issued = make_cert("admin", rsa_key(), issuer=(cert, key))  # type: ignore[arg-type]
    assert authority.issuer_of(issued, NOW) == cert
    assert authority.issuer_of(make_cert("self", rsa_key()), NOW) is None  # self-signed never matches
    # Same issuer name, other key: the signature does not verify.
    impostor_key = rsa_key()
    impostor = make_cert("Client CA", impostor_key, ca=True, extended=None, key_usage="none")
    assert authority.issuer_of(make_cert("admin", rsa_key(), issuer=(impostor, impostor_key)), NOW) is None
    other = make_cert("Other CA", impostor_key, ca=True, extended=None, key_usage="none")
    assert authority.issuer_of(make_cert("admin", rsa_key(), issuer=(other, impostor_key)), NOW) is None
    assert not authority.revoked(issued, cert, NOW)  # no CRL configured: nothing is revoked


@pytest.mark.parametrize("which", ["issuer", "subject"])
def test_issuer_of_a_certificate_whose_names_do_not_decode_is_none(
    ca: tuple[x509.Certificate, object, Path], which: str
) -> None:
    """Defence in depth: the token readers refuse such a certificate first; here it matches no CA, never raises."""
    undecodable = x509.load_der_x509_certificate(undecodable_name_der(make_cert("zzqqx", rsa_key()), which))
    with pytest.raises(ValueError):
        _ = undecodable.issuer, undecodable.subject
    assert ClientAuthority(ca[2]).issuer_of(undecodable, NOW) is None
    with pytest.raises(ValueError):
        load_client_certificate(undecodable.public_bytes(PEM))


@pytest.mark.parametrize(
    ("days", "key_cert_sign", "problem"),
    [
        ((-400, -30), True, "certificate expired on"),
        ((10, 400), True, "certificate not valid before"),
        ((-1, 365), False, "KeyUsage without keyCertSign"),
    ],
    ids=["expired_ca", "not_yet_valid_ca", "ca_without_key_cert_sign"],
)
def test_a_ca_vouches_only_while_valid_and_allowed_to_sign_certificates(
    tmp_path: Path, days: tuple[int, int], key_cert_sign: bool, problem: str
) -> None:
    """RFC 5280 §4.2.1.3, §6.1: the CA certificate's own validity period and keyCertSign; its leaves, valid and
    signed by its key, are then from no configured CA (the same refusal as an unknown issuer)."""
    key = rsa_key()
    ca = make_cert("Client CA", key, ca=True, extended=None, key_usage="none", days=days,
                   key_cert_sign=key_cert_sign)
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(PEM))
    leaf = make_cert("admin", rsa_key(), issuer=(ca, key))
    authority = ClientAuthority(tmp_path / "ca.pem")
    assert authority.check() == [] and certificate_problem(leaf, NOW) is None
    assert authority.issuer_of(leaf, NOW) is None
    problems, warnings = authority.ca_problems(NOW)
    label = f"{tmp_path / 'ca.pem'}: CA CN=Client CA,O=sts tests"
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{label}: {problem}") and problems[0].endswith("; it vouches for no certificate")
    assert warnings == []


def test_a_good_ca_vouches_until_it_expires_and_warns_before(ca: tuple[x509.Certificate, object, Path]) -> None:
    cert, key, path = ca
    authority = ClientAuthority(path)
    leaf = make_cert("admin", rsa_key(), issuer=(cert, key))  # type: ignore[arg-type]
    assert authority.issuer_of(leaf, NOW) == cert and authority.ca_problems(NOW) == ([], [])
    soon = cert.not_valid_after_utc - dt.timedelta(days=10)
    assert authority.issuer_of(leaf, soon) == cert
    assert authority.ca_problems(soon)[1] == [f"{path}: CA CN=Client CA,O=sts tests: certificate expires on "
                                              f"{cert.not_valid_after_utc:%Y-%m-%d}"]
    assert authority.issuer_of(leaf, cert.not_valid_after_utc) is None


def test_a_bundle_without_a_ca_certificate_is_a_problem(tmp_path: Path) -> None:
    (tmp_path / "leaf.pem").write_bytes(make_cert("leaf", rsa_key()).public_bytes(PEM))
    (tmp_path / "nobc.pem").write_bytes(_bare(rsa_key()).public_bytes(PEM))  # no BasicConstraints at all
    for name in ("leaf.pem", "nobc.pem"):
        assert ClientAuthority(tmp_path / name).check() == [f"{tmp_path / name}: no CA certificate"]
    assert ClientAuthority(tmp_path / "missing.pem").check() == ["client CA files unreadable: FileNotFoundError"]


def test_the_crl_is_honoured_and_fails_closed(ca: tuple[x509.Certificate, object, Path], tmp_path: Path) -> None:
    cert, key, path = ca
    good = make_cert("admin", rsa_key(), issuer=(cert, key))  # type: ignore[arg-type]
    bad = make_cert("admin", rsa_key(), issuer=(cert, key))  # type: ignore[arg-type]
    crl = tmp_path / "ca.crl"
    crl.write_bytes(make_crl((cert, key), [bad.serial_number]))  # type: ignore[arg-type]
    authority = ClientAuthority(path, crl)
    assert not authority.revoked(good, cert, NOW)
    assert authority.revoked(bad, cert, NOW)
    # DER works too; a changed file is re-read.
    der = x509.load_pem_x509_crl(crl.read_bytes()).public_bytes(serialization.Encoding.DER)
    crl.write_bytes(der)
    os.utime(crl, ns=(1, 1))
    assert authority.revoked(bad, cert, NOW) and not authority.revoked(good, cert, NOW)
    # P03: a CRL past its nextUpdate refuses every certificate of the CA.
    assert authority.revoked(good, cert, NOW + dt.timedelta(days=8))  # the CRL's nextUpdate is in 7 days
    # A CRL by another key (not the CA's) is no CRL for it: fail closed.
    crl.write_bytes(make_crl((cert, rsa_key()), []))  # type: ignore[arg-type]
    assert authority.revoked(good, cert, NOW)
    # Unreadable: fail closed, and the CA issues nothing any more.
    crl.write_bytes(b"garbage")
    assert authority.revoked(good, cert, NOW)
    assert authority.issuer_of(good, NOW) is None


def test_a_certificate_with_a_malformed_extension_is_refused_not_an_error() -> None:
    """Extensions are parsed lazily: a garbled one in a certificate from the message is a refusal, not a crash."""
    garbled = x509.UnrecognizedExtension(x509.ExtensionOID.EXTENDED_KEY_USAGE, b"\x01\x02")
    assert certificate_problem(_bare(rsa_key(), extensions=(garbled,)), NOW) == "certificate_malformed"


def test_crl_problems_for_check_config(ca: tuple[x509.Certificate, object, Path], tmp_path: Path) -> None:
    cert, key, path = ca
    crl = tmp_path / "ca.crl"
    assert ClientAuthority(path).crl_problems(NOW) == []  # no CRL configured
    crl.write_bytes(make_crl((cert, key), []))  # type: ignore[arg-type]
    authority = ClientAuthority(path, crl)
    assert authority.crl_problems(NOW) == []
    assert "past its nextUpdate" in authority.crl_problems(NOW + dt.timedelta(days=8))[0]
    crl.write_bytes(make_crl((cert, rsa_key()), []))  # type: ignore[arg-type]
    assert "not signed by a configured client CA" in authority.crl_problems(NOW)[0]
    crl.write_bytes(b"garbage")
    assert authority.crl_problems(NOW) == []  # unreadable: check() reports it
    assert authority.check() == ["client CA files unreadable: ValueError"]


def test_changed_ca_and_crl_files_are_read_once_by_requests_arriving_together(
    ca: tuple[x509.Certificate, object, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CA bundle and CRL are read again when they change (a CRL is republished hourly or daily, and may list
    many thousands of serials): requests on several threads that found them changed each read, parsed and verified
    them again. Eight at once after each of six changes: the files read once a change, every verdict right."""
    from sts.crypto import client_certs

    cert, key, path = ca
    crl = path.parent / "ca.crl"
    issued = make_cert("admin", rsa_key(), issuer=(cert, key))
    revoked = make_cert("revoked", rsa_key(), issuer=(cert, key))
    reads: list[bytes] = []
    original = client_certs.load_crls

    def counting(data: bytes) -> tuple[x509.CertificateRevocationList, ...]:
        reads.append(data)
        return original(data)

    monkeypatch.setattr(client_certs, "load_crls", counting)
    authority = ClientAuthority(path, crl)
    for change in range(6):
        crl.write_bytes(make_crl((cert, key), [revoked.serial_number, 1000 + change]))  # type: ignore[arg-type]
        os.utime(crl, ns=(change * 10**9, change * 10**9))  # another modification time: another file version
        reads.clear()
        start = threading.Barrier(8, timeout=30)
        verdicts: list[tuple[bool, bool]] = []

        def check(ready: threading.Barrier = start, into: list[tuple[bool, bool]] = verdicts) -> None:
            ready.wait()
            into.append((authority.revoked(issued, cert, NOW), authority.revoked(revoked, cert, NOW)))

        threads = [threading.Thread(target=check) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert verdicts == [(False, True)] * 8
        assert len(reads) == 1, change
