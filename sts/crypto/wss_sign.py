"""Outbound WS-Security signatures: the STS's signed responses and the sample client's signed requests.

Detached exclusive-c14n signatures over ``wsu:Id``-carrying elements of one envelope, RSA-SHA256 (or ECDSA-SHA256
for an EC key) with SHA-256 digests (WSS 1.1 §8; WS-SecurityPolicy 1.2 §6.1 ``Basic256Sha256`` as WCF reads it),
made with python-xmlsec from a template. The key is parsed into xmlsec once per process (keys are not shared across
``fork()``).
"""

from __future__ import annotations

import base64
import hashlib
import os

import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from lxml import etree

from sts import ns

THUMBPRINT_SHA1 = "http://docs.oasis-open.org/wss/oasis-wss-soap-message-security-1.1#ThumbprintSHA1"
X509V3 = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3"

SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def thumbprint_sha1(cert: x509.Certificate) -> str:
    """Base64 SHA-1 of the certificate's DER (X.509 Token Profile 1.1 §3.2, ``ThumbprintSHA1``): a name, not a MAC."""
    der = cert.public_bytes(serialization.Encoding.DER)
    return base64.b64encode(hashlib.sha1(der).digest()).decode("ascii")  # noqa: S324 - the profile's identifier


def certificate_der(cert: x509.Certificate) -> bytes:
    """The certificate's DER encoding."""
    return cert.public_bytes(serialization.Encoding.DER)


def load_signing_key(pem: bytes, password: bytes | None = None) -> SigningKey:
    """An RSA or EC private key from PEM; ValueError for anything else."""
    key = serialization.load_pem_private_key(pem, password)
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ValueError("the key must be an RSA or EC private key")
    return key


class WssSigner:
    """Signs elements of an envelope with one key; the STR in KeyInfo is chosen by the caller."""

    def __init__(self, key: SigningKey) -> None:
        self._pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        self._method = xmlsec.constants.TransformEcdsaSha256 if isinstance(key, ec.EllipticCurvePrivateKey) else (
            xmlsec.constants.TransformRsaSha256
        )
        self._pid = -1
        self._key: xmlsec.Key | None = None

    def _xmlsec_key(self) -> xmlsec.Key:
        if self._key is None or self._pid != os.getpid():
            self._key = xmlsec.Key.from_memory(self._pem, xmlsec.constants.KeyDataFormatPem, None)
            self._pid = os.getpid()
        return self._key

    def sign(
        self, security: etree._Element, targets: list[etree._Element], token_reference: etree._Element
    ) -> etree._Element:
        """Append a ``ds:Signature`` over ``targets`` (each carrying a ``wsu:Id``) to ``security``; return it."""
        return _sign(security, targets, token_reference, self._method, self._xmlsec_key())


class HmacSigner:
    """Signs with a symmetric key: HMAC-SHA256 (WS-SecurityPolicy 1.2 §7.4 symmetric binding, WCF's reading of
    ``Basic256Sha256``), or HMAC-SHA1 with SHA-1 digests for legacy clients."""

    def __init__(self, key: bytes, *, legacy_sha1: bool = False) -> None:
        self._key = xmlsec.Key.from_binary_data(xmlsec.constants.KeyDataHmac, key)
        self._method = xmlsec.constants.TransformHmacSha1 if legacy_sha1 else xmlsec.constants.TransformHmacSha256
        self._digest = xmlsec.constants.TransformSha1 if legacy_sha1 else xmlsec.constants.TransformSha256

    def sign(
        self, security: etree._Element, targets: list[etree._Element], token_reference: etree._Element
    ) -> etree._Element:
        """Append a ``ds:Signature`` over ``targets`` (each carrying a ``wsu:Id``) to ``security``; return it."""
        return _sign(security, targets, token_reference, self._method, self._key, self._digest)


def _sign(
    security: etree._Element,
    targets: list[etree._Element],
    token_reference: etree._Element,
    method: xmlsec.constants.__Transform,
    key: xmlsec.Key,
    digest: xmlsec.constants.__Transform = xmlsec.constants.TransformSha256,
) -> etree._Element:
    signature = xmlsec.template.create(security.getroottree().getroot(), xmlsec.constants.TransformExclC14N, method,
                                       ns="ds")
    security.append(signature)
    ctx = xmlsec.SignatureContext()
    ctx.key = key
    for target in targets:
        identifier = target.get(ns.qn(ns.WSU, "Id"))
        if not identifier:
            raise ValueError("signed element without wsu:Id")
        reference = xmlsec.template.add_reference(signature, digest, uri="#" + identifier)
        xmlsec.template.add_transform(reference, xmlsec.constants.TransformExclC14N)
        ctx.register_id(target, "Id", ns.WSU)
    key_info = xmlsec.template.ensure_key_info(signature)
    key_info.append(token_reference)
    ctx.sign(signature)
    return signature


def thumbprint_reference(cert: x509.Certificate) -> etree._Element:
    """``wsse:SecurityTokenReference/wsse:KeyIdentifier`` naming ``cert`` by ThumbprintSHA1 (WSS 1.1 §7.3)."""
    reference = etree.Element(ns.qn(ns.WSSE, "SecurityTokenReference"), nsmap={"wsse": ns.WSSE})
    identifier = etree.SubElement(reference, ns.qn(ns.WSSE, "KeyIdentifier"))
    identifier.set("EncodingType", ns.BASE64_BINARY)
    identifier.set("ValueType", THUMBPRINT_SHA1)
    identifier.text = thumbprint_sha1(cert)
    return reference


def direct_reference(token_id: str) -> etree._Element:
    """``wsse:SecurityTokenReference/wsse:Reference`` to an X.509 BinarySecurityToken in the message."""
    reference = etree.Element(ns.qn(ns.WSSE, "SecurityTokenReference"), nsmap={"wsse": ns.WSSE})
    etree.SubElement(reference, ns.qn(ns.WSSE, "Reference"), URI="#" + token_id, ValueType=X509V3)
    return reference
