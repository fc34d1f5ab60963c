"""Tests for sts.xmlutil: the one parser for untrusted bytes (security-catalogue rows X01-X23, T11, T12)."""

from __future__ import annotations

import time

import pytest
from lxml import etree

from sts import ns
from sts.errors import MalformedMessage
from sts.xmlutil import (
    ParserLimits,
    check_structure,
    element_children,
    is_xml_text,
    make_parser,
    namespace_of,
    parse_untrusted,
    serialize,
    text_of,
)

LIMITS = ParserLimits()
ENVELOPE = (
    f'<s:Envelope xmlns:s="{ns.S11}"><s:Header/><s:Body>'
    f'<wst:RequestSecurityToken xmlns:wst="{ns.WST}">'
    "<wst:RequestType>http://docs.oasis-open.org/ws-sx/ws-trust/200512/Issue</wst:RequestType>"
    "</wst:RequestSecurityToken></s:Body></s:Envelope>"
)


def _reject(data: bytes | str, limits: ParserLimits = LIMITS) -> MalformedMessage:
    with pytest.raises(MalformedMessage) as caught:
        parse_untrusted(data, limits)  # type: ignore[arg-type]
    error = caught.value
    assert type(error) is MalformedMessage
    assert error.fault_string == "Invalid request"
    return error


def _nested(depth: int) -> bytes:
    """A document whose element depth (root = 1) is exactly ``depth``."""
    return b"<a>" * depth + b"</a>" * depth


# --- the positive path --------------------------------------------------------------------------------------


def test_valid_soap_envelope_parses() -> None:
    root = parse_untrusted(ENVELOPE.encode(), LIMITS)
    assert root.tag == ns.qn(ns.S11, "Envelope")
    body = root[1]
    assert body.tag == ns.qn(ns.S11, "Body")
    assert body[0].tag == ns.qn(ns.WST, "RequestSecurityToken")
    assert text_of(body[0][0]) == "http://docs.oasis-open.org/ws-sx/ws-trust/200512/Issue"


def test_valid_envelope_with_xml_declaration_and_utf16_parses() -> None:
    declared = b'<?xml version="1.0" encoding="UTF-8"?>' + ENVELOPE.encode()
    assert parse_untrusted(declared, LIMITS).tag == ns.qn(ns.S11, "Envelope")
    assert parse_untrusted(ENVELOPE.encode("utf-16"), LIMITS).tag == ns.qn(ns.S11, "Envelope")


def test_comment_is_allowed_and_does_not_count_as_an_element() -> None:
    root = parse_untrusted(b"<r><!-- note --><a/></r>", ParserLimits(max_elements=2))
    assert [child.tag for child in element_children(root)] == ["a"]


# --- X01-X08: DTDs and entities -------------------------------------------------------------------------------


def test_x01_xxe_local_file_rejected_and_content_never_read() -> None:
    data = b'<!DOCTYPE e [<!ENTITY x SYSTEM "file:///etc/passwd">]><e>&x;</e>'
    error = _reject(data)
    assert error.reason == "parse_dtd"
    assert "root:" not in str(error)


def test_x01_entity_in_soap_body_rejected() -> None:
    data = (
        f'<!DOCTYPE s:Envelope [<!ENTITY x SYSTEM "file:///etc/hostname">]>'
        f'<s:Envelope xmlns:s="{ns.S11}"><s:Body><a>&x;</a></s:Body></s:Envelope>'
    ).encode()
    assert _reject(data).reason == "parse_dtd"


@pytest.mark.timeout(5)
def test_x03_parameter_entity_to_dev_zero_rejected_fast() -> None:
    data = b'<!DOCTYPE r [<!ENTITY % p SYSTEM "file:///dev/zero"> %p;]><r/>'
    started = time.monotonic()
    _reject(data)
    assert time.monotonic() - started < 1.0


@pytest.mark.timeout(5)
def test_x03_the_parser_itself_never_loads_the_parameter_entity() -> None:
    """Regression guard for M2: the raw parser (deny-all resolver) must not hang either."""
    data = b'<!DOCTYPE r [<!ENTITY % p SYSTEM "file:///dev/zero"> %p;]><r/>'
    started = time.monotonic()
    try:
        etree.fromstring(data, parser=make_parser())
    except etree.XMLSyntaxError:
        pass
    assert time.monotonic() - started < 1.0


