"""SAML 1.1 bearer assertions (SAML 1.1 core §2; WS-Security SAML Token Profile 1.1).

Child order: Conditions, AuthenticationStatement, AttributeStatement, then the signature appended last by the
signer. Attribute names are split at the last ``/`` into AttributeNamespace and AttributeName, as WIF and
WSO2 do.
"""

from __future__ import annotations

import copy

from lxml import etree

from sts import ns
from sts.clock import format_instant
from sts.tokens.base import AssertionContent, Attribute

BEARER = "urn:oasis:names:tc:SAML:1.0:cm:bearer"
HOLDER_OF_KEY = "urn:oasis:names:tc:SAML:1.0:cm:holder-of-key"
PASSWORD = "urn:oasis:names:tc:SAML:1.0:am:password"  # noqa: S105 - a URI
# The ActAs chain of a SAML 1.1 token: AttributeNamespace = the SAML delegation-condition namespace,
# AttributeName = "Delegate", one AttributeValue per acting service (DOMAIN/name), oldest first.
DELEGATES_ATTRIBUTE = ns.SAML_DELEGATION + "/Delegate"


_ATTRIBUTE = ns.qn(ns.SAML1, "Attribute")
_ATTRIBUTE_VALUE = ns.qn(ns.SAML1, "AttributeValue")


def _el(parent: etree._Element, local: str, text: str | None = None, **attrs: str) -> etree._Element:
    element = etree.SubElement(parent, ns.qn(ns.SAML1, local), attrs)
    if text is not None:
        element.text = text
    return element


def split_attribute_name(uri: str) -> tuple[str, str]:
    """``http://wso2.org/claims/emailaddress`` → (``http://wso2.org/claims``, ``emailaddress``)."""
    namespace, sep, name = uri.rpartition("/")
    if not sep or not namespace or not name:
        return uri, uri
    return namespace, name


def _subject(parent: etree._Element, content: AssertionContent) -> None:
    subject = _el(parent, "Subject")
    _el(subject, "NameIdentifier", content.name_id, Format=content.name_id_format)
    confirmation = _el(subject, "SubjectConfirmation")
    if content.key_info is None:
        _el(confirmation, "ConfirmationMethod", BEARER)
    else:
        _el(confirmation, "ConfirmationMethod", HOLDER_OF_KEY)
        confirmation.append(copy.deepcopy(content.key_info))


def build_saml11(content: AssertionContent) -> etree._Element:
    """An unsigned SAML 1.1 assertion with bearer subject confirmation."""
    assertion = etree.Element(
        ns.qn(ns.SAML1, "Assertion"),
        {
            "AssertionID": content.assertion_id,
            "IssueInstant": format_instant(content.issue_instant),
            "Issuer": content.issuer,
            "MajorVersion": "1",
            "MinorVersion": "1",
        },
        nsmap={"saml": ns.SAML1},
    )
    conditions = _el(
        assertion,
        "Conditions",
        NotBefore=format_instant(content.not_before),
        NotOnOrAfter=format_instant(content.not_on_or_after),
    )
    _el(_el(conditions, "AudienceRestrictionCondition"), "Audience", content.audience)
    authn = _el(
        assertion,
        "AuthenticationStatement",
        AuthenticationInstant=format_instant(content.authn_instant),
        AuthenticationMethod=PASSWORD,
    )
    _subject(authn, content)
    attributes = content.attributes
    if content.delegates:  # SAML 1.1 has no delegation condition: the chain is an attribute, oldest first
        attributes = (*attributes, Attribute(DELEGATES_ATTRIBUTE, tuple(d.name for d in content.delegates)))
    if attributes:
        statement = _el(assertion, "AttributeStatement")
        _subject(statement, content)
        for attribute in attributes:
            namespace, name = split_attribute_name(attribute.uri)
            element = etree.SubElement(statement, _ATTRIBUTE, AttributeName=name, AttributeNamespace=namespace)
            for value in attribute.values:  # per claim: tag names made once (each extra claim is budgeted)
                etree.SubElement(element, _ATTRIBUTE_VALUE).text = value
    return assertion
