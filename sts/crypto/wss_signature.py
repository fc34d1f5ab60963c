"""Inbound WS-Security signatures (WSS 1.1 §8; XML Signature 1.1), checked so that they cannot be wrapped.

The caller (:mod:`sts.wss.signed`) resolves each Reference URI to the one element it may name before anything here
runs; this module then checks ``ds:SignedInfo`` against the allow-lists (:func:`read_signed_info`, before any
cryptography: an attacker-chosen transform or c14n can cost seconds), and verifies with python-xmlsec against a key
set explicitly from the already trusted certificate (:func:`verify_signature`): python-xmlsec is told exactly which
nodes carry IDs (``register_id`` on the referents only, never ``xmlsec.tree.add_ids``, which keeps the first of
two duplicates and so verifies a wrapped Body) and which algorithms it may run. Its result says nothing about what
was digested, so the covered set is the referents the caller resolved: the signature verified over exactly those.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass

import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from lxml import etree

from sts import ns

EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
MAX_REFERENCES = 5
MAX_PREFIXES = 16

SIGNATURE_METHODS = {
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256": xmlsec.constants.TransformRsaSha256,
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384": xmlsec.constants.TransformRsaSha384,
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512": xmlsec.constants.TransformRsaSha512,
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256": xmlsec.constants.TransformEcdsaSha256,
}
DIGEST_METHODS = {
    "http://www.w3.org/2001/04/xmlenc#sha256": xmlsec.constants.TransformSha256,
    "http://www.w3.org/2001/04/xmldsig-more#sha384": xmlsec.constants.TransformSha384,
    "http://www.w3.org/2001/04/xmlenc#sha512": xmlsec.constants.TransformSha512,
}
# SHA-1 only under the explicit legacy switch (WS-SecurityPolicy 1.2 §6.1 suites still name rsa-sha1/sha1).
LEGACY_SIGNATURE_METHODS = {"http://www.w3.org/2000/09/xmldsig#rsa-sha1": xmlsec.constants.TransformRsaSha1}
LEGACY_DIGEST_METHODS = {"http://www.w3.org/2000/09/xmldsig#sha1": xmlsec.constants.TransformSha1}
# Symmetric binding (WS-SecurityPolicy 1.2 §7.4): HMAC keyed with the request's EncryptedKey, full-length output.
HMAC_METHODS = {"http://www.w3.org/2001/04/xmldsig-more#hmac-sha256": xmlsec.constants.TransformHmacSha256}
LEGACY_HMAC_METHODS = {"http://www.w3.org/2000/09/xmldsig#hmac-sha1": xmlsec.constants.TransformHmacSha1}

_SIGNED_INFO = ns.qn(ns.DS, "SignedInfo")
_C14N = ns.qn(ns.DS, "CanonicalizationMethod")
_SIGNATURE_METHOD = ns.qn(ns.DS, "SignatureMethod")
_REFERENCE = ns.qn(ns.DS, "Reference")
_TRANSFORMS = ns.qn(ns.DS, "Transforms")
_TRANSFORM = ns.qn(ns.DS, "Transform")
_DIGEST_METHOD = ns.qn(ns.DS, "DigestMethod")
_DIGEST_VALUE = ns.qn(ns.DS, "DigestValue")
_SIGNATURE_VALUE = ns.qn(ns.DS, "SignatureValue")
_KEY_INFO = ns.qn(ns.DS, "KeyInfo")
INCLUSIVE_NAMESPACES = ns.qn(EXC_C14N, "InclusiveNamespaces")  # ec:InclusiveNamespaces (Exc-C14N §4)
_STR = ns.qn(ns.WSSE, "SecurityTokenReference")
_NCNAME = re.compile(r"[A-Za-z_][A-Za-z0-9._-]{0,63}|#default")
_XML_WHITESPACE = " \t\r\n"


class SignatureStructureError(Exception):
    """SignedInfo or KeyInfo outside the allowed shape (WS-Security ``InvalidSecurity``)."""


class AlgorithmRefused(Exception):
    """A signature, digest, c14n or transform algorithm outside the allow-list (``UnsupportedAlgorithm``)."""


class SignatureInvalid(Exception):
    """The signature does not verify with the trusted key (``FailedCheck``)."""


@dataclass(frozen=True, slots=True)
class SignedInfoFacts:
    """What a structurally acceptable signature says: the IDs it references, its value and its token reference.

    ``replay_key`` is SHA-256 of the exclusive canonical form of ``ds:SignedInfo``, without comments: what the
    signature value signs (XML Signature 1.1 §3.1.2), so every message that verifies with one SignedInfo has the
    one key. The value as
    sent would not do: its Base64 can be re-spelled (spare bits, comments) and an ECDSA signature has a second
    valid value, each a fresh key for a replay (WSS 1.1 §13).
    """

    reference_ids: tuple[str, ...]
    signature_value: bytes
    token_reference: etree._Element  # the one wsse:SecurityTokenReference of ds:KeyInfo
    signature_method: str
    replay_key: bytes


def read_signed_info(signature: etree._Element, *, legacy_sha1: bool, symmetric: bool = False) -> SignedInfoFacts:
    """Check one ``ds:Signature`` against the allow-lists before any cryptography (WS-I BSP 1.1 R5404-R5417).

    Exclusive c14n only (with at most one ``ec:InclusiveNamespaces`` of at most 16 prefixes), one allowed
    SignatureMethod, 1-5 References each ``URI="#id"`` with exactly one exclusive-c14n Transform and an allowed
    DigestMethod; nothing else in SignedInfo, no ``ds:Object``/``ds:Manifest``, and a KeyInfo holding exactly one
    SecurityTokenReference (BSP R5417: never a KeyValue the message chooses). ``symmetric``: HMAC methods instead
    of RSA/ECDSA ones (a symmetric binding's signature).
    """
    children = _children(signature)
    tags = [child.tag for child in children]
    if tags not in ([_SIGNED_INFO, _SIGNATURE_VALUE, _KEY_INFO],):
        raise SignatureStructureError("Signature must hold SignedInfo, SignatureValue and KeyInfo only")
    signed_info, value_element, key_info = children
    info_children = _children(signed_info)
    if len(info_children) < 3 or [c.tag for c in info_children[:2]] != [_C14N, _SIGNATURE_METHOD]:
        raise SignatureStructureError("SignedInfo must start with CanonicalizationMethod and SignatureMethod")
    _check_c14n(info_children[0])
    method = _algorithm(info_children[1])
    if method not in _signature_methods(legacy_sha1, symmetric):
        raise AlgorithmRefused("signature method not allowed")
    if _children(info_children[1]):
        raise SignatureStructureError("SignatureMethod parameters (HMACOutputLength) are not allowed")
    references = info_children[2:]
    if not 1 <= len(references) <= MAX_REFERENCES or any(r.tag != _REFERENCE for r in references):
        raise SignatureStructureError("SignedInfo must hold 1 to 5 References and nothing else")
    ids = tuple(_reference_id(reference, legacy_sha1) for reference in references)
    # Without comments, as the exclusive c14n the signature is computed over (xml-exc-c14n#, not #WithComments):
    # a comment added to a captured SignedInfo changes nothing that is signed, so it must not change the key.
    replay_key = hashlib.sha256(
        etree.tostring(signed_info, method="c14n", exclusive=True, with_comments=False)
    ).digest()
    return SignedInfoFacts(ids, _signature_value(value_element), _token_reference(key_info), method, replay_key)


def _children(element: etree._Element) -> list[etree._Element]:
    return [child for child in element if isinstance(child.tag, str)]


def _algorithm(element: etree._Element) -> str:
    return str(element.get("Algorithm", "")).strip(_XML_WHITESPACE)


def _signature_methods(legacy_sha1: bool, symmetric: bool = False) -> dict[str, xmlsec.constants.__Transform]:
    if symmetric:
        return {**HMAC_METHODS, **(LEGACY_HMAC_METHODS if legacy_sha1 else {})}
    return {**SIGNATURE_METHODS, **(LEGACY_SIGNATURE_METHODS if legacy_sha1 else {})}


def _digest_methods(legacy_sha1: bool) -> dict[str, xmlsec.constants.__Transform]:
    return {**DIGEST_METHODS, **(LEGACY_DIGEST_METHODS if legacy_sha1 else {})}


def _check_c14n(element: etree._Element) -> None:
    """Exclusive c14n, with at most one InclusiveNamespaces child of a few NCName prefixes (BSP R5414/R5415)."""
    if _algorithm(element) != EXC_C14N:
        raise AlgorithmRefused("only exclusive canonicalization is allowed")
    extras = _children(element)
    if not extras:
        return
    if len(extras) != 1 or extras[0].tag != INCLUSIVE_NAMESPACES:
        raise SignatureStructureError("unexpected canonicalization parameters")
    prefixes = str(extras[0].get("PrefixList", "")).split()
    if len(prefixes) > MAX_PREFIXES or not all(_NCNAME.fullmatch(prefix) for prefix in prefixes):
        raise SignatureStructureError("PrefixList too long or malformed")


def _reference_id(reference: etree._Element, legacy_sha1: bool) -> str:
    """The ID a Reference names: a bare ``#id`` (no empty URI, no XPointer, nothing outside the message)."""
    uri = reference.get("URI")
    if uri is None or not uri.startswith("#") or len(uri) < 2 or len(uri) > 257 or "(" in uri:
        raise SignatureStructureError("Reference URI must be #id")
    parts = _children(reference)
    if [p.tag for p in parts] != [_TRANSFORMS, _DIGEST_METHOD, _DIGEST_VALUE]:
        raise SignatureStructureError("Reference must hold Transforms, DigestMethod and DigestValue")
    transforms = _children(parts[0])
    if len(transforms) != 1 or transforms[0].tag != _TRANSFORM:
        raise AlgorithmRefused("exactly one Transform per Reference")
    _check_c14n(transforms[0])
    if _algorithm(parts[1]) not in _digest_methods(legacy_sha1) or _children(parts[1]):
        raise AlgorithmRefused("digest method not allowed")
    return uri[1:]


def _signature_value(element: etree._Element) -> bytes:
    """The value as xmlsec reads it: all its text, also around a comment (``.text`` stops at the first one)."""
    text = "".join("".join(t for t in element.itertext() if isinstance(t, str)).split())
    if not text or len(text) > 2048 or _children(element):
        raise SignatureStructureError("malformed SignatureValue")
    return text.encode("ascii", "replace")


def _token_reference(key_info: etree._Element) -> etree._Element:
    children = _children(key_info)
    if len(children) != 1 or children[0].tag != _STR:
        raise SignatureStructureError("KeyInfo must hold exactly one SecurityTokenReference")
    return children[0]


def verify_signature(
    signature: etree._Element,
    referents: dict[str, tuple[etree._Element, str | None]],
    certificate: x509.Certificate | bytes,
    *,
    legacy_sha1: bool,
) -> None:
    """Verify ``signature`` with ``certificate``'s key over exactly ``referents`` (id → (element, id namespace)).

    ``certificate`` may instead be the symmetric key K of an HMAC signature (symmetric binding). Only those nodes
    are registered as IDs and only the allowed algorithms are enabled; the key is set explicitly, so nothing in
    the message chooses it. Raises :class:`SignatureInvalid`.
    """
    ctx = xmlsec.SignatureContext()
    symmetric = isinstance(certificate, bytes)
    try:
        if isinstance(certificate, bytes):
            ctx.key = xmlsec.Key.from_binary_data(xmlsec.constants.KeyDataHmac, certificate)
        else:
            ctx.key = _public_key(certificate)
        for identifier, (element, id_namespace) in referents.items():
            name = "Id"
            ctx.register_id(element, name, id_namespace)
            if element.get(ns.qn(id_namespace, name) if id_namespace else name) != identifier:
                raise SignatureInvalid("referent does not carry the referenced ID")
        ctx.enable_signature_transform(xmlsec.constants.TransformExclC14N)
        for transform in _signature_methods(legacy_sha1, symmetric).values():
            ctx.enable_signature_transform(transform)
        ctx.enable_reference_transform(xmlsec.constants.TransformExclC14N)
        for transform in _digest_methods(legacy_sha1).values():
            ctx.enable_reference_transform(transform)
        ctx.verify(signature)
    except xmlsec.Error:
        raise SignatureInvalid("signature does not verify") from None


@functools.lru_cache(maxsize=1024)
def _public_key(certificate: x509.Certificate) -> xmlsec.Key:
    """The certificate's public key as python-xmlsec holds it, loaded once per worker and certificate.

    Loaded from the SubjectPublicKeyInfo, not the certificate: setting a context's key copies it, and a key that
    carries its certificate costs a certificate copy per request (about 30 times the bare key's). Trust in the
    certificate was decided before (the caller passes only a trusted one); the key is only ever read. Bounded:
    the registered and CA-issued client certificates a worker meets; a certificate compares by its DER encoding.
    """
    spki = certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return xmlsec.Key.from_memory(spki, xmlsec.constants.KeyDataFormatDer, None)

