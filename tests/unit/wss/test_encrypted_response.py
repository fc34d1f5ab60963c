"""Encrypted answers of scenarios 5 and 8 (sts.wss.encrypted_response): signed over the plaintext Body, then the
Body encrypted; read back here with python-xmlsec and cryptography as a client would."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import secrets

import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from lxml import etree

from sts import ns
from sts.clock import FrozenClock
from sts.crypto.message_keys import MessageKeys
from sts.crypto.wss_decrypt import AES256_CBC, AES256_GCM, data_cipher, decrypt_data
from sts.crypto.wss_sign import thumbprint_sha1
from sts.soapenv import SoapVersion
from sts.wss.encrypted_response import ENCRYPTED_KEY_SHA1, EncryptedResponder, encrypted_key_sha1

S = "http://schemas.xmlsoap.org/soap/envelope/"
NOW = dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def _identity(name: str) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    key = rsa.generate_private_key(65537, 2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(7).not_valid_before(NOW - dt.timedelta(days=1)).not_valid_after(NOW + dt.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    return key, cert


STS_KEY, STS_CERT = _identity("sts")
CLIENT_KEY, CLIENT_CERT = _identity("client")


def _answer() -> etree._Element:
    return etree.fromstring(f'<s:Envelope xmlns:s="{S}"><s:Header/><s:Body><wst:RequestSecurityTokenResponseCollection '
                            f'xmlns:wst="{ns.WST}"><wst:X>secret</wst:X></wst:RequestSecurityTokenResponseCollection>'
                            "</s:Body></s:Envelope>")


def _decrypt_body(envelope: etree._Element, key: bytes, algorithm: str) -> None:
    body = envelope[1]
    (data,) = body
    value = base64.b64decode(data.findtext(f"{{{ns.XENC}}}CipherData/{{{ns.XENC}}}CipherValue") or "")
    result = decrypt_data(data_cipher(algorithm, allow_cbc=True), key, value)
    assert result.ok
    body.remove(data)
    body.append(etree.fromstring(result.plaintext))


def _verify(envelope: etree._Element, key: xmlsec.Key) -> etree._Element:
    (signature,) = envelope.iter(f"{{{ns.DS}}}Signature")
    ctx = xmlsec.SignatureContext()
    ctx.key = key
    for element in envelope.iter():
        if element.get(f"{{{ns.WSU}}}Id"):
            ctx.register_id(element, "Id", ns.WSU)
    ctx.verify(signature)
    return signature


def test_scenario5_answer_is_signed_then_encrypted_to_the_verified_client() -> None:
    envelope = _answer()
    responder = EncryptedResponder(MessageKeys.fixed(STS_KEY, STS_CERT), FrozenClock(NOW), AES256_GCM)
    responder.asymmetric(CLIENT_CERT, ("cmVxdWVzdCBzaWduYXR1cmU=",))(envelope, SoapVersion.SOAP11)
    assert b"secret" not in etree.tostring(envelope)
    security = envelope[0][0]
    assert [etree.QName(c).localname for c in security] == ["Timestamp", "SignatureConfirmation", "EncryptedKey",
                                                            "Signature"]
    encrypted_key = security[2]
    assert encrypted_key.findtext(f".//{{{ns.WSSE}}}KeyIdentifier") == thumbprint_sha1(CLIENT_CERT)
    wrapped = base64.b64decode(encrypted_key.findtext(f".//{{{ns.XENC}}}CipherValue") or "")
    oaep = padding.OAEP(padding.MGF1(hashes.SHA1()), hashes.SHA1(), None)  # noqa: S303 - WSS4J's default OAEP
    key = CLIENT_KEY.decrypt(wrapped, oaep)
    _decrypt_body(envelope, key, AES256_GCM)
    sts_key = xmlsec.Key.from_memory(STS_CERT.public_bytes(serialization.Encoding.PEM), xmlsec.KeyFormat.CERT_PEM)
    signature = _verify(envelope, sts_key)
    uris = [r.get("URI") for r in signature.iter(f"{{{ns.DS}}}Reference")]
    assert len(uris) == 3 and uris[-1] == "#" + envelope[1].get(f"{{{ns.WSU}}}Id", "")
    assert security[1].get("Value") == "cmVxdWVzdCBzaWduYXR1cmU="
    assert envelope[1][0][0].text == "secret"


def test_scenario8_answer_uses_the_request_key_named_by_encrypted_key_sha1() -> None:
    envelope = _answer()
    key, wrapped = secrets.token_bytes(32), secrets.token_bytes(256)
    responder = EncryptedResponder(MessageKeys.fixed(STS_KEY, STS_CERT), FrozenClock(NOW), AES256_CBC)
    responder.symmetric(key, wrapped, ("c2ln",))(envelope, SoapVersion.SOAP11)
    security = envelope[0][0]
    assert [etree.QName(c).localname for c in security] == ["Timestamp", "SignatureConfirmation", "ReferenceList",
                                                            "Signature"]
    name = base64.b64encode(hashlib.sha1(wrapped).digest()).decode()  # noqa: S324 - the profile's key name
    assert encrypted_key_sha1(wrapped) == name
    identifiers = list(envelope.iter(f"{{{ns.WSSE}}}KeyIdentifier"))
    assert len(identifiers) == 2 and {i.get("ValueType") for i in identifiers} == {ENCRYPTED_KEY_SHA1}
    assert {i.text for i in identifiers} == {name}
    _decrypt_body(envelope, key, AES256_CBC)
    signature = _verify(envelope, xmlsec.Key.from_binary_data(xmlsec.constants.KeyDataHmac, key))
    method = signature.find(f".//{{{ns.DS}}}SignatureMethod")
    assert method is not None and method.get("Algorithm", "").endswith("hmac-sha256")
