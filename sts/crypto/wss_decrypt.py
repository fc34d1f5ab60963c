"""Inbound WS-Security encryption (XML Encryption 1.1; WSS 1.1 §9) and the pre-decryption signature check.

Everything here runs with :mod:`cryptography`, never ``xmlsec.EncryptionContext``: python-xmlsec parses decrypted
plaintext with its own libxml2 (no deny-all resolver), prints parser errors quoting the plaintext, and takes
measurably longer on a parse failure than on a padding failure.

* :func:`key_transport` / :func:`data_cipher`: the algorithm allow-lists. RSA-OAEP only (``rsa-1_5`` is refused
  before any private-key operation: Jager, Schinzel & Somorovsky, ESORICS 2012), AES-GCM always, AES-CBC only when
  the deployment allows it, Triple-DES never.
* :class:`KeyUnwrapper`: the RSA-OAEP unwrap. Any failure, or a key of the wrong length, yields a random key of the
  expected length instead (as WSS4J's ``EncryptedKeyProcessor.getRandomKey``): the request then fails later at the
  signature, with the same fault and a similar time, so unwrap failures are no oracle (Bleichenbacher, Manger).
* :func:`decrypt_data`: one EncryptedData's CipherValue. It never raises: a failure returns bytes of the same length
  as a success would, and ``ok=False``, so the caller runs the same parse on both paths (CBC padding oracle,
  Jager & Somorovsky, CCS 2011).
* :func:`signed_info_verifies` / :func:`reference_digest_matches`: the SignedInfo signature (RSA, ECDSA or HMAC) and
  one Reference digest checked before anything is decrypted, so that only authenticated messages reach decryption.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from lxml import etree

from sts import ns
from sts.crypto.wss_signature import INCLUSIVE_NAMESPACES, AlgorithmRefused

XENC = "http://www.w3.org/2001/04/xmlenc#"
XENC11 = "http://www.w3.org/2009/xmlenc11#"
RSA_OAEP_MGF1P = XENC + "rsa-oaep-mgf1p"
RSA_OAEP = XENC11 + "rsa-oaep"
RSA_15 = XENC + "rsa-1_5"
AES128_GCM, AES256_GCM = XENC11 + "aes128-gcm", XENC11 + "aes256-gcm"
AES128_CBC, AES256_CBC = XENC + "aes128-cbc", XENC + "aes256-cbc"
TRIPLEDES_CBC = XENC + "tripledes-cbc"
GCM_CIPHERS = {AES128_GCM: 16, AES256_GCM: 32}
CBC_CIPHERS = {AES128_CBC: 16, AES256_CBC: 32}
MAX_CIPHER_BYTES = 64 * 1024

# OAEP digest (ds:DigestMethod inside EncryptionMethod; absent means SHA-1, XML Encryption 1.1 §5.5.2) and MGF.
_OAEP_DIGESTS: dict[str, type[hashes.HashAlgorithm]] = {
    "": hashes.SHA1,
    "http://www.w3.org/2000/09/xmldsig#sha1": hashes.SHA1,
    "http://www.w3.org/2001/04/xmlenc#sha256": hashes.SHA256,
}
_MGFS: dict[str, type[hashes.HashAlgorithm]] = {
    "": hashes.SHA1,
    XENC11 + "mgf1sha1": hashes.SHA1,
    XENC11 + "mgf1sha256": hashes.SHA256,
}
_SIGNATURE_HASHES: dict[str, tuple[str, type[hashes.HashAlgorithm]]] = {
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256": ("rsa", hashes.SHA256),
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384": ("rsa", hashes.SHA384),
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512": ("rsa", hashes.SHA512),
    "http://www.w3.org/2000/09/xmldsig#rsa-sha1": ("rsa", hashes.SHA1),
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256": ("ecdsa", hashes.SHA256),
    "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256": ("hmac", hashes.SHA256),
    "http://www.w3.org/2000/09/xmldsig#hmac-sha1": ("hmac", hashes.SHA1),
}
_DIGESTS = {
    "http://www.w3.org/2001/04/xmlenc#sha256": "sha256",
    "http://www.w3.org/2001/04/xmldsig-more#sha384": "sha384",
    "http://www.w3.org/2001/04/xmlenc#sha512": "sha512",
    "http://www.w3.org/2000/09/xmldsig#sha1": "sha1",
}


@dataclass(frozen=True, slots=True)
class KeyTransport:
    """An allowed RSA-OAEP key transport: its OAEP digest and MGF1 digest."""

    digest: type[hashes.HashAlgorithm]
    mgf: type[hashes.HashAlgorithm]


@dataclass(frozen=True, slots=True)
class DataCipher:
    """An allowed data encryption algorithm and its key length in bytes."""

    algorithm: str
    key_length: int

    @property
    def is_gcm(self) -> bool:
        """AES-GCM (authenticated) rather than AES-CBC."""
        return self.algorithm in GCM_CIPHERS


def key_transport(algorithm: str, digest: str = "", mgf: str = "") -> KeyTransport:
    """The key transport named by an EncryptedKey's EncryptionMethod (XML Encryption 1.1 §5.5).

    ``rsa-oaep-mgf1p`` (MGF1 with SHA-1) or ``xmlenc11#rsa-oaep`` (MGF named by ``xenc11:MGF``), with a SHA-1 or
    SHA-256 OAEP digest. Anything else, RSA 1.5 above all, raises :class:`AlgorithmRefused`.
    """
    if algorithm not in (RSA_OAEP_MGF1P, RSA_OAEP) or digest not in _OAEP_DIGESTS or mgf not in _MGFS:
        raise AlgorithmRefused("key transport not allowed")
    if algorithm == RSA_OAEP_MGF1P and mgf:
        raise AlgorithmRefused("rsa-oaep-mgf1p takes no MGF")
    return KeyTransport(_OAEP_DIGESTS[digest], _MGFS[mgf])


def data_cipher(algorithm: str, *, allow_cbc: bool) -> DataCipher:
    """The data algorithm of an EncryptedData: AES-GCM, AES-CBC only when ``allow_cbc``; else AlgorithmRefused."""
    if algorithm in GCM_CIPHERS:
        return DataCipher(algorithm, GCM_CIPHERS[algorithm])
    if allow_cbc and algorithm in CBC_CIPHERS:
        return DataCipher(algorithm, CBC_CIPHERS[algorithm])
    raise AlgorithmRefused("data encryption algorithm not allowed")


class KeyUnwrapper:
    """Unwraps EncryptedKeys sent to the STS with its RSA private key."""

    def __init__(self, key: rsa.RSAPrivateKey) -> None:
        self._key = key

    @property
    def modulus_bytes(self) -> int:
        """The length a CipherValue for this key has."""
        return (self._key.key_size + 7) // 8

    def unwrap(self, wrapped: bytes, transport: KeyTransport, key_length: int) -> bytes:
        """The wrapped key, or on any failure a random key of ``key_length`` bytes (never an exception).

        Callers pass ``wrapped`` even when the EncryptedKey names another certificate: the private-key operation
        then fails here like a mangled one, at the same cost.
        """
        if len(wrapped) == self.modulus_bytes:
            oaep = padding.OAEP(padding.MGF1(transport.mgf()), transport.digest(), None)
            try:
                key = self._key.decrypt(wrapped, oaep)
            except ValueError:
                key = b""
        else:
            key = b""
        fallback = secrets.token_bytes(key_length)
        return key if len(key) == key_length else fallback


@dataclass(frozen=True, slots=True)
class Decrypted:
    """A decryption's output: the plaintext when ``ok``, else bytes of comparable length to parse and discard."""

    plaintext: bytes
    ok: bool