@pytest.mark.timeout(5)
@pytest.mark.parametrize(
    "doctype",
    [
        b'<!DOCTYPE r SYSTEM "file:///dev/zero">',
        b'<!DOCTYPE r SYSTEM "http://127.0.0.1:9/x.dtd">',
        b'<!DOCTYPE r PUBLIC "-//x//y" "file:///etc/passwd">',
    ],
)
def test_x05_external_dtd_rejected(doctype: bytes) -> None:
    started = time.monotonic()
    assert _reject(doctype + b"<r/>").reason == "parse_dtd"
    assert time.monotonic() - started < 1.0


@pytest.mark.timeout(5)
def test_x06_billion_laughs_rejected() -> None:
    entities = ['<!ENTITY lol0 "lol">']
    entities += [f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10}">' for i in range(1, 10)]
    data = f"<!DOCTYPE lolz [{''.join(entities)}]><lolz>&lol9;</lolz>".encode()
    started = time.monotonic()
    _reject(data)
    assert time.monotonic() - started < 1.0


@pytest.mark.timeout(5)
def test_x07_quadratic_blowup_rejected() -> None:
    big = "A" * 50_000
    data = f'<!DOCTYPE r [<!ENTITY a "{big}">]><r>{"&a;" * 50_000}</r>'.encode()
    started = time.monotonic()
    _reject(data)
    assert time.monotonic() - started < 1.0


def test_x08_attlist_only_dtd_rejected() -> None:
    data = b'<!DOCTYPE e [<!ATTLIST x:Evil ID ID #IMPLIED>]><e xmlns:x="urn:x"><x:Evil ID="a"/></e>'
    assert _reject(data).reason == "parse_dtd"


def test_x08_bare_doctype_rejected() -> None:
    assert _reject(b"<!DOCTYPE e><e/>").reason == "parse_dtd"


# --- X09-X15: structural caps ----------------------------------------------------------------------------------


def test_x09_depth_32_accepted() -> None:
    root = parse_untrusted(_nested(32), LIMITS)
    assert len(list(root.iter("a"))) == 32


def test_x09_depth_33_rejected() -> None:
    assert _reject(_nested(33)).reason == "parse_depth"


def test_x09_depth_300_rejected() -> None:
    _reject(_nested(300))


@pytest.mark.parametrize("depth", [2, 5, 10, 32])
def test_x09_depth_one_over_the_cap_rejected_however_tersely_written(depth: int) -> None:
    # The fewest "<" a document of depth + 1 can have (an empty innermost element): the size shortcut in
    # parse_untrusted must still send it through the walk.
    terse = b"<a>" * depth + b"<a/>" + b"</a>" * depth
    assert _reject(terse, ParserLimits(max_depth=depth)).reason == "parse_depth"
    assert parse_untrusted(b"<a>" * (depth - 1) + b"<a/>" + b"</a>" * (depth - 1), ParserLimits(max_depth=depth)).tag


def test_x09_depth_cap_follows_limits() -> None:
    assert parse_untrusted(_nested(10), ParserLimits(max_depth=10)).tag == "a"
    assert _reject(_nested(11), ParserLimits(max_depth=10)).reason == "parse_depth"


def _attributes(count: int) -> bytes:
    return ("<r " + " ".join(f'a{i}="v"' for i in range(count)) + "/>").encode()


def test_x12_attribute_cap() -> None:
    assert len(parse_untrusted(_attributes(32), LIMITS).attrib) == 32
    assert _reject(_attributes(33)).reason == "parse_attributes"


def test_x12_attribute_cap_with_single_quotes_and_spaced_equals() -> None:
    terse = ("<r " + " ".join(f"a{i} = 'v'" for i in range(4)) + "/>").encode()
    assert _reject(terse, ParserLimits(max_attributes=3)).reason == "parse_attributes"


def test_x13_element_cap_with_empty_elements() -> None:
    assert _reject(b"<r>" + b"<a/>" * 9 + b"</r>", ParserLimits(max_elements=9)).reason == "parse_elements"


@pytest.mark.parametrize(
    "document",
    [
        b"<r><a><b/></a><c x='1' y='2'/></r>",
        b"<r><a><a><a><a/></a></a></a></r>",
        b"<r a='1' b='2' c='3'><s/><s/><s/><s/></r>",
        b"<r><![CDATA[<<<<<<<<]]><!--<<<<--></r>",
        b"<r>a=b=c=d=e=f</r>",
    ],
)
@pytest.mark.parametrize("cap", [1, 2, 3, 4, 5])
def test_structural_caps_same_verdict_with_or_without_the_size_shortcut(document: bytes, cap: int) -> None:
    # parse_untrusted skips the walk when the bytes alone prove the caps hold; the verdict must be the walk's.
    limits = ParserLimits(max_depth=cap, max_elements=cap, max_attributes=cap)
    walked: str | None = None
    try:
        check_structure(etree.fromstring(document), limits)
    except MalformedMessage as error:
        walked = error.reason
    try:
        parse_untrusted(document, limits)
        parsed = None
    except MalformedMessage as error:
        parsed = error.reason
    assert parsed == walked


