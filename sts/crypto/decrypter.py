"""Decryption of tokens encrypted for a relying party: used by ``sts token inspect`` and the self-test.

Inbound algorithms are allow-listed before anything is decrypted (python-xmlsec would also decrypt RSA 1.5 and CBC
input if asked, which would make the STS a decryption oracle).
"""

from __future__ import annotations

import xmlsec
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree

from sts import ns
from sts.crypto.algorithms import DataCipher, KeyTransport

_ALLOWED = {c.value for c in DataCipher} | {k.value for k in KeyTransport}


class DecryptionRejected(Exception):
    """The ciphertext uses an algorithm outside the allow-list, or does not decrypt."""


class TokenDecrypter:
    """Decrypts ``xenc:EncryptedData`` with a relying party's private key."""

    def __init__(self, key: rsa.RSAPrivateKey) -> None:
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        self._manager = xmlsec.KeysManager()
        self._manager.add_key(xmlsec.Key.from_memory(pem, xmlsec.constants.KeyDataFormatPem))

    def decrypt(self, encrypted_data: etree._Element) -> etree._Element:
        """Decrypt and return the plaintext element (parsed on its own, as a relying party would)."""
        for method in encrypted_data.iter(ns.qn(ns.XENC, "EncryptionMethod")):
            if method.get("Algorithm") not in _ALLOWED:
                raise DecryptionRejected("encryption algorithm not allowed")
        # Work on a private copy: xmlsec replaces the EncryptedData in its tree.
        holder = etree.Element("holder")
        holder.append(etree.fromstring(etree.tostring(encrypted_data)))
        try:
            result = xmlsec.EncryptionContext(self._manager).decrypt(holder[0])
        except xmlsec.Error as exc:
            raise DecryptionRejected("decryption failed") from exc
        if not isinstance(result, etree._Element):
            raise DecryptionRejected("decrypted content is not an element")
        return etree.fromstring(etree.tostring(result))
