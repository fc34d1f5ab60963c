"""Encrypted requests: the Security header of WSO2 scenarios 5 and 8, their EncryptedKey and EncryptedData, and
putting decrypted plaintext back in place (WSS 1.1 §9; XML Encryption 1.1 §3-4; WS-I BSP 1.1 §9).

Structure only, before and after any cryptography (the algorithms are checked by :mod:`sts.crypto.wss_decrypt`):

* :func:`read_protected_header`: one Signature, Timestamp and EncryptedKey; at most one X.509 BinarySecurityToken
  (asymmetric binding) or one UsernameToken, plain or as an ``#Element`` EncryptedData (symmetric binding), and at
  most one top-level ReferenceList. Anything else, or a second of any, is refused;
* :func:`read_encrypted_key` / :func:`encryption_targets`: what the EncryptedKey holds and which EncryptedData it
  (or the ReferenceList) names. Only two places may be encrypted: the Body's content (``#Content``, its only child)
  and, in the symmetric binding, the UsernameToken in our header (``#Element``); every EncryptedData in the envelope
  must be one of these and named exactly once;
* :func:`parse_plaintext` / :func:`splice`: decrypted octets parsed with the hardened parser inside a wrapper that
  re-declares the namespaces in scope where the EncryptedData stood, then put in its place. A plaintext that does not
  parse, carries a DTD or processing instruction, breaks the structural caps, nests encryption or is not what the
  target must be (one RST; one UsernameToken) is refused like a failed decryption.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from xml.sax.saxutils import quoteattr

from lxml import etree

from sts import ns
from sts.errors import FailedAuthentication, InvalidSecurity, InvalidSecurityToken, STSError
from sts.wss.signed import SIGNATURE, TIMESTAMP
from sts.wss.timestamp import XML_WHITESPACE
from sts.wss.x509_token import BINARY_SECURITY_TOKEN
from sts.xmlutil import ParserLimits, element_children, parse_untrusted, text_of

ENCRYPTED_KEY = ns.qn(ns.XENC, "EncryptedKey")
ENCRYPTED_DATA = ns.qn(ns.XENC, "EncryptedData")
REFERENCE_LIST = ns.qn(ns.XENC, "ReferenceList")
USERNAME_TOKEN = ns.qn(ns.WSSE, "UsernameToken")
CONTENT = ns.XENC + "Content"
ELEMENT = ns.XENC + "Element"
_ENCRYPTION_METHOD = ns.qn(ns.XENC, "EncryptionMethod")
_CIPHER_DATA = ns.qn(ns.XENC, "CipherData")
_CIPHER_VALUE = ns.qn(ns.XENC, "CipherValue")
_DATA_REFERENCE = ns.qn(ns.XENC, "DataReference")
_KEY_INFO = ns.qn(ns.DS, "KeyInfo")
_DIGEST_METHOD = ns.qn(ns.DS, "DigestMethod")
_MGF = ns.qn(ns.XENC11, "MGF")
_STR = ns.qn(ns.WSSE, "SecurityTokenReference")
_REFERENCE = ns.qn(ns.WSSE, "Reference")
_MAX_WRAPPED_KEY_BYTES = 1024  # an RSA-8192 modulus
_MAX_CIPHER_BYTES = 64 * 1024
_WRAPPER = "sts-decrypted-content"
WSS11_ENCRYPTED_KEY = "http://docs.oasis-open.org/wss/oasis-wss-soap-message-security-1.1#EncryptedKey"


class PlaintextRefused(Exception):
    """Decrypted octets that are not acceptable content for their place (answered like a failed decryption)."""


@dataclass(frozen=True, slots=True)
class ProtectedHeader:
    """The elements of our Security header that an encrypted (and signed) request is made of."""

    security: etree._Element
    signature: etree._Element
    timestamp: etree._Element
    encrypted_key: etree._Element
    token: etree._Element | None  # X.509 BinarySecurityToken (asymmetric binding)
    username_token: etree._Element | None  # a plain UsernameToken (symmetric binding)
    encrypted_token: etree._Element | None  # the UsernameToken as #Element EncryptedData (symmetric binding)
    reference_list: etree._Element | None


@dataclass(frozen=True, slots=True)
class EncryptedKeyFacts:
    """An ``xenc:EncryptedKey``: its algorithms, the STR naming the recipient's certificate, the wrapped key."""

    identifier: str
    algorithm: str
    digest: str  # ds:DigestMethod of RSA-OAEP ("" = SHA-1)
    mgf: str  # xenc11:MGF ("" = MGF1 with SHA-1)
    token_reference: etree._Element
    wrapped: bytes
    data_ids: tuple[str, ...]  # the inner ReferenceList