def test_x12_huge_attribute_count_rejected() -> None:
    assert _reject(_attributes(100_000)).reason == "parse_attributes"


def _siblings(count: int) -> bytes:
    return b"<r>" + b"<a/>" * count + b"</r>"


def test_x13_element_cap() -> None:
    assert len(parse_untrusted(_siblings(1999), LIMITS)) == 1999  # 2000 elements with the root
    assert _reject(_siblings(2000)).reason == "parse_elements"


def _namespaces(count: int) -> bytes:
    decls = " ".join(f'xmlns:p{i}="urn:x:{i}"' for i in range(count))
    return f"<r {decls}><c/></r>".encode()


def test_x14_namespace_cap() -> None:
    assert parse_untrusted(_namespaces(256), ParserLimits(max_attributes=32)).tag == "r"
    assert _reject(_namespaces(257)).reason == "parse_namespaces"


@pytest.mark.timeout(5)
def test_x14_namespace_flood_rejected_fast() -> None:
    decls = " ".join(f'xmlns:p{i}="urn:x:{i}"' for i in range(2000))
    data = f'<s:Envelope xmlns:s="{ns.S11}" {decls}><s:Body>{"<c/>" * 1000}</s:Body></s:Envelope>'.encode()
    started = time.monotonic()
    assert _reject(data).reason == "parse_namespaces"
    assert time.monotonic() - started < 0.1


def test_x15_very_long_element_name_rejected() -> None:
    name = b"a" * 60_000
    assert _reject(b"<" + name + b"/>").reason == "parse_syntax"


def test_text_cap() -> None:
    assert parse_untrusted(b"<r>" + b"x" * 100 + b"</r>", ParserLimits(max_text_bytes=100)).text == "x" * 100
    assert _reject(b"<r>" + b"x" * 101 + b"</r>", ParserLimits(max_text_bytes=100)).reason == "parse_text"


@pytest.mark.parametrize(
    "document",
    [
        b"<r><a/>" + b"x" * 101 + b"</r>",  # a tail
        b'<r a="' + b"x" * 101 + b'"/>',  # an attribute value
        b"<r><a>" + b"&#x10FFFF;" * 101 + b"</a></r>",  # character references: 101 characters from 1010 bytes
        b"<r>x<!---->" + b"x" * 101 + b"</r>",  # text after a comment (a comment's tail): iterwalk skips comments
        b"<r><a/><!--c-->" + b"x" * 101 + b"<b/></r>",  # the same between two elements
    ],
)
def test_text_cap_applies_to_tails_attributes_and_references(document: bytes) -> None:
    assert _reject(document, ParserLimits(max_text_bytes=100)).reason == "parse_text"


# --- X17: processing instructions ------------------------------------------------------------------------------


def test_x17_pi_in_prolog_rejected() -> None:
    assert _reject(b'<?xml-stylesheet href="http://x"?><r/>').reason == "parse_pi"


def test_x17_pi_inside_text_rejected() -> None:
    data = f'<wsse:Username xmlns:wsse="{ns.WSSE}">adm<?x?>in</wsse:Username>'.encode()
    assert _reject(data).reason == "parse_pi"


def test_x17_pi_after_root_rejected() -> None:
    assert _reject(b"<r/><?x y?>").reason == "parse_pi"


# --- X18: comments never truncate text --------------------------------------------------------------------------


def test_x18_text_of_reads_across_a_comment() -> None:
    root = parse_untrusted(f'<wsse:Username xmlns:wsse="{ns.WSSE}">admin<!---->x</wsse:Username>'.encode(), LIMITS)
    assert root.text == "admin"  # what a naive reader would see
    assert text_of(root) == "adminx"


def test_x18_text_of_reads_nested_text_and_cdata() -> None:
    root = parse_untrusted(b"<n>admin@corp<!---->.evil<![CDATA[.test]]></n>", LIMITS)
    assert text_of(root) == "admin@corp.evil.test"


@pytest.mark.parametrize(
    ("document", "text"),
    [(b"<n/>", ""), (b"<n>a</n>", "a"), (b"<n>a<?p x?>b</n>", "ab"), (b"<n><!--c--></n>", ""), (b"<n>a<m/></n>", "a")],
)
def test_x18_text_of_with_and_without_child_nodes(document: bytes, text: str) -> None:
    assert text_of(etree.fromstring(document)) == text


