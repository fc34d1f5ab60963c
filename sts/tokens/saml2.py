"""SAML 2.0 bearer assertions (SAML 2.0 core §2; SAML 2.0 profiles §4.1.4.2 for bearer assertions).

Child order is the schema's: Issuer, (Signature, added by the signer right after Issuer), Subject, Conditions,
AuthnStatement, AttributeStatement. The assertion declares the one namespace it uses on itself, so it stands
alone when a client cuts it out of the response or an RP decrypts it.
"""

from __future__ import annotations

import copy

from lxml import etree

from sts import ns
from sts.clock import format_instant
from sts.tokens.base import AssertionContent

BEARER = "urn:oasis:names:tc:SAML:2.0:cm:bearer"
HOLDER_OF_KEY = "urn:oasis:names:tc:SAML:2.0:cm:holder-of-key"
PASSWORD_PROTECTED_TRANSPORT = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"  # noqa: S105
ATTRNAME_URI = "urn:oasis:names:tc:SAML:2.0:attrname-format:uri"
DELEGATE_NAME_FORMAT = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"  # DOMAIN/name of the service
_ATTRIBUTE = ns.qn(ns.SAML2, "Attribute")
_ATTRIBUTE_VALUE = ns.qn(ns.SAML2, "AttributeValue")


def _el(parent: etree._Element, local: str, text: str | None = None, **attrs: str) -> etree._Element:
    element = etree.SubElement(parent, ns.qn(ns.SAML2, local), attrs)
    if text is not None:
        element.text = text
    return element


def build_saml2(content: AssertionContent, authn_context: str = PASSWORD_PROTECTED_TRANSPORT) -> etree._Element:
    """An unsigned SAML 2.0 assertion with bearer subject confirmation."""
    assertion = etree.Element(
        ns.qn(ns.SAML2, "Assertion"),
        {"ID": content.assertion_id, "IssueInstant": format_instant(content.issue_instant), "Version": "2.0"},
        nsmap={"saml2": ns.SAML2},
    )
    _el(assertion, "Issuer", content.issuer)
    subject = _el(assertion, "Subject")
    _el(subject, "NameID", content.name_id, Format=content.name_id_format)
    if content.key_info is None:
        confirmation = _el(subject, "SubjectConfirmation", Method=BEARER)
        _el(
            confirmation,
            "SubjectConfirmationData",
            NotOnOrAfter=format_instant(content.not_on_or_after),
            Recipient=content.recipient,
        )
    else:  # SAML 2.0 profiles §3.1 / WS-Trust: KeyInfoConfirmationDataType
        confirmation = _el(subject, "SubjectConfirmation", Method=HOLDER_OF_KEY)
        data = etree.SubElement(
            confirmation,
            ns.qn(ns.SAML2, "SubjectConfirmationData"),
            {ns.qn(ns.XSI, "type"): "saml2:KeyInfoConfirmationDataType"},
            nsmap={"xsi": ns.XSI},
        )
        data.append(copy.deepcopy(content.key_info))
    conditions = _el(
        assertion,
        "Conditions",
        NotBefore=format_instant(content.not_before),
        NotOnOrAfter=format_instant(content.not_on_or_after),
    )
    _el(_el(conditions, "AudienceRestriction"), "Audience", content.audience)
    if content.delegates:
        _delegation_condition(conditions, content)
    authn = _el(assertion, "AuthnStatement", AuthnInstant=format_instant(content.authn_instant))
    _el(_el(authn, "AuthnContext"), "AuthnContextClassRef", authn_context)
    if content.attributes:  # the schema wants at least one Attribute in an AttributeStatement
        statement = _el(assertion, "AttributeStatement")
        for attribute in content.attributes:  # per claim: tag names made once (each extra claim is budgeted)
            element = etree.SubElement(statement, _ATTRIBUTE, Name=attribute.uri, NameFormat=ATTRNAME_URI)
            for value in attribute.values:
                etree.SubElement(element, _ATTRIBUTE_VALUE).text = value
    return assertion


def _delegation_condition(conditions: etree._Element, content: AssertionContent) -> None:
    """The acting services, oldest first (SAML V2.0 Condition for Delegation Restriction §2; Shibboleth's order):
    ``<saml2:Condition xsi:type="del:DelegationRestrictionType"><del:Delegate …><saml2:NameID/>…``."""
    condition = etree.SubElement(
        conditions,
        ns.qn(ns.SAML2, "Condition"),
        {ns.qn(ns.XSI, "type"): "del:DelegationRestrictionType"},
        nsmap={"del": ns.SAML_DELEGATION, "xsi": ns.XSI},
    )
    for delegate in content.delegates:
        element = etree.SubElement(
            condition,
            ns.qn(ns.SAML_DELEGATION, "Delegate"),
            {"DelegationInstant": format_instant(delegate.instant), "ConfirmationMethod": delegate.confirmation_method},
        )
        _el(element, "NameID", delegate.name, Format=DELEGATE_NAME_FORMAT)