def decrypt_data(cipher: DataCipher, key: bytes, value: bytes) -> Decrypted:
    """Decrypt a CipherValue (IV ‖ ciphertext [‖ tag]) (XML Encryption 1.1 §5.2.2 CBC, §5.2.4 GCM).

    CBC padding: only the last byte (1-16) is meaningful (XML Encryption 1.1 §5.2, Santuario writes random filler).
    Never raises; the caller parses ``plaintext`` whatever ``ok`` says, then refuses when not ``ok``.
    """
    if len(key) != cipher.key_length:
        return Decrypted(value, False)
    if cipher.is_gcm:
        if len(value) < 12 + 16:
            return Decrypted(value, False)
        try:
            return Decrypted(AESGCM(key).decrypt(value[:12], value[12:], None), True)
        except InvalidTag:
            return Decrypted(value[12:-16], False)
    if len(value) < 32 or len(value) % 16:
        return Decrypted(value, False)
    decryptor = Cipher(algorithms.AES(key), modes.CBC(value[:16])).decryptor()
    padded = decryptor.update(value[16:]) + decryptor.finalize()
    pad = padded[-1]
    good = 1 <= pad <= 16
    # Both outcomes strip some bytes and hand back a same-sized buffer: the parse that follows costs the same.
    return Decrypted(padded[: len(padded) - (pad if good else 1)], good)


