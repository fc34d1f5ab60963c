"""The HTTP front door under hostile requests, against a real gunicorn on 127.0.0.1 running the STS worker
(sts.gunicorn_worker): framing that the event loop refuses itself instead of waiting for (RFC 9112 §2.2, §7.1),
fixed plain-text refusals whose reason phrase matches the status (RFC 9110 §15), a busy loop that must not
spin on a request it stopped reading, and a connection flood that runs a worker out of file descriptors."""

from __future__ import annotations

import contextlib
import re
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.support import STS_BIN, Instance, Server, audit_records, rst_envelope, start_server

pytestmark = pytest.mark.integration

READ_TIMEOUT = 3.0  # the server's [server] read_timeout: an answer that took this long was a timeout, not a refusal
AT_ONCE = 1.5
POST = b"POST /services/wso2carbon-sts HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/xml; charset=utf-8\r\n"
CHUNKED = POST + b"Transfer-Encoding: chunked\r\n\r\n"


@pytest.fixture(scope="module")
def plain(instance: Instance) -> Iterator[Server]:
    """Plain HTTP, 2 workers, a 3 s read deadline."""
    srv = start_server(instance, workers=2, tls=False, env={"STS_SERVER_READ_TIMEOUT": str(int(READ_TIMEOUT))})
    yield srv
    srv.stop()


def _exchange(server: Server, request: bytes) -> tuple[bytes, bytes, float]:
    """Send ``request`` and read until the server closes: (answer head, answer body, seconds until the answer)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=READ_TIMEOUT + 5) as sock:
        started = time.monotonic()
        sock.sendall(request)
        data = b""
        elapsed = 0.0
        try:
            while chunk := sock.recv(65536):
                if not data:
                    elapsed = time.monotonic() - started
                data += chunk
        except ConnectionResetError:
            pass
    assert data, "closed without an answer"
    head, _, body = data.partition(b"\r\n\r\n")
    return head, body, elapsed


def _assert_plain_refusal(head: bytes, body: bytes, status: bytes) -> None:
    """A fixed plain-text answer: the status line, its reason phrase as the body, and the connection closed."""
    assert head.split(b"\r\n", 1)[0] == b"HTTP/1.1 " + status
    assert re.search(rb"(?im)^content-type: text/plain; charset=utf-8\r?$", head), head
    assert re.search(rb"(?im)^connection: close\r?$", head), head
    assert body == status.split(b" ", 1)[1] + b"\n"


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        # RFC 9112 §2.2: a head whose lines end in bare LF never shows CRLF CRLF; gunicorn refuses bare LFs
        (b"GET /healthz HTTP/1.1\nHost: 127.0.0.1\n\n", b"400 Bad Request"),
        # a chunk-size line longer than the loop reads (gunicorn would wait for its end, up to 8190 bytes)
        (CHUNKED + b"5;" + b"e" * 2000, b"400 Bad Request"),
        # RFC 9112 §7.1: a chunk size past 64 bits, like any chunk size past the body cap, is refused at once
        (CHUNKED + b"F" * 20 + b"\r\nabc", b"413 Content Too Large"),
        (CHUNKED + b"%x\r\n" % 70000 + b"a" * 100, b"413 Content Too Large"),
        # a trailer section that never ends, over the head cap (32 KiB)
        (CHUNKED + b"0\r\n" + b"X-T: a\r\n" * 5000, b"431 Request Header Fields Too Large"),
    ],
    ids=["bare_lf_head", "endless_chunk_line", "chunk_size_overflow", "chunk_size_over_cap", "endless_trailers"],
)
def test_framing_the_loop_will_not_wait_for_is_refused_at_once(
    plain: Server, request_bytes: bytes, status: bytes
) -> None:
    """Each used to get no answer at all: a wait until the read deadline, or the request served cut short, which
    gunicorn's parser met as a premature end of stream and closed without a word."""
    head, body, elapsed = _exchange(plain, request_bytes)
    _assert_plain_refusal(head, body, status)
    assert elapsed < AT_ONCE


