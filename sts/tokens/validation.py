"""Verifying SAML assertions handed back to the STS (Validate, Renew, Cancel targets), XSW-proof.

Strict extraction (security-catalogue §F): the target must be exactly one ``saml:Assertion`` with no other
Assertion below it; its one enveloped signature must be a direct child whose single Reference names the
assertion's own ID; the signature is verified with a pinned certificate (the STS's own, current or
still-accepted); and everything the caller learns is read from ``signed_xml`` alone, the element signxml
actually verified, with full text content (comments cannot truncate it: finding M6).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass

from cryptography import x509
from lxml import etree

from sts import ns
from sts.crypto.verifier import SignatureRejected, verify_enveloped
from sts.wss.timestamp import parse_saml_instant
from sts.wstrust.tokentypes import SamlVersion
from sts.xmlutil import text_of

_ASSERTIONS = {ns.qn(ns.SAML2, "Assertion"): SamlVersion.SAML20, ns.qn(ns.SAML1, "Assertion"): SamlVersion.SAML11}
_ID_ATTRIBUTE = {SamlVersion.SAML20: "ID", SamlVersion.SAML11: "AssertionID"}


class AssertionRejected(Exception):
    """The assertion is not acceptable; ``reason`` is for operators (audit), never for the caller."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class VerifiedAssertion:
    """What a verified assertion says, read from the signed element only."""

    version: SamlVersion
    assertion_id: str
    subject: str
    not_before: dt.datetime | None
    not_on_or_after: dt.datetime | None
    # One set of audiences per AudienceRestriction (SAML 1.1: AudienceRestrictionCondition), in document order.
    audiences: tuple[frozenset[str], ...]
    signed: etree._Element
    issuer: str = ""
    delegates: tuple[str, ...] = ()  # the ActAs chain the token records, oldest first (names only)
    one_time_use: bool = False  # SAML 2.0 core §2.5.1.5
    confirmation_methods: tuple[str, ...] = ()
    # SAML 2.0: (NotBefore, NotOnOrAfter) of each SubjectConfirmation's SubjectConfirmationData (None: not stated),
    # in document order; SAML 1.1 states none.
    confirmation_windows: tuple[tuple[dt.datetime | None, dt.datetime | None], ...] = ()

    @property
    def made(self) -> float | None:
        """NotBefore in epoch seconds: no earlier than the assertion was made (a replay cache's ``created``)."""
        return self.not_before.timestamp() if self.not_before is not None else None

    def addressed_to(self, acceptable: Collection[str]) -> bool:
        """Whether the assertion is addressed to one of ``acceptable``: every audience restriction names one of
        them (SAML 2.0 core §2.5.1.4: the conditions are a conjunction, the audiences of one an alternative; SAML
        1.1 core §2.3.2.1.3 the same). An assertion with no restriction names no audience: not addressed."""
        return bool(self.audiences) and all(not group.isdisjoint(acceptable) for group in self.audiences)


def saml_version(element: etree._Element) -> SamlVersion | None:
    """The SAML version of an Assertion element, or None for anything else."""
    return _ASSERTIONS.get(element.tag) if isinstance(element.tag, str) else None


def verify_assertion(assertion: etree._Element, trusted: tuple[x509.Certificate, ...]) -> VerifiedAssertion:
    """Verify one assertion strictly, or raise :class:`AssertionRejected`."""
    version = saml_version(assertion)
    if version is None:
        raise AssertionRejected("not_an_assertion")
    for tag in _ASSERTIONS:
        if any(True for _ in assertion.iterdescendants(tag)):
            raise AssertionRejected("nested_assertion")  # XSW3/XSW4/XSW6/XSW8 shapes
    id_attribute = _ID_ATTRIBUTE[version]
    assertion_id = assertion.get(id_attribute) or ""
    try:
        signed = verify_enveloped(assertion, id_attribute, trusted)
    except SignatureRejected:
        raise AssertionRejected("bad_signature") from None
    if signed.tag != assertion.tag or signed.get(id_attribute) != assertion_id:
        raise AssertionRejected("signed_element_mismatch")
    return _read(signed, version, assertion_id)


