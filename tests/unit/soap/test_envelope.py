"""Tests for sts.soap.envelope: envelope structure and mustUnderstand (security-catalogue rows S01-S07, S14)."""

from __future__ import annotations

import pytest
from lxml import etree

from sts import ns
from sts.errors import InvalidRequest, MalformedMessage, MustUnderstand, VersionMismatch
from sts.soap.envelope import (
    SoapVersion,
    check_must_understand,
    must_understand,
    read_envelope,
    targets_us,
)
from sts.xmlutil import ParserLimits, parse_untrusted

S11, S12 = SoapVersion.SOAP11, SoapVersion.SOAP12
RST = f'<wst:RequestSecurityToken xmlns:wst="{ns.WST}"/>'
SECURITY = f'<wsse:Security xmlns:wsse="{ns.WSSE}" {{attrs}}/>'
UNDERSTOOD = frozenset({ns.qn(ns.WSSE, "Security")})


def _parse(xml: str) -> etree._Element:
    return parse_untrusted(xml.encode(), ParserLimits())


def _doc(inner: str, version: SoapVersion = S11, env_ns: str | None = None) -> etree._Element:
    return _parse(f'<soap:Envelope xmlns:soap="{env_ns or version.namespace}">{inner}</soap:Envelope>')


def _standard(headers: str = "", body: str = RST, version: SoapVersion = S11) -> etree._Element:
    return _doc(f"<soap:Header>{headers}</soap:Header><soap:Body>{body}</soap:Body>", version)


# --- the positive path ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [S11, S12])
def test_valid_envelope_with_header(version: SoapVersion) -> None:
    header = '<a:Action xmlns:a="urn:a">x</a:Action>'
    envelope = read_envelope(_standard(header, version=version), version)
    assert envelope.version is version
    assert [h.tag for h in envelope.headers] == ["{urn:a}Action"]
    assert envelope.body_child.tag == ns.qn(ns.WST, "RequestSecurityToken")
    assert envelope.root.tag == ns.qn(version.namespace, "Envelope")


@pytest.mark.parametrize("version", [S11, S12])
def test_valid_envelope_without_header(version: SoapVersion) -> None:
    envelope = read_envelope(_doc(f"<soap:Body>{RST}</soap:Body>", version), version)
    assert envelope.headers == ()
    assert envelope.body_child.tag == ns.qn(ns.WST, "RequestSecurityToken")


def test_comments_between_parts_are_ignored() -> None:
    envelope = read_envelope(_doc(f"<!--a--><soap:Body><!--b-->{RST}<!--c--></soap:Body><!--d-->"), S11)
    assert envelope.body_child.tag == ns.qn(ns.WST, "RequestSecurityToken")


def test_media_type_mapping() -> None:
    assert SoapVersion.from_media_type("text/xml") is S11
    assert SoapVersion.from_media_type("application/soap+xml") is S12
    assert SoapVersion.from_media_type("application/json") is None
    assert S11.namespace == ns.S11 and S12.namespace == ns.S12


# --- S01 / S02: root and version ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "xml",
    [RST, f'<soap:Body xmlns:soap="{ns.S11}">{RST}</soap:Body>', "<x/>"],
    ids=["rst-root", "body-root", "unqualified"],
)
def test_s01_wrong_root_is_malformed(xml: str) -> None:
    with pytest.raises(MalformedMessage) as caught:
        read_envelope(_parse(xml), S11)
    assert type(caught.value) is MalformedMessage
    assert caught.value.reason == "envelope_root"


def test_s02_soap12_envelope_announced_as_soap11() -> None:
    with pytest.raises(VersionMismatch):
        read_envelope(_standard(version=S12), S11)


def test_s02_soap11_envelope_announced_as_soap12() -> None:
    with pytest.raises(VersionMismatch):
        read_envelope(_standard(version=S11), S12)


