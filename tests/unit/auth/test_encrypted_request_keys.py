"""Which STS key an inbound EncryptedKey names (sts.auth.encrypted_requests.EncryptedRequestOpener._named)."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from lxml import etree

from sts import ns
from sts.auth.encrypted_requests import EncryptedRequestOpener
from sts.crypto.message_keys import MessageKeys
from sts.wss.x509_token import TokenReference, read_token_reference
from tests.x509_support import make_cert, rsa_key

ISSUER = x509.Name([
    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example Org"),
    x509.NameAttribute(NameOID.COMMON_NAME, "STS Issuing CA"),
])


@pytest.fixture(scope="module")
def keys() -> MessageKeys:
    ca_key, key = rsa_key(), rsa_key()
    ca = make_cert("unused", ca_key, ca=True, subject=ISSUER, extended=None, key_usage="none")
    return MessageKeys.fixed(key, make_cert("sts", key, issuer=(ca, ca_key), serial=4242))


def _reference(issuer: str, serial: int) -> TokenReference:
    """The X509IssuerSerial reference an EncryptedKey's KeyInfo carries, read as the STS reads it."""
    security = etree.Element(ns.qn(ns.WSSE, "Security"), nsmap={"wsse": ns.WSSE, "ds": ns.DS})
    reference = etree.SubElement(security, ns.qn(ns.WSSE, "SecurityTokenReference"))
    issuer_serial = etree.SubElement(etree.SubElement(reference, ns.qn(ns.DS, "X509Data")),
                                     ns.qn(ns.DS, "X509IssuerSerial"))
    etree.SubElement(issuer_serial, ns.qn(ns.DS, "X509IssuerName")).text = issuer
    etree.SubElement(issuer_serial, ns.qn(ns.DS, "X509SerialNumber")).text = str(serial)
    return read_token_reference(reference, security)


@pytest.mark.parametrize(
    "written", ["CN=STS Issuing CA,O=Example Org", "CN=sts issuing ca, O=EXAMPLE  ORG"], ids=["as_issued", "case"]
)
def test_an_issuer_serial_names_the_sts_key_in_any_spelling_of_its_issuer(keys: MessageKeys, written: str) -> None:
    """RFC 5280 §7.1: names compare without regard to case and insignificant spaces, as clients write them."""
    assert EncryptedRequestOpener._named(_reference(written, 4242), keys.recipients()) is keys.signing()


@pytest.mark.parametrize(
    ("written", "serial"), [("CN=STS Issuing CA,O=Example Org", 4243), ("CN=Other CA,O=Example Org", 4242)]
)
def test_another_serial_or_issuer_names_no_sts_key(keys: MessageKeys, written: str, serial: int) -> None:
    assert EncryptedRequestOpener._named(_reference(written, serial), keys.recipients()) is None
