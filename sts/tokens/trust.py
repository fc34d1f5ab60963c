"""Which inbound assertions the STS believes: its own, and those of configured trusted issuers, checked strictly.

Used for every assertion a caller hands in to be acted upon (OnBehalfOf, ActAs, Validate transformation, the
issued-token callers). An assertion belongs to an issuer only when its Issuer names that issuer **and** its one
enveloped signature verifies with that issuer's pinned certificates (:func:`~sts.tokens.validation.verify_assertion`,
the XSW-proof verifier of Validate); everything after that is read from the signed element alone. A certificate
the assertion carries in its ``KeyInfo`` is never used. Refusals are :class:`~sts.tokens.validation.AssertionRejected`
with an operator-facing reason.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509
from lxml import etree

from sts import ns
from sts.stores.base import ReplayCache
from sts.tokens.validation import AssertionRejected, VerifiedAssertion, saml_version, verify_assertion
from sts.wstrust.tokentypes import SamlVersion
from sts.xmlutil import text_of

SELF = "self"
# The ReplayCache namespace of one-time assertions (OneTimeUse, or an issuer's ``single_use``): one for every binding
# that acts on a trusted assertion (issued-token callers, OnBehalfOf/ActAs, Validate transformation), so the STS
# uses such an assertion once in all (SAML 2.0 core §2.5.1.5), not once per binding.
ONE_TIME_NAMESPACE = "saml-assertion"


@dataclass(frozen=True, slots=True)
class IssuerTrust:
    """One issuer the STS believes: its entity id (the assertions' Issuer), its pinned certificates and rules."""

    entity_id: str
    certificates: tuple[x509.Certificate, ...]
    source: str  # "self" for this STS, else the entity id
    map_to_domain: str = "PRIMARY"
    subject_attribute: str = ""  # empty: the NameID names the user
    max_token_age: int = 28800  # seconds between NotBefore and NotOnOrAfter, at most
    single_use: bool = False
    callers: bool = False


@dataclass(frozen=True, slots=True)
class TrustedAssertion:
    """A verified, currently valid assertion and the issuer it belongs to."""

    verified: VerifiedAssertion
    issuer: IssuerTrust

    @property
    def user_name(self) -> str:
        """The name the issuer gives the subject: the NameID, or the configured attribute's one value."""
        attribute = self.issuer.subject_attribute
        if not attribute:
            return self.verified.subject
        values = attribute_values(self.verified, attribute)
        if len(values) != 1:
            raise AssertionRejected("subject_attribute_missing")
        return values[0]


class IssuerTrustList:
    """The issuers the STS believes, by entity id.

    ``own_certificates``: this STS's certificates in force now (the key ring's published ones), asked at each
    verification of an assertion of the issuer whose ``source`` is :data:`SELF`, so tokens signed after a key
    rotation are believed without a reload; without it, that issuer's pinned certificates.
    """

    def __init__(
        self,
        issuers: tuple[IssuerTrust, ...],
        skew: int,
        own_certificates: Callable[[], tuple[x509.Certificate, ...]] | None = None,
    ) -> None:
        self._issuers = {issuer.entity_id: issuer for issuer in issuers}
        self._skew = dt.timedelta(seconds=skew)
        self._own = own_certificates

    def issuer(self, entity_id: str) -> IssuerTrust | None:
        """The issuer configured under ``entity_id``."""
        return self._issuers.get(entity_id)

    def verify(self, assertion: etree._Element, now: dt.datetime) -> TrustedAssertion:
        """Verify ``assertion`` against the issuer it names and check its validity window at ``now``."""
        claimed = _claimed_issuer(assertion)
        issuer = self._issuers.get(claimed)
        if issuer is None:
            raise AssertionRejected("untrusted_issuer")
        certificates = self._own() if issuer.source == SELF and self._own is not None else issuer.certificates
        try:
            verified = verify_assertion(assertion, certificates)
        except AssertionRejected as rejected:
            raise AssertionRejected(_token_reason(rejected.reason)) from None
        if verified.issuer != issuer.entity_id:  # the signed Issuer must be the one the key was chosen for
            raise AssertionRejected("issuer_key_mismatch")
        self._check_window(verified, issuer, now)
        return TrustedAssertion(verified, issuer)

    def _check_window(self, verified: VerifiedAssertion, issuer: IssuerTrust, now: dt.datetime) -> None:
        """SAML 2.0 core §2.5.1.2 (and SAML 1.1 §2.3.2.1) with the clock skew; a bounded lifetime."""
        not_before, not_after = verified.not_before, verified.not_on_or_after
        if not_before is None or not_after is None:
            raise AssertionRejected("token_window_missing")  # an assertion we act on must expire
        if not_before > now + self._skew:
            raise AssertionRejected("token_not_yet_valid")
        if now - self._skew >= not_after:
            raise AssertionRejected("token_expired")
        if (not_after - not_before).total_seconds() > issuer.max_token_age:
            raise AssertionRejected("token_lifetime_too_long")
        # SAML 2.0 core §2.4.1.2 (profiles §4.1.4.2 for bearer): a SubjectConfirmationData window bounds when the
        # subject can be confirmed, often much shorter than the Conditions; with none open, nobody presents it.
        windows = verified.confirmation_windows
        if windows and not any(self._open(start, end, now) for start, end in windows):
            raise AssertionRejected("confirmation_expired")

    def _open(self, start: dt.datetime | None, end: dt.datetime | None, now: dt.datetime) -> bool:
        return (start is None or start <= now + self._skew) and (end is None or now - self._skew < end)


def attribute_values(verified: VerifiedAssertion, name: str) -> tuple[str, ...]:
    """The values of the attribute ``name`` (SAML 2.0 ``Name``; SAML 1.1 ``AttributeNamespace/AttributeName``)."""
    values: list[str] = []
    if verified.version is SamlVersion.SAML20:
        path = f"{ns.qn(ns.SAML2, 'AttributeStatement')}/{ns.qn(ns.SAML2, 'Attribute')}"
        for attribute in verified.signed.iterfind(path):
            if attribute.get("Name") == name:
                values += [text_of(v).strip() for v in attribute.iterfind(ns.qn(ns.SAML2, "AttributeValue"))]
        return tuple(values)
    path = f"{ns.qn(ns.SAML1, 'AttributeStatement')}/{ns.qn(ns.SAML1, 'Attribute')}"
    for attribute in verified.signed.iterfind(path):
        if f"{attribute.get('AttributeNamespace')}/{attribute.get('AttributeName')}" == name:
            values += [text_of(v).strip() for v in attribute.iterfind(ns.qn(ns.SAML1, "AttributeValue"))]
    return tuple(values)


def _claimed_issuer(assertion: etree._Element) -> str:
    """The Issuer the (not yet verified) assertion claims: only used to choose which keys to verify with."""
    version = saml_version(assertion)
    if version is SamlVersion.SAML20:
        issuer = assertion.find(ns.qn(ns.SAML2, "Issuer"))
        return text_of(issuer).strip() if issuer is not None else ""
    if version is SamlVersion.SAML11:
        return (assertion.get("Issuer") or "").strip()
    raise AssertionRejected("not_an_assertion")


def _token_reason(reason: str) -> str:
    """Audit reasons of the verifier's refusals, as the delegation audit names them."""
    if reason in ("nested_assertion", "signed_element_mismatch"):
        return "token_wrapped"
    if reason == "bad_signature":
        return "token_signature_invalid"
    return reason


def first_use(replay: ReplayCache, namespace: str, trusted: TrustedAssertion, now: dt.datetime) -> bool:
    """Whether this is the first presentation of a one-time assertion (SAML 2.0 core §2.5.1.5 OneTimeUse, or the
    issuer's ``single_use``) in ``namespace``, recording it: by issuer and ID, for as long as the assertion could be
    accepted at all (its NotOnOrAfter and ten minutes of skew), made no earlier than its NotBefore (what a replay
    cache that can lose its contents needs to know)."""
    verified = trusted.verified
    key = hashlib.sha256(f"{trusted.issuer.entity_id}\0{verified.assertion_id}".encode()).digest()
    until = (verified.not_on_or_after or now).timestamp() + 600
    return replay.check_and_add(namespace, key, until, verified.made)
