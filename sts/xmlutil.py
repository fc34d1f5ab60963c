"""The only parser for untrusted bytes (SOAP 1.1 §3, SOAP 1.2 part 1 §5: no DTD, no PI; OWASP XXE Prevention).

``parse_untrusted`` settles the encoding first (UTF-8 or UTF-16 only, :mod:`sts.xmlencoding`), counts namespace
declarations in the decoded text, feeds UTF-8 bytes to one hardened lxml parser (no DTD, no entities, no
network, a deny-all resolver, the encoding fixed), rejects DOCTYPEs, processing instructions and entity nodes,
then applies structural caps. Every failure becomes :class:`~sts.errors.MalformedMessage` with its fixed
string; the libxml2 message (which can contain file names) goes only to the exception detail, which is logged,
never answered.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

from lxml import etree

from sts.errors import MalformedMessage
from sts.xmlencoding import as_utf8


@dataclass(frozen=True, slots=True)
class ParserLimits:
    """Structural caps applied after parsing: depth, element, attribute, namespace and text-size limits."""

    max_depth: int = 32
    max_elements: int = 2000
    max_attributes: int = 32
    max_namespaces: int = 256
    max_text_bytes: int = 65536


class _DenyAll(etree.Resolver):
    """Refuse every external load, whatever option elsewhere might ask for one.

    ``no_network`` blocks only http/ftp; a resolver is what also stops ``file://`` entities and DTDs.
    """

    def resolve(self, system_url: str, public_id: str, context: Any = None) -> Any:
        raise ValueError("external resource blocked")


def make_parser() -> etree.XMLParser:
    """Build the hardened parser. Never ``collect_ids=False`` and never ``huge_tree=True``.

    With ``collect_ids=False`` libxml2 loads external parameter entities despite ``load_dtd=False``, and
    ``huge_tree`` lifts libxml2's depth and text-size guards.

    The encoding is fixed to UTF-8: libxml2 then ignores a byte order mark's or a declaration's claim to
    another one, so the bytes it reads are the characters :func:`parse_untrusted` counted.
    """
    parser = etree.XMLParser(
        encoding="utf-8",
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        attribute_defaults=False,
        huge_tree=False,
        remove_pis=False,
        remove_comments=False,
        remove_blank_text=False,
        strip_cdata=True,
    )
    parser.resolvers.add(_DenyAll())
    return parser


# One parser for all threads of a worker: lxml serializes the use of a parser by several threads with a lock
# of its own (lxml's parser.pxi, _ParserContext), at the cost of a parse waiting for another.
_PARSER = make_parser()


def parse_untrusted(data: bytes, limits: ParserLimits, *, charset: str | None = None) -> etree._Element:
    """Parse request bytes into an element tree, or raise :class:`MalformedMessage`.

    ``charset`` is the HTTP ``Content-Type`` parameter, if any: it must agree with the document (XML 1.0 §4.3.3).
    """
    if not isinstance(data, bytes) or not data.strip():
        raise MalformedMessage("empty body", reason="parse_empty")
    utf8 = as_utf8(data, charset)
    # An upper bound on namespace declarations, checked before libxml2 does any work: namespace floods are
    # what makes inclusive canonicalization cost super-linear time, so they never get as far as a tree. Counted in
    # UTF-8, the only encoding the parser reads, so no encoding can hide a declaration from the count.
    if utf8.count(b"xmlns") > limits.max_namespaces:
        raise MalformedMessage("namespace cap", reason="parse_namespaces")
    try:
        root = etree.fromstring(utf8, parser=_PARSER)
    except (etree.XMLSyntaxError, ValueError) as exc:
        raise MalformedMessage(f"xml syntax: {type(exc).__name__}", reason="parse_syntax") from None
    _reject_dtd_and_pis(root)
    if not _caps_hold_by_size(utf8, limits):
        check_structure(root, limits, source_length=len(utf8))
    return root


def _caps_hold_by_size(utf8: bytes, limits: ParserLimits) -> bool:
    """Whether the document's bytes alone prove that :func:`check_structure` would pass, so the tree needs no walk.

    Upper bounds that hold for a document without a DTD (refused before this is asked, so no entity expands into
    markup): every element has a start tag, hence a ``<``; an element at depth d has d - 1 ancestors, each with a
    start and an end tag, so the document holds at least 2d - 1 ``<``; every attribute is written with an ``=``
    (XML 1.0 §3.1, [41] Attribute ::= Name Eq AttValue); no text or attribute value is longer than the document.
    ``<`` and ``=`` are ASCII, never part of a multi-byte UTF-8 sequence, so counting bytes never undercounts.
    Small requests (the usual ones) are settled by two ``bytes.count`` calls; any other goes through the walk,
    which raises the first cap exceeded in document order, as always.
    """
    if len(utf8) > limits.max_text_bytes or utf8.count(b"=") > limits.max_attributes:
        return False
    markup = utf8.count(b"<")
    return markup <= limits.max_elements and markup <= 2 * limits.max_depth


def _reject_dtd_and_pis(root: etree._Element) -> None:
    doc = root.getroottree()
    docinfo = doc.docinfo
    if getattr(docinfo, "doctype", "") or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise MalformedMessage("DOCTYPE present", reason="parse_dtd")
    if docinfo.xml_version not in (None, "1.0"):
        raise MalformedMessage("XML version other than 1.0", reason="parse_xml_version")
    sibling = root.getprevious()
    while sibling is not None:
        if isinstance(sibling, etree._ProcessingInstruction):
            raise MalformedMessage("processing instruction in prolog", reason="parse_pi")
        sibling = sibling.getprevious()
    sibling = root.getnext()
    while sibling is not None:
        if isinstance(sibling, etree._ProcessingInstruction):
            raise MalformedMessage("processing instruction after root", reason="parse_pi")
        sibling = sibling.getnext()
    for _node in root.iter(etree.ProcessingInstruction, etree.Entity):
        raise MalformedMessage("processing instruction or entity in document", reason="parse_pi")


def check_structure(root: etree._Element, limits: ParserLimits, *, source_length: int | None = None) -> None:
    """Apply depth, element, attribute and text-size caps in one pass (in document order), then the text cap to the
    text that follows each comment (which the element walk does not see).

    ``source_length``: the length of the UTF-8 document the tree was parsed from. No text or attribute value
    holds more characters than that (no DTD, so no entity grows; character references and line-end normalization
    only shrink), so the text cap needs no look at the tree when the whole document is within it.
    """
    check_text = source_length is None or source_length > limits.max_text_bytes
    depth = elements = 0
    # iterwalk visits elements only (comments and processing instructions carry no meaning; text is read with
    # itertext), in C: a Python stack over the tree cost twice the parse itself.
    for event, element in etree.iterwalk(root, events=("start", "end")):
        if event == "end":
            depth -= 1
            continue
        depth += 1
        elements += 1
        if depth > limits.max_depth:
            raise MalformedMessage("depth cap", reason="parse_depth")
        if elements > limits.max_elements:
            raise MalformedMessage("element cap", reason="parse_elements")
        attributes = element.attrib
        if len(attributes) > limits.max_attributes:
            raise MalformedMessage("attribute cap", reason="parse_attributes")
        if check_text:
            for text in (element.text, element.tail, *attributes.values()):
                if text is not None and len(text) > limits.max_text_bytes:
                    raise MalformedMessage("text cap", reason="parse_text")
    if check_text:
        # iterwalk never yields comments, so text following a comment (its ``tail``, which ``text_of`` reads as part
        # of the element's text) is checked here: a comment must not let a text node past the cap.
        for comment in root.iter(etree.Comment):
            if comment.tail is not None and len(comment.tail) > limits.max_text_bytes:
                raise MalformedMessage("text cap", reason="parse_text")


# XML 1.0 §2.2 production [2]: Char ::= #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF].
# Anything else (C0 controls, lone surrogates, U+FFFE, U+FFFF) cannot be written into a document at all: lxml
# refuses it with a ValueError when a token is built, so stored text is checked against this when it is accepted.
_NOT_XML_CHAR = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def is_xml_text(text: str) -> bool:
    """Whether every character of ``text`` is an XML 1.0 ``Char`` (§2.2 [2]), so it can be element or attribute
    text; the one check for values that end up in issued tokens (claim values and URIs, names, RP addresses)."""
    return _NOT_XML_CHAR.search(text) is None


def text_of(element: etree._Element) -> str:
    """The full text content of an element, comments skipped (``.text`` stops at a comment: CVE-2017-11427)."""
    if len(element) == 0:
        # No child node of any kind (``len`` counts comments and processing instructions too), so ``.text`` is
        # all of it: the common simple-content case, without the iterator ``itertext`` costs (~20 times more).
        return element.text or ""
    return "".join(cast(Iterator[str], element.itertext()))


def element_children(element: etree._Element) -> list[etree._Element]:
    """Element children only: comments, processing instructions and entity references are skipped."""
    if len(element) == 0:  # a leaf (no child node of any kind): skip building the filtering iterator
        return []
    return list(element.iterchildren(etree.Element))  # the filter runs in lxml, not per child in Python


def split_tag(tag: str) -> tuple[str, str]:
    """(namespace, local name) of a Clark name, ``""`` for no namespace: what ``etree.QName`` says, without
    building a QName object, which costs as much as parsing a small element."""
    if tag[:1] == "{":
        namespace, _, local = tag[1:].partition("}")
        return namespace, local
    return "", tag


def namespace_of(element: etree._Element) -> str | None:
    """The namespace URI of an element (``etree.QName(element).namespace``), None for none or for a comment or
    processing instruction."""
    tag = element.tag
    return (split_tag(tag)[0] or None) if isinstance(tag, str) else None


def serialize(element: etree._Element) -> bytes:
    """Serialize compactly with non-ASCII as character references.

    No whitespace nodes (some relying-party libraries take the first child node of ``RequestedSecurityToken``), and
    ASCII only (Microsoft's WS-Trust client code ASCII-encodes the raw token text); signatures are unaffected.
    """
    return etree.tostring(element, encoding="us-ascii", xml_declaration=False)
