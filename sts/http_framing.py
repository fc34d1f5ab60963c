"""How much of an HTTP/1.1 request has arrived (RFC 9112 §2, §6, §7.1), judged as its bytes come in.

The serving worker (:mod:`sts.gunicorn_worker`) reads requests in its event loop and hands a request to a
thread only once it is all there, so a slow or silent client never holds a thread. This module only finds the
end of the request; gunicorn's own parser still parses and validates it. Anything unusual in the framing
(bad lengths, unknown transfer codings) is served as it stands, so that gunicorn answers it with its usual
400/501, and the connection is closed afterwards. What gunicorn would wait on for more bytes than this module
lets a client send (a bare LF that never ends the head, an overlong chunk-size line or trailer section) gets a
verdict of its own, which the worker answers itself: served, the request would meet the end of the buffer and
the connection would close without any answer.

Each call looks only at bytes it has not judged before (where the head's end is searched, which chunks are
counted), so a client that sends its request a byte at a time costs linear, not quadratic, work.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

_MAX_CHUNK_LINE = 1024
_HEAD_END = b"\r\n\r\n"
# Any number of digits (the line is capped): Python's int does not overflow, so a size like 2**80 is compared with
# the cap as it is (RFC 9112 §7.1: "anticipate potentially large hexadecimal numerals").
_HEX = re.compile(rb"[0-9A-Fa-f]+")
# RFC 9112 §7.1.1 chunk-ext, everything from the first ";" of a chunk-size line (token, quoted-string: RFC 9110
# §5.6.2, §5.6.4), as gunicorn checks it when the body is read: a line it refuses closes the connection after the
# answer, which must then say so (gunicorn meets it only when it reads or drains the body, after the answer).
_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_QUOTED = rb'"(?:[\t !#-\[\]-~\x80-\xff]|\\[\t -~\x80-\xff])*"'
_CHUNK_EXT = re.compile(rb"(?:[ \t]*;[ \t]*" + _TOKEN + rb"(?:[ \t]*=[ \t]*(?:" + _TOKEN + rb"|" + _QUOTED + rb"))?)*")
# RFC 9110 §5.1: a field name is a token, with nothing (no whitespace either) between it and the colon.
_FIELD_NAME = re.compile(_TOKEN)
# The PROXY protocol preface a proxy may send before a connection's first request (gunicorn's ``proxy_protocol``;
# HAProxy's proxy-protocol.txt): v1, one text line of at most 107 bytes; v2, a 16-byte header (this signature,
# version and command, family, then the big-endian length of the addresses that follow).
_PROXY_V1 = b"PROXY "
_PROXY_V1_MAX = 107
_PROXY_V2 = b"\r\n\r\n\x00\r\nQUIT\n"
_PROXY_V2_HEADER = 16


class Framing(enum.Enum):
    """What the worker does next with a connection's buffer."""

    INCOMPLETE = "incomplete"  # keep reading
    COMPLETE = "complete"  # the whole request is buffered: serve it
    SERVE_AND_CLOSE = "serve_and_close"  # serve what is there (an error answer follows), then close
    HEAD_TOO_LARGE = "head_too_large"  # no end of the header (or trailer) section within the cap: 431 and close
    CONTENT_TOO_LARGE = "content_too_large"  # chunk sizes that add up to more than the body cap: 413 and close
    BAD_REQUEST = "bad_request"  # framing gunicorn refuses or would wait on forever (bare LF, chunk line): 400, close


@dataclass(frozen=True, slots=True)
class Progress:
    """The framing verdict, and whether the client waits for ``100 Continue`` before sending its body."""

    framing: Framing
    expects_continue: bool = False