@pytest.mark.parametrize("env_ns", ["http://schemas.xmlsoap.org/soap/envelope", "urn:not-soap", ""])
def test_s02_unknown_envelope_namespace(env_ns: str) -> None:
    declaration = f' xmlns="{env_ns}"' if env_ns else ""
    xml = f"<Envelope{declaration}><Body>{RST}</Body></Envelope>"
    with pytest.raises(VersionMismatch):
        read_envelope(_parse(xml), S11)


# --- S03 / S04: Header and Body placement -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "inner",
    [
        f"<soap:Body>{RST}</soap:Body><soap:Body><evil/></soap:Body>",
        f"<soap:Body><evil/></soap:Body><soap:Body>{RST}</soap:Body>",
        f"<soap:Header/><soap:Body>{RST}</soap:Body><soap:Body><evil/></soap:Body>",
    ],
    ids=["two-bodies", "two-bodies-swapped", "header-two-bodies"],
)
@pytest.mark.parametrize("version", [S11, S12])
def test_s03_two_bodies_malformed(inner: str, version: SoapVersion) -> None:
    with pytest.raises(MalformedMessage) as caught:
        read_envelope(_doc(inner, version), version)
    assert caught.value.reason == "envelope_structure"


@pytest.mark.parametrize(
    "inner",
    [
        f"<soap:Body>{RST}</soap:Body><soap:Header/>",
        f"<soap:Header/><soap:Header/><soap:Body>{RST}</soap:Body>",
        f"<soap:Header/><soap:Body>{RST}</soap:Body><x:Trailer xmlns:x='urn:x'/>",
        f"<soap:Body>{RST}</soap:Body><x:Trailer xmlns:x='urn:x'/>",
        f"<x:Before xmlns:x='urn:x'/><soap:Body>{RST}</soap:Body>",
        "<soap:Header/>",
        "",
    ],
    ids=["header-after-body", "two-headers", "element-after-body", "element-after-body-no-header",
         "element-before-body", "no-body", "empty-envelope"],
)
def test_s04_header_placement_malformed(inner: str) -> None:
    with pytest.raises(MalformedMessage) as caught:
        read_envelope(_doc(inner), S11)
    assert caught.value.reason == "envelope_structure"


def test_s04_body_in_foreign_namespace_malformed() -> None:
    xml = f'<soap:Envelope xmlns:soap="{ns.S11}" xmlns:o="{ns.S12}"><o:Body>{RST}</o:Body></soap:Envelope>'
    with pytest.raises(MalformedMessage):
        read_envelope(_parse(xml), S11)


