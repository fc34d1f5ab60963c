"""Tests for sts.xmlencoding and the encoding side of sts.xmlutil.parse_untrusted (security rows T11, X14).

Every cap must hold whatever the encoding: UTF-32, UTF-7 and Latin-1 are refused wherever they are announced
(byte order mark, first bytes, a long XML declaration, the HTTP charset), and the namespace cap counts the
decoded text, so UTF-16 cannot hide ``xmlns`` from it.
"""

from __future__ import annotations

import pytest
from lxml import etree

from sts import ns
from sts.errors import MalformedMessage
from sts.xmlencoding import as_utf8
from sts.xmlutil import ParserLimits, make_parser, parse_untrusted, text_of

LIMITS = ParserLimits()
ENVELOPE = f'<s:Envelope xmlns:s="{ns.S11}"><s:Body><r>caf\u00e9 \U0001f600</r></s:Body></s:Envelope>'
LONG = '<?xml version="1.0"' + " " * 240 + ' encoding="{}"?>'  # the declaration's encoding past byte 200


def _reject(data: bytes, charset: str | None = None, limits: ParserLimits = LIMITS) -> str:
    with pytest.raises(MalformedMessage) as caught:
        parse_untrusted(data, limits, charset=charset)
    assert type(caught.value) is MalformedMessage
    assert caught.value.fault_string == "Invalid request"
    return caught.value.reason


def _text(data: bytes, charset: str | None = None) -> str:
    root = parse_untrusted(data, LIMITS, charset=charset)
    return text_of(root[0][0])


def _flood(count: int) -> str:
    decls = "".join(f' xmlns:p{i}="urn:x:{i}"' for i in range(count))
    return f"<r{decls}><c/></r>"


# --- accepted: UTF-8 and UTF-16, however announced ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "charset"),
    [
        (ENVELOPE.encode(), None),
        (ENVELOPE.encode(), "utf-8"),
        (ENVELOPE.encode(), " UTF-8 "),
        (b"\xef\xbb\xbf" + ENVELOPE.encode(), "UTF-8"),
        (b'<?xml version="1.0" encoding="utf-8" standalone="yes" ?>\n' + ENVELOPE.encode(), None),
        (b"<?xml version='1.0'\n\tencoding = 'UTF-8'?>" + ENVELOPE.encode(), "utf-8"),
        (ENVELOPE.encode("utf-16"), None),
        (ENVELOPE.encode("utf-16"), "utf-16"),
        (("\ufeff" + ENVELOPE).encode("utf-16-be"), "UTF-16BE"),
        (("\ufeff" + ENVELOPE).encode("utf-16-le"), "utf-16le"),
        (('<?xml version="1.0" encoding="UTF-16"?>' + ENVELOPE).encode("utf-16"), "utf-16"),
        (('<?xml version="1.0" encoding="UTF-16BE"?>' + ENVELOPE).encode("utf-16-be"), None),
        (('<?xml version="1.0" encoding="utf-16le"?>' + ENVELOPE).encode("utf-16-le"), None),
    ],
    ids=[
        "utf8",
        "utf8-charset",
        "utf8-charset-padded",
        "utf8-bom",
        "utf8-declared",
        "utf8-declared-whitespace",
        "utf16-bom",
        "utf16-bom-charset",
        "utf16be-bom-charset",
        "utf16le-bom-charset",
        "utf16-declared",
        "utf16be-no-bom-declared",
        "utf16le-no-bom-declared",
    ],
)
def test_utf8_and_utf16_parse_to_the_same_text(data: bytes, charset: str | None) -> None:
    assert _text(data, charset) == "caf\u00e9 \U0001f600"


def test_utf8_is_passed_on_without_a_copy() -> None:
    data = ENVELOPE.encode()
    assert as_utf8(data, "utf-8") is data


def test_utf16_is_handed_on_as_utf8() -> None:
    assert as_utf8(ENVELOPE.encode("utf-16")) == ENVELOPE.encode()


def test_xml_stylesheet_pi_is_not_a_declaration() -> None:
    assert _reject(b'<?xml-stylesheet href="x"?><r/>') == "parse_pi"


# --- refused: any other encoding, wherever it is announced ---------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        ("\ufeff" + ENVELOPE).encode("utf-32-le"),
        ("\ufeff" + ENVELOPE).encode("utf-32-be"),
        ENVELOPE.encode("utf-32-le"),
        ENVELOPE.encode("utf-32-be"),
        ('<?xml version="1.0" encoding="UTF-32"?>' + ENVELOPE).encode("utf-32"),
        '<?xml version="1.0" encoding="IBM037"?><r/>'.encode("cp037"),
    ],
    ids=["utf32le-bom", "utf32be-bom", "utf32le", "utf32be", "utf32-declared", "ebcdic"],
)
def test_t11_ucs4_and_ebcdic_refused(data: bytes) -> None:
    assert _reject(data) == "parse_encoding"