# --- X21, X23, T11, T12: malformed input ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        ENVELOPE.encode()[:57],
        ENVELOPE.encode()[:-1],
        b"<a><b></a>",
        b"<a>&</a>",
        b'<a x="<"/>',
        b"<a></a><b></b>",
    ],
    ids=["cut-early", "cut-last-byte", "unclosed", "bare-amp", "lt-in-attr", "two-roots"],
)
def test_x21_not_well_formed_rejected(data: bytes) -> None:
    assert _reject(data).reason == "parse_syntax"


def test_x23_xml_11_rejected() -> None:
    assert _reject(b'<?xml version="1.1"?><r/>').reason == "parse_xml_version"


def test_x23_standalone_yes_is_plain_xml_10() -> None:
    assert parse_untrusted(b'<?xml version="1.0" standalone="yes"?><r/>', LIMITS).tag == "r"


def test_t11_str_input_rejected() -> None:
    _reject('<?xml version="1.0" encoding="UTF-8"?><r/>')
    _reject("<r/>")


def test_t11_utf16_declaration_over_utf8_bytes_rejected() -> None:
    _reject(b'<?xml version="1.0" encoding="UTF-16"?><r/>')


def test_t11_invalid_utf8_rejected() -> None:
    assert _reject(b"<r>\xff\xfe\xfd</r>").reason == "parse_syntax"


@pytest.mark.parametrize(
    "data",
    [
        b'<?xml version="1.0" encoding="UTF-7"?><r>+AGE-</r>',
        b'\xef\xbb\xbf<?xml version="1.0" encoding="UTF-16"?><r/>',
        b'<?xml version="1.0" encoding="ISO-8859-1"?><r>\xe9</r>',
    ],
    ids=["utf-7", "utf8-bom-with-utf16-declaration", "latin-1"],
)
def test_t11_non_utf_encodings_rejected(data: bytes) -> None:
    _reject(data)


@pytest.mark.parametrize(
    "data",
    [b"", b"\n\n", b"   ", bytes(range(256)) * 16, b"\x00" * 64, b"not xml at all"],
    ids=["empty", "newlines", "spaces", "random-4k", "nuls", "text"],
)
def test_t12_empty_or_garbage_rejected(data: bytes) -> None:
    _reject(data)


def test_libxml2_message_never_in_the_error_detail() -> None:
    error = _reject(b'<!DOCTYPE r [<!ENTITY % p SYSTEM "file:///etc/hostname"> %p;]><r/>')
    assert "/etc/hostname" not in error.detail
    error = _reject(b"<a><b></a>")
    assert error.detail == "xml syntax: XMLSyntaxError"


# --- helpers -------------------------------------------------------------------------------------------------


def test_serialize_is_ascii_with_character_references() -> None:
    element = etree.Element("r")
    element.text = "caf\u00e9 \u2603"
    assert serialize(element) == b"<r>caf&#233; &#9731;</r>"


def test_element_children_skips_comments_and_pis() -> None:
    root = etree.fromstring(b"<r><!--c--><a/><?p x?><b/></r>")
    assert [child.tag for child in element_children(root)] == ["a", "b"]


def test_element_children_of_a_leaf_and_of_comment_only_content() -> None:
    root = etree.fromstring(b"<r><a/><b><!--c--></b></r>")
    assert element_children(root[0]) == []
    assert element_children(root[1]) == []


@pytest.mark.parametrize("document", [b"<r/>", b"<r xmlns='urn:a'/>", b"<p:r xmlns:p='urn:a:b#c'/>", b"<r xmlns=''/>"])
def test_namespace_of_agrees_with_qname(document: bytes) -> None:
    root = etree.fromstring(document)
    assert namespace_of(root) == etree.QName(root).namespace


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", True), ("plain \t\n\r text", True), ("\x7f\x85", True), ("\ud7ff\ue000\ufffd", True),
        ("\U00010000\U0010ffff", True), ("\x00", False), ("\x08", False), ("\x1f", False), ("a\ufffe", False),
        ("a\uffff", False), ("\ud800", False), ("\udfff", False), ("\udc80", False),
    ],
    ids=repr,
)
def test_is_xml_text_is_production_2_char(text: str, expected: bool) -> None:
    """XML 1.0 §2.2 [2]; lxml agrees: it refuses exactly what is_xml_text refuses."""
    assert is_xml_text(text) is expected
    element = etree.Element("e")
    try:
        element.text = text
    except ValueError:
        assert not expected
    else:
        assert expected
