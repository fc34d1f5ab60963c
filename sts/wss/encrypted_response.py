"""Response security of the encrypting scenarios (WSS 1.1 §8.5 SignatureConfirmation, §9 encryption).

SigEncr (WSO2 scenario 5, asymmetric binding): Timestamp, one SignatureConfirmation per request signature, the
STS's RSA signature over Timestamp, confirmations and the *plaintext* Body (KeyInfo: the STS certificate by
ThumbprintSHA1), then the Body's content encrypted under a fresh key wrapped for the client certificate that
verified the request, never one named by the request (the EncryptedKey names it by ThumbprintSHA1).

SgnEncrUsername (scenario 8, symmetric binding): the same parts, signed with HMAC under the request's key K and the
Body encrypted with K; both name K by ``EncryptedKeySHA1`` (the client already holds K, so no EncryptedKey is sent).

Sign first, then encrypt (WS-SecurityPolicy 1.2 §6.3 ``SignBeforeEncrypting``, the default), and the decryption
information precedes the Signature in the header, so a receiver processing the header in order decrypts before it
verifies. Faults get none of this.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Callable

from cryptography import x509
from lxml import etree

from sts import ns
from sts.clock import Clock
from sts.crypto.message_keys import MessageKeys
from sts.crypto.wss_decrypt import RSA_OAEP_MGF1P
from sts.crypto.wss_encrypt import encrypt_data, new_key, wrap_key
from sts.crypto.wss_sign import HmacSigner, thumbprint_reference, thumbprint_sha1
from sts.soapenv import SoapVersion
from sts.wss.response import add_security_header

WSS11 = "http://docs.oasis-open.org/wss/oasis-wss-soap-message-security-1.1#"
ENCRYPTED_KEY_TYPE = WSS11 + "EncryptedKey"
ENCRYPTED_KEY_SHA1 = WSS11 + "EncryptedKeySHA1"
THUMBPRINT_SHA1 = WSS11 + "ThumbprintSHA1"
CONTENT = ns.XENC + "Content"

Protector = Callable[[etree._Element, SoapVersion], None]


def encrypted_key_sha1(wrapped: bytes) -> str:
    """Base64 SHA-1 of an EncryptedKey's CipherValue octets (WSS 1.1 §7.3, ``EncryptedKeySHA1``): a key's name."""
    return base64.b64encode(hashlib.sha1(wrapped).digest()).decode("ascii")  # noqa: S324 - the profile's name


class EncryptedResponder:
    """Builds the per-request response protection of scenarios 5 and 8."""

    def __init__(self, keys: MessageKeys, clock: Clock, cipher: str, legacy_sha1: bool = False) -> None:
        self._keys = keys
        self._clock = clock
        self._cipher = cipher
        self._legacy_sha1 = legacy_sha1

    def asymmetric(self, client: x509.Certificate, confirmations: tuple[str, ...]) -> Protector:
        """Scenario 5: sign with the STS key, encrypt the Body to ``client`` (the verified request signer)."""

        def protect(envelope: etree._Element, version: SoapVersion) -> None:
            security, targets, body = self._prepare(envelope, version, confirmations)
            sts_key = self._keys.signing()
            signature = sts_key.signer.sign(security, targets, thumbprint_reference(sts_key.certificate))
            key = new_key()
            wrapped = wrap_key(client, key)
            key_id = f"_ek{uuid.uuid4().hex}"
            data_id = self._encrypt_body(body, key, _key_reference(ENCRYPTED_KEY_TYPE, key_id=key_id))
            signature.addprevious(_encrypted_key(key_id, client, wrapped, data_id))

        return protect

    def symmetric(self, key: bytes, wrapped: bytes, confirmations: tuple[str, ...]) -> Protector:
        """Scenario 8: HMAC with the request's key K and the Body encrypted with K (``wrapped``: K as the request's
        EncryptedKey carried it, which names K)."""
        name = encrypted_key_sha1(wrapped)

        def protect(envelope: etree._Element, version: SoapVersion) -> None:
            security, targets, body = self._prepare(envelope, version, confirmations)
            signer = HmacSigner(key, legacy_sha1=self._legacy_sha1)
            signature = signer.sign(security, targets, _key_reference(ENCRYPTED_KEY_SHA1, name=name))
            data_id = self._encrypt_body(body, key, _key_reference(ENCRYPTED_KEY_SHA1, name=name))
            references = etree.Element(ns.qn(ns.XENC, "ReferenceList"), nsmap={"xenc": ns.XENC})
            etree.SubElement(references, ns.qn(ns.XENC, "DataReference"), URI="#" + data_id)
            signature.addprevious(references)

        return protect

    def _prepare(
        self, envelope: etree._Element, version: SoapVersion, confirmations: tuple[str, ...]
    ) -> tuple[etree._Element, list[etree._Element], etree._Element]:
        security, timestamp = add_security_header(envelope, version, self._clock)
        targets = [timestamp]
        for value in confirmations:
            confirmation = etree.SubElement(security, ns.qn(ns.WSSE11, "SignatureConfirmation"),
                                            nsmap={"wsse11": ns.WSSE11})
            confirmation.set(ns.qn(ns.WSU, "Id"), f"_sc{uuid.uuid4().hex}")
            confirmation.set("Value", value)
            targets.append(confirmation)
        body = envelope.find(ns.qn(version.namespace, "Body"))
        if body is None:
            raise ValueError("answer envelope without Body")
        body.set(ns.qn(ns.WSU, "Id"), f"_body{uuid.uuid4().hex}")
        targets.append(body)
        return security, targets, body

    def _encrypt_body(self, body: etree._Element, key: bytes, key_reference: etree._Element) -> str:
        """Replace the Body's content by a ``#Content`` EncryptedData under ``key``; return its Id."""
        plaintext = (body.text or "").encode() + b"".join(etree.tostring(child) for child in body)
        data_id = f"_ed{uuid.uuid4().hex}"
        for child in list(body):
            body.remove(child)
        body.text = None
        data = etree.SubElement(body, ns.qn(ns.XENC, "EncryptedData"), nsmap={"xenc": ns.XENC}, Id=data_id,
                                Type=CONTENT)
        etree.SubElement(data, ns.qn(ns.XENC, "EncryptionMethod"), Algorithm=self._cipher)
        etree.SubElement(data, ns.qn(ns.DS, "KeyInfo"), nsmap={"ds": ns.DS}).append(key_reference)
        cipher_data = etree.SubElement(data, ns.qn(ns.XENC, "CipherData"))
        value = base64.b64encode(encrypt_data(self._cipher, key, plaintext)).decode("ascii")
        etree.SubElement(cipher_data, ns.qn(ns.XENC, "CipherValue")).text = value
        return data_id


