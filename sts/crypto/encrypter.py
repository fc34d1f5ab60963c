"""Encryption of signed assertions for a relying party (XML Encryption 1.1; SAML 2.0 core §2.3.4).

One :class:`TokenEncrypter` per relying-party certificate per worker. A fresh AES content key is generated per token
(``os.urandom``). python-xmlsec encrypts the element with it (``encrypt_xml``: the ``xenc:EncryptedData``, its
cipher and ``CipherValue``); the content key is then wrapped for the RP certificate with RSA-OAEP by
``cryptography`` (XML Encryption 1.1 §5.5.2), as the holder-of-key proof key is (:mod:`sts.crypto.keywrap`), into an
``xenc:EncryptedKey`` placed inside ``EncryptedData/ds:KeyInfo`` (§3.5.1) and naming the RP certificate.

Why the key transport is not left to xmlsec: given an ``EncryptedKey`` in the template, xmlsec looks the RP key up in a
keys manager and checks its type twice per token, and with OpenSSL 3 each check exports the key's parameters (about
half of all the instructions ``encrypt_xml`` spent per token, measured with callgrind); the RSA-OAEP operation itself
is the same. Both templates are built once, layout already stripped: ``encrypt_xml`` fills a copy of the
``EncryptedData`` one, and a copy of the ``ds:KeyInfo`` one takes the wrapped key.
"""

from __future__ import annotations

import base64
import copy
import os
import threading
from dataclasses import dataclass

import xmlsec
from cryptography import x509
from lxml import etree

from sts import ns
from sts.crypto.algorithms import DataCipher, KeyTransport
from sts.crypto.keywrap import cipher_value, encrypted_key_template, oaep_padding, rsa_public_key

_CIPHER_KEYS = {
    DataCipher.AES256_GCM: (xmlsec.constants.TransformAes256Gcm, 32),
    DataCipher.AES128_GCM: (xmlsec.constants.TransformAes128Gcm, 16),
    DataCipher.AES256_CBC: (xmlsec.constants.TransformAes256Cbc, 32),
}

_ENCRYPTION_METHOD = ns.qn(ns.XENC, "EncryptionMethod")


@dataclass(frozen=True, slots=True)
class EncryptionPolicy:
    """The algorithms one relying party receives."""

    cipher: DataCipher = DataCipher.AES256_GCM
    key_transport: KeyTransport = KeyTransport.RSA_OAEP_MGF1P


class TokenEncrypter:
    """Encrypts elements to one relying-party certificate."""

    def __init__(self, cert: x509.Certificate, policy: EncryptionPolicy) -> None:
        self._public = rsa_public_key(cert)
        self._oaep = oaep_padding(policy.key_transport)
        self._key_bytes = _CIPHER_KEYS[policy.cipher][1]
        self._template = _template(policy)
        self._key_info = _key_info(cert, policy)
        self._lock = threading.Lock()

    def encrypt(self, element: etree._Element) -> etree._Element:
        """Return an ``xenc:EncryptedData`` (Type Element) replacing ``element``, which is consumed."""
        content_key = os.urandom(self._key_bytes)
        context = xmlsec.EncryptionContext()
        context.key = xmlsec.Key.from_binary_data(xmlsec.constants.KeyDataAes, content_key)
        with self._lock:
            # The template lives in a document of its own: python-xmlsec copies it into the element's document
            # and fills the copy, so the one template serves every call (one at a time: the lock).
            encrypted = _encrypt_xml(context, self._template, element)
        key_info = copy.deepcopy(self._key_info)
        cipher_value(key_info[0]).text = base64.b64encode(self._public.encrypt(content_key, self._oaep)).decode("ascii")
        _method_of(encrypted).addnext(key_info)  # XML Encryption 1.1 §3.1: EncryptionMethod, KeyInfo, CipherData
        return encrypted


def _encrypt_xml(
    context: xmlsec.EncryptionContext, template: etree._Element, element: etree._Element
) -> etree._Element:
    """The library call alone: ``make bench`` times it apart from the work around it (bench/inprocess_profile.py)."""
    encrypted: etree._Element = context.encrypt_xml(template, element)
    return encrypted


def _template(policy: EncryptionPolicy) -> etree._Element:
    """The ``xenc:EncryptedData`` template of one policy (XML Encryption 1.1 §3.1), without layout:
    ``EncryptionMethod`` and ``CipherData``, the root of a document of its own, so that ``encrypt_xml`` copies it
    instead of filling it in place."""
    transform, _ = _CIPHER_KEYS[policy.cipher]
    template = xmlsec.template.encrypted_data_create(
        etree.Element("document"), transform, type=xmlsec.constants.TypeEncElement, ns="xenc"
    )
    xmlsec.template.encrypted_data_ensure_cipher_value(template)
    _strip_layout(template)
    own: etree._Element = copy.deepcopy(template)
    return own


def _key_info(cert: x509.Certificate, policy: EncryptionPolicy) -> etree._Element:
    """``ds:KeyInfo/xenc:EncryptedKey`` (XML Encryption 1.1 §3.5.1) with an empty ``CipherValue``, naming the RP
    certificate; ``rsa-oaep-mgf1p`` without a ``DigestMethod`` (its SHA-1 default), as tokens always had it."""
    key_info = etree.Element(ns.qn(ns.DS, "KeyInfo"), nsmap={"ds": ns.DS})
    key_info.append(encrypted_key_template(cert, policy.key_transport, sha1_digest_method=False))
    return key_info


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


def _method_of(encrypted: etree._Element) -> etree._Element:
    method = encrypted[0] if len(encrypted) else None
    if method is None or method.tag != _ENCRYPTION_METHOD:  # the template always writes it first
        raise ValueError("EncryptedData without EncryptionMethod")
    return method