@dataclass(frozen=True, slots=True)
class EncryptedDataFacts:
    """An ``xenc:EncryptedData`` in one of the two allowed places."""

    element: etree._Element
    kind: str  # CONTENT (the Body) | ELEMENT (the UsernameToken)
    algorithm: str
    cipher_value: bytes


def read_protected_header(security: etree._Element, *, symmetric: bool) -> ProtectedHeader:
    """Sort the Security header of a SigEncr (asymmetric) or SgnEncrUsername (symmetric) request (BSP 1.1 R3227).

    Raises :class:`InvalidSecurity` for anything outside the inventory; :class:`FailedAuthentication` when the
    symmetric binding's request carries no UsernameToken at all.
    """
    allowed = {SIGNATURE, TIMESTAMP, ENCRYPTED_KEY, REFERENCE_LIST}
    allowed |= {USERNAME_TOKEN, ENCRYPTED_DATA} if symmetric else {BINARY_SECURITY_TOKEN}
    found: dict[str, list[etree._Element]] = {}
    for child in element_children(security):
        if child.tag not in allowed:
            raise InvalidSecurity("element not allowed in an encrypted request's Security header",
                                  reason="header_extra")
        found.setdefault(str(child.tag), []).append(child)
    if any(len(items) > 1 for items in found.values()):
        raise InvalidSecurity("an element occurs twice in the Security header", reason="header_duplicate")
    for tag, reason in ((SIGNATURE, "signature_count"), (TIMESTAMP, "no_timestamp"), (ENCRYPTED_KEY, "no_key")):
        if tag not in found:
            raise InvalidSecurity("a required Security header element is missing", reason=reason)

    def one(tag: str) -> etree._Element | None:
        return found.get(tag, [None])[0]

    username_token, encrypted_token = one(USERNAME_TOKEN), one(ENCRYPTED_DATA)
    if symmetric and (username_token is None) == (encrypted_token is None):
        if username_token is None:
            raise FailedAuthentication("Security header carries no credential", reason="no_credential")
        raise InvalidSecurity("two UsernameTokens", reason="duplicate_username_token")
    return ProtectedHeader(
        security, found[SIGNATURE][0], found[TIMESTAMP][0], found[ENCRYPTED_KEY][0], one(BINARY_SECURITY_TOKEN),
        username_token, encrypted_token, one(REFERENCE_LIST),
    )