def base64_value(text: str, limit: int = MAX_CIPHER_BYTES) -> bytes | None:
    """A CipherValue/SignatureValue's octets, or None when it is not Base64 or larger than ``limit``."""
    compact = "".join(text.split())
    if len(compact) > limit * 4 // 3 + 4:
        return None
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        return None


def _child(parent: etree._Element | None, tag: str) -> etree._Element | None:
    """The first child named ``tag``, matched by comparing names: lxml's ``find`` can miss nodes that libxmlsec
    created (their names are not in the document's dictionary)."""
    if parent is None:
        return None
    return next((child for child in parent if child.tag == tag), None)


def _prefixes(parent: etree._Element) -> list[str] | None:
    inclusive = _child(parent, INCLUSIVE_NAMESPACES)
    if inclusive is None:
        return None
    return str(inclusive.get("PrefixList", "")).split() or None


def exclusive_c14n(element: etree._Element, prefixes: list[str] | None) -> bytes:
    """Exclusive XML Canonicalization 1.0 of ``element`` with the InclusiveNamespaces ``prefixes``."""
    return etree.tostring(element, method="c14n", exclusive=True, with_comments=False,
                          inclusive_ns_prefixes=prefixes)


def signed_info_verifies(
    signature: etree._Element, key: x509.Certificate | bytes, method: str, value: bytes
) -> bool:
    """Whether ``value`` (the decoded SignatureValue) signs ``signature``'s SignedInfo under ``method``.

    ``key`` is the trusted signer's certificate (RSA, ECDSA) or the symmetric key K (HMAC, full-length output).
    The SignedInfo's shape and algorithm were checked before (:func:`~sts.crypto.wss_signature.read_signed_info`).
    """
    signed_info = _child(signature, ns.qn(ns.DS, "SignedInfo"))
    c14n_method = _child(signed_info, ns.qn(ns.DS, "CanonicalizationMethod"))
    if signed_info is None or c14n_method is None or method not in _SIGNATURE_HASHES:
        return False
    data = exclusive_c14n(signed_info, _prefixes(c14n_method))
    kind, hash_type = _SIGNATURE_HASHES[method]
    if kind == "hmac":
        if not isinstance(key, bytes):
            return False
        return hmac.compare_digest(hmac.new(key, data, hash_type().name).digest(), value)
    if not isinstance(key, x509.Certificate):
        return False
    public = key.public_key()
    try:
        if kind == "rsa" and isinstance(public, rsa.RSAPublicKey):
            public.verify(value, data, padding.PKCS1v15(), hash_type())
            return True
        if kind == "ecdsa" and isinstance(public, ec.EllipticCurvePublicKey) and len(value) % 2 == 0:
            half = len(value) // 2
            der = encode_dss_signature(int.from_bytes(value[:half], "big"), int.from_bytes(value[half:], "big"))
            public.verify(der, data, ec.ECDSA(hash_type()))
            return True
    except InvalidSignature:
        return False
    return False


def reference_digest_matches(reference: etree._Element, element: etree._Element) -> bool:
    """Whether ``reference``'s DigestValue is the digest of ``element`` under its one exclusive-c14n Transform."""
    transform = _child(_child(reference, ns.qn(ns.DS, "Transforms")), ns.qn(ns.DS, "Transform"))
    method = _child(reference, ns.qn(ns.DS, "DigestMethod"))
    digest_value = _child(reference, ns.qn(ns.DS, "DigestValue"))
    if transform is None or method is None or digest_value is None:
        return False
    name = _DIGESTS.get(str(method.get("Algorithm", "")).strip())
    expected = base64_value(digest_value.text or "", 64)
    if name is None or expected is None:
        return False
    actual = hashlib.new(name, exclusive_c14n(element, _prefixes(transform))).digest()
    return hmac.compare_digest(actual, expected)