# --- S05 / S14: Body content ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [RST + RST, RST + f'<wst:RequestSecurityTokenCollection xmlns:wst="{ns.WST}"/>'],
    ids=["two-rst", "rst-and-collection"],
)
def test_s05_two_body_children_invalid_request(body: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        read_envelope(_standard(body=body), S11)
    assert caught.value.reason == "body_children"


@pytest.mark.parametrize("body", ["", "   ", "just text", "<!-- only a comment -->"],
                         ids=["empty", "whitespace", "text", "comment"])
def test_s14_empty_body_invalid_request(body: str) -> None:
    with pytest.raises(InvalidRequest):
        read_envelope(_standard(body=body), S11)


def test_s14_self_closing_body_invalid_request() -> None:
    with pytest.raises(InvalidRequest):
        read_envelope(_doc("<soap:Body/>", S12), S12)


# --- S07: mustUnderstand -------------------------------------------------------------------------------------------


def _check(headers: str, version: SoapVersion = S11, understood: frozenset[str] = UNDERSTOOD) -> None:
    check_must_understand(read_envelope(_standard(headers, version=version), version), understood)


@pytest.mark.parametrize("version", [S11, S12])
def test_s07_unknown_mandatory_header_must_understand(version: SoapVersion) -> None:
    header = '<x:Foo xmlns:x="urn:x" soap:mustUnderstand="1"/>'
    with pytest.raises(MustUnderstand) as caught:
        _check(header, version)
    assert caught.value.not_understood == ("urn:x", "Foo")


def test_s07_soap12_true_on_unknown_header_must_understand() -> None:
    with pytest.raises(MustUnderstand):
        _check('<x:Foo xmlns:x="urn:x" soap:mustUnderstand="true"/>', S12)


def test_s07_unknown_optional_header_is_ignored() -> None:
    _check('<x:Foo xmlns:x="urn:x" soap:mustUnderstand="0"/><y:Bar xmlns:y="urn:y"/>', S11)


def test_s07_mustunderstand_in_the_wrong_namespace_is_not_mandatory() -> None:
    # an unqualified attribute is not the SOAP one
    _check('<x:Foo xmlns:x="urn:x" mustUnderstand="1"/>', S11)


@pytest.mark.parametrize("value", ["true", "false", " 1 ", "yes", "2", ""])
def test_s07_soap11_only_0_and_1_are_valid(value: str) -> None:
    header = f'<x:Foo xmlns:x="urn:x" soap:mustUnderstand="{value}"/>'
    with pytest.raises(MalformedMessage) as caught:
        _check(header, S11)
    assert type(caught.value) is MalformedMessage
    assert caught.value.reason == "must_understand_value"


def test_s07_soap12_invalid_value_malformed() -> None:
    with pytest.raises(MalformedMessage):
        _check('<x:Foo xmlns:x="urn:x" soap:mustUnderstand="yes"/>', S12)


@pytest.mark.parametrize("value", ["1", "true"])
def test_s07_soap12_true_accepted_for_understood_header(value: str) -> None:
    _check(SECURITY.format(attrs=f'soap:mustUnderstand="{value}"'), S12)


def test_s07_soap11_one_accepted_for_understood_header() -> None:
    _check(SECURITY.format(attrs='soap:mustUnderstand="1"'), S11)


def test_must_understand_values() -> None:
    envelope = read_envelope(_standard(SECURITY.format(attrs='soap:mustUnderstand="true"'), version=S12), S12)
    assert must_understand(envelope.headers[0], S12) is True
    envelope = read_envelope(_standard(SECURITY.format(attrs='soap:mustUnderstand="false"'), version=S12), S12)
    assert must_understand(envelope.headers[0], S12) is False
    envelope = read_envelope(_standard(SECURITY.format(attrs=""), version=S11), S11)
    assert must_understand(envelope.headers[0], S11) is False


def test_s07_soap11_header_for_another_actor_not_checked() -> None:
    _check('<x:Foo xmlns:x="urn:x" soap:mustUnderstand="1" soap:actor="http://other"/>', S11)


def test_s07_soap12_header_for_another_role_not_checked() -> None:
    _check('<x:Foo xmlns:x="urn:x" soap:mustUnderstand="true" soap:role="http://other"/>', S12)


@pytest.mark.parametrize("actor", ["", "http://schemas.xmlsoap.org/soap/actor/next"])
def test_s07_soap11_header_for_next_actor_is_checked(actor: str) -> None:
    with pytest.raises(MustUnderstand):
        _check(f'<x:Foo xmlns:x="urn:x" soap:mustUnderstand="1" soap:actor="{actor}"/>', S11)


@pytest.mark.parametrize(
    "role",
    ["http://www.w3.org/2003/05/soap-envelope/role/ultimateReceiver", "http://www.w3.org/2003/05/soap-envelope/role/next"],
)
def test_s07_soap12_header_for_standard_roles_is_checked(role: str) -> None:
    with pytest.raises(MustUnderstand):
        _check(f'<x:Foo xmlns:x="urn:x" soap:mustUnderstand="1" soap:role="{role}"/>', S12)


def test_targets_us() -> None:
    envelope = read_envelope(
        _standard('<x:A xmlns:x="urn:x"/><x:B xmlns:x="urn:x" soap:actor="http://other"/>'), S11
    )
    assert [targets_us(h, S11) for h in envelope.headers] == [True, False]
    # the SOAP 1.1 actor attribute means nothing in SOAP 1.2
    envelope = read_envelope(
        _standard(f'<x:A xmlns:x="urn:x" xmlns:o="{ns.S11}" o:actor="http://other"/>', version=S12), S12
    )
    assert targets_us(envelope.headers[0], S12) is True
