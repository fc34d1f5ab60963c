"""What a verified SAML assertion says, as ``(label, value)`` rows for a person to read (SAML 2.0 core §2,
SAML 1.1 core §2). Direct paths only, so nothing from Advice or nested assertions; values are as signed, so a
caller printing them escapes them first."""

from __future__ import annotations

import datetime as dt

from lxml import etree

from sts import ns
from sts.tokens.validation import VerifiedAssertion
from sts.wstrust.tokentypes import SamlVersion
from sts.xmlutil import text_of

Rows = tuple[tuple[str, str], ...]


def assertion_rows(verified: VerifiedAssertion, now: dt.datetime) -> Rows:
    """The rows of a verified assertion, with a ``validity`` row (the Conditions window against ``now``) after
    ``not on or after``."""
    signed = verified.signed
    rows = _saml2_rows(signed) if verified.version is SamlVersion.SAML20 else _saml1_rows(signed)
    after = next((i + 1 for i, (label, _) in enumerate(rows) if label == "not on or after"), len(rows))
    rows.insert(after, ("validity", _validity(verified, now)))
    return tuple(rows)


def _validity(verified: VerifiedAssertion, now: dt.datetime) -> str:
    """Whether the Conditions window holds now (no clock skew allowed: this is a report, not a decision)."""
    saml = ns.SAML2 if verified.version is SamlVersion.SAML20 else ns.SAML1
    if verified.signed.find(ns.qn(saml, "Conditions")) is None:
        return "no Conditions"
    if verified.not_before is not None and verified.not_before > now:
        return "NOT YET VALID"
    if verified.not_on_or_after is not None and verified.not_on_or_after <= now:
        return "EXPIRED"
    return "within NotBefore/NotOnOrAfter"


_RowList = list[tuple[str, str]]


def _q2(*path: str) -> str:
    return "/".join(ns.qn(ns.SAML2, part) for part in path)


def _q1(*path: str) -> str:
    return "/".join(ns.qn(ns.SAML1, part) for part in path)


def _texts(element: etree._Element, path: str) -> list[str]:
    return [text_of(found).strip() for found in element.findall(path)]


def _first_text(element: etree._Element, path: str) -> str:
    found = element.find(path)
    return text_of(found).strip() if found is not None else ""


def _dash(value: str | None) -> str:
    return value if value else "-"


def _attribute_rows(name: str, values: list[str]) -> _RowList:
    """One row per value (a multi-valued claim has one AttributeValue each)."""
    return [("attribute", f"{name} = {value}") for value in values] or [("attribute", f"{name} (no value)")]


def _window_rows(conditions: etree._Element | None) -> _RowList:
    return [
        ("not before", _dash(conditions.get("NotBefore") if conditions is not None else None)),
        ("not on or after", _dash(conditions.get("NotOnOrAfter") if conditions is not None else None)),
    ]


def _saml2_rows(assertion: etree._Element) -> _RowList:
    """What a signed SAML 2.0 assertion says."""
    rows: _RowList = [
        ("SAML version", _dash(assertion.get("Version"))),
        ("ID", _dash(assertion.get("ID"))),
        ("issuer", _dash(_first_text(assertion, _q2("Issuer")))),
        ("issue instant", _dash(assertion.get("IssueInstant"))),
    ]
    name_id = assertion.find(_q2("Subject", "NameID"))
    if name_id is not None:
        rows.append(("subject", text_of(name_id).strip()))
        rows.append(("subject format", _dash(name_id.get("Format"))))
    else:
        rows.append(("subject", "-"))
    for confirmation in assertion.findall(_q2("Subject", "SubjectConfirmation")):
        rows.append(("confirmation", _dash(confirmation.get("Method"))))
        data = confirmation.find(_q2("SubjectConfirmationData"))
        if data is not None:
            for name, label in (("Recipient", "recipient"), ("NotOnOrAfter", "confirmation until")):
                if data.get(name):
                    rows.append((label, data.get(name, "")))
    audiences = _texts(assertion, _q2("Conditions", "AudienceRestriction", "Audience"))
    rows += [("audience", audience) for audience in audiences] or [("audience", "-")]
    rows += _window_rows(assertion.find(_q2("Conditions")))
    for statement in assertion.findall(_q2("AuthnStatement")):
        context = _first_text(statement, _q2("AuthnContext", "AuthnContextClassRef")) or _first_text(
            statement, _q2("AuthnContext", "AuthnContextDeclRef")
        )
        rows.append(("authn context", _dash(context)))
        rows.append(("authn instant", _dash(statement.get("AuthnInstant"))))
    for attribute in assertion.findall(_q2("AttributeStatement", "Attribute")):
        rows += _attribute_rows(attribute.get("Name", ""), _texts(attribute, _q2("AttributeValue")))
    return rows


def _saml1_rows(assertion: etree._Element) -> _RowList:
    """What a signed SAML 1.1 assertion says."""
    major, minor = assertion.get("MajorVersion"), assertion.get("MinorVersion")
    rows: _RowList = [
        ("SAML version", f"{major}.{minor}" if major and minor else "-"),
        ("ID", _dash(assertion.get("AssertionID"))),
        ("issuer", _dash(assertion.get("Issuer"))),
        ("issue instant", _dash(assertion.get("IssueInstant"))),
    ]
    subject = None
    for kind in ("AuthenticationStatement", "AttributeStatement", "SubjectStatement", "AuthorizationDecisionStatement"):
        subject = assertion.find(_q1(kind, "Subject"))
        if subject is not None:
            break
    name_id = subject.find(_q1("NameIdentifier")) if subject is not None else None
    if name_id is not None:
        rows.append(("subject", text_of(name_id).strip()))
        rows.append(("subject format", _dash(name_id.get("Format"))))
    else:
        rows.append(("subject", "-"))
    methods = _texts(subject, _q1("SubjectConfirmation", "ConfirmationMethod")) if subject is not None else []
    rows += [("confirmation", method) for method in methods] or [("confirmation", "-")]
    audiences = _texts(assertion, _q1("Conditions", "AudienceRestrictionCondition", "Audience"))
    rows += [("audience", audience) for audience in audiences] or [("audience", "-")]
    rows += _window_rows(assertion.find(_q1("Conditions")))
    for statement in assertion.findall(_q1("AuthenticationStatement")):
        rows.append(("authn method", _dash(statement.get("AuthenticationMethod"))))
        rows.append(("authn instant", _dash(statement.get("AuthenticationInstant"))))
    for attribute in assertion.findall(_q1("AttributeStatement", "Attribute")):
        name = f"{attribute.get('AttributeNamespace', '')}/{attribute.get('AttributeName', '')}"
        rows += _attribute_rows(name, _texts(attribute, _q1("AttributeValue")))
    return rows


__all__ = ["Rows", "assertion_rows"]
