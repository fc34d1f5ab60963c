"""Tests for the client CA's CRLs (sts.crypto.client_crl through ClientAuthority): only a complete, current CRL of
the CA counts (RFC 5280 §5.2, §5.3, §6.3.3), anything else fails closed and is reported; the CRL is verified when
the file is read, not on every request; one file may hold one CRL per CA."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ObjectIdentifier

from sts.crypto.client_certs import ClientAuthority
from tests.x509_support import make_cert, make_crl, rsa_key

NOW = dt.datetime.now(dt.UTC)
PEM = serialization.Encoding.PEM
PRIVATE = ObjectIdentifier("1.3.6.1.4.1.99999.1")
Ca = tuple[x509.Certificate, rsa.RSAPrivateKey]


def _ca(name: str = "Client CA", **kwargs: object) -> Ca:
    key = rsa_key()
    cert = make_cert(name, key, ca=True, extended=None, key_usage="none", days=(-1, 365), **kwargs)  # type: ignore[arg-type]
    return cert, key


def _idp(**flags: object) -> x509.IssuingDistributionPoint:
    args: dict[str, object] = {
        "full_name": None, "relative_name": None, "only_contains_user_certs": False, "only_contains_ca_certs": False,
        "only_some_reasons": None, "indirect_crl": False, "only_contains_attribute_certs": False}
    return x509.IssuingDistributionPoint(**{**args, **flags})  # type: ignore[arg-type]


def _authority(tmp_path: Path, cas: list[Ca], crl: bytes) -> ClientAuthority:
    (tmp_path / "ca.pem").write_bytes(b"".join(cert.public_bytes(PEM) for cert, _ in cas))
    (tmp_path / "ca.crl").write_bytes(crl)
    return ClientAuthority(tmp_path / "ca.pem", tmp_path / "ca.crl")


@pytest.fixture(scope="module")
def ca() -> Ca:
    return _ca()


@pytest.fixture(scope="module")
def leaf(ca: Ca) -> x509.Certificate:
    return make_cert("admin", rsa_key(), issuer=ca)


UNUSABLE = {
    # §5.2.4: a delta CRL lists only the changes since a base CRL.
    "delta_crl": ({"extensions": [(x509.DeltaCRLIndicator(5), True)]}, "a delta CRL"),
    # §5.2.5: an IssuingDistributionPoint that leaves end-entity certificates or some reasons out.
    "only_ca_certs": ({"extensions": [(_idp(only_contains_ca_certs=True), True)]}, "no end-entity certificates"),
    "only_attribute_certs": ({"extensions": [(_idp(only_contains_attribute_certs=True), True)]},
                             "no end-entity certificates"),
    "only_some_reasons": ({"extensions": [(_idp(only_some_reasons=frozenset({x509.ReasonFlags.key_compromise})),
                                           True)]}, "only some revocation reasons"),
    "indirect": ({"extensions": [(_idp(indirect_crl=True), True)]}, "an indirect CRL"),
    # §5.2, §5.3: a critical extension we do not process.
    "unknown_critical": ({"extensions": [(x509.UnrecognizedExtension(PRIVATE, b"\x05\x00"), True)]},
                         "unsupported critical extension"),
    "unknown_critical_entry": ({"entry_extensions": [(x509.UnrecognizedExtension(PRIVATE, b"\x05\x00"), True)]},
                               "unsupported critical entry extension"),
    "certificate_issuer_entry": ({"entry_extensions": [(x509.CertificateIssuer([x509.DNSName("other.example")]),
                                                        True)]}, "unsupported critical entry extension"),
    # §5.1.2.4: not valid before its thisUpdate.
    "future_this_update": ({"this_update_hours": 48}, "thisUpdate in the future"),
}


@pytest.mark.parametrize("case", sorted(UNUSABLE))
def test_a_crl_that_is_not_the_complete_current_list_fails_closed(ca: Ca, leaf: x509.Certificate, tmp_path: Path,
                                                                  case: str) -> None:
    kwargs, problem = UNUSABLE[case]
    authority = _authority(tmp_path, [ca], make_crl(ca, [x509.random_serial_number()], **kwargs))  # type: ignore[arg-type]
    assert authority.revoked(leaf, ca[0], NOW)  # not listed, yet refused: the CRL cannot clear it
    problems = authority.crl_problems(NOW)
    assert len(problems) == 1 and problem in problems[0] and "refused" in problems[0], problems


def test_a_crl_of_a_ca_without_crl_sign_fails_closed(tmp_path: Path) -> None:
    """§6.3.3 (f): the CRL issuer's KeyUsage must assert cRLSign."""
    no_crl_sign = _ca(crl_sign=False)
    leaf = make_cert("admin", rsa_key(), issuer=no_crl_sign)
    authority = _authority(tmp_path, [no_crl_sign], make_crl(no_crl_sign, []))
    assert authority.issuer_of(leaf, NOW) is not None  # it may still issue certificates
    assert authority.revoked(leaf, no_crl_sign[0], NOW)
    assert "lacks cRLSign" in authority.crl_problems(NOW)[0]


