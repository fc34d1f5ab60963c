"""Tests for sts.wss.response and sts.crypto.wss_sign: the STS's signed SigOnly answers (verifiable with the STS
certificate named by ThumbprintSHA1), certificatemixed's Timestamp-only answers, and the signer's key handling."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec
from lxml import etree

from sts import ns
from sts.clock import FrozenClock
from sts.crypto.message_keys import MessageKeys
from sts.crypto.wss_sign import WssSigner, load_signing_key, thumbprint_reference
from sts.crypto.wss_signature import read_signed_info, verify_signature
from sts.soapenv import SoapVersion
from sts.wss.response import SignedResponder, TimestampResponder
from tests.x509_support import make_cert, rsa_key

CLOCK = FrozenClock(datetime(2030, 1, 2, 3, 4, 5, 678000, tzinfo=UTC))
WSU_ID = ns.qn(ns.WSU, "Id")


def _answer(version: SoapVersion, header: bool = True) -> etree._Element:
    envelope = etree.Element(ns.qn(version.namespace, "Envelope"))
    if header:
        etree.SubElement(envelope, ns.qn(version.namespace, "Header"))
    etree.SubElement(etree.SubElement(envelope, ns.qn(version.namespace, "Body")), "{urn:x}RSTR")
    return envelope


@pytest.mark.parametrize("version", [SoapVersion.SOAP11, SoapVersion.SOAP12])
def test_a_signed_answer_verifies_with_the_sts_certificate(version: SoapVersion) -> None:
    key = rsa_key()
    cert = make_cert("sts", key)
    envelope = _answer(version, header=version is SoapVersion.SOAP11)
    SignedResponder(MessageKeys.fixed(key, cert), CLOCK)(envelope, version)
    envelope = etree.fromstring(etree.tostring(envelope))  # as the client parses it
    security = envelope[0].find(ns.qn(ns.WSSE, "Security"))
    assert security is not None
    assert security.get(ns.qn(version.namespace, "mustUnderstand")) in ("1", "true")
    timestamp, signature = security[0], security[1]
    assert timestamp.findtext(ns.qn(ns.WSU, "Created")) == "2030-01-02T03:04:05.678Z"
    facts = read_signed_info(signature, legacy_sha1=False)
    body = envelope[-1]
    assert set(facts.reference_ids) == {timestamp.get(WSU_ID), body.get(WSU_ID)}
    identifier = facts.token_reference[0]
    der = cert.public_bytes(serialization.Encoding.DER)
    assert identifier.text == base64.b64encode(hashlib.sha1(der).digest()).decode()  # noqa: S324
    referents = {str(timestamp.get(WSU_ID)): (timestamp, ns.WSU), str(body.get(WSU_ID)): (body, ns.WSU)}
    verify_signature(signature, referents, cert, legacy_sha1=False)


def test_an_answer_without_a_body_cannot_be_signed() -> None:
    key = rsa_key()
    envelope = _answer(SoapVersion.SOAP11)
    envelope.remove(envelope[-1])
    with pytest.raises(ValueError, match="without Body"):
        SignedResponder(MessageKeys.fixed(key, make_cert("sts", key)), CLOCK)(envelope, SoapVersion.SOAP11)


def test_certificatemixed_answers_carry_an_unsigned_timestamp() -> None:
    envelope = _answer(SoapVersion.SOAP12)
    TimestampResponder(CLOCK)(envelope, SoapVersion.SOAP12)
    security = envelope[0][0]
    assert [etree.QName(child).localname for child in security] == ["Timestamp"]
    assert security[0].findtext(ns.qn(ns.WSU, "Expires")) == "2030-01-02T03:09:05.678Z"


def test_ec_keys_sign_with_ecdsa_and_targets_need_an_id() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    signer = WssSigner(load_signing_key(pem))
    envelope = _answer(SoapVersion.SOAP11)
    security = etree.SubElement(envelope[0], ns.qn(ns.WSSE, "Security"))
    body = envelope[-1]
    body.set(WSU_ID, "b-1")
    signature = signer.sign(security, [body], thumbprint_reference(make_cert("c", rsa_key())))
    assert read_signed_info(signature, legacy_sha1=False).signature_method.endswith("ecdsa-sha256")
    with pytest.raises(ValueError, match="without wsu:Id"):
        signer.sign(security, [envelope[-1][0]], thumbprint_reference(make_cert("c", rsa_key())))


def test_only_rsa_and_ec_private_keys_load() -> None:
    dsa_pem = dsa.generate_private_key(2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(ValueError):
        load_signing_key(dsa_pem)
