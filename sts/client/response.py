"""Reading the STS's answer: SOAP faults, the RSTR (WS-Trust 1.3 §4.4), the issued token and its proof key,
the Validate status and the Cancel confirmation.

The answer is untrusted: it is parsed with the hardened parser under caps sized for tokens, and any of its text
that reaches an error message is escaped first (:func:`sts.client.errors.clean`).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field

from lxml import etree

from sts import ns
from sts.client.errors import ClientError, Fault, FaultReceived, clean
from sts.client.options import MAX_PROOF_KEY_BITS
from sts.client.transport import HttpAnswer
from sts.errors import MalformedMessage
from sts.wstrust.keys import DEFAULT_KEY_BITS, p_sha1
from sts.wstrust.version import TrustVersion
from sts.xmlutil import ParserLimits, element_children, parse_untrusted, text_of

# Responses and token files are untrusted input too; tokens are bigger than requests, hence larger caps.
RESPONSE_LIMITS = ParserLimits(max_text_bytes=1 << 20, max_elements=20000, max_depth=64)
MAX_TOKEN_ID_CHARS = 256
_MAX_CORRELATION_ID = 128  # the STS writes a UUID; a longer value from another server is cut
ENCRYPTED_ASSERTION = ns.qn(ns.SAML2, "EncryptedAssertion")
ENCRYPTED_TOKENS = (ENCRYPTED_ASSERTION, ns.qn(ns.XENC, "EncryptedData"))  # a token encrypted for its RP


@dataclass(frozen=True, slots=True)
class ProofKey:
    """The symmetric proof key of an RSTR, and whether it was computed (PSHA1) or sent as a BinarySecret."""

    key: bytes = field(repr=False)
    computed: bool

    @property
    def bits(self) -> int:
        """Key size in bits."""
        return len(self.key) * 8


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """The token of an Issue or Renew answer and what its RSTR says about it, as sent (not yet escaped).

    ``proof_key`` is None when the RSTR has no ``RequestedProofToken``, or one this client cannot use; then
    ``proof_key_problem`` says why.
    """

    token: etree._Element
    token_type: str
    created: str
    expires: str
    token_id: str  # from RequestedAttachedReference: the only place it shows for an encrypted token
    proof_key: ProofKey | None = None
    proof_key_problem: str = ""

    @property
    def encrypted(self) -> bool:
        """Whether the token is an EncryptedAssertion or bare EncryptedData."""
        return self.token.tag in ENCRYPTED_TOKENS


@dataclass(frozen=True, slots=True)
class ValidationStatus:
    """A Validate answer (WS-Trust 1.3 §7): whether the token is valid, and the STS's reason, as sent."""

    valid: bool
    reason: str
    issued: IssuedToken | None = None  # the new token, when one was asked for and the token was valid


def read_answer(answer: HttpAnswer, url: str) -> etree._Element:
    """The parsed answer of a 200; :class:`FaultReceived` for a SOAP fault, a :class:`ClientError` otherwise."""
    root = _parse_answer(answer)
    fault = find_fault(root) if root is not None else None
    if fault is not None:
        raise FaultReceived(fault)
    if answer.status != 200 or root is None:
        raise ClientError(f"HTTP {answer.status} {clean(answer.reason)} from {url}")
    return root


def _parse_answer(answer: HttpAnswer) -> etree._Element | None:
    """The parsed answer; None for a non-XML error page, an error for a 200 that is not XML."""
    try:
        return parse_untrusted(answer.body, RESPONSE_LIMITS)
    except MalformedMessage:
        if answer.status == 200:
            raise ClientError("the response is not well-formed XML (or exceeds the parser limits)") from None
        return None