def read_encrypted_key(element: etree._Element) -> EncryptedKeyFacts:
    """Read an EncryptedKey (XML Encryption 1.1 §3.5.1; BSP R3209: no Type; R5426: KeyInfo is one STR).

    Raises :class:`InvalidSecurity` for another shape, :class:`InvalidSecurityToken` for a malformed CipherValue.
    """
    children = element_children(element)
    tags = [child.tag for child in children]
    if tags not in ([_ENCRYPTION_METHOD, _KEY_INFO, _CIPHER_DATA], [_ENCRYPTION_METHOD, _KEY_INFO, _CIPHER_DATA,
                                                                   REFERENCE_LIST]):
        raise InvalidSecurity("EncryptedKey must hold EncryptionMethod, KeyInfo, CipherData [, ReferenceList]",
                              reason="encrypted_key_structure")
    if element.get("Type") is not None or element.get("Recipient") is not None:
        raise InvalidSecurity("EncryptedKey with Type or Recipient", reason="encrypted_key_structure")
    method = children[0]
    digest, mgf = "", ""
    for parameter in element_children(method):
        if parameter.tag == _DIGEST_METHOD and not digest:
            digest = _algorithm(parameter) or "-"
        elif parameter.tag == _MGF and not mgf:
            mgf = _algorithm(parameter) or "-"
        else:
            # OAEPparams (a label) and anything else: refused with the unknown algorithms.
            digest = "-"
    key_info = element_children(children[1])
    if len(key_info) != 1 or key_info[0].tag != _STR:
        raise InvalidSecurity("EncryptedKey KeyInfo must be one SecurityTokenReference", reason="encrypted_key_keyinfo")
    data_ids = _data_references(children[3]) if len(children) == 4 else ()
    wrapped = _cipher_value(children[2], _MAX_WRAPPED_KEY_BYTES)
    return EncryptedKeyFacts(str(element.get("Id", "")), _algorithm(method), digest, mgf, key_info[0], wrapped,
                             data_ids)


def names_encrypted_key(reference: etree._Element, key: EncryptedKeyFacts) -> bool:
    """Whether a SecurityTokenReference is a direct reference to ``key`` (WSS 1.1 §7.2; ``#EncryptedKey`` type)."""
    children = element_children(reference)
    if len(children) != 1 or children[0].tag != _REFERENCE or not key.identifier:
        return False
    value_type = children[0].get("ValueType")
    if value_type is not None and value_type.strip(XML_WHITESPACE) != WSS11_ENCRYPTED_KEY:
        return False
    return children[0].get("URI") == "#" + key.identifier


def encryption_targets(
    header: ProtectedHeader, key: EncryptedKeyFacts, body: etree._Element
) -> tuple[EncryptedDataFacts, ...]:
    """The EncryptedData of the request: the Body's content first, then (symmetric binding) the UsernameToken.

    Every EncryptedData in the envelope must be one of those two, named once by the EncryptedKey's or the header's
    ReferenceList, and each named one must exist. The Body must be encrypted: its only element child is a
    ``#Content`` EncryptedData. Raises :class:`InvalidSecurity`.
    """
    named = list(key.data_ids) + (list(_data_references(header.reference_list)) if header.reference_list is not None
                                  else [])
    contents = element_children(body)
    if len(contents) != 1 or contents[0].tag != ENCRYPTED_DATA or (body.text or "").strip(XML_WHITESPACE):
        raise InvalidSecurity("the Body is not encrypted", reason="body_not_encrypted")
    places = [(contents[0], CONTENT)]
    if header.encrypted_token is not None:
        places.append((header.encrypted_token, ELEMENT))
    everywhere = list(body.getroottree().getroot().iter(ENCRYPTED_DATA))
    if len(everywhere) != len(places):
        raise InvalidSecurity("EncryptedData in a place that may not be encrypted", reason="encryption_target")
    if sorted(named) != sorted(str(element.get("Id", "")) for element, _ in places) or len(set(named)) != len(named):
        raise InvalidSecurity("ReferenceList does not name exactly the EncryptedData", reason="encryption_reference")
    return tuple(_encrypted_data(element, kind, key) for element, kind in places)


