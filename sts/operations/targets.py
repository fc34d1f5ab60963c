"""Resolving a ValidateTarget / RenewTarget / CancelTarget to what the STS knows about the token, and whose it is.

Three forms are accepted: the assertion as the relying party holds it (decrypted; its signature is verified
strictly, see :mod:`sts.tokens.validation`), the token exactly as issued (still encrypted: matched by its digest
in the token store), or a ``wsse:SecurityTokenReference`` naming an assertion ID the STS issued (WSS SAML Token
Profile 1.1 §3.4).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509
from lxml import etree

from sts import ns
from sts.errors import InvalidRequest, STSError, TrustFailedAuthentication
from sts.operations.call import TrustCall
from sts.operations.records import token_digest
from sts.stores.base import TokenRecord, TokenStore
from sts.tokens.validation import AssertionRejected, VerifiedAssertion, saml_version, verify_assertion
from sts.xmlutil import element_children, text_of

_ENCRYPTED = (ns.qn(ns.SAML2, "EncryptedAssertion"), ns.qn(ns.XENC, "EncryptedData"))
_ID_VALUE_TYPES = frozenset(
    {
        "http://docs.oasis-open.org/wss/oasis-wss-saml-token-profile-1.1#SAMLID",
        "http://docs.oasis-open.org/wss/oasis-wss-saml-token-profile-1.0#SAMLAssertionID",
    }
)


@dataclass(frozen=True, slots=True)
class ResolvedTarget:
    """The token a lifecycle request is about: its store record and, for inline assertions, what it says."""

    token_id: str
    record: TokenRecord | None
    verified: VerifiedAssertion | None = None
    rejected: str = ""  # non-empty: the inline assertion failed verification (operator reason)


class TargetResolver:
    """Finds targets in the token store and verifies inline assertions against trusted issuers.

    ``trusted`` is asked at each verification: the STS's own accepted certificates change with key rotation.
    """

    def __init__(self, store: TokenStore | None, trusted: Callable[[], tuple[x509.Certificate, ...]]) -> None:
        self._store = store
        self._trusted = trusted

    def resolve(self, target: etree._Element | None) -> ResolvedTarget:
        """Resolve the one child of a *Target element; malformed targets are ``wst:InvalidRequest``."""
        if target is None:
            raise InvalidRequest("missing target", reason="missing_target")
        if saml_version(target) is not None:
            return self._assertion(target)
        if target.tag in _ENCRYPTED:
            record = self._store.find_by_digest(token_digest(target)) if self._store else None
            return ResolvedTarget(record.token_id if record else "", record)
        if target.tag == ns.qn(ns.WSSE, "SecurityTokenReference"):
            token_id = _referenced_id(target)
            return ResolvedTarget(token_id, self._store.get(token_id) if self._store else None)
        raise InvalidRequest("unsupported target", reason="unsupported_target")

    def _assertion(self, assertion: etree._Element) -> ResolvedTarget:
        try:
            verified = verify_assertion(assertion, self._trusted())
        except AssertionRejected as rejected:
            return ResolvedTarget("", None, rejected=rejected.reason)
        record = self._store.get(verified.assertion_id) if self._store else None
        return ResolvedTarget(verified.assertion_id, record, verified)


def _referenced_id(reference: etree._Element) -> str:
    """The assertion ID a SecurityTokenReference names by KeyIdentifier (SAML token profile §3.4)."""
    children = element_children(reference)
    if len(children) != 1:
        raise InvalidRequest("SecurityTokenReference needs one reference", reason="bad_str")
    child = children[0]
    if child.tag == ns.qn(ns.WSSE, "KeyIdentifier") and child.get("ValueType") in _ID_VALUE_TYPES:
        value = text_of(child).strip()
    elif child.tag == ns.qn(ns.WSSE, "Reference") and (child.get("URI") or "").startswith("#"):
        value = (child.get("URI") or "")[1:].strip()
    else:
        raise InvalidRequest("unsupported SecurityTokenReference", reason="bad_str")
    if not value or len(value) > 256:
        raise InvalidRequest("bad token reference", reason="bad_str")
    return value


def owned_record(call: TrustCall, target: ResolvedTarget, unknown: type[STSError]) -> TokenRecord:
    """The target's record, if the STS issued it to this caller (else ``unknown`` / wst:FailedAuthentication)."""
    record = target.record
    if record is None:
        raise unknown("token not issued by this STS", reason=target.rejected or "unknown_token")
    if record.subject.casefold() != call.caller.principal.qualified_name.casefold():
        raise TrustFailedAuthentication("token belongs to another subject", reason="not_token_owner")
    return record
