"""Encryption of signed assertions for a relying party with python-xmlsec (XML Encryption 1.1; SAML 2.0 core §2.3.4).

One :class:`TokenEncrypter` per relying-party certificate per worker: building an ``xmlsec.KeysManager`` can cost 16-25
ms (it may load the system CA bundle), so it is built once and reused. python-xmlsec releases the GIL while it works and
promises nothing about a keys manager used by several threads at once: one thread at a time uses it. A fresh AES content
key is generated per token. The ``xenc:EncryptedKey`` sits inside ``EncryptedData/ds:KeyInfo`` and names the RP
certificate.

The keys manager holds the RP's bare public key, not its certificate, and the template carries no ``ds:X509Data``:
given one, xmlsec decodes, parses and tries to verify the certificate on every call, and copies its X.509 data with
the key, which together cost as much as the encryption itself. The ``ds:KeyInfo`` naming the certificate is built
once and a copy is put into each ``EncryptedKey`` after encryption (it is not input to the encryption). The
``EncryptedData`` template is built once too, layout already stripped: ``encrypt_xml`` fills a copy of it.
"""

from __future__ import annotations

import base64
import copy
import os
import threading
from dataclasses import dataclass

import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from lxml import etree

from sts import ns
from sts.crypto.algorithms import DataCipher, KeyTransport

_CIPHER_KEYS = {
    DataCipher.AES256_GCM: (xmlsec.constants.TransformAes256Gcm, 256),
    DataCipher.AES128_GCM: (xmlsec.constants.TransformAes128Gcm, 128),
    DataCipher.AES256_CBC: (xmlsec.constants.TransformAes256Cbc, 256),
}

_ENCRYPTED_KEY = ns.qn(ns.XENC, "EncryptedKey")
_ENCRYPTION_METHOD = ns.qn(ns.XENC, "EncryptionMethod")


@dataclass(frozen=True, slots=True)
class EncryptionPolicy:
    """The algorithms one relying party receives."""

    cipher: DataCipher = DataCipher.AES256_GCM
    key_transport: KeyTransport = KeyTransport.RSA_OAEP_MGF1P


class TokenEncrypter:
    """Encrypts elements to one relying-party certificate."""

    def __init__(self, cert: x509.Certificate, policy: EncryptionPolicy) -> None:
        self._policy = policy
        self._bits = _CIPHER_KEYS[policy.cipher][1]
        self._template = _template(policy)
        self._key_info = _certificate_key_info(cert)
        self._manager = _keys_manager(cert)
        self._lock = threading.Lock()

    def encrypt(self, element: etree._Element) -> etree._Element:
        """Return an ``xenc:EncryptedData`` (Type Element) replacing ``element``, which is consumed."""
        with self._lock:
            context = xmlsec.EncryptionContext(self._manager)
            context.key = xmlsec.Key.generate(
                xmlsec.constants.KeyDataAes, self._bits, xmlsec.constants.KeyDataTypeSession
            )
            # The template lives in a document of its own: python-xmlsec copies it into the element's document
            # and fills the copy, so the one template serves every call (never two at once: the lock).
            encrypted = _encrypt_xml(context, self._template, element)
        method = _method_of(_encrypted_key(encrypted))
        method.addnext(copy.deepcopy(self._key_info))  # XML Encryption 1.1 §3.5.1: Method, KeyInfo, CipherData
        return encrypted


def _encrypt_xml(
    context: xmlsec.EncryptionContext, template: etree._Element, element: etree._Element
) -> etree._Element:
    """The library call alone: ``make bench`` times it apart from the work around it (bench/inprocess_profile.py)."""
    encrypted: etree._Element = context.encrypt_xml(template, element)
    return encrypted


