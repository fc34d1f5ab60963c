"""Holder-of-key material: the symmetric proof key wrapped for the relying party, and the client's UseKey.

The proof key travels to the RP as ``xenc:EncryptedKey`` (RSA-OAEP, never RSA 1.5) inside the assertion's subject
confirmation, naming the RP certificate in its ``ds:KeyInfo`` (SAML 2.0 core §2.4.1.3 KeyInfoConfirmationDataType; XML
Encryption 1.1 §3.5 EncryptedKey).
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from lxml import etree

from sts import ns
from sts.crypto.algorithms import KeyTransport
from sts.crypto.keystore import MIN_RSA_BITS, Validity, check_certificate, check_validity, load_certificate
from sts.xmlutil import text_of

X509V3 = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3"
MAX_CERT_BYTES = 16 * 1024
_LOG = logging.getLogger("sts.clients")


class UseKeyRejected(Exception):
    """A UseKey that is malformed, of an unsupported form, or of an unacceptable key."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def oaep_padding(transport: KeyTransport) -> padding.OAEP:
    """RSA-OAEP as ``transport`` fixes it: ``rsa-oaep-mgf1p`` with SHA-1 digest and MGF1 (XML Encryption 1.0
    §5.4.2), ``xmlenc11#rsa-oaep`` with SHA-256 and MGF1-SHA-256, as the ``DigestMethod`` and ``MGF`` this STS
    writes say (XML Encryption 1.1 §5.5.2)."""
    # SHA-1 here is a key-transport padding parameter, not a signature use of SHA-1.
    digest: hashes.HashAlgorithm = hashes.SHA1() if transport is KeyTransport.RSA_OAEP_MGF1P else hashes.SHA256()  # noqa: S303
    return padding.OAEP(mgf=padding.MGF1(digest), algorithm=digest, label=None)


def rsa_public_key(cert: x509.Certificate) -> rsa.RSAPublicKey:
    """The relying party's RSA key, or ValueError (key transport is RSA-OAEP only)."""
    public = cert.public_key()
    if not isinstance(public, rsa.RSAPublicKey):
        raise ValueError("relying-party certificate without an RSA key")
    return public


def encrypted_key_template(
    cert: x509.Certificate, transport: KeyTransport, *, sha1_digest_method: bool = True
) -> etree._Element:
    """``xenc:EncryptedKey`` for the holder of ``cert``'s private key with an empty ``CipherValue`` (XML Encryption
    1.1 §3.5.1): its method (``xmlenc11#rsa-oaep`` with its SHA-256 ``DigestMethod`` and ``MGF``; ``rsa-oaep-mgf1p``
    with its SHA-1 default written out unless ``sha1_digest_method`` is false), a ``ds:KeyInfo/ds:X509Data``
    naming the certificate (XML Signature §4.5.4), its cipher data. :func:`cipher_value` is the element to fill."""
    encrypted = etree.Element(ns.qn(ns.XENC, "EncryptedKey"), nsmap={"xenc": ns.XENC})
    method = etree.SubElement(encrypted, ns.qn(ns.XENC, "EncryptionMethod"), Algorithm=transport.value)
    if transport is KeyTransport.RSA_OAEP:
        etree.SubElement(method, ns.qn(ns.DS, "DigestMethod"), nsmap={"ds": ns.DS}).set(
            "Algorithm", "http://www.w3.org/2001/04/xmlenc#sha256"
        )
        etree.SubElement(method, ns.qn(ns.XENC11, "MGF"), nsmap={"xenc11": ns.XENC11}).set(
            "Algorithm", "http://www.w3.org/2009/xmlenc11#mgf1sha256"
        )
    elif sha1_digest_method:
        etree.SubElement(method, ns.qn(ns.DS, "DigestMethod"), nsmap={"ds": ns.DS}).set(
            "Algorithm", "http://www.w3.org/2000/09/xmldsig#sha1"
        )
    key_info = etree.SubElement(encrypted, ns.qn(ns.DS, "KeyInfo"), nsmap={"ds": ns.DS})
    x509_data = etree.SubElement(key_info, ns.qn(ns.DS, "X509Data"))
    etree.SubElement(x509_data, ns.qn(ns.DS, "X509Certificate")).text = _b64(
        cert.public_bytes(serialization.Encoding.DER)
    )
    etree.SubElement(etree.SubElement(encrypted, ns.qn(ns.XENC, "CipherData")), ns.qn(ns.XENC, "CipherValue"))
    return encrypted


def cipher_value(encrypted_key: etree._Element) -> etree._Element:
    """``EncryptedKey/CipherData/CipherValue`` of an :func:`encrypted_key_template`."""
    return encrypted_key[-1][0]