@pytest.mark.parametrize(
    "data",
    [
        (LONG.format("ISO-8859-1") + "<r>caf\u00e9</r>").encode("latin-1"),
        LONG.format("UTF-7").encode() + b"<r>+ADw-a/+AD4-</r>",
        LONG.format("US-ASCII").encode() + b"<r/>",
        LONG.format("UTF-16").encode() + b"<r/>",
        (LONG.format("UTF-8") + "<r/>").encode("utf-16"),
        (LONG.format("UTF-16BE") + "<r/>").encode("utf-16-le"),
        b'<?xml version="1.0" encoding="UTF8"?><r/>',
    ],
    ids=["latin-1", "utf-7", "us-ascii", "utf16-over-utf8", "utf8-over-utf16", "be-over-le", "not-an-iana-name"],
)
def test_t11_declaration_past_byte_200_is_still_read(data: bytes) -> None:
    assert _reject(data) == "parse_encoding"


@pytest.mark.parametrize(
    ("data", "charset"),
    [
        (ENVELOPE.encode(), "iso-8859-1"),
        (ENVELOPE.encode(), "utf-7"),
        (ENVELOPE.encode(), "utf-16"),
        (ENVELOPE.encode(), ""),
        (ENVELOPE.encode("utf-16"), "utf-8"),
        (("\ufeff" + ENVELOPE).encode("utf-16-le"), "utf-16be"),
        (("\ufeff" + ENVELOPE).encode("utf-32-le"), "utf-32"),
    ],
    ids=["latin-1", "utf-7", "utf16-label-on-utf8", "empty", "utf8-label-on-utf16", "be-label-on-le", "utf-32"],
)
def test_t11_http_charset_must_name_utf8_or_utf16_and_agree(data: bytes, charset: str) -> None:
    assert _reject(data, charset) == "parse_encoding"


@pytest.mark.parametrize(
    "data",
    [
        b'<?xml encoding="UTF-8"?><r/>',
        b'<?xml version="1.0" <r/>',
        b'<?xml version="1.0" encoding="UTF-8" encoding="UTF-7"?><r/>',
        b'<?xml version="1.0" encoding="UTF\xe9"?><r/>',
        b"<?xml?><r/>",
    ],
    ids=["no-version", "unterminated", "two-encodings", "non-ascii", "empty"],
)
def test_malformed_declaration_refused(data: bytes) -> None:
    assert _reject(data) == "parse_syntax"


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_t11_utf16_without_byte_order_mark_needs_a_label(codec: str) -> None:
    """XML 1.0 §4.3.3: UTF-16 begins with a byte order mark, unless a declaration or the transport names it."""
    assert _reject(ENVELOPE.encode(codec)) == "parse_encoding"
    assert _text(ENVELOPE.encode(codec), "utf-16") == "caf\u00e9 \U0001f600"


@pytest.mark.parametrize(
    "data",
    [
        b"\xff\xfe" + ("\ufeff" + LONG.format("ISO-8859-1") + "<r>caf\u00e9</r>").encode("utf-16-le"),
        b"\xfe\xff" + ('\ufeff<?xml version="1.0" encoding="UTF-7"?><r>+ADw-a/+AD4-</r>').encode("utf-16-be"),
        b"\xff\xfe" + ("\ufeff" + ENVELOPE).encode("utf-16-le"),
        b"\xef\xbb\xbf" + ("\ufeff" + ENVELOPE).encode("utf-8"),
    ],
    ids=["utf16le-latin1-declared", "utf16be-utf7-declared", "utf16-no-declaration", "utf8"],
)
def test_t11_repeated_byte_order_mark_refused(data: bytes) -> None:
    """A second mark is a character before the declaration (XML 1.0 §2.8): it must not hide a contradicting one."""
    assert _reject(data) == "parse_syntax"


def test_invalid_utf16_refused() -> None:
    assert _reject("\ufeff<r>".encode("utf-16-le") + b"\x00\xd8" + "</r>".encode("utf-16-le")) == "parse_encoding"


def test_the_parser_never_honours_a_declared_encoding() -> None:
    """Defence in depth: whatever the pre-checks miss, libxml2 reads UTF-8 (a UTF-7 '<' stays text)."""
    root = etree.fromstring(b'<?xml version="1.0" encoding="UTF-7"?><r>+ADw-a/+AD4-</r>', make_parser())
    assert len(root) == 0
    assert root.text == "+ADw-a/+AD4-"


# --- X14: the namespace cap counts characters, not bytes of one encoding ---------------------------------------------


@pytest.mark.parametrize(
    ("codec", "charset"), [("utf-8", None), ("utf-16", None), ("utf-16-le", "utf-16le"), ("utf-16-be", "UTF-16")]
)
def test_x14_namespace_cap_holds_in_every_accepted_encoding(codec: str, charset: str | None) -> None:
    limits = ParserLimits(max_namespaces=256)
    assert parse_untrusted(_flood(256).encode(codec), limits, charset=charset).tag == "r"
    assert _reject(_flood(257).encode(codec), charset, limits) == "parse_namespaces"
    assert _reject(_flood(900).encode(codec), charset, limits) == "parse_namespaces"


def test_x14_utf7_spelt_namespace_flood_refused() -> None:
    hidden = b"+AHgAbQBsAG4Acw-"  # "xmlns" in UTF-7
    data = (
        LONG.format("UTF-7").encode()
        + b"<r>"
        + b"".join(b"+ADw-a " + hidden + b':p="urn:x"/>' for _ in range(900))
        + b"</r>"
    )
    assert data.count(b"xmlns") == 0
    assert _reject(data) == "parse_encoding"