def _encrypted_data(element: etree._Element, kind: str, key: EncryptedKeyFacts) -> EncryptedDataFacts:
    """One EncryptedData (XML Encryption 1.1 §3.4): Type as its place needs, EncryptionMethod without parameters,
    KeyInfo (optional) naming our EncryptedKey, an inline CipherValue (no CipherReference)."""
    if str(element.get("Type", "")).strip(XML_WHITESPACE) != kind or element.get("MimeType") or element.get(
        "Encoding"
    ):
        raise InvalidSecurity("EncryptedData Type does not fit its place", reason="encrypted_data_type")
    children = element_children(element)
    if len(children) == 3 and children[1].tag == _KEY_INFO:
        key_info = element_children(children[1])
        if len(key_info) != 1 or key_info[0].tag != _STR or not names_encrypted_key(key_info[0], key):
            raise InvalidSecurity("EncryptedData KeyInfo must name the EncryptedKey", reason="encrypted_data_keyinfo")
        children = [children[0], children[2]]
    if [c.tag for c in children] != [_ENCRYPTION_METHOD, _CIPHER_DATA] or element_children(children[0]):
        raise InvalidSecurity("EncryptedData must hold EncryptionMethod and CipherData", reason="encrypted_data")
    return EncryptedDataFacts(element, kind, _algorithm(children[0]), _cipher_value(children[1], _MAX_CIPHER_BYTES))


def parse_plaintext(target: EncryptedDataFacts, plaintext: bytes, limits: ParserLimits) -> list[etree._Element]:
    """Parse decrypted octets for ``target``'s place: one element (the RST in the Body, a UsernameToken in the
    header), no EncryptedData inside, the hardened parser's caps. Raises :class:`PlaintextRefused`."""
    parent = target.element.getparent()
    if parent is None:
        raise PlaintextRefused("detached EncryptedData")
    declarations = "".join(
        f" xmlns{':' + prefix if prefix else ''}={quoteattr(uri)}" for prefix, uri in parent.nsmap.items()
    )
    document = f"<{_WRAPPER}{declarations}>".encode() + plaintext + f"</{_WRAPPER}>".encode()
    try:
        wrapper = parse_untrusted(document, limits)
    except STSError:
        raise PlaintextRefused("plaintext does not parse") from None
    children = element_children(wrapper)
    text = (wrapper.text or "") + "".join(child.tail or "" for child in children)
    if len(children) != 1 or text.strip(XML_WHITESPACE) or len(wrapper) != 1:
        raise PlaintextRefused("plaintext is not one element")
    if target.kind == ELEMENT and children[0].tag != USERNAME_TOKEN:
        raise PlaintextRefused("an encrypted header element that is not a UsernameToken")
    if any(True for _ in children[0].iter(ENCRYPTED_DATA, ENCRYPTED_KEY)):
        raise PlaintextRefused("nested encryption")
    return children


def splice(target: EncryptedDataFacts, plaintext: list[etree._Element]) -> etree._Element:
    """Put the parsed plaintext element in the EncryptedData's place (keeping the surrounding text); return it."""
    element = target.element
    parent = element.getparent()
    if parent is None or len(plaintext) != 1:
        raise PlaintextRefused("nothing to put in place")
    (replacement,) = plaintext
    replacement.tail = element.tail
    parent.replace(element, replacement)
    return replacement


def _algorithm(element: etree._Element) -> str:
    return str(element.get("Algorithm", "")).strip(XML_WHITESPACE)


def _data_references(reference_list: etree._Element) -> tuple[str, ...]:
    references = element_children(reference_list)
    if not references or any(r.tag != _DATA_REFERENCE or element_children(r) for r in references):
        raise InvalidSecurity("ReferenceList must hold DataReferences only", reason="reference_list")
    ids = []
    for reference in references:
        uri = str(reference.get("URI", ""))
        if not uri.startswith("#") or len(uri) < 2:
            raise InvalidSecurity("DataReference outside the message", reason="reference_list")
        ids.append(uri[1:])
    return tuple(ids)


def _cipher_value(cipher_data: etree._Element, limit: int) -> bytes:
    values = element_children(cipher_data)
    if len(values) != 1 or values[0].tag != _CIPHER_VALUE or element_children(values[0]):
        raise InvalidSecurity("CipherData must hold one CipherValue", reason="cipher_data")
    compact = "".join(text_of(values[0]).split())
    if not compact or len(compact) > limit * 4 // 3 + 4:
        raise InvalidSecurityToken("CipherValue empty or too large", reason="cipher_value")
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidSecurityToken("CipherValue is not Base64", reason="cipher_value") from None
