"""Outbound WS-Security encryption of the STS's responses (XML Encryption 1.1; WSS 1.1 §9).

A fresh AES key per response wrapped with RSA-OAEP (``rsa-oaep-mgf1p``, SHA-1 digest: what WSS4J, Rampart and
WCF read by default) for the client certificate that verified the request (scenario 5), or the request's own key
(scenario 8); data with AES-256-GCM (12-byte IV, 16-byte tag) or, per endpoint setting, AES-256-CBC with the
XML Encryption padding (XML Encryption 1.1 §5.2).
"""

from __future__ import annotations

import secrets

from cryptography import x509
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.asymmetric import padding as asymmetric_padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sts.crypto.wss_decrypt import AES256_CBC, AES256_GCM

RESPONSE_CIPHERS = (AES256_GCM, AES256_CBC)


def new_key() -> bytes:
    """A fresh 256-bit data key."""
    return secrets.token_bytes(32)


def wrap_key(certificate: x509.Certificate, key: bytes) -> bytes:
    """``key`` encrypted with RSA-OAEP (MGF1-SHA1, SHA-1 digest) for ``certificate``'s RSA key; ValueError for
    a certificate without one."""
    public = certificate.public_key()
    if not isinstance(public, rsa.RSAPublicKey):
        raise ValueError("the client certificate has no RSA key to encrypt the response to")
    oaep = asymmetric_padding.OAEP(asymmetric_padding.MGF1(hashes.SHA1()), hashes.SHA1(), None)  # noqa: S303
    return public.encrypt(key, oaep)


def encrypt_data(algorithm: str, key: bytes, plaintext: bytes) -> bytes:
    """The CipherValue octets: IV ‖ ciphertext ‖ tag (GCM) or IV ‖ ciphertext (CBC)."""
    if algorithm == AES256_GCM:
        iv = secrets.token_bytes(12)
        return iv + AESGCM(key).encrypt(iv, plaintext, None)
    if algorithm == AES256_CBC:
        iv = secrets.token_bytes(16)
        padder = padding.PKCS7(128).padder()  # PKCS#7 bytes satisfy XML Encryption's last-byte rule
        padded = padder.update(plaintext) + padder.finalize()
        encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
        return iv + encryptor.update(padded) + encryptor.finalize()
    raise ValueError("unsupported response cipher")