def find_fault(root: etree._Element) -> Fault | None:
    """The SOAP 1.1 or 1.2 fault in an envelope, or None; for SOAP 1.2 the innermost Subcode is the code."""
    for soap_ns in (ns.S11, ns.S12):
        fault = root.find(f"{ns.qn(soap_ns, 'Body')}/{ns.qn(soap_ns, 'Fault')}")
        if fault is None:
            continue
        if soap_ns == ns.S11:
            code = fault.find("faultcode")
            reason = fault.find("faultstring")
        else:
            code = fault.find(f"{ns.qn(ns.S12, 'Code')}/{ns.qn(ns.S12, 'Value')}")
            subcode = fault.find(ns.qn(ns.S12, "Code"))
            while subcode is not None:  # the innermost Subcode is the most specific
                subcode = subcode.find(ns.qn(ns.S12, "Subcode"))
                value = subcode.find(ns.qn(ns.S12, "Value")) if subcode is not None else None
                if value is not None:
                    code = value
            reason = fault.find(f"{ns.qn(ns.S12, 'Reason')}/{ns.qn(ns.S12, 'Text')}")
        code_text = text_of(code).strip() if code is not None else ""
        prefix, sep, _local = code_text.partition(":")
        namespace = ""
        if code is not None:
            namespace = code.nsmap.get(prefix if sep else None) or ""
        reason_text = text_of(reason).strip() if reason is not None else ""
        return Fault(code_text or "?", namespace, reason_text, _correlation_id(fault, soap_ns))
    return None


def _correlation_id(fault: etree._Element, soap_ns: str) -> str:
    """The correlation id in the fault's detail (SOAP 1.1 ``detail``, unqualified; SOAP 1.2 ``Detail``), at most
    :data:`_MAX_CORRELATION_ID` characters; empty when there is none (another server's fault)."""
    detail = fault.find("detail" if soap_ns == ns.S11 else ns.qn(ns.S12, "Detail"))
    element = detail.find(ns.qn(ns.STS_FAULT, "CorrelationId")) if detail is not None else None
    return text_of(element).strip()[:_MAX_CORRELATION_ID] if element is not None else ""


def find_issued_token(root: etree._Element) -> etree._Element | None:
    """The first token in a ``RequestedSecurityToken`` of either trust version, or None."""
    for trust_ns in (version.namespace for version in TrustVersion):
        for holder in root.iter(ns.qn(trust_ns, "RequestedSecurityToken")):
            children = element_children(holder)
            if children:
                return children[0]
    return None


def read_issued_token(
    root: etree._Element, client_entropy: bytes | None = None, requested_bits: int | None = None
) -> IssuedToken:
    """The token of an Issue or Renew answer, its lifetime and ID, and its proof key (``client_entropy`` and
    ``requested_bits``: what the request sent, needed for a computed key)."""
    token = find_issued_token(root)
    holder = token.getparent() if token is not None else None
    rstr = holder.getparent() if holder is not None else None
    if token is None or rstr is None:
        raise ClientError("the response holds no RequestedSecurityToken")
    trust_ns = etree.QName(rstr).namespace or ""
    lifetime = rstr.find(ns.qn(trust_ns, "Lifetime"))
    try:
        proof, problem = proof_key_of(rstr, client_entropy, requested_bits), ""
    except ClientError as exc:
        proof, problem = None, str(exc)
    return IssuedToken(
        token=token,
        token_type=_child_text(rstr, trust_ns, "TokenType").strip(),
        created=_child_text(lifetime, ns.WSU, "Created").strip(),
        expires=_child_text(lifetime, ns.WSU, "Expires").strip(),
        token_id=_referenced_id(rstr, trust_ns),
        proof_key=proof,
        proof_key_problem=problem,
    )


