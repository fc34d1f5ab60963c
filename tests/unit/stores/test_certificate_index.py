"""Tests for sts.stores.certificate_index: distinguished names compared as RFC 5280 §7.1 compares them, and the
IssuerSerial lookup of registered certificates on both backends (whatever string type the certificate's issuer
name has, with ambiguity still refused)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import NameOID

from sts.auth.passwords import HashPolicy, PasswordHasher
from sts.auth.users import PRIMARY
from sts.clock import FrozenClock
from sts.stores.certificate_index import MAX_SERIAL_CANDIDATES, same_name
from sts.stores.factory import Stores, build_stores
from tests.unit.stores.backends import BACKENDS, settings_with, store_settings
from tests.x509_support import make_cert, printable_name, rsa_key

FAST = PasswordHasher(HashPolicy(memory_kib=1024, time_cost=1))
NOW = datetime.now(UTC)


@pytest.fixture(params=BACKENDS)
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stores]:
    backend: str = request.param
    url = request.getfixturevalue("postgres_database") if backend == "postgresql" else ""
    built = build_stores(settings_with(tmp_path, store_settings(tmp_path, backend, url)), FrozenClock(NOW), FAST)
    built.builtin.add_user(PRIMARY, "svc-a", "Correct-Horse-1")
    built.builtin.add_user(PRIMARY, "svc-b", "Correct-Horse-1")
    yield built
    built.close()


def _name(text: str) -> x509.Name:
    """RFC 4514 text (last RDN first), each attribute's value kept as written between ``=`` and ``,``/``+``."""
    oids = {"CN": NameOID.COMMON_NAME, "O": NameOID.ORGANIZATION_NAME, "OU": NameOID.ORGANIZATIONAL_UNIT_NAME}
    rdns = []
    for rdn in reversed(text.split(",")):
        pairs = [part.split("=", 1) for part in rdn.split("+")]
        rdns.append(x509.RelativeDistinguishedName([x509.NameAttribute(oids[k], v) for k, v in pairs]))
    return x509.Name(rdns)


@pytest.mark.parametrize(
    ("named", "same"),
    [
        ("CN=keytool,O=sts tests", True),  # the text of ds:X509IssuerName, parsed (UTF8String)
        ("CN=KEYTOOL,O=STS Tests", True),  # case-insensitive (RFC 4518 §2.2)
        ("CN=  keytool ,O=sts   tests", True),  # insignificant spaces (RFC 4518 §2.6.1)
        ("CN=keytool,O=sts test", False),
        ("O=sts tests,CN=keytool", False),  # the RDNs in the other order
        ("CN=keytool", False),  # one RDN fewer
        ("CN=keytool,OU=sts tests", False),  # another attribute type with the same value
        ("CN=keytool+OU=x,O=sts tests", False),  # a multi-valued RDN is not the single-valued one
    ],
)
def test_names_compare_as_rfc_5280_section_7_1_says(named: str, same: bool) -> None:
    assert same_name(printable_name("keytool"), _name(named)) is same
    assert same_name(_name(named), printable_name("keytool")) is same


def test_a_multi_valued_rdn_compares_as_a_set() -> None:
    a = x509.Name([x509.RelativeDistinguishedName([
        x509.NameAttribute(NameOID.COMMON_NAME, "a", _type=_ASN1Type.PrintableString),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "b"),
    ])])
    assert same_name(a, _name("OU=B+CN=A")) and not same_name(a, _name("OU=A+CN=B"))


def _register(stores: Stores, user: str, cert: x509.Certificate) -> None:
    stores.builtin.add_certificate(PRIMARY, user, cert.public_bytes(Encoding.DER))


def test_issuer_serial_finds_a_printable_string_issued_certificate(stores: Stores) -> None:
    """Java keytool names are PrintableString; the issuer a request names is parsed from text (UTF8String)."""
    cert = make_cert("keytool", rsa_key(), subject=printable_name("keytool"))
    _register(stores, "svc-a", cert)
    registry = stores.certificates
    assert registry is not None
    for text in ("CN=keytool,O=sts tests", "CN= Keytool,O=STS  tests "):
        found = registry.find(issuer_serial=(_name(text), cert.serial_number))
        assert found is not None and (found.certificate, found.name) == (cert, "svc-a")
    assert registry.find(issuer_serial=(_name("CN=keytool,O=other"), cert.serial_number)) is None
    assert registry.find(issuer_serial=(_name("CN=keytool,O=sts tests"), cert.serial_number + 1)) is None


def test_issuer_serial_picks_the_issuer_among_certificates_sharing_a_serial(stores: Stores) -> None:
    first = make_cert("first", rsa_key(), serial=4242, subject=printable_name("first"))
    second = make_cert("second", rsa_key(), serial=4242)
    _register(stores, "svc-a", first)
    _register(stores, "svc-b", second)
    registry = stores.certificates
    assert registry is not None
    found = registry.find(issuer_serial=(_name("CN=second,O=sts tests"), 4242))
    assert found is not None and (found.certificate, found.name) == (second, "svc-b")
    found = registry.find(issuer_serial=(_name("CN=first,O=sts tests"), 4242))
    assert found is not None and (found.certificate, found.name) == (first, "svc-a")


def test_an_ambiguous_issuer_serial_is_refused(stores: Stores) -> None:
    """Two registered certificates that differ only in the string types of one issuer name, with one serial number:
    the reference names both, so it names neither."""
    _register(stores, "svc-a", make_cert("twin", rsa_key(), serial=77, subject=printable_name("twin")))
    _register(stores, "svc-b", make_cert("twin", rsa_key(), serial=77))
    registry = stores.certificates
    assert registry is not None
    assert registry.find(issuer_serial=(_name("CN=twin,O=sts tests"), 77)) is None


def test_too_many_certificates_sharing_a_serial_are_not_scanned(stores: Stores) -> None:
    """Past MAX_SERIAL_CANDIDATES the lookup refuses instead of reading every one on an unauthenticated request."""
    key = rsa_key()
    for index in range(MAX_SERIAL_CANDIDATES + 1):
        _register(stores, "svc-a", make_cert(f"device-{index}", key, serial=1))
    registry = stores.certificates
    assert registry is not None
    assert registry.find(issuer_serial=(_name("CN=device-0,O=sts tests"), 1)) is None
