"""Answers that are not well-formed HTTP, from a raw socket on 127.0.0.1: the client refuses each with a
:class:`ClientError` (the library's promise; the CLI's ``sts: error:``), never an ``http.client`` exception and a
traceback, and never takes a body cut short for the answer."""

from __future__ import annotations

import io
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from sts.cli import main as sts_main
from sts.client import ClientError, Connection, IssueOptions, request_token
from tests.fake_sts import token_answer

RP = "https://rp.example.com/app/"


@contextmanager
def raw_server(answer: bytes) -> Iterator[str]:
    """A server that reads one request and writes ``answer`` as it is, then closes; its URL."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)

    def serve() -> None:
        try:
            connection, _ = listener.accept()
        except OSError:
            return
        with connection:
            connection.settimeout(10)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = connection.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            lengths = [
                line.split(b":", 1)[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
            ]
            length = int(lengths[0]) if lengths else 0
            while len(body) < length:
                chunk = connection.recv(65536)
                if not chunk:
                    break
                body += chunk
            connection.sendall(answer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/services/wso2carbon-sts"
    finally:
        listener.close()
        thread.join(5)


_TOKEN = token_answer(assertion_id="_cut")
BROKEN = {
    "not HTTP": b"GARBAGE\x1b[31m\r\n\r\n",
    "header line too long": b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * 70000 + b"\r\n\r\n",
    "too many headers": b"HTTP/1.1 200 OK\r\n" + b"X-A: a\r\n" * 150 + b"\r\n",
    "bad chunk size": b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    "chunked body cut short": b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nTransfer-Encoding: chunked\r\n\r\n"
    + f"{len(_TOKEN) + 100:x}\r\n".encode()
    + _TOKEN,
    # the whole, well-formed answer, but the server announced more and closed: not the answer it meant to send
    "body shorter than Content-Length": b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: "
    + str(len(_TOKEN) + 100).encode()
    + b"\r\n\r\n"
    + _TOKEN,
    "error body shorter than Content-Length": b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/xml\r\n"
    b"Content-Length: 5000\r\n\r\n<a/>",
}


@pytest.mark.parametrize("answer", BROKEN.values(), ids=BROKEN.keys())
def test_broken_http_is_a_client_error(answer: bytes) -> None:
    with raw_server(answer) as url:
        with pytest.raises(ClientError) as raised:
            request_token(IssueOptions(Connection(url=url, username="a", timeout=10), applies_to=RP), "pw")
    assert "\x1b" not in str(raised.value)


@pytest.mark.parametrize("answer", BROKEN.values(), ids=BROKEN.keys())
def test_broken_http_in_the_cli(
    answer: bytes, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("pw\n"))
    with raw_server(answer) as url:
        code = sts_main(["request", url, "--username", "a", "--password-stdin", "--applies-to", RP])
    out, err = capsys.readouterr()
    assert code == 1
    assert out == ""
    assert err.startswith("sts: error: ") and "\x1b" not in err


def test_whole_body_with_content_length_is_read() -> None:
    """The control: the same answer, complete, is taken."""
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: %d\r\n\r\n" % len(_TOKEN) + _TOKEN
    with raw_server(answer) as url:
        issued = request_token(IssueOptions(Connection(url=url, username="a", timeout=10), applies_to=RP), "pw")
    assert issued.token.get("ID") == "_cut"
