"""Locating and sorting the ``wsse:Security`` header (WSS 1.1 SOAP Message Security §5-6).

Elements are matched by Clark name only (Namespaces in XML 1.0: a name is its namespace URI plus local part), so
look-alike namespaces, rebound prefixes and prefix-free default namespaces are all handled by the namespace URI,
never by a prefix or local name alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from sts import ns
from sts.errors import FailedAuthentication, InvalidSecurity, UnsupportedAlgorithm, UnsupportedSecurityToken
from sts.soapenv import SoapVersion, targets_us
from sts.wss.timestamp import XML_WHITESPACE
from sts.xmlutil import element_children, namespace_of

_SECURITY = ns.qn(ns.WSSE, "Security")
_TIMESTAMP = ns.qn(ns.WSU, "Timestamp")
_USERNAME_TOKEN = ns.qn(ns.WSSE, "UsernameToken")
_SIGNATURE = ns.qn(ns.DS, "Signature")
_BINARY_SECURITY_TOKEN = ns.qn(ns.WSSE, "BinarySecurityToken")
_ENCRYPTION_NAMESPACES = frozenset({ns.XENC, ns.XENC11})

# Every attribute some verifier resolves a same-document reference against. They form ONE name space, against
# signature wrapping by duplicate ids: signxml searches ``Id`` before ``ID``, so the same value under two names
# is as dangerous as twice under one. ``AssertionID`` is SAML 1.1's ID attribute (SAML 1.1 core §2.3.2).
ID_ATTRIBUTES = frozenset({"Id", "ID", "id", "AssertionID", ns.qn(ns.WSU, "Id"), ns.qn(ns.XML, "id")})


@dataclass(frozen=True, slots=True)
class SecurityHeader:
    """The children of our ``wsse:Security`` header that later stages act on (WSS 1.1 §5).

    ``timestamp`` is the one ``wsu:Timestamp`` (BSP R3227) or None; ``username_tokens`` holds exactly one
    UsernameToken today (a second one would let a caller
    choose which credential is checked) and stays a tuple for the X.509 mode to come; ``other_tokens`` are the
    remaining element children, in document order, which nothing reads yet.
    """

    timestamp: etree._Element | None
    username_tokens: tuple[etree._Element, ...]
    other_tokens: tuple[etree._Element, ...]


def find_security_header(headers: tuple[etree._Element, ...], version: SoapVersion) -> etree._Element:
    """The one ``wsse:Security`` header addressed to us (WSS 1.1 §6.1; SOAP 1.1 §4.2.2, SOAP 1.2 part 1 §5.2.2).

    Headers for another actor/role are ignored and their tokens never used. None for us raises
    :class:`InvalidSecurity` with reason ``no_security_header``; two for us raise it too, since an
    attacker's header placed before or after the victim's must not be chosen between.
    """
    ours = [header for header in headers if header.tag == _SECURITY and targets_us(header, version)]
    if not ours:
        raise InvalidSecurity("no wsse:Security header for this receiver", reason="no_security_header")
    if len(ours) > 1:
        raise InvalidSecurity("two wsse:Security headers for this receiver", reason="duplicate_security_header")
    return ours[0]


def read_security_header(security: etree._Element) -> SecurityHeader:
    """Sort the Security header's children (WSS 1.1 §6; BSP 1.1 R3227).

    First every identifier in the whole document (``security``'s root, the envelope) must be unique
    (:func:`check_unique_ids`). Then, in this order: encryption elements raise :class:`UnsupportedAlgorithm`
    without any decryption (no decryption oracle); ``ds:Signature`` and ``wsse:BinarySecurityToken`` raise
    :class:`UnsupportedSecurityToken` until X.509 mode exists; two Timestamps (BSP 1.1 R3227) or two UsernameTokens
    raise :class:`InvalidSecurity`; no UsernameToken at all raises :class:`FailedAuthentication`.
    """
    check_unique_ids(security.getroottree().getroot())
    children = element_children(security)
    _reject_unsupported(children)
    timestamps = [child for child in children if child.tag == _TIMESTAMP]
    username_tokens = tuple(child for child in children if child.tag == _USERNAME_TOKEN)
    if len(timestamps) > 1:
        raise InvalidSecurity("more than one wsu:Timestamp", reason="duplicate_timestamp")
    if len(username_tokens) > 1:
        raise InvalidSecurity("more than one UsernameToken", reason="duplicate_username_token")
    if not username_tokens:
        raise FailedAuthentication("Security header carries no credential", reason="no_credential")
    others = tuple(child for child in children if child.tag not in (_TIMESTAMP, _USERNAME_TOKEN))
    return SecurityHeader(timestamps[0] if timestamps else None, username_tokens, others)


def check_unique_ids(root: etree._Element) -> None:
    """Refuse a document where any identifier value occurs twice (WSS 1.1 §4, "ID References").

    ``Id``, ``ID``, ``id``, ``AssertionID``, ``wsu:Id`` and ``xml:id`` are one name space of plain strings:
    non-NCName values are accepted (some SOAP clients write them, e.g. ``Timestamp-2026-11-26T18:23:04Z``) but
    still counted. Values are compared after trimming XML whitespace,
    so ``"a"`` and ``" a"`` also clash: stricter than any resolver, never looser. Raises :class:`InvalidSecurity`.
    """
    seen: set[str] = set()
    for element in root.iter(etree.Element):
        # items() is one call that is cheap on the many elements without attributes (an attrib proxy, its keys and
        # a set intersection per element cost twice as much).
        for name, value in element.items():
            if name in ID_ATTRIBUTES:
                identifier = str(value).strip(XML_WHITESPACE)
                if identifier in seen:
                    raise InvalidSecurity("duplicate identifier in the message", reason="duplicate_id")
                seen.add(identifier)


def _reject_unsupported(children: list[etree._Element]) -> None:
    """Encryption first (never decrypt what policy does not allow: no decryption oracle), then signature tokens."""
    for child in children:
        if namespace_of(child) in _ENCRYPTION_NAMESPACES:
            raise UnsupportedAlgorithm("encrypted content in the Security header", reason="encrypted_security_header")
    for child in children:
        if child.tag == _SIGNATURE:
            raise UnsupportedSecurityToken("ds:Signature not supported yet", reason="signature_unsupported")
        if child.tag == _BINARY_SECURITY_TOKEN:
            raise UnsupportedSecurityToken("BinarySecurityToken not supported yet", reason="bst_unsupported")
