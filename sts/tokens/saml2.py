"""SAML 2.0 bearer assertions (SAML 2.0 core §2; SAML 2.0 profiles §4.1.4.2 for bearer assertions).

Child order is the schema's: Issuer, (Signature, added by the signer right after Issuer), Subject, Conditions,
AuthnStatement, AttributeStatement. The assertion declares the one namespace it uses on itself, so it stands
alone when a client cuts it out of the response or an RP decrypts it.
"""

from __future__ import annotations

import copy
import functools

from lxml import etree

from sts import ns
from sts.clock import format_instant
from sts.tokens.authn import PASSWORD_PROTECTED_TRANSPORT
from sts.tokens.base import AssertionContent

BEARER = "urn:oasis:names:tc:SAML:2.0:cm:bearer"
HOLDER_OF_KEY = "urn:oasis:names:tc:SAML:2.0:cm:holder-of-key"
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
    """An unsigned SAML 2.0 assertion with bearer or holder-of-key subject confirmation.

    A copy of the :func:`_skeleton` of its shape (made in C: building the ~20 elements in Python cost several times
    more), with the values written in.
    """
    claims = tuple(attribute.uri for attribute in content.attributes)
    assertion = copy.deepcopy(_skeleton(content.key_info is not None, claims))
    assertion.set("ID", content.assertion_id)
    assertion.set("IssueInstant", format_instant(content.issue_instant))
    issuer, subject, conditions, authn, *statement = assertion  # statement: [AttributeStatement] or []
    issuer.text = content.issuer
    name_id, confirmation = subject
    name_id.text = content.name_id
    name_id.set("Format", content.name_id_format)
    data = confirmation[0]
    if content.key_info is None:
        data.set("NotOnOrAfter", format_instant(content.not_on_or_after))
        data.set("Recipient", content.recipient)
    else:
        data.append(copy.deepcopy(content.key_info))
    conditions.set("NotBefore", format_instant(content.not_before))
    conditions.set("NotOnOrAfter", format_instant(content.not_on_or_after))
    conditions[0][0].text = content.audience
    if content.delegates:
        _delegation_condition(conditions, content)
    authn.set("AuthnInstant", format_instant(content.authn_instant))
    authn[0][0].text = authn_context
    if statement:  # each claim's Attribute is in the skeleton; only its values are made here
        for element, attribute in zip(statement[0], content.attributes, strict=True):
            for value in attribute.values:
                etree.SubElement(element, _ATTRIBUTE_VALUE).text = value
    return assertion


@functools.lru_cache(maxsize=256)  # keyed by the relying party's claim URIs: few distinct lists in practice
def _skeleton(holder_of_key: bool, claims: tuple[str, ...]) -> etree._Element:
    """The assertion without its values, in the schema's child order: Issuer, (Signature, added by the signer right
    after Issuer), Subject, Conditions, AuthnStatement, AttributeStatement (with an Attribute per claim, values
    left out). Never handed out: :func:`build_saml2` fills a copy."""
    assertion = etree.Element(
        ns.qn(ns.SAML2, "Assertion"), {"ID": "", "IssueInstant": "", "Version": "2.0"}, nsmap={"saml2": ns.SAML2}
    )
    _el(assertion, "Issuer")
    subject = _el(assertion, "Subject")
    _el(subject, "NameID", Format="")
    if not holder_of_key:
        confirmation = _el(subject, "SubjectConfirmation", Method=BEARER)
        _el(confirmation, "SubjectConfirmationData", NotOnOrAfter="", Recipient="")
    else:  # SAML 2.0 profiles §3.1 / WS-Trust: KeyInfoConfirmationDataType
        confirmation = _el(subject, "SubjectConfirmation", Method=HOLDER_OF_KEY)
        etree.SubElement(
            confirmation,
            ns.qn(ns.SAML2, "SubjectConfirmationData"),
            {ns.qn(ns.XSI, "type"): "saml2:KeyInfoConfirmationDataType"},
            nsmap={"xsi": ns.XSI},
        )
    conditions = _el(assertion, "Conditions", NotBefore="", NotOnOrAfter="")
    _el(_el(conditions, "AudienceRestriction"), "Audience")
    authn = _el(assertion, "AuthnStatement", AuthnInstant="")
    _el(_el(authn, "AuthnContext"), "AuthnContextClassRef")
    if claims:  # the schema wants at least one Attribute in an AttributeStatement
        statement = _el(assertion, "AttributeStatement")
        for uri in claims:
            etree.SubElement(statement, _ATTRIBUTE, Name=uri, NameFormat=ATTRNAME_URI)
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
