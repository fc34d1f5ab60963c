"""SAML 1.1 bearer assertions (SAML 1.1 core §2; WS-Security SAML Token Profile 1.1).

Child order: Conditions, AuthenticationStatement, AttributeStatement, then the signature appended last by the
signer. Attribute names are split at the last ``/`` into AttributeNamespace and AttributeName, as WIF and
WSO2 do.
"""

from __future__ import annotations

import copy
import functools

from lxml import etree

from sts import ns
from sts.clock import format_instant
from sts.tokens.authn import PASSWORD_PROTECTED_TRANSPORT, saml11_method
from sts.tokens.base import AssertionContent, Attribute

BEARER = "urn:oasis:names:tc:SAML:1.0:cm:bearer"
HOLDER_OF_KEY = "urn:oasis:names:tc:SAML:1.0:cm:holder-of-key"
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


def build_saml11(content: AssertionContent, authn_context: str = PASSWORD_PROTECTED_TRANSPORT) -> etree._Element:
    """An unsigned SAML 1.1 assertion with bearer or holder-of-key subject confirmation; ``authn_context`` (a SAML
    2.0 class) is stated as its SAML 1.1 authentication method.

    A copy of the :func:`_skeleton` of its shape (made in C: building its elements in Python cost several times
    more), with the values written in.
    """
    attributes = content.attributes
    if content.delegates:  # SAML 1.1 has no delegation condition: the chain is an attribute, oldest first
        attributes = (*attributes, Attribute(DELEGATES_ATTRIBUTE, tuple(d.name for d in content.delegates)))
    claims = tuple(attribute.uri for attribute in attributes)
    assertion = copy.deepcopy(_skeleton(content.key_info is not None, claims))
    assertion.set("AssertionID", content.assertion_id)
    assertion.set("IssueInstant", format_instant(content.issue_instant))
    assertion.set("Issuer", content.issuer)
    conditions, authn, *statement = assertion  # statement: [AttributeStatement] or []
    conditions.set("NotBefore", format_instant(content.not_before))
    conditions.set("NotOnOrAfter", format_instant(content.not_on_or_after))
    conditions[0][0].text = content.audience
    authn.set("AuthenticationInstant", format_instant(content.authn_instant))
    authn.set("AuthenticationMethod", saml11_method(authn_context))
    _fill_subject(authn[0], content)
    if statement:  # each claim's Attribute is in the skeleton, after the Subject; only its values are made here
        subject, *elements = statement[0]
        _fill_subject(subject, content)
        for element, attribute in zip(elements, attributes, strict=True):
            for value in attribute.values:
                etree.SubElement(element, _ATTRIBUTE_VALUE).text = value
    return assertion


def _fill_subject(subject: etree._Element, content: AssertionContent) -> None:
    """Write the name into a skeleton's Subject and, for holder-of-key, the key the subject must prove."""
    name_identifier, confirmation = subject
    name_identifier.text = content.name_id
    name_identifier.set("Format", content.name_id_format)
    if content.key_info is not None:
        confirmation.append(copy.deepcopy(content.key_info))


@functools.lru_cache(maxsize=256)  # keyed by the relying party's claim URIs: few distinct lists in practice
def _skeleton(holder_of_key: bool, claims: tuple[str, ...]) -> etree._Element:
    """The assertion without its values: Conditions, AuthenticationStatement, AttributeStatement (its Subject, then
    an Attribute per claim, values left out); the signer appends the signature. Never handed out: :func:`build_saml11`
    fills a copy."""
    assertion = etree.Element(
        ns.qn(ns.SAML1, "Assertion"),
        {"AssertionID": "", "IssueInstant": "", "Issuer": "", "MajorVersion": "1", "MinorVersion": "1"},
        nsmap={"saml": ns.SAML1},
    )
    conditions = _el(assertion, "Conditions", NotBefore="", NotOnOrAfter="")
    _el(_el(conditions, "AudienceRestrictionCondition"), "Audience")
    authn = _el(assertion, "AuthenticationStatement", AuthenticationInstant="", AuthenticationMethod="")
    _subject(authn, holder_of_key)
    if claims:
        statement = _el(assertion, "AttributeStatement")
        _subject(statement, holder_of_key)
        for uri in claims:
            namespace, name = split_attribute_name(uri)
            etree.SubElement(statement, _ATTRIBUTE, AttributeName=name, AttributeNamespace=namespace)
    return assertion


def _subject(parent: etree._Element, holder_of_key: bool) -> None:
    """A Subject without its name (and, for holder-of-key, without the key: :func:`_fill_subject` adds both)."""
    subject = _el(parent, "Subject")
    _el(subject, "NameIdentifier", Format="")
    confirmation = _el(subject, "SubjectConfirmation")
    _el(confirmation, "ConfirmationMethod", HOLDER_OF_KEY if holder_of_key else BEARER)