class RequestFraming:
    """The framing of one request, fed the growing buffer that holds it (from its first byte).

    ``proxy_protocol``: gunicorn's mode (``off``, ``v1``, ``v2``, ``auto``) for a connection's first request, whose
    PROXY preface, if any, comes before the request and is skipped here (gunicorn reads and checks it)."""

    def __init__(self, max_head: int, max_body: int, proxy_protocol: str = "off") -> None:
        self._max_head = max_head
        self._max_body = max_body
        self._proxy = proxy_protocol
        self._start = -1  # where the request begins, once any PROXY preface has been found whole
        self._scan = 0  # where the search for the end of the head resumes
        self._lf = 0  # where the search for a bare LF in the head resumes
        self._body = -1  # offset of the body, once the head is complete
        self._verdict: Framing | None = None  # decided by the head alone
        self._length = 0  # Content-Length framing
        self._chunked = False
        self._chunk = 0  # offset of the next chunk-size line (chunked framing)
        self._decoded = 0  # chunk data counted so far
        self._trailers = -1  # offset of the trailer section, after the last chunk
        self._expects = False

    def progress(self, buffer: bytes | bytearray) -> Progress:
        """Judge the buffer; it only ever grows between calls."""
        if self._body < 0:
            framing = self._head(buffer)
            if framing is not None:
                return Progress(framing)
        if self._verdict is not None:
            return Progress(self._verdict)
        framing = self._chunked_body(buffer) if self._chunked else self._length_body(buffer)
        return Progress(framing, self._expects and framing is Framing.INCOMPLETE)

    def _head(self, buffer: bytes | bytearray) -> Framing | None:
        """Find the end of the head and read its framing fields; a verdict while the head is incomplete."""
        if self._start < 0:
            preface = proxy_preface(buffer, self._proxy)
            if preface is None or isinstance(preface, Framing):
                return preface or Framing.INCOMPLETE
            self._start = self._scan = self._lf = preface  # a v2 preface holds bare LFs: the request's own are judged
        start = self._start + 2 if buffer.startswith(b"\r\n", self._start) else self._start  # RFC 9112 §2.2
        end = buffer.find(_HEAD_END, max(self._scan, start), start + self._max_head + len(_HEAD_END))
        if self._bare_lf(buffer, len(buffer) if end < 0 else end):
            return Framing.BAD_REQUEST
        if end < 0:
            self._scan = max(start, len(buffer) - len(_HEAD_END) + 1)
            return Framing.HEAD_TOO_LARGE if len(buffer) - start > self._max_head else Framing.INCOMPLETE
        self._body = self._chunk = end + len(_HEAD_END)
        request_line, _, fields_text = bytes(buffer[start:end]).partition(b"\r\n")
        fields = _fields(fields_text)
        if fields is None:
            self._verdict = Framing.SERVE_AND_CLOSE  # gunicorn answers 400
            return None
        codings = fields.get(b"transfer-encoding")
        if codings is not None:
            if [c.strip().lower() for c in b",".join(codings).split(b",")][-1:] != [b"chunked"]:
                self._verdict = Framing.SERVE_AND_CLOSE  # gunicorn refuses other codings (RFC 9112 §6.1)
            self._chunked = True
        else:
            self._verdict = self._content_length(fields.get(b"content-length"))
        self._expects = request_line.rstrip().endswith(b"HTTP/1.1") and [
            value.strip().lower() for value in fields.get(b"expect", [])
        ] == [b"100-continue"]
        return None

    def _bare_lf(self, buffer: bytes | bytearray, stop: int) -> bool:
        """RFC 9112 §2.2: the head's lines end with CRLF. gunicorn refuses a bare LF, but the end of the head
        (CRLF CRLF) may never come: found here as it arrives, each byte looked at once."""
        at = buffer.find(b"\n", self._lf, stop)
        while at >= 0:
            if at == 0 or buffer[at - 1] != ord("\r"):
                return True
            at = buffer.find(b"\n", at + 1, stop)
        self._lf = max(self._lf, stop)
        return False

    def _content_length(self, lengths: list[bytes] | None) -> Framing | None:
        """RFC 9112 §6.3: no length means no body; a verdict unless the body has to be waited for."""
        if lengths is None:
            return Framing.COMPLETE
        if len(set(lengths)) != 1 or not lengths[0].isdigit():
            return Framing.SERVE_AND_CLOSE  # gunicorn answers 400
        self._length = int(lengths[0])
        if self._length > self._max_body:
            return Framing.SERVE_AND_CLOSE  # the application answers 413 without reading the body
        return None

    def _length_body(self, buffer: bytes | bytearray) -> Framing:
        return Framing.COMPLETE if len(buffer) - self._body >= self._length else Framing.INCOMPLETE

    def _chunked_body(self, buffer: bytes | bytearray) -> Framing:
        """RFC 9112 §7.1: complete after the last chunk and the trailer section; chunks are counted once."""
        while self._trailers < 0:
            line_end = buffer.find(b"\r\n", self._chunk, self._chunk + _MAX_CHUNK_LINE)
            if line_end < 0:
                # gunicorn reads chunk-size lines up to a field's size (8190 bytes): it would wait on this one.
                too_long = len(buffer) - self._chunk > _MAX_CHUNK_LINE
                return Framing.BAD_REQUEST if too_long else Framing.INCOMPLETE
            size_text, semicolon, extensions = bytes(buffer[self._chunk : line_end]).partition(b";")
            if semicolon:  # RFC 9112 §7.1.1: whitespace before chunk-ext only
                size_text = size_text.rstrip(b" \t")
                if not _CHUNK_EXT.fullmatch(b";" + extensions):
                    return Framing.SERVE_AND_CLOSE  # gunicorn answers 400, or closes once it has answered
            if not _HEX.fullmatch(size_text):
                return Framing.SERVE_AND_CLOSE  # gunicorn answers 400
            size = int(size_text, 16)
            data = line_end + 2
            if size == 0:
                self._trailers = data
                break
            if self._decoded + size > self._max_body:
                # Refused as a Content-Length over the cap is, without waiting for data that will not be read.
                return Framing.CONTENT_TOO_LARGE
            if len(buffer) < data + size + 2:
                return Framing.INCOMPLETE
            if buffer[data + size : data + size + 2] != b"\r\n":
                return Framing.SERVE_AND_CLOSE  # RFC 9112 §7.1: chunk-data CRLF; gunicorn refuses it
            self._decoded += size
            self._chunk = data + size + 2
        if buffer.startswith(b"\r\n", self._trailers):
            return Framing.COMPLETE
        end = buffer.find(_HEAD_END, max(self._trailers, self._scan))
        if end >= 0:
            return Framing.COMPLETE
        self._scan = max(self._trailers, len(buffer) - len(_HEAD_END) + 1)
        return Framing.HEAD_TOO_LARGE if len(buffer) - self._trailers > self._max_head else Framing.INCOMPLETE


