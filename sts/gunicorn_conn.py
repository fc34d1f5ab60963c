"""The client connection of the gunicorn worker (:mod:`sts.gunicorn_worker`) and the fixed answers it sends itself.

A connection carries the bytes of its next request read so far by the worker's event loop. Requests the loop will
not buffer whole, and gunicorn's own refusals, are answered with a fixed plain-text status and its reason phrase
(nothing of the request, no parser text, no HTML).
"""

from __future__ import annotations

import fcntl
import functools
import socket
import struct
from collections.abc import Callable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from gunicorn import http
from gunicorn.workers.gthread import TConn

from sts.http_framing import Framing, RequestFraming

if TYPE_CHECKING:
    from sts.gunicorn_worker import BufferingThreadWorker

_SIOCOUTQNSD = 0x894B  # Linux: bytes in a TCP socket's send queue not yet sent (tcp(7))


class BufferedConn(TConn):  # type: ignore[misc]
    """A client connection and the bytes of its next request read so far by the event loop."""

    def __init__(self, cfg: Any, sock: socket.socket, client: Any, server: Any, worker: BufferingThreadWorker) -> None:
        super().__init__(cfg, sock, client, server)
        self.worker = worker
        self.buffer = bytearray()
        self.framing = RequestFraming(worker.max_head_bytes, worker.max_body_bytes)  # of the request being read
        self.ready = False  # the whole request is buffered: the next enqueue goes to a thread
        self.deadline = 0.0
        self.drained = 0
        self.handshaking = False
        self.sent_continue = False
        self.close_after = False  # served without its whole body: the connection is not reused
        self.served = 0  # requests handed to a thread on this connection

    def close(self, graceful: bool = False) -> None:
        """Close now, or let the event loop linger (gunicorn's graceful close would block its loop for 2 s)."""
        if graceful:
            self.worker.linger(self)
        else:
            super().close()


# RFC 9110 §15's reason phrases where Python before 3.13 still has RFC 7231's ("Request Entity Too Large").
_PHRASES = {413: "Content Too Large", 414: "URI Too Long"}


@functools.cache  # a handful of statuses: each answer is built once
def refusal(status: int) -> bytes:
    """A fixed plain-text answer that ends the connection: the status and its reason phrase, nothing of the request
    (RFC 9110 §15 names the phrases; gunicorn's own pairs 501 with "Bad Request")."""
    phrase = (_PHRASES.get(status) or HTTPStatus(status).phrase).encode()
    body = phrase + b"\n"
    head = b"HTTP/1.1 %d %s\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n"
    return head % (status, phrase) + b"Content-Length: %d\r\n\r\n" % len(body) + body


# The reason each refusal status is counted under (sts_connections_refused_total, sts.metrics).
_REASONS = {
    400: "bad_request", 413: "content_too_large", 414: "uri_too_long", 431: "header_too_large",
    500: "internal_error", 501: "not_implemented",
}


def refusal_reason(status: int) -> str:
    """The metric reason of a refusal status (``bad_request`` for a status the table does not name)."""
    return _REASONS.get(status, "bad_request")


# What the event loop answers itself, for requests it will not buffer whole (see sts.http_framing): the status.
FRAMING_REFUSALS = {
    Framing.HEAD_TOO_LARGE: 431,
    Framing.CONTENT_TOO_LARGE: 413,
    Framing.BAD_REQUEST: 400,
}
# A request still incomplete when its buffer is full (a body in tiny chunks: the chunk framing outweighs the data).
BUFFER_FULL = 413


class PlainErrorAnswer:
    """Stands for the client socket in gunicorn's ``handle_error``: keeps the status it writes and sends a fixed
    plain-text answer (the status's reason phrase) instead of its HTML page, which quotes the parser's error (the SOAP
    endpoint answers no HTML and no library message)."""

    def __init__(self, sock: socket.socket, refused: Callable[[str], None] = lambda _reason: None) -> None:
        self._sock = sock
        self._refused = refused

    @staticmethod
    def gettimeout() -> float:
        """0.0: gunicorn's ``write_nonblock`` then writes at once; the real socket's own timeout bounds the write."""
        return 0.0

    def sendall(self, data: bytes) -> None:
        """Send the status of ``data`` (b"HTTP/1.1 400 Bad Request...") as a fixed plain-text answer."""
        try:
            status = HTTPStatus(int(data.split(b" ", 2)[1])).value
        except (IndexError, ValueError):
            status = HTTPStatus.BAD_REQUEST.value
        self._refused(refusal_reason(status))
        self._sock.sendall(refusal(status))


def settle_head(req: Any) -> None:
    """What gunicorn's parser leaves undone with a request head; raises gunicorn's 400 for a head without Host."""
    # The event loop sent 100 Continue already, or had the whole body, or refuses the request without reading it:
    # gunicorn would send it (again), even before a 413, asking for a body that is never read (RFC 9110 §10.1.1).
    req._expected_100_continue = False
    # RFC 9112 §3.2: a server MUST answer 400 to an HTTP/1.1 request without a Host field.
    if req.version >= (1, 1) and not any(name == "HOST" for name, _ in req.headers):
        raise http.errors.InvalidHeader("HOST", req=req)
    # RFC 9110 §6.2: the answer is HTTP/1.1, the version served, whatever 1.x the client used (gunicorn echoes it).
    req.version = min(req.version, (1, 1))


def unsent_bytes(sock: socket.socket) -> int:
    """Bytes of earlier answers still waiting in the send queue because the client does not take them (0 where
    the kernel cannot tell)."""
    try:
        raw = fcntl.ioctl(sock.fileno(), _SIOCOUTQNSD, struct.pack("i", 0))
    except (OSError, ValueError):
        return 0
    return int(struct.unpack("i", raw)[0])