def _read(signed: etree._Element, version: SamlVersion, assertion_id: str) -> VerifiedAssertion:
    saml = ns.SAML2 if version is SamlVersion.SAML20 else ns.SAML1
    conditions = signed.find(ns.qn(saml, "Conditions"))
    restriction = ns.qn(saml, "AudienceRestriction" if saml == ns.SAML2 else "AudienceRestrictionCondition")
    name_path = (
        f"{ns.qn(saml, 'Subject')}/{ns.qn(saml, 'NameID')}"
        if version is SamlVersion.SAML20
        else f".//{ns.qn(saml, 'Subject')}/{ns.qn(saml, 'NameIdentifier')}"
    )
    name = signed.find(name_path)
    if version is SamlVersion.SAML11:
        # SAML 1.1 core §2.4: every statement has its own Subject; one assertion names one subject, or none is read.
        named = {text_of(other).strip() for other in signed.iterfind(name_path)}
        if len(named) > 1:
            raise AssertionRejected("ambiguous_subject")
    restrictions = conditions.findall(restriction) if conditions is not None else []
    saml2 = version is SamlVersion.SAML20
    issuer_element = signed.find(ns.qn(saml, "Issuer")) if saml2 else None
    issuer = text_of(issuer_element) if issuer_element is not None else signed.get("Issuer") or ""
    return VerifiedAssertion(
        version=version,
        assertion_id=assertion_id,
        subject=text_of(name).strip() if name is not None else "",
        not_before=_instant(conditions, "NotBefore"),
        not_on_or_after=_instant(conditions, "NotOnOrAfter"),
        audiences=tuple(
            frozenset(text_of(audience).strip() for audience in group.iterfind(ns.qn(saml, "Audience")))
            for group in restrictions
        ),
        signed=signed,
        issuer=issuer.strip(),
        delegates=_delegates(signed, conditions, saml2),
        one_time_use=saml2 and conditions is not None and conditions.find(ns.qn(saml, "OneTimeUse")) is not None,
        confirmation_methods=_confirmation_methods(signed, saml2),
        confirmation_windows=_confirmation_windows(signed) if saml2 else (),
    )


def _delegates(signed: etree._Element, conditions: etree._Element | None, saml2: bool) -> tuple[str, ...]:
    """The chain a token records: ``del:Delegate/saml2:NameID`` in every delegation condition (SAML 2.0), or the
    values of this STS's SAML 1.1 delegates attribute."""
    if saml2:
        if conditions is None:
            return ()
        path = f"{ns.qn(ns.SAML2, 'Condition')}/{ns.qn(ns.SAML_DELEGATION, 'Delegate')}/{ns.qn(ns.SAML2, 'NameID')}"
        return tuple(text_of(name).strip() for name in conditions.findall(path))
    values: list[str] = []
    for attribute in signed.iterfind(f"{ns.qn(ns.SAML1, 'AttributeStatement')}/{ns.qn(ns.SAML1, 'Attribute')}"):
        if attribute.get("AttributeNamespace") == ns.SAML_DELEGATION and attribute.get("AttributeName") == "Delegate":
            values += [text_of(value).strip() for value in attribute.iterfind(ns.qn(ns.SAML1, "AttributeValue"))]
    return tuple(values)


def _confirmation_methods(signed: etree._Element, saml2: bool) -> tuple[str, ...]:
    if saml2:
        confirmations = signed.iterfind(f"{ns.qn(ns.SAML2, 'Subject')}/{ns.qn(ns.SAML2, 'SubjectConfirmation')}")
        return tuple((c.get("Method") or "").strip() for c in confirmations)
    methods = signed.iterfind(
        f".//{ns.qn(ns.SAML1, 'SubjectConfirmation')}/{ns.qn(ns.SAML1, 'ConfirmationMethod')}"
    )
    return tuple(dict.fromkeys(text_of(method).strip() for method in methods))


def _confirmation_windows(signed: etree._Element) -> tuple[tuple[dt.datetime | None, dt.datetime | None], ...]:
    """SAML 2.0 core §2.4.1.2: the window in which each SubjectConfirmation may confirm the subject."""
    windows = []
    path = f"{ns.qn(ns.SAML2, 'Subject')}/{ns.qn(ns.SAML2, 'SubjectConfirmation')}"
    for confirmation in signed.iterfind(path):
        data = confirmation.find(ns.qn(ns.SAML2, "SubjectConfirmationData"))
        windows.append((_instant(data, "NotBefore"), _instant(data, "NotOnOrAfter")))
    return tuple(windows)


def _instant(conditions: etree._Element | None, name: str) -> dt.datetime | None:
    value = conditions.get(name) if conditions is not None else None
    if value is None:
        return None
    try:
        return parse_saml_instant(value)
    except Exception:  # an unparseable window is an invalid token, not a crash
        raise AssertionRejected("bad_conditions") from None


def within_validity(verified: VerifiedAssertion, now: dt.datetime, skew_seconds: int) -> bool:
    """NotBefore ≤ now + skew and now − skew < NotOnOrAfter (SAML 2.0 core §2.5.1.2, with the configured clock skew)."""
    skew = dt.timedelta(seconds=skew_seconds)
    if verified.not_before is not None and verified.not_before > now + skew:
        return False
    return verified.not_on_or_after is None or now - skew < verified.not_on_or_after
