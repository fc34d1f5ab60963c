"""Signed (and encrypted) sample assertions and their keys, for the tests of token inspection."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree

from sts import ns
from sts.crypto import keygen
from sts.crypto.encrypter import EncryptionPolicy, TokenEncrypter
from sts.crypto.signer import AssertionSigner

RP = "https://rp.example.com/app/"
EMAIL = "http://wso2.org/claims/emailaddress"
GIVEN = "http://wso2.org/claims/givenname"


@dataclass(frozen=True)
class Keys:
    """The STS's signing key and certificate, someone else's certificate, the relying party's key pair."""

    sts_key: rsa.RSAPrivateKey
    sts_cert: x509.Certificate
    other_cert: x509.Certificate
    rp_key: rsa.RSAPrivateKey
    rp_cert: x509.Certificate


@dataclass(frozen=True)
class KeyFiles:
    """The keys as files: the RP's private key, the STS certificate, another certificate."""

    rp_key: Path
    sts_cert: Path
    other_cert: Path


def make_keys() -> Keys:
    """Fresh 2048-bit keys (fast to generate)."""
    sts_key, other_key, rp_key = (keygen.generate_rsa_key(2048) for _ in range(3))
    return Keys(
        sts_key,
        keygen.self_signed_certificate(sts_key, "STS signing"),
        keygen.self_signed_certificate(other_key, "someone else"),
        rp_key,
        keygen.self_signed_certificate(rp_key, "relying party"),
    )


def key_files(directory: Path, keys: Keys) -> KeyFiles:
    """Write the keys into ``directory``."""
    files = KeyFiles(directory / "rp.key.pem", directory / "sts.crt.pem", directory / "other.crt.pem")
    keygen.write_private_key(files.rp_key, keys.rp_key)
    keygen.write_certificate(files.sts_cert, keys.sts_cert)
    keygen.write_certificate(files.other_cert, keys.other_cert)
    return files


def saml2_assertion() -> etree._Element:
    """An unsigned SAML 2.0 assertion with every part inspection shows."""
    q = lambda local: f"{{{ns.SAML2}}}{local}"  # noqa: E731
    assertion = etree.Element(
        q("Assertion"), nsmap={"saml2": ns.SAML2}, ID="_abc123", Version="2.0", IssueInstant="2026-01-01T12:00:00Z"
    )
    etree.SubElement(assertion, q("Issuer")).text = "https://sts.example.com/"
    subject = etree.SubElement(assertion, q("Subject"))
    name_id = etree.SubElement(subject, q("NameID"), Format="urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified")
    name_id.text = "alice"
    confirmation = etree.SubElement(subject, q("SubjectConfirmation"), Method="urn:oasis:names:tc:SAML:2.0:cm:bearer")
    etree.SubElement(confirmation, q("SubjectConfirmationData"), Recipient=RP, NotOnOrAfter="2026-01-01T12:30:00Z")
    conditions = etree.SubElement(
        assertion, q("Conditions"), NotBefore="2026-01-01T12:00:00Z", NotOnOrAfter="2026-01-01T12:30:00Z"
    )
    etree.SubElement(etree.SubElement(conditions, q("AudienceRestriction")), q("Audience")).text = RP
    authn = etree.SubElement(assertion, q("AuthnStatement"), AuthnInstant="2026-01-01T12:00:00Z")
    context = etree.SubElement(etree.SubElement(authn, q("AuthnContext")), q("AuthnContextClassRef"))
    context.text = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
    statement = etree.SubElement(assertion, q("AttributeStatement"))
    for name, values in ((EMAIL, ["alice@example.com"]), (GIVEN, ["Alice", "Ally"])):
        attribute = etree.SubElement(statement, q("Attribute"), Name=name)
        for value in values:
            etree.SubElement(attribute, q("AttributeValue")).text = value
    return assertion


def saml11_assertion() -> etree._Element:
    """An unsigned SAML 1.1 assertion with an attribute statement."""
    q = lambda local: f"{{{ns.SAML1}}}{local}"  # noqa: E731
    assertion = etree.Element(
        q("Assertion"),
        nsmap={"saml": ns.SAML1},
        AssertionID="_s11",
        MajorVersion="1",
        MinorVersion="1",
        Issuer="https://sts.example.com/",
        IssueInstant="2026-01-01T12:00:00Z",
    )
    conditions = etree.SubElement(
        assertion, q("Conditions"), NotBefore="2026-01-01T12:00:00Z", NotOnOrAfter="2026-01-01T12:30:00Z"
    )
    etree.SubElement(etree.SubElement(conditions, q("AudienceRestrictionCondition")), q("Audience")).text = RP
    statement = etree.SubElement(assertion, q("AttributeStatement"))
    subject = etree.SubElement(statement, q("Subject"))
    etree.SubElement(subject, q("NameIdentifier")).text = "bob"
    confirmation = etree.SubElement(subject, q("SubjectConfirmation"))
    etree.SubElement(confirmation, q("ConfirmationMethod")).text = "urn:oasis:names:tc:SAML:1.0:cm:bearer"
    attribute = etree.SubElement(
        statement, q("Attribute"), AttributeNamespace="http://wso2.org/claims", AttributeName="emailaddress"
    )
    etree.SubElement(attribute, q("AttributeValue")).text = "bob@example.com"
    return assertion


def signed_saml2(keys: Keys, assertion: etree._Element | None = None) -> etree._Element:
    """``assertion`` (default: :func:`saml2_assertion`) signed by the STS key."""
    return AssertionSigner(keys.sts_key, keys.sts_cert).sign_saml2(
        assertion if assertion is not None else saml2_assertion()
    )


def encrypted_saml2(keys: Keys) -> etree._Element:
    """Sign, then encrypt the standalone assertion for the RP, then wrap the EncryptedData (as the STS does)."""
    signed = signed_saml2(keys)
    encrypted = TokenEncrypter(keys.rp_cert, EncryptionPolicy()).encrypt(etree.fromstring(etree.tostring(signed)))
    wrapper = etree.Element(f"{{{ns.SAML2}}}EncryptedAssertion", nsmap={"saml2": ns.SAML2})
    wrapper.append(encrypted)
    return wrapper


def write(directory: Path, name: str, element: etree._Element) -> Path:
    """Serialize ``element`` into ``directory/name``."""
    path = directory / name
    path.write_bytes(etree.tostring(element))
    return path