def _key_reference(token_type: str, *, key_id: str = "", name: str = "") -> etree._Element:
    """An STR of ``wsse11:TokenType`` EncryptedKey: a Reference to ``key_id``, or an EncryptedKeySHA1 ``name``."""
    reference = etree.Element(ns.qn(ns.WSSE, "SecurityTokenReference"), nsmap={"wsse": ns.WSSE, "wsse11": ns.WSSE11})
    reference.set(ns.qn(ns.WSSE11, "TokenType"), ENCRYPTED_KEY_TYPE)
    if key_id:
        etree.SubElement(reference, ns.qn(ns.WSSE, "Reference"), URI="#" + key_id, ValueType=ENCRYPTED_KEY_TYPE)
    else:
        identifier = etree.SubElement(reference, ns.qn(ns.WSSE, "KeyIdentifier"))
        identifier.set("EncodingType", ns.BASE64_BINARY)
        identifier.set("ValueType", token_type)
        identifier.text = name
    return reference


def _encrypted_key(key_id: str, client: x509.Certificate, wrapped: bytes, data_id: str) -> etree._Element:
    """The EncryptedKey for the client certificate (named by ThumbprintSHA1), listing the EncryptedData."""
    encrypted = etree.Element(ns.qn(ns.XENC, "EncryptedKey"), nsmap={"xenc": ns.XENC}, Id=key_id)
    etree.SubElement(encrypted, ns.qn(ns.XENC, "EncryptionMethod"), Algorithm=RSA_OAEP_MGF1P)
    key_info = etree.SubElement(encrypted, ns.qn(ns.DS, "KeyInfo"), nsmap={"ds": ns.DS})
    reference = etree.SubElement(key_info, ns.qn(ns.WSSE, "SecurityTokenReference"), nsmap={"wsse": ns.WSSE})
    identifier = etree.SubElement(reference, ns.qn(ns.WSSE, "KeyIdentifier"))
    identifier.set("EncodingType", ns.BASE64_BINARY)
    identifier.set("ValueType", THUMBPRINT_SHA1)
    identifier.text = thumbprint_sha1(client)
    cipher_data = etree.SubElement(encrypted, ns.qn(ns.XENC, "CipherData"))
    etree.SubElement(cipher_data, ns.qn(ns.XENC, "CipherValue")).text = base64.b64encode(wrapped).decode("ascii")
    references = etree.SubElement(encrypted, ns.qn(ns.XENC, "ReferenceList"))
    etree.SubElement(references, ns.qn(ns.XENC, "DataReference"), URI="#" + data_id)
    return encrypted