def _template(policy: EncryptionPolicy) -> etree._Element:
    """The ``xenc:EncryptedData`` template of one policy (XML Encryption 1.1 §3.1, §3.5), without layout.

    ``EncryptionMethod``, ``ds:KeyInfo/xenc:EncryptedKey`` (its own method and ``CipherData``), ``CipherData``: the
    root of a document of its own, so that ``encrypt_xml`` copies it instead of filling it in place.
    """
    transform, _ = _CIPHER_KEYS[policy.cipher]
    template = xmlsec.template.encrypted_data_create(
        etree.Element("document"), transform, type=xmlsec.constants.TypeEncElement, ns="xenc"
    )
    xmlsec.template.encrypted_data_ensure_cipher_value(template)
    key_info = xmlsec.template.encrypted_data_ensure_key_info(template, ns="ds")
    encrypted_key = xmlsec.template.add_encrypted_key(key_info, xmlsec.constants.TransformRsaOaep)
    xmlsec.template.encrypted_data_ensure_cipher_value(encrypted_key)
    if policy.key_transport is KeyTransport.RSA_OAEP:
        _use_xmlenc11_oaep(_method_of(encrypted_key))
    _strip_layout(template)
    own: etree._Element = copy.deepcopy(template)
    return own


def _encrypted_key(encrypted: etree._Element) -> etree._Element:
    """``EncryptedData/ds:KeyInfo/xenc:EncryptedKey``, where the template put it."""
    encrypted_key = encrypted[1][0] if len(encrypted) > 1 and len(encrypted[1]) else None
    if encrypted_key is None or encrypted_key.tag != _ENCRYPTED_KEY:  # the template always has it there
        raise ValueError("EncryptedData without EncryptedKey")
    return encrypted_key


def _strip_layout(root: etree._Element) -> None:
    """Drop the indentation xmlsec's template writes between elements (once per template): responses stay compact.

    Encrypting writes only the base64 text of each ``CipherValue``, no layout of its own.

    Some relying-party libraries read the first child node of ``RequestedSecurityToken``, whitespace included.
    """
    for node in root.iter():
        if node.text is not None and not node.text.strip():
            node.text = None
        if node.tail is not None and not node.tail.strip():
            node.tail = None


def _certificate_key_info(cert: x509.Certificate) -> etree._Element:
    """``ds:KeyInfo/ds:X509Data/ds:X509Certificate`` naming the RP certificate (XML Signature §4.4.4)."""
    key_info = etree.Element(ns.qn(ns.DS, "KeyInfo"), nsmap={"ds": ns.DS})
    x509_data = etree.SubElement(key_info, ns.qn(ns.DS, "X509Data"))
    certificate = etree.SubElement(x509_data, ns.qn(ns.DS, "X509Certificate"))
    certificate.text = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode("ascii")
    return key_info


def _keys_manager(cert: x509.Certificate) -> xmlsec.KeysManager:
    # Opening the system CA bundle is what makes a KeysManager slow; no CA store is needed to encrypt.
    saved = {name: os.environ.pop(name) for name in ("SSL_CERT_FILE", "SSL_CERT_DIR") if name in os.environ}
    try:
        manager = xmlsec.KeysManager()
        public_key = cert.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        manager.add_key(xmlsec.Key.from_memory(public_key, xmlsec.constants.KeyDataFormatPem))
    finally:
        os.environ.update(saved)
    return manager


def _method_of(encrypted_key: etree._Element) -> etree._Element:
    method = encrypted_key[0] if len(encrypted_key) else None
    if method is None or method.tag != _ENCRYPTION_METHOD:  # add_encrypted_key always writes it first
        raise ValueError("EncryptedKey without EncryptionMethod")
    return method


def _use_xmlenc11_oaep(method: etree._Element) -> None:
    """Rewrite the key-transport method as xmlenc11#rsa-oaep with SHA-256 and MGF1-SHA-256 (no xmlsec constant)."""
    method.set("Algorithm", KeyTransport.RSA_OAEP.value)
    digest = etree.SubElement(method, ns.qn(ns.DS, "DigestMethod"), nsmap={"ds": ns.DS})
    digest.set("Algorithm", "http://www.w3.org/2001/04/xmlenc#sha256")
    mgf = etree.SubElement(method, ns.qn(ns.XENC11, "MGF"), nsmap={"xenc11": ns.XENC11})
    mgf.set("Algorithm", "http://www.w3.org/2009/xmlenc11#mgf1sha256")
