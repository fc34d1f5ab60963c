"""How much of an HTTP/1.1 request has arrived (RFC 9112 §2, §6, §7.1), judged from the bytes buffered so far.

The serving worker (:mod:`sts.gunicorn_worker`) reads requests in its event loop and hands a request to a
thread only once it is all there, so a slow or silent client never holds a thread. This module only finds the
end of the request; gunicorn's own parser still parses and validates it. Anything unusual in the framing
(bad lengths, unknown transfer codings) is dispatched as it stands, so that gunicorn answers it with its usual
400/501, and the connection is closed afterwards.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

_MAX_CHUNK_LINE = 1024


class Framing(enum.Enum):
    """What the worker does next with a connection's buffer."""

    INCOMPLETE = "incomplete"  # keep reading
    COMPLETE = "complete"  # the whole request is buffered: serve it
    SERVE_AND_CLOSE = "serve_and_close"  # serve what is there (an error answer follows), then close
    HEAD_TOO_LARGE = "head_too_large"  # no end of the header section within the cap: 431 and close


@dataclass(frozen=True, slots=True)
class Progress:
    """The framing verdict, and whether the client waits for ``100 Continue`` before sending its body."""

    framing: Framing
    expects_continue: bool = False


def request_progress(buffer: bytes | bytearray, max_head: int, max_body: int) -> Progress:
    """Judge ``buffer`` (the bytes read so far for one request) against the head and body caps."""
    start = 0
    while buffer.startswith(b"\r\n", start):  # RFC 9112 §2.2: empty lines before the request line are ignored
        start += 2
    end = buffer.find(b"\r\n\r\n", start, start + max_head + 4)
    if end < 0:
        too_large = len(buffer) - start > max_head
        return Progress(Framing.HEAD_TOO_LARGE if too_large else Framing.INCOMPLETE)
    head = bytes(buffer[start:end])
    body = memoryview(buffer)[end + 4 :]
    request_line, _, fields_text = head.partition(b"\r\n")
    fields = _fields(fields_text)
    if fields is None:
        return Progress(Framing.SERVE_AND_CLOSE)
    codings = fields.get(b"transfer-encoding")
    if codings is not None:
        if [c.strip().lower() for c in b",".join(codings).split(b",")][-1:] != [b"chunked"]:
            return Progress(Framing.SERVE_AND_CLOSE)  # gunicorn refuses other codings (RFC 9112 §6.1)
        framing = _chunked_progress(body, max_body, max_head)
    else:
        framing = _length_progress(fields.get(b"content-length"), len(body), max_body)
    expects = (
        framing is Framing.INCOMPLETE
        and request_line.rstrip().endswith(b"HTTP/1.1")
        and [v.strip().lower() for v in fields.get(b"expect", [])] == [b"100-continue"]
    )
    return Progress(framing, expects)


def _fields(text: bytes) -> dict[bytes, list[bytes]] | None:
    """Header fields by lower-cased name; None for a line gunicorn will refuse anyway (no colon)."""
    fields: dict[bytes, list[bytes]] = {}
    for line in text.split(b"\r\n") if text else []:
        name, colon, value = line.partition(b":")
        if not colon:
            return None
        fields.setdefault(name.strip().lower(), []).append(value.strip())
    return fields


def _length_progress(lengths: list[bytes] | None, have: int, max_body: int) -> Framing:
    """Content-Length framing (RFC 9112 §6.3): no length means no body."""
    if lengths is None:
        return Framing.COMPLETE
    if len(set(lengths)) != 1 or not lengths[0].isdigit():
        return Framing.SERVE_AND_CLOSE  # gunicorn answers 400
    length = int(lengths[0])
    if length > max_body:
        return Framing.SERVE_AND_CLOSE  # the application answers 413 without reading the body
    return Framing.COMPLETE if have >= length else Framing.INCOMPLETE


def _chunked_progress(body: memoryview, max_body: int, max_trailers: int) -> Framing:
    """Chunked framing (RFC 9112 §7.1): complete after the last chunk and the trailer section."""
    data = body.tobytes()
    position, decoded = 0, 0
    while True:
        line_end = data.find(b"\r\n", position, position + _MAX_CHUNK_LINE)
        if line_end < 0:
            return Framing.SERVE_AND_CLOSE if len(data) - position > _MAX_CHUNK_LINE else Framing.INCOMPLETE
        size_text = data[position:line_end].split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            return Framing.SERVE_AND_CLOSE  # gunicorn answers 400
        position = line_end + 2
        if size == 0:
            if data.startswith(b"\r\n", position):
                return Framing.COMPLETE
            if data.find(b"\r\n\r\n", position) >= 0:
                return Framing.COMPLETE
            return Framing.SERVE_AND_CLOSE if len(data) - position > max_trailers else Framing.INCOMPLETE
        available = min(size, len(data) - position)
        if decoded + available > max_body:
            return Framing.SERVE_AND_CLOSE  # more than the cap is buffered: the application answers 413
        if available < size or len(data) < position + size + 2:
            return Framing.INCOMPLETE
        decoded += size
        position += size + 2
