"""How request bytes are encoded, decided once before any XML parser or cap sees them (XML 1.0 §4.3.3).

Only UTF-8 and UTF-16 are accepted. The byte order mark, or the first bytes of a document without one
(XML 1.0 Appendix F), decide the encoding; the XML declaration, which may only open the document
(XML 1.0 §2.8, §4.3.3), and an HTTP ``charset`` parameter may name it too, and must then agree. RFC 7303 §3
lets a MIME-aware reader prefer the ``charset`` parameter while an XML parser prefers the document's own
information; refusing any disagreement means no two readers of one request can see different characters.

UTF-16 is decoded here and handed on as UTF-8, so the pre-parse caps count characters, not bytes of one
particular encoding (a UTF-16 ``xmlns`` holds no ``b"xmlns"``), and the parser is always told the bytes are
UTF-8 (:func:`sts.xmlutil.make_parser`), so nothing inside the document can make it re-read them.
UTF-8 input is passed on as it is: no decoding and no copy on the common path.
"""

from __future__ import annotations

import re

from sts.errors import MalformedMessage

UTF8, UTF16LE, UTF16BE = "utf-8", "utf-16-le", "utf-16-be"

# What each accepted name (IANA charset names, compared case-insensitively) may label.
_LABELS: dict[str, frozenset[str]] = {
    "utf-8": frozenset({UTF8}),
    "utf-16": frozenset({UTF16LE, UTF16BE}),
    "utf-16le": frozenset({UTF16LE}),
    "utf-16be": frozenset({UTF16BE}),
}

# XML 1.0 Appendix F: UCS-4 / UTF-32 with or without a byte order mark, in all four byte orders, and
# EBCDIC's "<?xm". Each is refused outright; none can start a well-formed UTF-8 or UTF-16 document.
_REFUSED_STARTS = (
    b"\x00\x00\xfe\xff",
    b"\xff\xfe\x00\x00",
    b"\xfe\xff\x00\x00",
    b"\x00\x00\xff\xfe",
    b"\x00\x00\x00<",
    b"<\x00\x00\x00",
    b"\x00\x00<\x00",
    b"\x00<\x00\x00",
    b"\x4c\x6f\xa7\x94",
)
_BYTE_ORDER_MARKS = ((b"\xef\xbb\xbf", UTF8), (b"\xfe\xff", UTF16BE), (b"\xff\xfe", UTF16LE))

# XML 1.0 §2.8 XMLDecl, whole: '<?xml' VersionInfo EncodingDecl? SDDecl? S? '?>' (EncName: §4.3.3).
_S, _EQ = "[ \t\r\n]+", "[ \t\r\n]*=[ \t\r\n]*"
_XML_DECLARATION = re.compile(
    rf"<\?xml{_S}version{_EQ}(?P<q1>[\"'])1\.[0-9]+(?P=q1)"
    rf"(?:{_S}encoding{_EQ}(?P<q2>[\"'])(?P<encoding>[A-Za-z][A-Za-z0-9._-]*)(?P=q2))?"
    rf"(?:{_S}standalone{_EQ}(?P<q3>[\"'])(?:yes|no)(?P=q3))?"
    r"[ \t\r\n]*\?>"
)
# "<?xml" followed by one of these opens a declaration; "<?xml-stylesheet" is a processing instruction.
_DECLARATION_FOLLOWERS = frozenset(" \t\r\n?")


def as_utf8(data: bytes, charset: str | None = None) -> bytes:
    """The document as UTF-8 bytes (``data`` itself when it is UTF-8), or :class:`MalformedMessage`.

    ``charset`` is the HTTP ``Content-Type`` parameter, if the request had one.
    """
    codec, bom_length = _detect(data)
    if charset is not None:
        _require_label(charset, codec)
    if codec == UTF8:
        _check_declaration(_declaration(data, bom_length), codec)
        return data
    try:
        text = str(memoryview(data)[bom_length:], codec)
    except UnicodeDecodeError:
        raise MalformedMessage("invalid UTF-16", reason="parse_encoding") from None
    if text.startswith("\ufeff"):
        # A second byte order mark is a character before the declaration or root: not well-formed (XML 1.0 §2.8,
        # §4.3.3), and re-encoded as UTF-8 it would be the mark libxml2 skips, hiding a declaration from the check
        # below. The same bytes in UTF-8 (two UTF-8 marks) are refused by the parser as a syntax error.
        raise MalformedMessage("byte order mark repeated", reason="parse_syntax")
    named = _check_declaration(_declaration(text, 0), codec)
    if bom_length == 0 and charset is None and named is None:
        # XML 1.0 §4.3.3: UTF-16 starts with a byte order mark; Appendix F guesses without one only to read a
        # declaration that names the encoding. Unlabelled, BOM-less UTF-16 is not XML.
        raise MalformedMessage("UTF-16 without byte order mark or label", reason="parse_encoding")
    return text.encode(UTF8)


def _detect(data: bytes) -> tuple[str, int]:
    """The codec and the length of its byte order mark (XML 1.0 Appendix F)."""
    if data.startswith(_REFUSED_STARTS):
        raise MalformedMessage("UCS-4 or EBCDIC document", reason="parse_encoding")
    for mark, codec in _BYTE_ORDER_MARKS:
        if data.startswith(mark):
            return codec, len(mark)
    if data.startswith(b"\x00<"):
        return UTF16BE, 0
    if data.startswith(b"<\x00"):
        return UTF16LE, 0
    return UTF8, 0


def _require_label(name: str, codec: str) -> None:
    if codec not in _LABELS.get(name.strip().lower(), frozenset()):
        raise MalformedMessage("encoding other than UTF-8/UTF-16, or contradicting the bytes", reason="parse_encoding")


def _declaration(document: bytes | str, start: int) -> str | None:
    """The declaration opening the document, up to its first ``?>`` ("" if unterminated); None if there is none.

    UTF-8 is read as latin-1, one character per byte: the grammar is ASCII-only, so a non-ASCII byte fails it.
    """
    if isinstance(document, bytes):
        opening = document[start : start + 6].decode("latin-1")
    else:
        opening = document[start : start + 6]
    if len(opening) < 6 or not opening.startswith("<?xml") or opening[5] not in _DECLARATION_FOLLOWERS:
        return None  # none (XML 1.0 §4.3.3 allows that for UTF-8 and UTF-16), or a PI such as <?xml-stylesheet
    if isinstance(document, bytes):
        end = document.find(b"?>", start)
        return document[start : end + 2].decode("latin-1") if end >= 0 else ""
    end = document.find("?>", start)
    return document[start : end + 2] if end >= 0 else ""


def _check_declaration(declaration: str | None, codec: str) -> str | None:
    """A declaration must be well-formed, and the encoding it names, if any, the one the bytes are in.

    Returns the encoding name it gives, if any.
    """
    if declaration is None:
        return None
    match = _XML_DECLARATION.fullmatch(declaration)
    if match is None:
        raise MalformedMessage("malformed XML declaration", reason="parse_syntax")
    encoding: str | None = match["encoding"]
    if encoding is not None:
        _require_label(encoding, codec)
    return encoding
