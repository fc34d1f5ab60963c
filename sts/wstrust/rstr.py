"""RSTR / RSTRC serialization (WS-Trust 1.3 §4.4, §3.2 RSTRC; Feb 2005 §6 bare RSTR).

The token is appended as the first and only child of ``RequestedSecurityToken``; ancestors never declare the
SAML, ds or xenc prefixes, so the token keeps its own namespace declarations and stands alone when a client
cuts it out of the response.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import functools
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


def _reference(parent: etree._Element) -> None:
    str_el = etree.SubElement(
        parent,
        ns.qn(ns.WSSE, "SecurityTokenReference"),
        {ns.qn(ns.WSSE11, "TokenType"): ""},
        nsmap={"wsse": ns.WSSE, "wsse11": ns.WSSE11},
    )
    etree.SubElement(str_el, ns.qn(ns.WSSE, "KeyIdentifier"), ValueType="")


def _applies_to(parent: etree._Element, policy_ns: str, addressing_ns: str) -> None:
    wrapper = etree.SubElement(parent, ns.qn(policy_ns, "AppliesTo"), nsmap={"wsp": policy_ns})
    epr = etree.SubElement(wrapper, ns.qn(addressing_ns, "EndpointReference"), nsmap={"wsa": addressing_ns})
    etree.SubElement(epr, ns.qn(addressing_ns, "Address"))


def _rstr(trust: TrustVersion, context: str | None) -> etree._Element:
    """An empty RSTR in the version's namespace, echoing the request's Context (WS-Trust 1.3 §4.4)."""
    rstr = etree.Element(trust.qn("RequestSecurityTokenResponse"), nsmap={"wst": trust.namespace})
    if context is not None:
        rstr.set("Context", context)
    return rstr


# The namespaces of an echoed AppliesTo (policy, addressing), or None for no echo.
_AppliesToShape = tuple[str, str] | None
_PROOF_NONE, _PROOF_ENTROPY, _PROOF_SECRET, _PROOF_EMPTY = "none", "entropy", "secret", "empty"


@functools.lru_cache(maxsize=64)  # a few shapes per version; AppliesTo namespaces come from short lists
def _skeleton(trust: TrustVersion, collection: bool, applies_to: _AppliesToShape, proof: str) -> etree._Element:
    """The issued RSTR (in its RSTRC when ``collection``) without its values, in the child order of the WS-Trust 1.3
    §4.4 examples, which .NET and WSS4J expect. Built once per shape; each answer is a copy of it (a copy is made
    in C; building the ~17 elements in Python cost several times more), filled by :func:`_fill`. Never handed out.
    """
    rstr = _rstr(trust, None)
    _el(rstr, trust, "TokenType")
    _el(rstr, trust, "RequestedSecurityToken")
    _reference(_el(rstr, trust, "RequestedAttachedReference"))
    _reference(_el(rstr, trust, "RequestedUnattachedReference"))
    if applies_to is not None:
        _applies_to(rstr, *applies_to)
    lifetime = _el(rstr, trust, "Lifetime")
    etree.SubElement(lifetime, ns.qn(ns.WSU, "Created"), nsmap={"wsu": ns.WSU})
    etree.SubElement(lifetime, ns.qn(ns.WSU, "Expires"), nsmap={"wsu": ns.WSU})
    if proof != _PROOF_NONE:
        _proof(rstr, trust, proof)
    _el(rstr, trust, "KeyType")
    if not collection:
        return rstr
    answer = etree.Element(trust.qn("RequestSecurityTokenResponseCollection"), nsmap={"wst": trust.namespace})
    answer.append(rstr)
    return answer


def _proof(rstr: etree._Element, trust: TrustVersion, proof: str) -> None:
    """RequestedProofToken (BinarySecret, or ComputedKey + issuer Entropy) and KeySize (WS-Trust 1.3 §4.4.3)."""
    token = _el(rstr, trust, "RequestedProofToken")
    if proof == _PROOF_ENTROPY:
        _el(token, trust, "ComputedKey", trust.psha1)
        _el(_el(rstr, trust, "Entropy"), trust, "BinarySecret").set("Type", trust.nonce)
    elif proof == _PROOF_SECRET:
        _el(token, trust, "BinarySecret").set("Type", trust.symmetric_key)
    _el(rstr, trust, "KeySize")


def _shape(response: IssuedTokenResponse) -> tuple[_AppliesToShape, str]:
    """What decides the elements of the answer beyond its version: the AppliesTo echo and the proof key."""
    applies_to = response.applies_to
    proof = response.proof
    if proof is None:
        kind = _PROOF_NONE
    elif proof.issuer_entropy is not None:
        kind = _PROOF_ENTROPY
    else:
        kind = _PROOF_SECRET if proof.secret is not None else _PROOF_EMPTY
    return (None if applies_to is None else (applies_to.policy_ns, applies_to.addressing_ns)), kind


def _fill(rstr: etree._Element, response: IssuedTokenResponse) -> etree._Element:
    """Write the response's values into a copy of its :func:`_skeleton`, by position (the skeleton's order)."""
    if response.context is not None:
        rstr.set("Context", response.context)
    children = list(rstr)
    children[0].text = response.token_type
    children[1].append(response.token)
    reference = response.reference
    for holder in children[2:4]:
        str_el = holder[0]
        str_el.set(_STR_TOKEN_TYPE, reference.token_type)
        key_id = str_el[0]
        key_id.set("ValueType", reference.value_type)
        key_id.text = reference.identifier
    position = 4
    if response.applies_to is not None:
        children[4][0][0].text = response.applies_to.address
        position = 5
    created, expires = children[position]
    created.text = format_instant(response.created)
    expires.text = format_instant(response.expires)
    proof = response.proof
    if proof is not None:
        if proof.issuer_entropy is not None:
            children[position + 2][0].text = _b64(proof.issuer_entropy)
        elif proof.secret is not None:
            children[position + 1][0].text = _b64(proof.secret)
        children[-2].text = str(proof.key_bits)
    children[-1].text = response.key_type
    return rstr


_STR_TOKEN_TYPE = ns.qn(ns.WSSE11, "TokenType")


def issued_rstr(response: IssuedTokenResponse) -> etree._Element:
    """One RSTR in the child order of the WS-Trust 1.3 §4.4 examples, which .NET and WSS4J expect."""
    return _fill(copy.deepcopy(_skeleton(response.trust, False, *_shape(response))), response)


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
    trust = response.trust
    if not trust.issue_answer_is_collection:
        return issued_rstr(response)
    collection = copy.deepcopy(_skeleton(trust, True, *_shape(response)))
    _fill(collection[0], response)
    return collection