def test_processed_and_non_critical_extensions_keep_a_crl_usable(ca: Ca, leaf: x509.Certificate,
                                                                 tmp_path: Path) -> None:
    listed = make_cert("admin", rsa_key(), issuer=ca)
    extensions = [(x509.CRLNumber(7), False),
                  (x509.AuthorityKeyIdentifier.from_issuer_public_key(ca[1].public_key()), False),
                  (_idp(only_contains_user_certs=True), True),  # the scope of every client certificate
                  (x509.UnrecognizedExtension(PRIVATE, b"\x05\x00"), False)]  # non-critical: may be ignored
    entries = [(x509.CRLReason(x509.ReasonFlags.key_compromise), False), (x509.InvalidityDate(NOW), False),
               (x509.UnrecognizedExtension(PRIVATE, b"\x05\x00"), False)]
    crl = make_crl(ca, [listed.serial_number], extensions=extensions, entry_extensions=entries)
    authority = _authority(tmp_path, [ca], crl)
    assert not authority.revoked(leaf, ca[0], NOW)
    assert authority.revoked(listed, ca[0], NOW)
    assert authority.crl_problems(NOW) == []


def test_a_crl_of_user_certificates_does_not_clear_a_ca_certificate(ca: Ca, leaf: x509.Certificate,
                                                                    tmp_path: Path) -> None:
    """§6.3.3 (b)(2): onlyContainsUserCerts says nothing about a certificate with cA asserted."""
    sub_ca = make_cert("admin", rsa_key(), issuer=ca, ca=True, key_usage="digitalSignature")
    authority = _authority(tmp_path, [ca], make_crl(ca, [], extensions=[(_idp(only_contains_user_certs=True), True)]))
    assert not authority.revoked(leaf, ca[0], NOW)
    assert authority.revoked(sub_ca, ca[0], NOW)


def test_a_crl_for_one_distribution_point_clears_only_its_certificates(ca: Ca, tmp_path: Path) -> None:
    """§6.3.3 (b)(1): a CRL whose IssuingDistributionPoint names a point covers the certificates naming it."""
    point = "http://crl.example/part1.crl"
    crl = make_crl(ca, [], extensions=[(_idp(full_name=[x509.UniformResourceIdentifier(point)]), True)])
    authority = _authority(tmp_path, [ca], crl)
    assert authority.crl_problems(NOW) == []
    covered = make_cert("admin", rsa_key(), issuer=ca, crl_points=["ldap://x", point])
    assert not authority.revoked(covered, ca[0], NOW)
    assert authority.revoked(make_cert("admin", rsa_key(), issuer=ca, crl_points=["http://crl.example/part2.crl"]),
                             ca[0], NOW)
    assert authority.revoked(make_cert("admin", rsa_key(), issuer=ca), ca[0], NOW)  # names no point at all


class _CountingCrl:
    """A CRL that counts its signature checks (cryptography's CRL class cannot be patched)."""

    def __init__(self, crl: x509.CertificateRevocationList, checks: list[int]) -> None:
        self._crl, self._checks = crl, checks

    def is_signature_valid(self, key: object) -> bool:
        self._checks.append(1)
        return self._crl.is_signature_valid(key)  # type: ignore[arg-type]

    def __getattr__(self, name: str) -> object:
        return getattr(self._crl, name)

    def __iter__(self) -> Iterator[x509.RevokedCertificate]:
        return iter(self._crl)

    def __len__(self) -> int:
        return len(self._crl)


def test_the_crl_signature_is_checked_when_the_file_is_read_not_per_request(
    ca: Ca, leaf: x509.Certificate, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request (reachable before its own signature is checked) costs no CRL signature check; a changed file is
    verified again, once."""
    checks: list[int] = []
    load = x509.load_pem_x509_crl
    monkeypatch.setattr(x509, "load_pem_x509_crl", lambda data: _CountingCrl(load(data), checks))
    listed = make_cert("admin", rsa_key(), issuer=ca)
    authority = _authority(tmp_path, [ca], make_crl(ca, []))
    for _ in range(5):
        assert not authority.revoked(listed, ca[0], NOW)
    assert len(checks) == 1
    (tmp_path / "ca.crl").write_bytes(make_crl(ca, [listed.serial_number]))
    os.utime(tmp_path / "ca.crl", ns=(1, 1))
    for _ in range(5):
        assert authority.revoked(listed, ca[0], NOW)
        assert not authority.revoked(leaf, ca[0], NOW)
    assert len(checks) == 2


def test_a_crl_bundle_holds_one_crl_per_ca(ca: Ca, leaf: x509.Certificate, tmp_path: Path) -> None:
    other = _ca("Other CA")
    revoked_other = make_cert("admin", rsa_key(), issuer=other)
    good_other = make_cert("admin", rsa_key(), issuer=other)
    authority = _authority(tmp_path, [ca, other], make_crl(ca, []) + make_crl(other, [revoked_other.serial_number]))
    assert not authority.revoked(leaf, ca[0], NOW)
    assert not authority.revoked(good_other, other[0], NOW)
    assert authority.revoked(revoked_other, other[0], NOW)
    assert authority.crl_problems(NOW) == []


def test_a_ca_without_exactly_one_crl_in_the_file_fails_closed(ca: Ca, leaf: x509.Certificate,
                                                               tmp_path: Path) -> None:
    other = _ca("Other CA")
    good_other = make_cert("admin", rsa_key(), issuer=other)
    authority = _authority(tmp_path, [ca, other], make_crl(ca, []))  # none for the other CA
    assert not authority.revoked(leaf, ca[0], NOW)
    assert authority.revoked(good_other, other[0], NOW)
    assert authority.crl_problems(NOW) == [
        f"{tmp_path / 'ca.crl'}: CA CN=Other CA,O=sts tests: no CRL of this CA in the file; every certificate it"
        " issued is refused"]
    # Two CRLs of one CA (an old and a new one?): ambiguous, neither is used.
    authority = _authority(tmp_path, [ca], make_crl(ca, []) + make_crl(ca, [], next_update_days=3))
    assert authority.revoked(leaf, ca[0], NOW)
    assert "more than one CRL of this CA" in authority.crl_problems(NOW)[0]