def test_a_body_in_tiny_chunks_is_refused_without_spinning(plain: Server) -> None:
    """A body of 1-byte chunks outgrows the loop's buffer (head + body cap + 4 KiB) before the chunks add up to
    the cap: the loop stopped reading but kept polling the readable socket, spinning a core until the deadline."""
    head, body, elapsed = _exchange(plain, CHUNKED + b"1\r\na\r\n" * 30000)
    _assert_plain_refusal(head, body, b"413 Content Too Large")
    assert elapsed < AT_ONCE


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        # RFC 9112 §6.1: an unknown transfer coding is 501; gunicorn wrote "501 Bad Request"
        (POST + b"Transfer-Encoding: xchunked\r\n\r\n", b"501 Not Implemented"),
        (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", b"414 URI Too Long"),
        (b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: x\r\n\r\n", b"417 Expectation Failed"),
        (POST + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", b"400 Bad Request"),
    ],
    ids=["unknown_transfer_coding", "request_line_too_long", "unknown_expectation", "length_and_chunked"],
)
def test_gunicorns_refusals_carry_the_reason_phrase_of_their_status(
    plain: Server, request_bytes: bytes, status: bytes
) -> None:
    head, body, _ = _exchange(plain, request_bytes)
    _assert_plain_refusal(head, body, status)


def _refusals(server: Server) -> dict[str, float]:
    """``sts_connections_refused_total`` by reason, summed over the workers (as a scrape of /metrics shows them)."""
    scheme = "https" if server.tls else "http"
    text = requests.get(f"{scheme}://127.0.0.1:{server.port}/metrics", verify=server.verify, timeout=10).text
    return {
        sample.labels["reason"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "sts_connections_refused_total"
    }


def _refusals_reach(server: Server, expected: dict[str, float], seconds: float = 5.0) -> dict[str, float]:
    """The counts once every reason of ``expected`` has reached its value (workers write them once a second)."""
    deadline = time.monotonic() + seconds
    while True:
        found = _refusals(server)
        if all(found.get(reason, 0.0) >= count for reason, count in expected.items()) or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_connections_closed_without_serving_a_request_are_counted_by_reason(plain: Server) -> None:
    """The event loop's refusals and read deadlines reach no access log and no request trace: a metric is all an
    operator has to see a flood of bad framing or slow clients. An idle connection that ends is no refusal."""
    time.sleep(1.5)  # earlier tests' refusals reach the shared files (each worker writes once a second)
    before = _refusals(plain)
    _exchange(plain, CHUNKED + b"F" * 20 + b"\r\nabc")  # 413, by the loop
    _exchange(plain, CHUNKED + b"0\r\n" + b"X-T: a\r\n" * 5000)  # 431, by the loop
    _exchange(plain, b"GET /healthz HTTP/1.1\nHost: 127.0.0.1\n\n")  # 400, by the loop
    _exchange(plain, POST + b"Transfer-Encoding: xchunked\r\n\r\n")  # 501, by gunicorn's parser
    with socket.create_connection(("127.0.0.1", plain.port)):
        pass  # connects and leaves: not counted
    with socket.create_connection(("127.0.0.1", plain.port), timeout=READ_TIMEOUT + 5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # a head never ended
        started = time.monotonic()
        assert sock.recv(65536) == b""  # closed at the read deadline, without an answer
        assert time.monotonic() - started >= READ_TIMEOUT - 0.5
    expected = {"content_too_large": 1, "header_too_large": 1, "bad_request": 1, "not_implemented": 1,
                "read_timeout": 1}
    after = _refusals_reach(plain, {reason: before.get(reason, 0.0) + count for reason, count in expected.items()})
    changed = {reason: after[reason] - before.get(reason, 0.0) for reason in after}
    assert {reason: count for reason, count in changed.items() if count} == expected


def test_a_tls_handshake_that_fails_is_counted(instance: Instance) -> None:
    server = start_server(instance, workers=1)
    try:
        # What start_server's readiness probes left (on a busy machine a probe can give up during its handshake).
        before = _refusals(server)
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")  # plain HTTP to the TLS port
            with contextlib.suppress(ConnectionResetError):
                while sock.recv(65536):
                    pass
        after = _refusals_reach(server, {"tls_handshake": before.get("tls_handshake", 0.0) + 1})
        changed = {reason: after[reason] - before.get(reason, 0.0) for reason in after}
        assert {reason: count for reason, count in changed.items() if count} == {"tls_handshake": 1}
    finally:
        server.stop()


def _worker_pids(server: Server) -> list[int]:
    """The gunicorn master's children (``sts serve`` execs the master, so it is the process started)."""
    pids: set[int] = set()
    for task in Path(f"/proc/{server.process.pid}/task").iterdir():
        pids.update(int(pid) for pid in (task / "children").read_text().split())
    return sorted(pids)


def _start_with_open_files_limit(instance: Instance, limit: int) -> Server:
    """``sts serve`` (plain HTTP, 2 workers, 3 s read deadline) with RLIMIT_NOFILE lowered to ``limit``, well
    under the default 1,000 worker_connections (as systemd's default soft limit of 1,024 is, once a worker holds
    its other files and lingering closes, which worker_connections does not count)."""
    script = (
        "import os, resource, sys; resource.setrlimit(resource.RLIMIT_NOFILE, (int(sys.argv[1]),) * 2); "
        "os.execv(sys.argv[2], sys.argv[2:])"
    )
    command = [sys.executable, "-c", script, str(limit), str(STS_BIN), "--config", str(instance.config), "serve"]
    env = {"STS_SERVER_READ_TIMEOUT": str(int(READ_TIMEOUT))}
    return start_server(instance, workers=2, tls=False, command=command, env=env)


@pytest.mark.timeout(120)
def test_running_out_of_file_descriptors_pauses_accepting_instead_of_killing_the_worker(instance: Instance) -> None:
    """300 connections that send nothing, against workers allowed 128 open files: accept(2) fails with EMFILE,
    which gunicorn's loop let escape, so every worker died (with all its connections) and its successors too,
    for as long as the flood lasted. Now a worker stops accepting a moment, and serves on."""
    server = _start_with_open_files_limit(instance, 128)
    flood: list[socket.socket] = []
    try:
        deadline = time.monotonic() + 20
        while len(_worker_pids(server)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        workers = _worker_pids(server)
        assert len(workers) == 2
        for _ in range(300):
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", server.port))
            flood.append(sock)
        # The workers accept until their descriptors run out (within the read deadline on an idle machine; a busy
        # one may take longer, and what the flood leaves in the backlog is accepted once deadlines free places).
        deadline = time.monotonic() + 20
        while "Cannot accept connections (EMFILE)" not in (log := server.log.read_text(errors="replace")):
            assert time.monotonic() < deadline, log[-3000:]
            time.sleep(0.1)
        assert _worker_pids(server) == workers
        assert "Exception in worker process" not in log
        for sock in flood:
            sock.close()
        flood.clear()
        health = f"http://127.0.0.1:{server.port}/healthz"
        assert requests.get(health, timeout=READ_TIMEOUT + 5).status_code == 200
        assert _worker_pids(server) == workers
        assert _refusals_reach(server, {"accept_failed": 1})["accept_failed"] >= 1
    finally:
        for sock in flood:
            sock.close()
        server.stop()


def test_expect_100_continue_with_a_body_over_the_cap_gets_413_and_no_100(plain: Server) -> None:
    """RFC 9110 §10.1.1: the expectation lets a server refuse before the body; gunicorn sent 100 Continue first,
    asking for 10 MB that would only be drained and dropped."""
    head, body, _ = _exchange(plain, POST + b"Content-Length: 10000000\r\nExpect: 100-continue\r\n\r\n")
    assert head.split(b"\r\n", 1)[0] == b"HTTP/1.1 413 Content Too Large"
    assert b"100 Continue" not in head + body


def test_expect_100_continue_is_answered_once(plain: Server) -> None:
    """The event loop answers the expectation while it waits for the body; gunicorn answered it again after the
    body had arrived."""
    with socket.create_connection(("127.0.0.1", plain.port), timeout=READ_TIMEOUT + 5) as sock:
        sock.sendall(POST + b"Content-Length: 4\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n")
        assert sock.recv(65536) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"<x/>")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 500 ")  # a SOAP fault: the body is no envelope
    assert b"100 Continue" not in answer


def test_http11_request_without_host_gets_400(plain: Server) -> None:
    """RFC 9112 §3.2: "A server MUST respond with a 400 (Bad Request) status code to any HTTP/1.1 request message
    that lacks a Host header field"; it got 200. HTTP/1.0 needs none."""
    head, body, _ = _exchange(plain, b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n")
    _assert_plain_refusal(head, body, b"400 Bad Request")
    head, body, _ = _exchange(plain, b"GET /healthz HTTP/1.0\r\n\r\n")
    assert (head.split(b"\r\n", 1)[0], body) == (b"HTTP/1.0 200 OK", b'{"status": "ok"}')


def test_a_later_minor_version_is_answered_in_http11(plain: Server) -> None:
    """RFC 9110 §6.2: a server answers with the highest version it conforms to, not gunicorn's echo "HTTP/1.2"."""
    head, body, _ = _exchange(plain, b"GET /healthz HTTP/1.2\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    assert (head.split(b"\r\n", 1)[0], body) == (b"HTTP/1.1 200 OK", b'{"status": "ok"}')


@pytest.mark.timeout(120)
def test_a_flood_past_worker_connections_does_not_keep_clients_out(instance: Instance) -> None:
    """300 connections that send nothing, against 2 workers of 50 connections each (and the default 10 s read
    deadline): the workers stopped accepting, and /healthz and tokens waited in the backlog behind the flood for
    one read deadline or more. A worker at its limit now closes the connection that has waited longest for a
    request, and answers new clients at once."""
    server = start_server(instance, workers=2, tls=False, env={"STS_SERVER_WORKER_CONNECTIONS": "50"})
    flood: list[socket.socket] = []
    password = (instance.base / "demo-admin-password.txt").read_text().strip()
    try:
        for _ in range(300):
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", server.port))
            flood.append(sock)
        time.sleep(1)
        for _ in range(3):
            started = time.monotonic()
            assert requests.get(f"http://127.0.0.1:{server.port}/healthz", timeout=15).status_code == 200
            token = requests.post(
                server.url, data=rst_envelope("admin", password, applies_to="https://localhost:8443/demo-rp/"),
                headers={"Content-Type": "text/xml; charset=utf-8"}, timeout=15,
            )
            assert token.status_code == 200
            assert time.monotonic() - started < 2.0
        assert _refusals_reach(server, {"evicted": 200})["evicted"] >= 200  # 300 against 2 x 50 places
    finally:
        for sock in flood:
            sock.close()
        server.stop()


def _answers(data: bytes) -> list[bytes]:
    """The status lines of every answer in ``data`` (answers framed by Content-Length, as all of ours are)."""
    statuses = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        statuses.append(head.split(b"\r\n", 1)[0])
        found = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", head)
        data = rest[int(found.group(1)) if found else 0 :]
    return statuses


_GET_CHUNKED = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"


@pytest.mark.parametrize(
    "request_bytes",
    [
        # RFC 9110 §6.5.1: a field gunicorn refuses in a trailer section
        _GET_CHUNKED + b"3\r\nabc\r\n0\r\nHost: elsewhere\r\n\r\n",
        # RFC 9112 §7.1.1: a chunk extension that is no token
        _GET_CHUNKED + b"3;a b\r\nabc\r\n0\r\n\r\n",
        # RFC 9112 §7.1: chunk data not followed by CRLF
        _GET_CHUNKED + b"3\r\nabcXY0\r\n\r\n",
        # a 404 leaves the body unread too
        CHUNKED.replace(b"/services/wso2carbon-sts", b"/nowhere") + b'3;x="\r\nabc\r\n0\r\n\r\n',
    ],
    ids=["forbidden_trailer_field", "bad_chunk_extension", "chunk_data_without_crlf", "bad_extension_on_a_404"],
)
def test_an_unread_body_that_is_malformed_gets_no_second_answer(plain: Server, request_bytes: bytes) -> None:
    """A request whose body the application does not read is answered; gunicorn's drain of that body then met
    the malformed chunk and the worker answered the same request again ("400 Bad Request" after a "200 OK" that
    said keep-alive): two answers to one request, the second one unasked-for on a connection a client or a proxy
    may reuse (response queue desync)."""
    head, body, _ = _exchange(plain, request_bytes)
    answers = _answers(head + b"\r\n\r\n" + body)
    assert len(answers) == 1, answers
    assert answers[0] in (b"HTTP/1.1 200 OK", b"HTTP/1.1 404 Not Found")


def test_a_chunked_body_gunicorn_will_refuse_is_answered_with_connection_close(plain: Server) -> None:
    """The loop sees the bad chunk framing (RFC 9112 §7.1) before serving: the answer says the connection closes."""
    head, _, _ = _exchange(plain, _GET_CHUNKED + b"3;a b\r\nabc\r\n0\r\n\r\n")
    assert head.split(b"\r\n", 1)[0] == b"HTTP/1.1 200 OK"
    assert re.search(rb"(?im)^connection: close\r?$", head), head


@pytest.mark.parametrize(
    "request_bytes",
    [
        POST + b"Content-Length: 70000\r\n\r\n",  # over the body cap: refused by the application unread
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 70000\r\n\r\n",
    ],
    ids=["soap_endpoint_413", "healthz_with_a_body_over_the_cap"],
)
def test_an_answer_after_which_the_connection_closes_says_so(plain: Server, request_bytes: bytes) -> None:
    """RFC 9112 §9.6: a server that closes after an answer sends "Connection: close" in it. The 413 for a body over
    the cap said "Connection: keep-alive" (gunicorn drops the application's own Connection header) and the
    connection then closed: a client or proxy reusing it sends its next request into a closing socket."""
    head, _, _ = _exchange(plain, request_bytes)
    assert re.search(rb"(?im)^connection: close\r?$", head), head
    assert not re.search(rb"(?im)^connection: keep-alive\r?$", head), head


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX: a\r\n Transfer-Encoding: chunked\r\n\r\n",  # obs-fold
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding : chunked\r\n\r\n",  # space before colon
        POST + b"Content-Length : 10\r\n\r\n",
    ],
    ids=["folded_transfer_encoding", "space_before_colon_transfer_encoding", "space_before_colon_content_length"],
)
def test_a_field_gunicorn_refuses_is_not_read_as_framing(plain: Server, request_bytes: bytes) -> None:
    """RFC 9112 §5.1, §5.2: no whitespace before the colon, no line folding; gunicorn answers 400. The loop read
    such a line as a Transfer-Encoding or Content-Length and waited for a body until the read deadline, then
    closed without an answer."""
    head, body, elapsed = _exchange(plain, request_bytes)
    _assert_plain_refusal(head, body, b"400 Bad Request")
    assert elapsed < AT_ONCE


def _read_answer(sock: socket.socket) -> tuple[bytes, bytes]:
    """One HTTP answer with a Content-Length: its head and body."""
    data = b""
    while b"\r\n\r\n" not in data and (chunk := sock.recv(65536)):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = re.search(rb"(?im)^content-length: *(\d+)\r?$", head)
    while length and len(body) < int(length.group(1)) and (chunk := sock.recv(65536)):
        body += chunk
    return head, body


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_a_request_after_a_proxy_protocol_preface_is_read_whole(instance: Instance, version: str) -> None:
    """With gunicorn's PROXY protocol on (behind HAProxy), the preface before a connection's first request is not
    taken for its head: a body that arrives after the head is waited for (a token, not a parse fault), and the
    audit names the client the proxy reported."""
    password = (instance.base / "demo-admin-password.txt").read_text().strip()
    body = rst_envelope("admin", password, applies_to="https://localhost:8443/demo-rp/")
    head = POST + b"Content-Length: %d\r\n\r\n" % len(body)
    preface = (b"PROXY TCP4 192.0.2.7 127.0.0.1 5000 80\r\n" if version == "v1" else
               b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c" + bytes([192, 0, 2, 7, 127, 0, 0, 1, 0x13, 0x88, 0, 80]))
    server = start_server(instance, workers=1, tls=False, env={
        "GUNICORN_CMD_ARGS": f"--proxy-protocol {version}", "STS_SERVER_TRUSTED_PROXIES": "127.0.0.1",
    })
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=15) as sock:
            sock.sendall(preface + head)
            time.sleep(0.3)  # the body in a later segment, as a proxy may forward it
            sock.sendall(body)
            answer_head, answer_body = _read_answer(sock)
            assert answer_head.startswith(b"HTTP/1.1 200 OK"), answer_head
            assert b"EncryptedAssertion" in answer_body
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")  # kept alive, no preface now
            assert _read_answer(sock)[0].startswith(b"HTTP/1.1 200 OK")
        issued = [r for r in audit_records(server.log) if r.get("audit_event") == "issue"]
        assert issued and issued[-1]["client_address"] == "192.0.2.7"
    finally:
        server.stop()
