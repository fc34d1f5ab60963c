"""RSTR / RSTRC serialization (WS-Trust 1.3 §4.4, §3.2 RSTRC; Feb 2005 §6 bare RSTR).

The token is appended as the first and only child of ``RequestedSecurityToken``; ancestors never declare the
SAML, ds or xenc prefixes, so the token keeps its own namespace declarations and stands alone when a client
cuts it out of the response.
"""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass, field

from lxml import etree

from sts import ns
from sts.clock import format_instant
from sts.wstrust.model import AppliesTo
from sts.wstrust.version import TrustVersion


@dataclass(frozen=True, slots=True)
class TokenReference:
    """What the attached/unattached SecurityTokenReference says about the token."""

    token_type: str  # wsse11:TokenType
    value_type: str  # KeyIdentifier@ValueType
    identifier: str


@dataclass(frozen=True, slots=True)
class ProofToken:
    """The requestor's proof key: the key itself (BinarySecret), or the issuer entropy of a computed key."""

    key_bits: int
    secret: bytes | None = field(default=None, repr=False)
    issuer_entropy: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class IssuedTokenResponse:
    """Everything an Issue (or Renew) answer carries."""

    trust: TrustVersion
    token_type: str
    token: etree._Element
    reference: TokenReference
    created: dt.datetime
    expires: dt.datetime
    key_type: str
    context: str | None = None
    applies_to: AppliesTo | None = None
    proof: ProofToken | None = None


def _el(parent: etree._Element, trust: TrustVersion, local: str, text: str | None = None) -> etree._Element:
    element = etree.SubElement(parent, trust.qn(local))
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


def _rstr(trust: TrustVersion, context: str | None) -> etree._Element:
    """An empty RSTR in the version's namespace, echoing the request's Context (WS-Trust 1.3 §4.4)."""
    rstr = etree.Element(trust.qn("RequestSecurityTokenResponse"), nsmap={"wst": trust.namespace})
    if context is not None:
        rstr.set("Context", context)
    return rstr


def issued_rstr(response: IssuedTokenResponse) -> etree._Element:
    """One RSTR in the child order of the WS-Trust 1.3 §4.4 examples, which .NET and WSS4J expect."""
    trust = response.trust
    rstr = _rstr(trust, response.context)
    _el(rstr, trust, "TokenType", response.token_type)
    _el(rstr, trust, "RequestedSecurityToken").append(response.token)
    _reference(_el(rstr, trust, "RequestedAttachedReference"), response.reference)
    _reference(_el(rstr, trust, "RequestedUnattachedReference"), response.reference)
    if response.applies_to is not None:
        _applies_to(rstr, response.applies_to)
    lifetime = _el(rstr, trust, "Lifetime")
    etree.SubElement(lifetime, ns.qn(ns.WSU, "Created"), nsmap={"wsu": ns.WSU}).text = format_instant(response.created)
    etree.SubElement(lifetime, ns.qn(ns.WSU, "Expires"), nsmap={"wsu": ns.WSU}).text = format_instant(response.expires)
    if response.proof is not None:
        _proof(rstr, trust, response.proof)
    _el(rstr, trust, "KeyType", response.key_type)
    return rstr


def _proof(rstr: etree._Element, trust: TrustVersion, proof: ProofToken) -> None:
    """RequestedProofToken (BinarySecret, or ComputedKey + issuer Entropy) and KeySize (WS-Trust 1.3 §4.4.3)."""
    token = _el(rstr, trust, "RequestedProofToken")
    if proof.issuer_entropy is not None:
        _el(token, trust, "ComputedKey", trust.psha1)
        secret = _el(_el(rstr, trust, "Entropy"), trust, "BinarySecret", _b64(proof.issuer_entropy))
        secret.set("Type", trust.nonce)
    elif proof.secret is not None:
        _el(token, trust, "BinarySecret", _b64(proof.secret)).set("Type", trust.symmetric_key)
    _el(rstr, trust, "KeySize", str(proof.key_bits))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


VALID_REASON = "The Trust service successfully validated the input"
INVALID_REASON = "The Trust service did not successfully validate the input"


def status_answer(trust: TrustVersion, valid: bool, context: str | None) -> etree._Element:
    """Validate: an RSTR with TokenType ``{ns}/RSTR/Status``, ``Status/Code`` and a fixed ``Reason`` (§7)."""
    rstr = _rstr(trust, context)
    _el(rstr, trust, "TokenType", trust.status_token_type)
    status = _el(rstr, trust, "Status")
    _el(status, trust, "Code", trust.status_code(valid))
    _el(status, trust, "Reason", VALID_REASON if valid else INVALID_REASON)
    return rstr


def transformed_answer(response: IssuedTokenResponse) -> etree._Element:
    """Validate with a token type (WS-Trust 1.3 §7): the new token's RSTR with the valid ``Status`` after its
    ``TokenType``, the order Apache CXF's ``TokenValidateOperation`` answers in."""
    rstr = issued_rstr(response)
    trust = response.trust
    status = etree.Element(trust.qn("Status"))
    _el(status, trust, "Code", trust.status_code(True))
    _el(status, trust, "Reason", VALID_REASON)
    rstr[0].addnext(status)
    return rstr


def cancelled_answer(trust: TrustVersion, context: str | None) -> etree._Element:
    """Cancel: an RSTR with ``RequestedTokenCancelled`` (WS-Trust 1.3 §6)."""
    rstr = _rstr(trust, context)
    _el(rstr, trust, "RequestedTokenCancelled")
    return rstr


def issue_answer(response: IssuedTokenResponse) -> etree._Element:
    """WS-Trust 1.3: an RSTRC holding exactly one RSTR (§4.3); Feb 2005: the bare RSTR."""
    rstr = issued_rstr(response)
    if not response.trust.issue_answer_is_collection:
        return rstr
    trust = response.trust
    collection = etree.Element(trust.qn("RequestSecurityTokenResponseCollection"), nsmap={"wst": trust.namespace})
    collection.append(rstr)
    return collection