def proof_key_of(rstr: etree._Element, client_entropy: bytes | None, requested_bits: int | None) -> ProofKey | None:
    """The RSTR's proof key (WS-Trust 1.3 §4.4.3): ``RequestedProofToken/BinarySecret``, or P_SHA1(client
    entropy, issuer ``Entropy/BinarySecret``) truncated to ``KeySize`` when it is a ``ComputedKey``."""
    trust_ns = etree.QName(rstr).namespace or ""
    proof = rstr.find(ns.qn(trust_ns, "RequestedProofToken"))
    if proof is None:
        return None
    children = element_children(proof)
    if len(children) != 1:
        raise ClientError("RequestedProofToken must hold exactly one element")
    content = children[0]
    if content.tag == ns.qn(trust_ns, "BinarySecret"):
        return ProofKey(_base64_value(content, "the proof-key BinarySecret"), computed=False)
    if content.tag == ns.qn(ns.XENC, "EncryptedKey"):
        raise ClientError("the proof key is encrypted (xenc:EncryptedKey): this client cannot decrypt it")
    if content.tag != ns.qn(trust_ns, "ComputedKey"):
        raise ClientError(f"unsupported RequestedProofToken content {clean(etree.QName(content).localname)}")
    algorithm = " ".join(text_of(content).split())
    if algorithm != f"{trust_ns}/CK/PSHA1":
        raise ClientError(f"unsupported ComputedKey algorithm {clean(algorithm)}")
    if client_entropy is None:
        raise ClientError("the STS returned a computed key, but this request sent no client entropy")
    issuer = rstr.find(f"{ns.qn(trust_ns, 'Entropy')}/{ns.qn(trust_ns, 'BinarySecret')}")
    if issuer is None:
        raise ClientError("the response has a ComputedKey but no Entropy/BinarySecret")
    issuer_entropy = _base64_value(issuer, "the issuer entropy")
    bits = _returned_key_bits(rstr, trust_ns, requested_bits)
    return ProofKey(p_sha1(client_entropy, issuer_entropy, bits // 8), computed=True)


def find_rstr(root: etree._Element, trust_ns: str) -> etree._Element:
    """The answer's RSTR in the request's trust namespace (a bare RSTR; an RSTRC wrapper is tolerated)."""
    rstr = next(root.iter(ns.qn(trust_ns, "RequestSecurityTokenResponse")), None)
    if rstr is None:
        raise ClientError("the response holds no RequestSecurityTokenResponse in the request's trust namespace")
    return rstr


def read_status(rstr: etree._Element, trust_ns: str) -> ValidationStatus:
    """``Status/Code`` (``…/status/valid`` or ``…/status/invalid``) and ``Status/Reason`` of a Validate RSTR."""
    status = rstr.find(ns.qn(trust_ns, "Status"))
    code = " ".join(_child_text(status, trust_ns, "Code").split())
    reason = _child_text(status, trust_ns, "Reason").strip()
    if code == f"{trust_ns}/status/valid":
        return ValidationStatus(valid=True, reason=reason)
    if code == f"{trust_ns}/status/invalid":
        return ValidationStatus(valid=False, reason=reason)
    raise ClientError(f"the response has no known Status/Code: {clean(code[:200]) or '(none)'}")


def check_cancelled(rstr: etree._Element, trust_ns: str) -> None:
    """A Cancel answer must say ``RequestedTokenCancelled`` (WS-Trust 1.3 §6)."""
    if rstr.find(ns.qn(trust_ns, "RequestedTokenCancelled")) is None:
        raise ClientError("the response does not confirm the cancellation (no RequestedTokenCancelled)")


def _base64_value(element: etree._Element, label: str) -> bytes:
    try:
        value = base64.b64decode("".join(text_of(element).split()), validate=True)
    except (binascii.Error, ValueError):
        raise ClientError(f"{label} is not base64") from None
    if not value:
        raise ClientError(f"{label} is empty")
    return value


def _returned_key_bits(rstr: etree._Element, trust_ns: str, requested_bits: int | None) -> int:
    """The RSTR's KeySize; without one, the size asked for, else the usual default (256, as CXF's client)."""
    size = rstr.find(ns.qn(trust_ns, "KeySize"))
    if size is None:
        return requested_bits if requested_bits is not None else DEFAULT_KEY_BITS
    text = text_of(size).strip()
    usable = text.isascii() and text.isdigit() and len(text) <= 5  # ASCII only: "²" passes isdigit, not int()
    if not usable or not 0 < int(text) <= MAX_PROOF_KEY_BITS or int(text) % 8:
        raise ClientError(f"unusable KeySize in the response: {clean(text[:20])}")
    return int(text)


def _referenced_id(rstr: etree._Element, trust_ns: str) -> str:
    """The token's ID from the RSTR's RequestedAttachedReference (WS-Trust 1.3 §4.4.2), at most 256 characters."""
    path = f"{ns.qn(trust_ns, 'RequestedAttachedReference')}/{ns.qn(ns.WSSE, 'SecurityTokenReference')}"
    identifier = rstr.find(f"{path}/{ns.qn(ns.WSSE, 'KeyIdentifier')}")
    return text_of(identifier).strip()[:MAX_TOKEN_ID_CHARS] if identifier is not None else ""


def _child_text(parent: etree._Element | None, namespace: str, local: str) -> str:
    child = parent.find(ns.qn(namespace, local)) if parent is not None else None
    return text_of(child) if child is not None else ""


__all__ = [
    "RESPONSE_LIMITS",
    "IssuedToken",
    "ProofKey",
    "ValidationStatus",
    "check_cancelled",
    "find_fault",
    "find_issued_token",
    "find_rstr",
    "proof_key_of",
    "read_answer",
    "read_issued_token",
    "read_status",
]
