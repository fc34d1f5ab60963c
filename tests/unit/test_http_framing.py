"""sts.http_framing: when a buffered HTTP/1.1 request is complete (RFC 9112 §6, §7.1), so that the serving worker
hands only whole requests to its threads (issue 12, item 1); fed a byte at a time it reaches the same verdicts."""

from __future__ import annotations

import re

import pytest

from sts import http_framing
from sts.http_framing import Framing, Progress, RequestFraming

HEX = http_framing._HEX
HEAD_CAP = 32768
BODY_CAP = 100
POST = b"POST /services/wso2carbon-sts HTTP/1.1\r\nHost: h\r\n"


def _progress(data: bytes) -> Progress:
    return RequestFraming(HEAD_CAP, BODY_CAP).progress(data)


def _fed_bytewise(data: bytes) -> list[Progress]:
    """The verdicts of one framing object fed ``data`` one byte more at a time."""
    framing = RequestFraming(HEAD_CAP, BODY_CAP)
    return [framing.progress(data[:end]) for end in range(1, len(data) + 1)]


@pytest.mark.parametrize(
    ("data", "framing"),
    [
        (b"", Framing.INCOMPLETE),
        (b"GET /healthz HTTP/1.1\r\nHost: h\r\n", Framing.INCOMPLETE),
        (b"GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n", Framing.COMPLETE),
        (b"\r\nGET /healthz HTTP/1.1\r\nHost: h\r\n\r\n", Framing.COMPLETE),  # RFC 9112 §2.2: one empty line
        (b"\r\n\r\nGET /healthz HTTP/1.1\r\nHost: h\r\n\r\n", Framing.SERVE_AND_CLOSE),  # gunicorn refuses two
        (POST + b"\r\n", Framing.COMPLETE),  # no length, no coding: no body (§6.3)
        (POST + b"Content-Length: 5\r\n\r\nabc", Framing.INCOMPLETE),
        (POST + b"Content-Length: 5\r\n\r\nabcde", Framing.COMPLETE),
        (POST + b"content-length: 5\r\n\r\nabcdeGET", Framing.COMPLETE),  # a pipelined request may follow
        (POST + b"Content-Length: 101\r\n\r\n", Framing.SERVE_AND_CLOSE),  # over the cap: 413 without the body
        (POST + b"Content-Length: -1\r\n\r\n", Framing.SERVE_AND_CLOSE),
        (POST + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\n", Framing.SERVE_AND_CLOSE),
        (POST + b"Content-Length: 5, 5\r\n\r\nabcde", Framing.SERVE_AND_CLOSE),
        (POST + b"Bad line\r\n\r\n", Framing.SERVE_AND_CLOSE),
        (POST + b"Transfer-Encoding: gzip\r\n\r\n", Framing.SERVE_AND_CLOSE),
        (POST + b"Transfer-Encoding: chunked\r\n\r\n", Framing.INCOMPLETE),
        (POST + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n", Framing.INCOMPLETE),
        (POST + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n", Framing.INCOMPLETE),
        (POST + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", Framing.COMPLETE),
        (POST + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", Framing.COMPLETE),
        (POST + b"Transfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n0\r\nX-T: 1\r\n", Framing.INCOMPLETE),
        (POST + b"Transfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n0\r\nX-T: 1\r\n\r\n", Framing.COMPLETE),
        (POST + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n", Framing.SERVE_AND_CLOSE),
        (POST + b"Transfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n", Framing.SERVE_AND_CLOSE),  # hex digits only
        (POST + b"Transfer-Encoding: chunked\r\n\r\n1_0\r\n", Framing.SERVE_AND_CLOSE),
        # gunicorn would wait for the end of a line this long (it takes 8190 bytes): refused by the worker instead
        (POST + b"Transfer-Encoding: chunked\r\n\r\n" + b"1" * 2000, Framing.BAD_REQUEST),
        # RFC 9112 §7.1: sizes past 64 bits are compared with the cap as they are (leading zeros included)
        (POST + b"Transfer-Encoding: chunked\r\n\r\n" + b"0" * 20 + b"3\r\nabc\r\n0\r\n\r\n", Framing.COMPLETE),
        (POST + b"Transfer-Encoding: chunked\r\n\r\n" + b"F" * 20 + b"\r\nabc", Framing.CONTENT_TOO_LARGE),
        (POST + b"Transfer-Encoding: chunked\r\n\r\n0\r\nX-T: " + b"a" * HEAD_CAP, Framing.HEAD_TOO_LARGE),
        # RFC 9112 §2.2: a bare LF anywhere in the head (gunicorn refuses it), even before the head can end
        (b"GET /healthz HTTP/1.1\nHost: h\n\n", Framing.BAD_REQUEST),
        (b"GET /healthz HTTP/1.1\r\nHost: h\nX: 1\r\n\r\n", Framing.BAD_REQUEST),
        (b"\nGET /healthz HTTP/1.1\r\n\r\n", Framing.BAD_REQUEST),
        (POST + b"Content-Length: 2\r\n\r\n\n\n", Framing.COMPLETE),  # LFs in the body are data
        (POST + b"Transfer-Encoding: chunked\r\n\r\n64\r\n" + b"a" * 99, Framing.INCOMPLETE),  # the cap, not past it
        # chunk sizes past the cap: 413 at the size line, as for a Content-Length, without waiting for the data
        (POST + b"Transfer-Encoding: chunked\r\n\r\n65\r\n", Framing.CONTENT_TOO_LARGE),
        (POST + b"Transfer-Encoding: chunked\r\n\r\n" + b"32\r\n" + b"a" * 50 + b"\r\n" + b"33\r\n",
         Framing.CONTENT_TOO_LARGE),
        # RFC 9112 §7.1, §7.1.1: what gunicorn refuses once it reads (or drains) the body, after the answer
        (POST + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabcXY0\r\n\r\n", Framing.SERVE_AND_CLOSE),
        (POST + b"Transfer-Encoding: chunked\r\n\r\n3;a b\r\nabc\r\n0\r\n\r\n", Framing.SERVE_AND_CLOSE),
        (POST + b"Transfer-Encoding: chunked\r\n\r\n3;x=\"\r\nabc\r\n0\r\n\r\n", Framing.SERVE_AND_CLOSE),
        (POST + b"Transfer-Encoding: chunked\r\n\r\n3 \r\nabc\r\n0\r\n\r\n", Framing.SERVE_AND_CLOSE),  # BWS: before ;
        (POST + b"Transfer-Encoding: chunked\r\n\r\n3 ; a=\"b c\";d\r\nabc\r\n0\r\n\r\n", Framing.COMPLETE),
        # RFC 9112 §5.1, §5.2: a field name is a token right before its colon; no folding (gunicorn answers 400)
        (POST + b"X: a\r\n Transfer-Encoding: chunked\r\n\r\n", Framing.SERVE_AND_CLOSE),
        (POST + b"Transfer-Encoding : chunked\r\n\r\n", Framing.SERVE_AND_CLOSE),
        (POST + b"Content-Length\t: 5\r\n\r\n", Framing.SERVE_AND_CLOSE),
    ],
)
def test_framing(data: bytes, framing: Framing) -> None:
    assert _progress(data).framing is framing
    steps = _fed_bytewise(data)
    if data:
        assert steps[-1].framing is framing
    # Until its last byte a request is incomplete, or it was already judged and the verdict stays.
    decided = [step.framing for step in steps if step.framing is not Framing.INCOMPLETE]
    assert len(set(decided)) <= 1


def test_a_request_sent_a_byte_at_a_time_costs_linear_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """A chunked body fed a byte at a time: every call reads only the chunk-size lines it has not counted yet
    (re-reading all of them on every call would be quadratic: about 27,000 size lines here)."""
    parsed = []

    class CountingHex:
        def fullmatch(self, text: bytes) -> re.Match[bytes] | None:
            parsed.append(text)
            return HEX.fullmatch(text)

    monkeypatch.setattr(http_framing, "_HEX", CountingHex())
    data = POST + b"Transfer-Encoding: chunked\r\n\r\n" + b"1\r\na\r\n" * 90 + b"0\r\n\r\n"
    steps = _fed_bytewise(data)
    assert steps[-1].framing is Framing.COMPLETE
    assert all(step.framing is Framing.INCOMPLETE for step in steps[:-1])
    assert 91 <= len(parsed) < 2 * len(data)


def test_head_over_the_cap_without_its_end() -> None:
    head = b"GET / HTTP/1.1\r\n" + b"X: " + b"a" * HEAD_CAP
    assert _progress(head).framing is Framing.HEAD_TOO_LARGE
    assert _progress(head[:HEAD_CAP]).framing is Framing.INCOMPLETE


def test_expect_100_continue_only_while_the_body_is_awaited() -> None:
    head = POST + b"Content-Length: 5\r\nExpect: 100-continue\r\n\r\n"
    assert _progress(head) == Progress(Framing.INCOMPLETE, expects_continue=True)
    assert _progress(head + b"abcde") == Progress(Framing.COMPLETE, expects_continue=False)
    http10 = head.replace(b"HTTP/1.1", b"HTTP/1.0")
    assert _progress(http10) == Progress(Framing.INCOMPLETE, expects_continue=False)  # RFC 9110 §10.1.1
    chunked = POST + b"Transfer-Encoding: chunked\r\nEXPECT: 100-Continue\r\n\r\n"
    assert _progress(chunked).expects_continue


# --- PROXY protocol preface (gunicorn --proxy-protocol): skipped before the first request, not read as its head ---

V1 = b"PROXY TCP4 192.0.2.1 127.0.0.1 5000 443\r\n"
# v2: signature, version 2 / PROXY, TCP over IPv4, 12 bytes of addresses (its signature holds bare LFs)
V2 = b"\r\n\r\n\x00\r\nQUIT\n" + b"\x21\x11\x00\x0c" + bytes([192, 0, 2, 1, 127, 0, 0, 1, 0x13, 0x88, 0x01, 0xbb])
BODY_POST = POST + b"Content-Length: 5\r\n\r\n"


@pytest.mark.parametrize(("mode", "data", "framing"), [
    ("v1", V1 + BODY_POST, Framing.INCOMPLETE),  # the body is awaited, not served without it
    ("v1", V1 + BODY_POST + b"abcde", Framing.COMPLETE),
    ("auto", V1 + BODY_POST + b"abc", Framing.INCOMPLETE),
    ("auto", V2 + BODY_POST + b"abcde", Framing.COMPLETE),
    ("v2", V2 + BODY_POST, Framing.INCOMPLETE),
    ("v2", V2 + b"\r\n" + BODY_POST + b"abcde", Framing.COMPLETE),  # RFC 9112 §2.2's empty line after it
    ("auto", BODY_POST + b"abcde", Framing.COMPLETE),  # a proxy may also connect without one
    ("auto", b"\r\n" + BODY_POST + b"abcde", Framing.COMPLETE),
    ("v1", b"PROXY " + b"1" * 200, Framing.SERVE_AND_CLOSE),  # no line end within 107 bytes: gunicorn's 400
    ("v1", V2 + BODY_POST + b"abcde", Framing.BAD_REQUEST),  # a v2 preface where only v1 is read: bare LFs
    ("off", V1 + BODY_POST, Framing.SERVE_AND_CLOSE),  # without the protocol the line is no request's head
])
def test_a_proxy_protocol_preface_comes_before_the_request(mode: str, data: bytes, framing: Framing) -> None:
    assert RequestFraming(HEAD_CAP, BODY_CAP, mode).progress(data).framing is framing
    fed = RequestFraming(HEAD_CAP, BODY_CAP, mode)
    verdicts = [fed.progress(data[:end]).framing for end in range(1, len(data) + 1)]
    assert verdicts[-1] is framing  # the same verdict when the bytes come one at a time
    if framing is Framing.COMPLETE:
        assert set(verdicts[:-1]) == {Framing.INCOMPLETE}
