"""SAML 2.0 and 1.1 assertion shapes (wstrust-protocol.md §16)."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import replace

from lxml import etree

from sts import ns
from sts.tokens.base import NAMEID_UNSPECIFIED, AssertionContent, Attribute, new_assertion_id
from sts.tokens.saml2 import build_saml2
from sts.tokens.saml11 import build_saml11, split_attribute_name

T0 = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)


def content(
    attributes: tuple[Attribute, ...] = (Attribute("http://wso2.org/claims/emailaddress", ("a@x", "b@x")),),
) -> AssertionContent:
    return AssertionContent(
        assertion_id="_" + "a" * 40,
        issuer="https://sts.example/",
        issue_instant=T0,
        not_before=T0 - dt.timedelta(seconds=60),
        not_on_or_after=T0 + dt.timedelta(seconds=300),
        audience="https://rp.example/",
        recipient="https://rp.example/",
        name_id="alice",
        name_id_format=NAMEID_UNSPECIFIED,
        authn_instant=T0,
        attributes=attributes,
    )


def local_names(element: etree._Element) -> list[str]:
    return [etree.QName(child).localname for child in element]


def test_ids_are_160_bit_ncnames() -> None:
    ids = {new_assertion_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(re.fullmatch(r"_[0-9a-f]{40}", value) for value in ids)


def test_saml2_shape() -> None:
    assertion = build_saml2(content())
    assert assertion.nsmap == {"saml2": ns.SAML2}
    assert assertion.get("ID") == "_" + "a" * 40 and assertion.get("Version") == "2.0"
    assert assertion.get("IssueInstant") == "2026-01-01T12:00:00Z"
    assert local_names(assertion) == ["Issuer", "Subject", "Conditions", "AuthnStatement", "AttributeStatement"]
    data = assertion.find(f".//{{{ns.SAML2}}}SubjectConfirmationData")
    assert data is not None and data.attrib == {
        "NotOnOrAfter": "2026-01-01T12:05:00Z",
        "Recipient": "https://rp.example/",
    }
    conditions = assertion.find(f"{{{ns.SAML2}}}Conditions")
    assert conditions is not None and conditions.get("NotBefore") == "2026-01-01T11:59:00Z"
    values = [v.text for v in assertion.iter(f"{{{ns.SAML2}}}AttributeValue")]
    assert values == ["a@x", "b@x"]


def test_saml2_without_claims_has_no_empty_attribute_statement() -> None:
    assert "AttributeStatement" not in local_names(build_saml2(content(())))


def test_saml11_shape_and_attribute_split() -> None:
    assertion = build_saml11(content())
    assert assertion.get("AssertionID") == "_" + "a" * 40
    assert (assertion.get("MajorVersion"), assertion.get("MinorVersion")) == ("1", "1")
    assert local_names(assertion) == ["Conditions", "AuthenticationStatement", "AttributeStatement"]
    attribute = assertion.find(f".//{{{ns.SAML1}}}Attribute")
    assert attribute is not None
    assert (attribute.get("AttributeNamespace"), attribute.get("AttributeName")) == (
        "http://wso2.org/claims",
        "emailaddress",
    )
    assert split_attribute_name("urn:x") == ("urn:x", "urn:x")


def test_markup_in_values_is_escaped_and_round_trips() -> None:
    evil = "x</saml2:AttributeValue><saml2:AttributeValue>admin & ]]>"
    assertion = build_saml2(content((Attribute("urn:a", (evil,)),)))
    reparsed = etree.fromstring(etree.tostring(assertion))
    assert [v.text for v in reparsed.iter(f"{{{ns.SAML2}}}AttributeValue")] == [evil]


def test_saml2_bytes() -> None:
    """The exact serialization relying parties were tested against (attribute order, declarations, escaping)."""
    claims = (Attribute("urn:a", ("1", "x&<")), Attribute("urn:b", ("2",)))
    value = "urn:oasis:names:tc:SAML:2.0:attrname-format:uri"
    assert etree.tostring(build_saml2(content(claims), "urn:ctx")).decode() == (
        f'<saml2:Assertion xmlns:saml2="{ns.SAML2}" ID="_{"a" * 40}" IssueInstant="2026-01-01T12:00:00Z" Version="2.0">'
        "<saml2:Issuer>https://sts.example/</saml2:Issuer><saml2:Subject>"
        f'<saml2:NameID Format="{NAMEID_UNSPECIFIED}">alice</saml2:NameID>'
        '<saml2:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer">'
        '<saml2:SubjectConfirmationData NotOnOrAfter="2026-01-01T12:05:00Z" Recipient="https://rp.example/"/>'
        "</saml2:SubjectConfirmation></saml2:Subject>"
        '<saml2:Conditions NotBefore="2026-01-01T11:59:00Z" NotOnOrAfter="2026-01-01T12:05:00Z">'
        "<saml2:AudienceRestriction><saml2:Audience>https://rp.example/</saml2:Audience></saml2:AudienceRestriction>"
        '</saml2:Conditions><saml2:AuthnStatement AuthnInstant="2026-01-01T12:00:00Z"><saml2:AuthnContext>'
        "<saml2:AuthnContextClassRef>urn:ctx</saml2:AuthnContextClassRef></saml2:AuthnContext></saml2:AuthnStatement>"
        f'<saml2:AttributeStatement><saml2:Attribute Name="urn:a" NameFormat="{value}">'
        "<saml2:AttributeValue>1</saml2:AttributeValue><saml2:AttributeValue>x&amp;&lt;</saml2:AttributeValue>"
        f'</saml2:Attribute><saml2:Attribute Name="urn:b" NameFormat="{value}">'
        "<saml2:AttributeValue>2</saml2:AttributeValue></saml2:Attribute></saml2:AttributeStatement></saml2:Assertion>"
    )


def test_an_assertion_shares_nothing_with_the_next_one_of_its_shape() -> None:
    """Each assertion is its own copy of the cached skeleton: values written into one never reach the next."""
    first = build_saml2(content((Attribute("urn:a", ("first",)),)))
    before = etree.tostring(first)
    second = build_saml2(replace(content((Attribute("urn:a", ("second", "again")),)), assertion_id="_second"))
    assert etree.tostring(first) == before
    assert second.get("ID") == "_second"
    assert [v.text for v in second.iter(f"{{{ns.SAML2}}}AttributeValue")] == ["second", "again"]


def test_saml11_bytes() -> None:
    """The exact serialization relying parties were tested against (attribute order, declarations, escaping)."""
    claims = (Attribute("http://wso2.org/claims/emailaddress", ("1", "x&<")), Attribute("urn:b", ("2",)))
    subject = (
        f'<saml:Subject><saml:NameIdentifier Format="{NAMEID_UNSPECIFIED}">alice</saml:NameIdentifier>'
        "<saml:SubjectConfirmation><saml:ConfirmationMethod>urn:oasis:names:tc:SAML:1.0:cm:bearer"
        "</saml:ConfirmationMethod></saml:SubjectConfirmation></saml:Subject>"
    )
    assert etree.tostring(build_saml11(content(claims))).decode() == (
        f'<saml:Assertion xmlns:saml="{ns.SAML1}" AssertionID="_{"a" * 40}" IssueInstant="2026-01-01T12:00:00Z" '
        'Issuer="https://sts.example/" MajorVersion="1" MinorVersion="1">'
        '<saml:Conditions NotBefore="2026-01-01T11:59:00Z" NotOnOrAfter="2026-01-01T12:05:00Z">'
        "<saml:AudienceRestrictionCondition><saml:Audience>https://rp.example/</saml:Audience>"
        "</saml:AudienceRestrictionCondition></saml:Conditions>"
        '<saml:AuthenticationStatement AuthenticationInstant="2026-01-01T12:00:00Z" '
        f'AuthenticationMethod="urn:oasis:names:tc:SAML:1.0:am:password">{subject}</saml:AuthenticationStatement>'
        f"<saml:AttributeStatement>{subject}"
        '<saml:Attribute AttributeName="emailaddress" AttributeNamespace="http://wso2.org/claims">'
        "<saml:AttributeValue>1</saml:AttributeValue><saml:AttributeValue>x&amp;&lt;</saml:AttributeValue>"
        '</saml:Attribute><saml:Attribute AttributeName="urn:b" AttributeNamespace="urn:b">'
        "<saml:AttributeValue>2</saml:AttributeValue></saml:Attribute></saml:AttributeStatement></saml:Assertion>"
    )


def test_a_saml11_assertion_shares_nothing_with_the_next_one_of_its_shape() -> None:
    """Each SAML 1.1 assertion is its own copy of the cached skeleton: values written into one never reach the next,
    in either Subject (holder-of-key: the key is added to both)."""
    key = etree.Element(f"{{{ns.DS}}}KeyInfo")
    first = build_saml11(replace(content((Attribute("urn:a", ("first",)),)), key_info=key))
    before = etree.tostring(first)
    later = content((Attribute("urn:a", ("second", "again")),))
    second = build_saml11(replace(later, assertion_id="_second", name_id="bob", key_info=key))
    assert etree.tostring(first) == before
    assert second.get("AssertionID") == "_second"
    assert [v.text for v in second.iter(f"{{{ns.SAML1}}}AttributeValue")] == ["second", "again"]
    assert [n.text for n in second.iter(f"{{{ns.SAML1}}}NameIdentifier")] == ["bob", "bob"]
    assert len(list(second.iter(f"{{{ns.DS}}}KeyInfo"))) == 2
