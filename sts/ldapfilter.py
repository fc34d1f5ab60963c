"""LDAP search filters built from operators' templates and untrusted values (RFC 4515).

WSO2 writes a user-name filter as a template with ``?`` where the typed name goes
(``(&(objectClass=person)(uid=?))``). :class:`FilterTemplate` checks a template once, at start-up, and fills in
values escaped by :func:`escape_value`: every ``?`` becomes the escaped value, nothing is ever formatted into the
template otherwise, so ``admin)(uid=*`` stays one assertion value (``admin\\29\\28uid=\\2a``).
"""

from __future__ import annotations

PLACEHOLDER = "?"
_SPECIAL = frozenset(b"*()\\\x00")


class FilterTemplateError(ValueError):
    """A filter template that is not a well-formed RFC 4515 filter, or has no ``?``."""


def escape_value(value: str | bytes) -> str:
    """An RFC 4515 §3 assertion value: ``* ( ) \\ NUL`` and every byte outside printable ASCII as ``\\XX``.

    Text is encoded as UTF-8 first and escaped byte by byte (``é`` → ``\\c3\\a9``), which every server matches
    like the raw UTF-8; bytes (a binary attribute such as ``objectGUID``) are escaped the same way.
    """
    raw = value.encode("utf-8") if isinstance(value, str) else value
    return "".join(f"\\{byte:02x}" if byte in _SPECIAL or not 0x20 <= byte < 0x7F else chr(byte) for byte in raw)


class FilterTemplate:
    """A filter with ``?`` placeholders, validated on construction."""

    __slots__ = ("_parts", "text")

    def __init__(self, text: str, needs_placeholder: bool = True) -> None:
        self.text = text.strip()
        if needs_placeholder and PLACEHOLDER not in self.text:
            raise FilterTemplateError("must contain '?' where the user name goes")
        self._parts = self.text.split(PLACEHOLDER)
        check_filter(self.fill("x"))

    def fill(self, value: str | bytes) -> str:
        """The filter with every ``?`` replaced by the escaped ``value``."""
        return escape_value(value).join(self._parts)

    def __repr__(self) -> str:
        return f"FilterTemplate({self.text!r})"


def check_filter(text: str) -> None:
    """Raise :class:`FilterTemplateError` unless ``text`` is one parenthesised RFC 4515 filter.

    A structural check (balanced parentheses, one item per parenthesis, an operator in each simple item,
    escapes of two hex digits), enough to refuse a template that would change meaning once a value is filled in.
    """
    end = _filter(text, 0)
    if end != len(text):
        raise FilterTemplateError(f"not one RFC 4515 filter: unexpected text at position {end}")


def _filter(text: str, pos: int) -> int:
    if pos >= len(text) or text[pos] != "(":
        raise FilterTemplateError(f"expected '(' at position {pos}")
    pos += 1
    if pos < len(text) and text[pos] in "&|":
        pos += 1
        if pos >= len(text) or text[pos] != "(":
            raise FilterTemplateError(f"'&' and '|' need at least one filter (position {pos})")
        while pos < len(text) and text[pos] == "(":
            pos = _filter(text, pos)
    elif pos < len(text) and text[pos] == "!":
        pos = _filter(text, pos + 1)
    else:
        pos = _item(text, pos)
    if pos >= len(text) or text[pos] != ")":
        raise FilterTemplateError(f"expected ')' at position {pos}")
    return pos + 1


def _item(text: str, pos: int) -> int:
    start = pos
    while pos < len(text) and text[pos] not in "()":
        if text[pos] == "\\":
            digits = text[pos + 1 : pos + 3]
            if len(digits) != 2 or any(c not in "0123456789abcdefABCDEF" for c in digits):
                raise FilterTemplateError(f"bad escape at position {pos}")
            pos += 2
        pos += 1
    item = text[start:pos]
    attribute, sep, _ = item.partition("=")
    if not sep or not attribute.rstrip("~<>:").strip():
        raise FilterTemplateError(f"{item!r} is not an attribute assertion")
    return pos
