"""Strict parsing of a ``RequestSecurityToken`` (WS-Trust 1.3 §4, 1.4, Feb 2005).

Every child becomes a typed field or a fault: unknown elements get ``wst:BadRequest`` (CXF's default),
malformed or duplicated known ones ``wst:InvalidRequest``; nothing reaches a traceback. Elements are matched by
namespace URI and local name only (prefixes carry no meaning); URI and dateTime values are whitespace-collapsed
(XML Schema 2 §4.3.6).

``wst:SecondaryParameters`` (WS-Trust 1.3 §4.1) carries RST parameters the requestor did not originate: WCF puts
the relying party's ``RequestSecurityTokenTemplate`` there. Its children are read by the same rules as top-level
ones (same faults for unknown, duplicated or malformed elements; algorithm wishes accepted and ignored), and each
template value (TokenType, KeyType, KeySize, Claims, ComputedKeyAlgorithm) is used only when the top level lacks
it: the top level wins. Parameters only the requestor can originate (RequestType, AppliesTo, Lifetime, Renewing,
Entropy, UseKey, the targets) and a nested SecondaryParameters are ``wst:InvalidRequest`` there.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable

from lxml import etree

from sts import ns
from sts.errors import BadRequest, InvalidRequest, InvalidTimeRange
from sts.wss.timestamp import parse_zoned_datetime
from sts.wstrust.actions import Operation
from sts.wstrust.model import (
    AppliesTo,
    ClaimRequest,
    Lifetime,
    Renewing,
    RequestedClaims,
    RequestSecurityToken,
)
from sts.wstrust.version import TrustVersion
from sts.xmlutil import element_children, split_tag, text_of

MAX_CONTEXT = 256
MAX_URI = 2048
_IGNORED = frozenset(  # accepted and ignored (WS-Trust 1.3 §4.1 optional parameters): never weakens policy
    {
        "SignatureAlgorithm", "EncryptionAlgorithm", "CanonicalizationAlgorithm", "EncryptWith", "SignWith",
        "KeyWrapAlgorithm", "Encryption", "ProofEncryption", "Delegatable", "Forwardable", "DelegateTo",
        "Participants", "AllowPostdating", "AuthenticationType", "Issuer",
    }
)
_SINGLE = frozenset(
    {
        "TokenType", "RequestType", "Lifetime", "KeyType", "KeySize", "Claims", "Renewing", "Entropy",
        "ComputedKeyAlgorithm", "UseKey", "ValidateTarget", "RenewTarget", "CancelTarget", "AppliesTo",
        "SecondaryParameters", "OnBehalfOf", "ActAs",
    }
)
_TARGETS = {"ValidateTarget": Operation.VALIDATE, "RenewTarget": Operation.RENEW, "CancelTarget": Operation.CANCEL}
# What a RequestSecurityTokenTemplate may supply in SecondaryParameters: used when the top level lacks it.
_TEMPLATE = frozenset({"TokenType", "KeyType", "KeySize", "Claims", "ComputedKeyAlgorithm"})


def collapse(text: str) -> str:
    """XML Schema whitespace collapse for URI and token values (XML Schema part 2 §4.3.6)."""
    return " ".join(text.split())


def parse_rst(rst: etree._Element, trust: TrustVersion, operation: Operation) -> RequestSecurityToken:
    """Parse the RST into a :class:`RequestSecurityToken`; the RequestType was already read by the service."""
    context = rst.get("Context")
    if context is not None and (len(context) > MAX_CONTEXT or not context.strip()):
        raise InvalidRequest("Context too long or empty", reason="bad_context")
    fields: dict[str, object] = {}
    secondary: dict[str, object] = {}
    for name, child in _named_children(rst, trust):
        if name == "RequestType":
            continue
        if name in _TARGETS and _TARGETS[name] is not operation:
            # WS-Trust 1.3 §5, §6.1, §7: each binding names its own target; another's is not silently taken.
            raise InvalidRequest(f"{name} in a {operation.value} request", reason="foreign_target")
        if name == "SecondaryParameters":
            secondary = _secondary_parameters(child, trust)
            continue
        fields.update(_read(name, child, trust))
    for field_name, value in secondary.items():  # WS-Trust 1.3 §4.1: the top level wins
        fields.setdefault(field_name, value)
    return RequestSecurityToken(trust=trust, operation=operation, context=context, **fields)  # type: ignore[arg-type]


def _named_children(parent: etree._Element, trust: TrustVersion) -> list[tuple[str, etree._Element]]:
    """The element children by known name; unknown ones are ``wst:BadRequest``, repeated singletons
    ``wst:InvalidRequest``."""
    named: list[tuple[str, etree._Element]] = []
    seen: set[str] = set()
    known = _KNOWN_TAGS[trust]
    for child in element_children(parent):
        name = known.get(child.tag) or _known_name(child, trust)
        if name in _SINGLE:
            if name in seen:
                raise InvalidRequest(f"duplicate {name}", reason="duplicate_element")
            seen.add(name)
        named.append((name, child))
    return named


def _read(name: str, child: etree._Element, trust: TrustVersion) -> dict[str, object]:
    """The field values of one known child (nothing for the accepted-and-ignored ones)."""
    if name in _IGNORED:
        return {}
    reader = _READERS.get(name)
    if reader is None:
        raise BadRequest(f"unsupported element {name}", reason="unsupported_element")
    return reader(child, trust)


def _secondary_parameters(element: etree._Element, trust: TrustVersion) -> dict[str, object]:
    """The template values of ``wst:SecondaryParameters`` (WS-Trust 1.3 §4.1), read like top-level ones."""
    values: dict[str, object] = {}
    for name, child in _named_children(element, trust):
        if name in _REQUESTOR_ONLY:
            raise InvalidRequest(f"{name} is not accepted in SecondaryParameters", reason="bad_secondary_parameters")
        values.update(_read(name, child, trust))
    return values


def _known_name(child: etree._Element, trust: TrustVersion) -> str:
    """The name of any child by the rules below (:data:`_KNOWN_TAGS` answers the same for the known ones)."""
    qname = etree.QName(child)
    if qname.namespace == trust.namespace:
        return qname.localname
    if qname.namespace in (ns.WSP, ns.WSP15) and qname.localname == "AppliesTo":
        return "AppliesTo"
    is_14_extension = qname.namespace == ns.WST14 and trust is TrustVersion.TRUST13
    if is_14_extension and qname.localname == "ActAs":
        return "ActAs"
    if is_14_extension and qname.localname == "InteractiveChallenge":
        raise BadRequest("WS-Trust 1.4 InteractiveChallenge is not supported", reason="unsupported_element")
    raise BadRequest("unknown element in RST", reason="unknown_element")


def _uri(element: etree._Element, label: str) -> str:
    if element_children(element):
        raise InvalidRequest(f"{label} must be text", reason="bad_value")
    value = collapse(text_of(element))  # both return at once for an element without child nodes
    if not value or len(value) > MAX_URI:
        raise InvalidRequest(f"{label} empty or too long", reason="bad_value")
    return value


def _token_type(element: etree._Element, trust: TrustVersion) -> dict[str, object]:
    return {"token_type": _uri(element, "TokenType")}


def _key_type(element: etree._Element, trust: TrustVersion) -> dict[str, object]:
    return {"key_type": _uri(element, "KeyType")}


def _key_size(element: etree._Element, trust: TrustVersion) -> dict[str, object]:
    text = collapse(text_of(element))
    # ASCII digits only (xsd:unsignedInt): str.isdigit is also true of "²", which int() refuses, and of other
    # scripts' digits, which int() converts.
    if not text.isascii() or not text.isdigit() or len(text) > 6:
        raise InvalidRequest("KeySize must be a non-negative integer", reason="bad_key_size")
    return {"key_size": int(text)}


def _computed_key(element: etree._Element, trust: TrustVersion) -> dict[str, object]:
    return {"computed_key_algorithm": _uri(element, "ComputedKeyAlgorithm")}


def _applies_to(element: etree._Element, trust: TrustVersion) -> dict[str, object]:
    """Exactly one EndpointReference with exactly one Address, text only (WS-Addressing 1.0 §2.2)."""
    policy_ns = split_tag(element.tag)[0]
    children = element_children(element)
    if len(children) != 1 or split_tag(children[0].tag)[1] != "EndpointReference":
        raise InvalidRequest("AppliesTo needs one EndpointReference", reason="bad_applies_to")
    epr = children[0]
    addressing_ns = split_tag(epr.tag)[0]
    if addressing_ns not in (ns.WSA, ns.WSA04):
        raise InvalidRequest("EndpointReference in an unknown namespace", reason="bad_applies_to")
    address_tag = ns.qn(addressing_ns, "Address")
    addresses = [c for c in element_children(epr) if c.tag == address_tag]
    if len(addresses) != 1:
        raise InvalidRequest("EndpointReference needs one Address", reason="bad_applies_to")
    return {"applies_to": AppliesTo(_uri(addresses[0], "Address"), policy_ns, addressing_ns)}


def _lifetime(element: etree._Element, trust: TrustVersion) -> dict[str, object]:
    values: dict[str, object] = {}
    for child in element_children(element):
        qname = etree.QName(child)
        if qname.namespace != ns.WSU or qname.localname not in ("Created", "Expires") or qname.localname in values:
            raise InvalidTimeRange("malformed Lifetime", reason="bad_lifetime")
        try:
            values[qname.localname] = parse_zoned_datetime(text_of(child))
        except Exception:  # any parse failure is the same fault
            raise InvalidTimeRange("unparseable Lifetime", reason="bad_lifetime") from None
    return {"lifetime": Lifetime(values.get("Created"), values.get("Expires"))}  # type: ignore[arg-type]


def _claims(element: etree._Element, trust: TrustVersion) -> dict[str, object]:
    """Dialect unqualified (WS-Trust 1.3 §4.1) or qualified (as Rahas sends it); ClaimType Uri + Optional."""
    dialect = element.get("Dialect") or element.get(trust.qn("Dialect")) or ""
    claims: list[ClaimRequest] = []
    for child in element_children(element):
        if child.tag != ns.qn(ns.WSID, "ClaimType"):
            raise BadRequest("unsupported claim expression", reason="unsupported_claims")
        uri = collapse(child.get("Uri") or "")
        optional = collapse(child.get("Optional") or "true").lower()
        if not uri or len(uri) > MAX_URI or optional not in ("true", "false", "1", "0"):
            raise InvalidRequest("malformed ClaimType", reason="bad_claims")
        claims.append(ClaimRequest(uri, optional in ("true", "1")))
    return {"claims": RequestedClaims(collapse(dialect), tuple(claims))}


def _renewing(element: etree._Element, trust: TrustVersion) -> dict[str, object]:
    def flag(name: str, default: bool) -> bool:
        value = element.get(name)
        if value is None:
            return default
        if value.strip().lower() not in ("true", "false", "1", "0"):
            raise InvalidRequest("malformed Renewing", reason="bad_renewing")
        return value.strip().lower() in ("true", "1")

    return {"renewing": Renewing(flag("Allow", True), flag("OK", False))}


def _entropy(element: etree._Element, trust: TrustVersion) -> dict[str, object]:
    children = element_children(element)
    if len(children) != 1 or children[0].tag != trust.qn("BinarySecret"):
        raise InvalidRequest("Entropy must hold one BinarySecret", reason="bad_entropy")
    secret = children[0]
    if (secret.get("Type") or trust.nonce) not in (trust.nonce, trust.symmetric_key):
        raise InvalidRequest("unsupported BinarySecret type", reason="bad_entropy")
    try:
        value = base64.b64decode("".join(text_of(secret).split()), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest("BinarySecret is not base64", reason="bad_entropy") from None
    if not 16 <= len(value) <= 64:
        raise InvalidRequest("entropy must be 16 to 64 bytes", reason="bad_entropy")
    return {"entropy": value}


def _one_child(element: etree._Element, label: str) -> etree._Element:
    children = element_children(element)
    if len(children) != 1:
        raise InvalidRequest(f"{label} must hold exactly one element", reason="bad_target")
    return children[0]


def _use_key(element: etree._Element, trust: TrustVersion) -> dict[str, object]:
    return {"use_key": _one_child(element, "UseKey")}


def _target(element: etree._Element, trust: TrustVersion) -> dict[str, object]:
    return {"target": _one_child(element, etree.QName(element).localname)}


def _delegation_token(element: etree._Element) -> etree._Element:
    """The one token of OnBehalfOf (WS-Trust 1.3 §9.1) or ActAs (WS-Trust 1.4 §3.2): exactly one element."""
    children = element_children(element)
    if len(children) != 1:
        raise InvalidRequest("delegation element must hold exactly one token", reason="malformed_delegation_element")
    return children[0]


def _on_behalf_of(element: etree._Element, trust: TrustVersion) -> dict[str, object]:
    return {"on_behalf_of": _delegation_token(element)}


def _act_as(element: etree._Element, trust: TrustVersion) -> dict[str, object]:
    return {"act_as": _delegation_token(element)}


_READERS: dict[str, Callable[[etree._Element, TrustVersion], dict[str, object]]] = {
    "TokenType": _token_type,
    "KeyType": _key_type,
    "KeySize": _key_size,
    "ComputedKeyAlgorithm": _computed_key,
    "AppliesTo": _applies_to,
    "Lifetime": _lifetime,
    "Claims": _claims,
    "Renewing": _renewing,
    "Entropy": _entropy,
    "UseKey": _use_key,
    "ValidateTarget": _target,
    "RenewTarget": _target,
    "CancelTarget": _target,
    "OnBehalfOf": _on_behalf_of,
    "ActAs": _act_as,
}
# Known RST parameters only the requestor originates: never taken from SecondaryParameters.
_REQUESTOR_ONLY = (frozenset(_READERS) - _TEMPLATE) | {"RequestType", "SecondaryParameters"}


def _known_tags(trust: TrustVersion) -> dict[str, str]:
    """Clark name → name of every element :func:`_known_name` accepts by name in this version, made once so a
    request's children are named with one dictionary look-up each."""
    tags = {trust.qn(local): local for local in (*_SINGLE, *_IGNORED)}
    tags.update({ns.qn(ns.WSP, "AppliesTo"): "AppliesTo", ns.qn(ns.WSP15, "AppliesTo"): "AppliesTo"})
    if trust is TrustVersion.TRUST13:
        tags[ns.qn(ns.WST14, "ActAs")] = "ActAs"
    return tags


_KNOWN_TAGS = {trust: _known_tags(trust) for trust in TrustVersion}
