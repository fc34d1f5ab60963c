"""RSTR / RSTRC serialization (WS-Trust 1.3 §4.4; wstrust-protocol.md §5; interop rules R1-R9).

The token is appended as the first and only child of ``RequestedSecurityToken``; ancestors never declare the
SAML, ds or xenc prefixes, so the token keeps its own namespace declarations and stands alone when a client
cuts it out of the response.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from lxml import etree

from sts import ns
from sts.clock import format_instant
from sts.wstrust.model import AppliesTo


@dataclass(frozen=True, slots=True)
class TokenReference:
    """What the attached/unattached SecurityTokenReference says about the token."""

    token_type: str  # wsse11:TokenType
    value_type: str  # KeyIdentifier@ValueType
    identifier: str


@dataclass(frozen=True, slots=True)
class IssuedTokenResponse:
    """Everything an Issue (or Renew) answer carries."""

    trust_ns: str
    token_type: str
    token: etree._Element
    reference: TokenReference
    created: dt.datetime
    expires: dt.datetime
    key_type: str
    context: str | None = None
    applies_to: AppliesTo | None = None


def _el(parent: etree._Element, trust_ns: str, local: str, text: str | None = None) -> etree._Element:
    element = etree.SubElement(parent, ns.qn(trust_ns, local))
    if text is not None:
        element.text = text
    return element


def _reference(parent: etree._Element, reference: TokenReference) -> None:
    str_el = etree.SubElement(
        parent,
        ns.qn(ns.WSSE, "SecurityTokenReference"),
        {ns.qn(ns.WSSE11, "TokenType"): reference.token_type},
        nsmap={"wsse": ns.WSSE, "wsse11": ns.WSSE11},
    )
    key_id = etree.SubElement(str_el, ns.qn(ns.WSSE, "KeyIdentifier"), ValueType=reference.value_type)
    key_id.text = reference.identifier


def _applies_to(parent: etree._Element, applies_to: AppliesTo) -> None:
    wrapper = etree.SubElement(parent, ns.qn(applies_to.policy_ns, "AppliesTo"), nsmap={"wsp": applies_to.policy_ns})
    epr = etree.SubElement(
        wrapper, ns.qn(applies_to.addressing_ns, "EndpointReference"), nsmap={"wsa": applies_to.addressing_ns}
    )
    etree.SubElement(epr, ns.qn(applies_to.addressing_ns, "Address")).text = applies_to.address


def issued_rstr(response: IssuedTokenResponse) -> etree._Element:
    """One RSTR in the recommended child order (wstrust-protocol.md §5)."""
    trust_ns = response.trust_ns
    rstr = etree.Element(ns.qn(trust_ns, "RequestSecurityTokenResponse"), nsmap={"wst": trust_ns})
    if response.context is not None:
        rstr.set("Context", response.context)
    _el(rstr, trust_ns, "TokenType", response.token_type)
    _el(rstr, trust_ns, "RequestedSecurityToken").append(response.token)
    _reference(_el(rstr, trust_ns, "RequestedAttachedReference"), response.reference)
    _reference(_el(rstr, trust_ns, "RequestedUnattachedReference"), response.reference)
    if response.applies_to is not None:
        _applies_to(rstr, response.applies_to)
    lifetime = _el(rstr, trust_ns, "Lifetime")
    etree.SubElement(lifetime, ns.qn(ns.WSU, "Created"), nsmap={"wsu": ns.WSU}).text = format_instant(response.created)
    etree.SubElement(lifetime, ns.qn(ns.WSU, "Expires"), nsmap={"wsu": ns.WSU}).text = format_instant(response.expires)
    _el(rstr, trust_ns, "KeyType", response.key_type)
    return rstr


def issue_answer(response: IssuedTokenResponse) -> etree._Element:
    """WS-Trust 1.3: an RSTRC holding exactly one RSTR (R4); Feb 2005: the bare RSTR."""
    rstr = issued_rstr(response)
    if response.trust_ns == ns.WST05:
        return rstr
    collection = etree.Element(
        ns.qn(response.trust_ns, "RequestSecurityTokenResponseCollection"), nsmap={"wst": response.trust_ns}
    )
    collection.append(rstr)
    return collection