def wrap_key(cert: x509.Certificate, key: bytes, transport: KeyTransport) -> etree._Element:
    """``xenc:EncryptedKey`` carrying ``key`` for the holder of ``cert``'s private key."""
    cipher = rsa_public_key(cert).encrypt(key, oaep_padding(transport))
    encrypted = encrypted_key_template(cert, transport)
    cipher_value(encrypted).text = _b64(cipher)
    return encrypted


def unwrap_key(encrypted_key: etree._Element, key: rsa.RSAPrivateKey) -> bytes:
    """The relying party's side of :func:`wrap_key` (for tools and tests)."""
    method = encrypted_key.find(ns.qn(ns.XENC, "EncryptionMethod"))
    value = encrypted_key.findtext(f"{ns.qn(ns.XENC, 'CipherData')}/{ns.qn(ns.XENC, 'CipherValue')}")
    if method is None or value is None:
        raise ValueError("malformed EncryptedKey")
    transport = KeyTransport(method.get("Algorithm", ""))
    return key.decrypt(base64.b64decode(value), oaep_padding(transport))


class TrustedClientKeys:
    """Client keys a PublicKey token may be bound to: the certificates in a directory (PEM or DER).

    Until requests can be signed (the X.509 scenarios), the STS cannot see the caller prove it holds a UseKey (WS-Trust
    1.3 ``wst:UseKey``: possession is proven by a signature with that key); binding tokens only to keys an operator
    registered keeps an attacker from having a token issued for a key of their choosing. A key counts only while one of
    its registered certificates is within its validity period (checked at every use, so an expiring certificate stops
    counting without a restart; the log warns within 30 days of expiry). The certificates are re-read when the folder's
    listing (names, sizes, modification times) changes: only PublicKey requests ask, so a listing per call is cheap, and
    unlike the folder's own modification time it also sees a file replaced in place or added and removed within one
    tick.
    """

    def __init__(self, directory: Path | None) -> None:
        self._directory = directory
        self._stamp: tuple[tuple[str, int, int], ...] | None = None
        self._keys: dict[bytes, tuple[tuple[str, Validity], ...]] = {}
        self._noted: set[tuple[str, float, str]] = set()

    def contains(self, public: rsa.RSAPublicKey, now: dt.datetime) -> bool:
        """Whether this public key belongs to a registered client certificate that is valid at ``now``."""
        self._refresh(now)
        registered = self._keys.get(_spki(public), ())
        for name, validity in registered:
            if validity.valid_at(now):
                if validity.expires_soon(now):
                    self._note_once(name, validity, now)
                return True
        for name, validity in registered:
            self._note_once(name, validity, now)
        return False

    def _refresh(self, now: dt.datetime) -> None:
        if self._directory is None:
            return
        try:
            stamp = _listing(self._directory)
        except OSError:
            self._keys, self._stamp = {}, None
            return
        if stamp == self._stamp:
            return
        keys: dict[bytes, list[tuple[str, Validity]]] = {}
        for path in sorted(self._directory.iterdir()):
            try:
                cert = load_certificate(path)
            except (OSError, ValueError):
                continue
            public = cert.public_key()
            if isinstance(public, rsa.RSAPublicKey):
                validity = Validity.of(cert)
                keys.setdefault(_spki(public), []).append((path.name, validity))
                if validity.expires_soon(now):
                    self._note_once(path.name, validity, now)
        self._keys, self._stamp = {key: tuple(certs) for key, certs in keys.items()}, stamp

    def _note_once(self, name: str, validity: Validity, now: dt.datetime) -> None:
        """Log a client certificate that is expiring (warning) or unusable by date (error), once per worker."""
        label, refused = f"client certificate {name}", "its key is refused for UseKey"
        if validity.valid_at(now):
            kind, message = "expiring", f"{label}: expires on {validity.not_after:%Y-%m-%d}"
        elif validity.not_after <= now:
            kind, message = "expired", f"{label}: expired on {validity.not_after:%Y-%m-%d}; {refused}"
        else:
            kind, message = "early", f"{label}: not valid before {validity.not_before:%Y-%m-%d}; {refused}"
        key = (name, validity.not_after.timestamp(), kind)
        if key not in self._noted:
            self._noted.add(key)
            (_LOG.warning if kind == "expiring" else _LOG.error)(message)


