"""Signed requests: the Security header of the X.509 scenarios and what a signature may reference (WSS 1.1 §8).

Defences against signature wrapping (McIntosh & Austel, SWS 2005; Somorovsky et al., CCSW 2011), all applied
before any cryptography:

* **inventory** (:func:`read_signed_header`): our one Security header holds at most one Timestamp, one X.509
  BinarySecurityToken and exactly one ``ds:Signature``; anything else (a UsernameToken, encryption, a second of
  any) is refused, so there is never a choice of which element counts;
* **one ID index** (:func:`index_ids`): every ``Id``/``ID``/``id``/``wsu:Id``/``xml:id`` value in the envelope
  is unique across all of them;
* **referents by position** (:func:`resolve_referents`): each Reference names the Body (the Envelope's last
  child), the Timestamp or BST of our Security header, or a whole top-level header block; a copy in a wrapper, a
  descendant of the Body or of a header is refused. After verification the covered set is exactly these nodes
  (:func:`check_coverage`), and the caller reads the request only from them.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from sts import ns
from sts.errors import FailedCheck, InvalidSecurity
from sts.wss.header import ID_ATTRIBUTES
from sts.wss.timestamp import XML_WHITESPACE
from sts.wss.x509_token import BINARY_SECURITY_TOKEN
from sts.xmlutil import element_children

TIMESTAMP = ns.qn(ns.WSU, "Timestamp")
SIGNATURE = ns.qn(ns.DS, "Signature")
BODY_KIND = "body"
TIMESTAMP_KIND = "timestamp"
TOKEN_KIND = "token"  # noqa: S105 - a kind of referent, not a secret
USERNAME_TOKEN_KIND = "username_token"  # noqa: S105 - the symmetric binding's signed supporting token
WSA_TO_KIND = "wsa:To"
_WSA_TO = frozenset({ns.qn(ns.WSA, "To"), ns.qn(ns.WSA04, "To")})
_MAX_ID_CHARS = 256


@dataclass(frozen=True, slots=True)
class SignedHeader:
    """The elements of our Security header that a signed request is made of."""

    security: etree._Element
    signature: etree._Element
    timestamp: etree._Element
    token: etree._Element | None  # the X.509 BinarySecurityToken, when the request carries one
    username_token: etree._Element | None = None  # a signed supporting UsernameToken (symmetric binding)


@dataclass(frozen=True, slots=True)
class Referent:
    """One element a Reference names, where it sits (``kind``), and the ID attribute it was found by."""

    element: etree._Element
    kind: str  # body | timestamp | token | username_token | wsa:To | header
    id_namespace: str | None


def read_signed_header(security: etree._Element) -> SignedHeader:
    """Sort the Security header of a signed request (BSP 1.1 R3227; WSS 1.1 §5): one Signature, one Timestamp, at
    most one BinarySecurityToken, nothing else. Raises :class:`InvalidSecurity`."""
    signatures, timestamps, tokens = [], [], []
    for child in element_children(security):
        if child.tag == SIGNATURE:
            signatures.append(child)
        elif child.tag == TIMESTAMP:
            timestamps.append(child)
        elif child.tag == BINARY_SECURITY_TOKEN:
            tokens.append(child)
        else:
            raise InvalidSecurity("element not allowed in a signed request's Security header", reason="header_extra")
    if len(signatures) != 1:
        raise InvalidSecurity("exactly one ds:Signature required", reason="signature_count")
    if len(timestamps) != 1:
        reason = "no_timestamp" if not timestamps else "duplicate_timestamp"
        raise InvalidSecurity("exactly one wsu:Timestamp required", reason=reason)
    if len(tokens) > 1:
        raise InvalidSecurity("more than one BinarySecurityToken", reason="token_count")
    return SignedHeader(security, signatures[0], timestamps[0], tokens[0] if tokens else None)


def index_ids(root: etree._Element) -> dict[str, tuple[etree._Element, str | None]]:
    """Every identifier in the envelope → (element, namespace of its ``Id`` attribute) (WSS 1.1 §4).

    All ID attribute names form one space: a value seen twice, under any names, raises :class:`InvalidSecurity`
    (it is what a wrapping attack needs). Only ``Id`` and ``wsu:Id`` make an element referenceable.
    """
    index: dict[str, tuple[etree._Element, str | None]] = {}
    seen: set[str] = set()
    for element in root.iter(etree.Element):
        for name in ID_ATTRIBUTES.intersection(element.attrib.keys()):
            value = str(element.attrib[name]).strip(XML_WHITESPACE)
            if value in seen or len(value) > _MAX_ID_CHARS:
                raise InvalidSecurity("duplicate identifier in the message", reason="duplicate_id")
            seen.add(value)
            if name == "Id":
                index[value] = (element, None)
            elif name == ns.qn(ns.WSU, "Id"):
                index[value] = (element, ns.WSU)
    return index


def resolve_referents(
    reference_ids: tuple[str, ...], header: SignedHeader, index: dict[str, tuple[etree._Element, str | None]]
) -> dict[str, Referent]:
    """The element each Reference names, by position only (``OnlySignEntireHeadersAndBody``, WS-SP 1.2 §6.6).

    Raises :class:`InvalidSecurity` for an ID not in the message and :class:`FailedCheck` for an element in any
    other place, or named twice.
    """
    envelope = header.security.getroottree().getroot()
    parts = element_children(envelope)
    body = parts[-1]
    header_blocks = element_children(parts[0]) if len(parts) == 2 else []
    referents: dict[str, Referent] = {}
    for identifier in reference_ids:
        if identifier not in index:
            raise InvalidSecurity("reference to an ID not in the message", reason="reference_unresolved")
        element, id_namespace = index[identifier]
        kind = _kind(element, body, header, header_blocks)
        if kind is None:
            raise FailedCheck("signature references an element outside the allowed places", reason="referent_place")
        if any(r.element is element for r in referents.values()) or identifier in referents:
            raise FailedCheck("element referenced twice", reason="referent_twice")
        referents[identifier] = Referent(element, kind, id_namespace)
    return referents


def _kind(
    element: etree._Element, body: etree._Element, header: SignedHeader, header_blocks: list[etree._Element]
) -> str | None:
    if element is body:
        return BODY_KIND
    if element is header.timestamp:
        return TIMESTAMP_KIND
    if header.token is not None and element is header.token:
        return TOKEN_KIND
    if header.username_token is not None and element is header.username_token:
        return USERNAME_TOKEN_KIND
    if element is not header.security and any(element is block for block in header_blocks):
        return WSA_TO_KIND if element.tag in _WSA_TO else "header"
    return None


def check_coverage(referents: dict[str, Referent], required: tuple[frozenset[str], ...]) -> None:
    """Each set in ``required`` must meet the verified referents' kinds (e.g. ``{timestamp}``, ``{body, wsa:To}``).

    Raises :class:`FailedCheck` (WS-SecurityPolicy 1.2 §4.1.1 SignedParts not satisfied).
    """
    kinds = {referent.kind for referent in referents.values()}
    for alternatives in required:
        if not kinds & alternatives:
            raise FailedCheck("signature does not cover what the policy requires", reason="coverage")


def covered(referents: dict[str, Referent], kind: str) -> etree._Element | None:
    """The verified element of ``kind``, if the signature covered one."""
    for referent in referents.values():
        if referent.kind == kind:
            return referent.element
    return None