def proxy_preface(buffer: bytes | bytearray, mode: str) -> int | Framing | None:
    """Where the request begins after a PROXY protocol preface the ``mode`` accepts (0 without one); None while
    the buffer is too short to tell, or the preface is incomplete; a verdict for a v1 line gunicorn refuses."""
    if mode in ("v2", "auto") and _PROXY_V2.startswith(bytes(buffer[: len(_PROXY_V2)])):
        if len(buffer) < _PROXY_V2_HEADER:
            return None
        end = _PROXY_V2_HEADER + int.from_bytes(buffer[14:16], "big")
        return end if len(buffer) >= end else None
    if mode in ("v1", "auto") and _PROXY_V1.startswith(bytes(buffer[: len(_PROXY_V1)])):
        end = buffer.find(b"\r\n", 0, _PROXY_V1_MAX)
        if end >= 0:
            return end + 2
        return Framing.SERVE_AND_CLOSE if len(buffer) >= _PROXY_V1_MAX else None  # gunicorn answers 400
    return 0


def _fields(text: bytes) -> dict[bytes, list[bytes]] | None:
    """Header fields by lower-cased name; None for a line gunicorn will refuse anyway (no colon, or a name that is
    no token: obs-fold, whitespace before the colon), so that it answers 400 at once rather than the loop waiting
    for a body such a line announces."""
    fields: dict[bytes, list[bytes]] = {}
    for line in text.split(b"\r\n") if text else []:
        name, colon, value = line.partition(b":")
        if not colon or not _FIELD_NAME.fullmatch(name):
            return None  # gunicorn refuses a line without a colon, a folded line, whitespace before the colon
        fields.setdefault(name.lower(), []).append(value.strip())
    return fields