def _spki(public: rsa.RSAPublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


@dataclass(frozen=True, slots=True)
class ClientKey:
    """The requestor's public key from ``wst:UseKey`` (WS-Trust 1.3 §9.2): a certificate, or a bare RSA key.

    Typed so that a PublicKey token's key can be kept with the token and checked again at renewal without
    reading XML a second time; :meth:`encoded` / :meth:`decoded` are its stored form (DER).
    """

    material: x509.Certificate | rsa.RSAPublicKey

    def encoded(self) -> tuple[str, bytes]:
        """``("x509", certificate DER)`` or ``("rsa", SubjectPublicKeyInfo DER)``."""
        if isinstance(self.material, x509.Certificate):
            return "x509", self.material.public_bytes(serialization.Encoding.DER)
        return "rsa", _spki(self.material)

    @classmethod
    def decoded(cls, form: str, der: bytes) -> ClientKey:
        """The key :meth:`encoded` wrote; ValueError for anything else."""
        if form == "x509":
            return cls(x509.load_der_x509_certificate(der))
        public = serialization.load_der_public_key(der) if form == "rsa" else None
        if not isinstance(public, rsa.RSAPublicKey):
            raise ValueError("not a stored client key")
        return cls(public)

    def same_key(self, certificate: x509.Certificate) -> bool:
        """Whether this is ``certificate``'s public key (as the certificate itself or as a bare key)."""
        spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        mine = self.material.public_key() if isinstance(self.material, x509.Certificate) else self.material
        return bool(mine.public_bytes(*spki) == certificate.public_key().public_bytes(*spki))

    def key_info(self) -> etree._Element:
        """The ``ds:KeyInfo`` an assertion's holder-of-key confirmation names the key with: the certificate as
        ``X509Data``, a bare key as a canonical ``RSAKeyValue`` (XML Signature §4.5.2.2)."""
        key_info = etree.Element(ns.qn(ns.DS, "KeyInfo"), nsmap={"ds": ns.DS})
        if isinstance(self.material, x509.Certificate):
            x509_data = etree.SubElement(key_info, ns.qn(ns.DS, "X509Data"))
            etree.SubElement(x509_data, ns.qn(ns.DS, "X509Certificate")).text = _b64(
                self.material.public_bytes(serialization.Encoding.DER)
            )
            return key_info
        numbers = self.material.public_numbers()
        value = etree.SubElement(etree.SubElement(key_info, ns.qn(ns.DS, "KeyValue")), ns.qn(ns.DS, "RSAKeyValue"))
        etree.SubElement(value, ns.qn(ns.DS, "Modulus")).text = _b64(_unsigned(numbers.n))
        etree.SubElement(value, ns.qn(ns.DS, "Exponent")).text = _b64(_unsigned(numbers.e))
        return key_info


def read_use_key(use_key_child: etree._Element) -> ClientKey:
    """The key a ``wst:UseKey`` child names; :class:`UseKeyRejected` for a malformed or unsupported form.

    Accepted: an X.509 ``wsse:BinarySecurityToken``, ``ds:KeyInfo/ds:X509Data/ds:X509Certificate``, or
    ``ds:KeyInfo/ds:KeyValue/ds:RSAKeyValue`` (a bare RSA public key).
    """
    key_value = use_key_child.find(f"{ns.qn(ns.DS, 'KeyValue')}/{ns.qn(ns.DS, 'RSAKeyValue')}")
    if use_key_child.tag == ns.qn(ns.DS, "KeyInfo") and key_value is not None:
        return ClientKey(_rsa_key_value(key_value))
    return ClientKey(_certificate(use_key_child))


def accept_client_key(
    key: ClientKey, now: dt.datetime, trusted: TrustedClientKeys, *, check_registered: bool = True,
    proven: bool = False,
) -> None:
    """Raise :class:`UseKeyRejected` unless ``key`` may be bound to a token now: an RSA key of at least 2048
    bits, its certificate (if any) valid at ``now``, and registered as a client key. ``proven``: the request was
    signed with this key (a renewal of its token): an EC certificate key on a curve of at least 256 bits is then
    accepted too, as the signed-request authenticator accepts it and Issue bound it."""
    if isinstance(key.material, x509.Certificate):
        public = key.material.public_key()
        proven_ec = proven and isinstance(public, ec.EllipticCurvePublicKey) and public.curve.key_size >= 256
        problems = check_validity(key.material, "UseKey", now)[0] if proven_ec else (
            check_certificate(key.material, "UseKey", now)[0])
        if problems:
            raise UseKeyRejected("; ".join(problems))
        if proven_ec:
            return  # its registration was checked when its signature was verified
    else:
        public = key.material
    if not isinstance(public, rsa.RSAPublicKey) or public.key_size < MIN_RSA_BITS:
        raise UseKeyRejected("UseKey must be an RSA key of at least 2048 bits")
    if check_registered and not trusted.contains(public, now):
        raise UseKeyRejected("UseKey is not a registered client key")


def proven_client_key(
    use_key_child: etree._Element | None, certificate: x509.Certificate, token_id: str | None, signature_id: str | None
) -> ClientKey:
    """The UseKey of a request whose signature proved possession of ``certificate``'s key (WS-Trust 1.3 §9.2).

    No UseKey: the signing certificate. Otherwise it must name that very key: a ``wsse:SecurityTokenReference``
    to the signing BinarySecurityToken (``token_id``), the same certificate inline, or its RSAKeyValue; a
    ``UseKey/@Sig`` must name the verified signature. Anything else raises :class:`UseKeyRejected`: a token is
    never bound to a key the request did not prove.
    """
    if use_key_child is None:
        return ClientKey(certificate)
    parent = use_key_child.getparent()
    sig = None if parent is None else parent.get("Sig")
    if sig is not None and (signature_id is None or sig.strip() != "#" + signature_id):
        raise UseKeyRejected("UseKey/@Sig does not name the verified signature")
    if use_key_child.tag == ns.qn(ns.WSSE, "SecurityTokenReference"):
        references = use_key_child.findall(ns.qn(ns.WSSE, "Reference"))
        if token_id is None or len(references) != 1 or references[0].get("URI") != "#" + token_id:
            raise UseKeyRejected("UseKey references a token other than the signing one")
        return ClientKey(certificate)
    key = read_use_key(use_key_child)
    if isinstance(key.material, x509.Certificate):
        same = key.material.public_bytes(serialization.Encoding.DER) == certificate.public_bytes(
            serialization.Encoding.DER
        )
    else:
        same = _spki(key.material) == certificate.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    if not same:
        raise UseKeyRejected("UseKey is not the key that signed the request")
    return key


def accept_registered_key(key: ClientKey, now: dt.datetime, registered: list[x509.Certificate]) -> None:
    """Raise :class:`UseKeyRejected` unless ``key`` is (the key of) a certificate registered to the caller that is
    valid at ``now``: on an unsigned request the operator's registration stands in for the proof of possession."""
    accept_client_key(key, now, TrustedClientKeys(None), check_registered=False)
    wanted = _der_or_spki(key)
    for cert in registered:
        if not cert.not_valid_before_utc <= now < cert.not_valid_after_utc:
            continue
        if wanted in (cert.public_bytes(serialization.Encoding.DER), _spki(cert.public_key())):  # type: ignore[arg-type]
            return
    raise UseKeyRejected("UseKey is not a valid certificate registered to the caller")


def _der_or_spki(key: ClientKey) -> bytes:
    if isinstance(key.material, x509.Certificate):
        return key.material.public_bytes(serialization.Encoding.DER)
    return _spki(key.material)


def _rsa_key_value(rsa_key_value: etree._Element) -> rsa.RSAPublicKey:
    """The key of an RSAKeyValue (XML Signature §4.5.2.2)."""
    try:
        modulus = _integer(_child(rsa_key_value, "Modulus"))
        exponent = _integer(_child(rsa_key_value, "Exponent"))
        return rsa.RSAPublicNumbers(exponent, modulus).public_key()
    except (ValueError, TypeError):
        raise UseKeyRejected("malformed RSAKeyValue") from None


def _child(parent: etree._Element, local: str) -> etree._Element:
    found = parent.findall(ns.qn(ns.DS, local))
    if len(found) != 1:
        raise ValueError(f"exactly one ds:{local} expected")
    return found[0]


def _integer(element: etree._Element) -> int:
    """A ds:CryptoBinary value (XML Signature §4.0.1)."""
    return int.from_bytes(base64.b64decode("".join(text_of(element).split()), validate=True), "big")


def _unsigned(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def _certificate(element: etree._Element) -> x509.Certificate:
    if element.tag == ns.qn(ns.WSSE, "BinarySecurityToken"):
        if element.get("ValueType") != X509V3:
            raise UseKeyRejected("BinarySecurityToken is not an X.509 v3 certificate")
        encoded = "".join(text_of(element).split())
    elif element.tag == ns.qn(ns.DS, "KeyInfo"):
        certs = element.findall(f"{ns.qn(ns.DS, 'X509Data')}/{ns.qn(ns.DS, 'X509Certificate')}")
        if len(certs) != 1:
            raise UseKeyRejected("KeyInfo must carry exactly one X509Certificate")
        encoded = "".join(text_of(certs[0]).split())
    else:
        raise UseKeyRejected("unsupported UseKey form")
    if len(encoded) > MAX_CERT_BYTES * 4 // 3 + 4:
        raise UseKeyRejected("certificate too large")
    try:
        return x509.load_der_x509_certificate(base64.b64decode(encoded, validate=True))
    except ValueError:
        raise UseKeyRejected("malformed certificate") from None


def _listing(directory: Path) -> tuple[tuple[str, int, int], ...]:
    """Name, size and modification time (ns) of each file in ``directory``: what a reload depends on."""
    with os.scandir(directory) as entries:
        stats = [(entry.name, entry.stat()) for entry in entries]
    return tuple(sorted((name, st.st_size, st.st_mtime_ns) for name, st in stats))
