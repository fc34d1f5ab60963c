"""Issue 12, item 1: idle and slow clients cannot starve token issuance, over TLS (the default `sts serve`) and
plain HTTP; and the edges of the serving model that reads whole requests in each worker's event loop
(sts.gunicorn_worker): read deadline, 100-continue, oversized bodies and heads, keep-alive and pipelining,
graceful closes that never stall the loop, and concurrent requests on a worker's threads."""

from __future__ import annotations

import os
import re
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from lxml import etree

from tests.held_connections import HeldConnections
from tests.support import WST, Instance, Server, rst_envelope, start_server

pytestmark = pytest.mark.integration

TOKEN_BOUND = 2.0  # the bound: a client still gets a token within 2 s
RP_DEMO = "https://localhost:8443/demo-rp/"


def _token_request(instance: Instance) -> bytes:
    return rst_envelope("admin", instance.demo_password, applies_to=RP_DEMO)


def _assert_token(body: bytes) -> str:
    """The response carries a token; returns the RSTR's serialization for comparisons."""
    root = etree.fromstring(body)
    holder = root.find(f".//{{{WST}}}RequestedSecurityToken")
    assert holder is not None and len(holder) == 1, body[:500]
    return etree.tostring(holder[0]).decode()


def _timed_token(server: Server, instance: Instance, session: requests.Session | None = None) -> float:
    """Seconds to get a token on a new connection (or the session's); fails on any error or a 10 s stall."""
    started = time.monotonic()
    response = (session or requests).post(
        server.url, data=_token_request(instance), headers={"Content-Type": "text/xml; charset=utf-8"},
        verify=server.verify, timeout=10,
    )
    elapsed = time.monotonic() - started
    assert response.status_code == 200, response.content[:500]
    _assert_token(response.content)
    return elapsed


def _tls_client(instance: Instance) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(instance.ca_file))


# --- item 1: the availability bound ------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize(("tls", "hold"), [(True, 60.0), (False, 20.0)], ids=["tls", "plain-http"])
def test_idle_and_slow_clients_do_not_starve_token_issuance(instance: Instance, tls: bool, hold: float) -> None:
    """200 silent TCP connections, 50 never-ending request heads and 25 trickled bodies, held (and re-opened
    whenever the server closes them) for ``hold`` seconds: every token request meanwhile is answered in 2 s."""
    server = start_server(instance, workers=2, tls=tls)
    latencies: list[float] = []
    try:
        held = HeldConnections(
            server.port, idle=200, slow_head=50, slow_body=25, tls=_tls_client(instance) if tls else None
        )
        with held:
            ramp_end = time.monotonic() + 10
            while held.now_open() != {"idle": 200, "slow_head": 50, "slow_body": 25} and time.monotonic() < ramp_end:
                time.sleep(0.2)
            first_sample = len(held.stats.samples)
            end = time.monotonic() + hold
            while time.monotonic() < end:
                elapsed = _timed_token(server, instance)
                assert elapsed < TOKEN_BOUND, f"token after {elapsed:.2f} s with {held.now_open()} held"
                latencies.append(elapsed)
                time.sleep(0.5)
            samples = held.stats.samples[first_sample:]
    finally:
        server.stop()
    # The pressure was really on the whole time (a test that cannot fail is a defect) ...
    assert len(latencies) >= hold / 2
    for kind, count in (("idle", 200), ("slow_head", 50), ("slow_body", 25)):
        assert min(sample[kind] for sample in samples) == count, kind
    # ... and the server closed silent connections at their read deadline: the harness had to re-open them.
    assert held.stats.opened["idle"] > 200


# --- the serving model's edges -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def plain(instance: Instance) -> Iterator[Server]:
    """Plain HTTP, 2 workers, a 3 s read deadline (so deadline tests are quick)."""
    srv = start_server(instance, workers=2, tls=False, env={"STS_SERVER_READ_TIMEOUT": "3"})
    yield srv
    srv.stop()


def _connect(server: Server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=15)


def _read_response(sock: socket.socket, buffered: bytes = b"") -> tuple[bytes, bytes, bytes]:
    """One HTTP/1.1 response framed by Content-Length: (status line, body, bytes read past it)."""
    head, body, rest = _read_message(sock, buffered)
    return head.split(b"\r\n", 1)[0], body, rest


def _read_message(sock: socket.socket, buffered: bytes = b"") -> tuple[bytes, bytes, bytes]:
    """One HTTP/1.1 response framed by Content-Length: (head, body, bytes read past it)."""
    data = buffered
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed after {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    found = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", head)
    length = int(found.group(1)) if found else 0
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed inside the body"
        rest += chunk
    return head, rest[:length], rest[length:]


def _soap_head(length: int, extra: str = "") -> bytes:
    return (
        "POST /services/wso2carbon-sts HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/xml; charset=utf-8\r\n"
        f"Content-Length: {length}\r\n{extra}\r\n"
    ).encode()


def _closed_by_server(sock: socket.socket) -> bool:
    """Reads until end of stream or a reset (True), or 15 s of silence (False)."""
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return True


def test_silent_connection_is_closed_at_the_read_deadline(plain: Server) -> None:
    with _connect(plain) as sock:
        assert _closed_by_server(sock)


def test_unfinished_head_is_closed_at_the_read_deadline(plain: Server) -> None:
    with _connect(plain) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        assert _closed_by_server(sock)


def test_expect_100_continue_is_answered_before_the_body(plain: Server, instance: Instance) -> None:
    body = _token_request(instance)
    with _connect(plain) as sock:
        sock.sendall(_soap_head(len(body), "Expect: 100-continue\r\n"))
        status, _, _ = _read_response(sock)
        assert status == b"HTTP/1.1 100 Continue"
        sock.sendall(body)
        while True:  # gunicorn may confirm the expectation once more (RFC 9110 §15.2 allows several 1xx)
            status, answer, _ = _read_response(sock)
            if status != b"HTTP/1.1 100 Continue":
                break
        assert status == b"HTTP/1.1 200 OK"
        _assert_token(answer)


def test_body_over_the_cap_is_refused_without_waiting_for_it(plain: Server) -> None:
    """A Content-Length over [limits] max_body_bytes gets 413 at once, not after the read deadline, and the
    connection is closed (the body is never read)."""
    with _connect(plain) as sock:
        sock.sendall(_soap_head(10_000_000) + b"<")
        status, _, _ = _read_response(sock)
        assert status == b"HTTP/1.1 413 Content Too Large"
        assert _closed_by_server(sock)


def test_chunked_body_over_the_cap_is_refused(plain: Server) -> None:
    chunk = b"a" * 70000
    head = (
        b"POST /services/wso2carbon-sts HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/xml\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    with _connect(plain) as sock:
        sock.sendall(head + b"%x\r\n" % len(chunk) + chunk + b"\r\n")  # no last chunk: it never ends
        status, _, _ = _read_response(sock)
        assert status == b"HTTP/1.1 413 Content Too Large"
        assert _closed_by_server(sock)


def test_chunked_body_within_the_cap_is_served(plain: Server, instance: Instance) -> None:
    body = _token_request(instance)
    head = (
        b"POST /services/wso2carbon-sts HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/xml; charset=utf-8\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:100], body[100:]))
    with _connect(plain) as sock:
        sock.sendall(head + chunks)
        time.sleep(0.2)  # the last chunk arrives separately: the request is complete only then
        sock.sendall(b"0\r\n\r\n")
        status, body, _ = _read_response(sock)
        assert status == b"HTTP/1.1 200 OK"
        _assert_token(body)


def test_head_over_32_kib_gets_431(plain: Server) -> None:
    """Each field is within gunicorn's 8190-byte limit; together they pass the worker's 32 KiB head cap."""
    fields = b"".join(b"X-Pad-%d: %s\r\n" % (index, b"a" * 8000) for index in range(5))
    with _connect(plain) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + fields)
        status, _, _ = _read_response(sock)
        assert status == b"HTTP/1.1 431 Request Header Fields Too Large"
        assert _closed_by_server(sock)


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"Content-Type: text/xml\r\nContent-Length: abc\r\n", b"HTTP/1.1 400 Bad Request"),
        (b"SOAPAction: " + b"x" * 9000 + b"\r\n", b"HTTP/1.1 431 Request Header Fields Too Large"),  # > 8190
        (b"Bad Header Name: x\r\n", b"HTTP/1.1 400 Bad Request"),
    ],
    ids=["content_length_not_a_number", "field_over_gunicorns_limit", "invalid_header_name"],
)
def test_requests_gunicorn_refuses_get_plain_text_without_its_parser_message(
    plain: Server, head: bytes, status: bytes
) -> None:
    """gunicorn's own refusals keep its status but not its HTML page, which quotes the parser's error."""
    with _connect(plain) as sock:
        sock.sendall(b"POST /services/wso2carbon-sts HTTP/1.1\r\nHost: 127.0.0.1\r\n" + head + b"\r\n")
        answer, body, _ = _read_message(sock)
    assert answer.split(b"\r\n", 1)[0] == status
    assert re.search(rb"(?im)^content-type: text/plain; charset=utf-8\s*$", answer)
    assert body == status.split(b" ", 2)[2] + b"\n"  # the reason phrase, nothing of the request


def test_keep_alive_and_pipelined_requests(plain: Server, instance: Instance) -> None:
    with requests.Session() as session:
        for _ in range(3):
            _timed_token(plain, instance, session)
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    with _connect(plain) as sock:
        sock.sendall(request * 3)
        rest = b""
        for _ in range(3):
            status, body, rest = _read_response(sock, rest)
            assert (status, body) == (b"HTTP/1.1 200 OK", b'{"status": "ok"}')


def test_clients_that_never_close_do_not_stall_the_server(plain: Server, instance: Instance) -> None:
    """After a ``Connection: close`` answer the server half-closes and waits for the client's FIN (RFC 9112
    §9.6); 30 clients that never send it must not hold up anyone else (gunicorn waits 2 s for each, blocking)."""
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    stubborn = [_connect(plain) for _ in range(30)]
    try:
        for sock in stubborn:
            sock.sendall(request)
        time.sleep(0.5)
        elapsed = _timed_token(plain, instance)
        assert elapsed < TOKEN_BOUND, f"token after {elapsed:.2f} s"
    finally:
        for sock in stubborn:
            sock.close()


def test_clients_that_stop_reading_do_not_stall_the_server(plain: Server, instance: Instance) -> None:
    """8 clients pipeline 2,000 WSDL requests each and never read an answer (a tiny receive window): serving
    them on would block a thread in a write; the next request waits for the previous answer to leave instead."""
    request = b"GET /services/wso2carbon-sts?wsdl HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    readers = []
    try:
        for _ in range(8):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
            sock.settimeout(2)
            sock.connect(("127.0.0.1", plain.port))
            readers.append(sock)
            try:
                sock.sendall(request * 2000)
            except TimeoutError:
                pass  # the server stopped reading: what it has is enough to fill the answers' way back
        time.sleep(1)
        for _ in range(5):
            elapsed = _timed_token(plain, instance)
            assert elapsed < TOKEN_BOUND, f"token after {elapsed:.2f} s"
            time.sleep(0.5)
    finally:
        for sock in readers:
            sock.close()


def test_tls_handshake_failures_leave_the_server_serving(server: Server, instance: Instance) -> None:
    with _connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")  # plain HTTP to the TLS port
        assert _closed_by_server(sock)
    with _connect(server) as stalled:
        stalled.sendall(b"\x16\x03\x01\x02\x00\x01")  # the start of a ClientHello, then silence
        elapsed = _timed_token(server, instance)
        assert elapsed < TOKEN_BOUND, f"token after {elapsed:.2f} s"


@pytest.fixture(scope="module")
def threaded(instance: Instance) -> Iterator[Server]:
    """Plain HTTP, 2 workers of 4 request threads each (``[server] threads = 4``; the default 1 serves in the
    event loop's own thread)."""
    srv = start_server(instance, workers=2, tls=False, env={"STS_SERVER_THREADS": "4"})
    yield srv
    srv.stop()


@pytest.fixture(params=["tls-loop-thread", "plain-4-threads"])
def either_model(request: pytest.FixtureRequest) -> Server:
    """The two ways a worker serves a complete request: in its event loop's thread, or on a request thread."""
    name = "server" if request.param == "tls-loop-thread" else "threaded"
    server: Server = request.getfixturevalue(name)
    return server


def test_concurrent_token_requests(either_model: Server, instance: Instance) -> None:
    """8 clients at once, 5 tokens each, over 2 workers: every one answered with its own token."""
    server = either_model
    tokens: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def client() -> None:
        try:
            with requests.Session() as session:
                for _ in range(5):
                    response = session.post(
                        server.url, data=_token_request(instance), verify=server.verify, timeout=30,
                        headers={"Content-Type": "text/xml; charset=utf-8"},
                    )
                    assert response.status_code == 200, response.content[:500]
                    with lock:
                        tokens.append(_assert_token(response.content))
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=client) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert len(tokens) == 40
    assert len(set(tokens)) == 40


@pytest.mark.parametrize("fixture", ["plain", "threaded"])
def test_pipelined_token_requests_are_answered_in_order(
    fixture: str, instance: Instance, request: pytest.FixtureRequest,
) -> None:
    """Six requests sent at once on one connection, tokens and health checks alternating: six answers, in the
    order asked, each token its own. Served in the loop's thread, each pipelined request waits for the loop's
    next turn (it is not served from inside the answer before it)."""
    server: Server = request.getfixturevalue(fixture)
    pipeline = b""
    for _ in range(3):
        body = _token_request(instance)  # each with its own nonce: a repeated one would be a replay
        pipeline += (
            b"POST /services/wso2carbon-sts HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/xml; charset=utf-8\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body + HEALTH
        )
    with _connect(server) as sock:
        sock.sendall(pipeline)
        rest = b""
        tokens = []
        for _ in range(3):
            status, answer, rest = _read_response(sock, rest)
            assert status == b"HTTP/1.1 200 OK", answer[:500]
            tokens.append(_assert_token(answer))
            status, answer, rest = _read_response(sock, rest)
            assert (status, answer) == (b"HTTP/1.1 200 OK", b'{"status": "ok"}')
    assert len(set(tokens)) == 3


# --- issue 19: kept-alive connections spread over the workers ----------------------------------------------------

BURST = 16  # a client opening a pool of kept-alive connections at once (wrk -c16, a load balancer's pool)
HEALTH = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def _worker_pids(server: Server) -> list[int]:
    """The gunicorn master's children (``sts serve`` execs the master, so it is the process started)."""
    pids: set[int] = set()
    for task in Path(f"/proc/{server.process.pid}/task").iterdir():
        pids.update(int(pid) for pid in (task / "children").read_text().split())
    return sorted(pids)


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            inodes.add(int(target[len("socket:[") : -1]))
    return inodes


def _server_side_inodes(server: Server, client_ports: set[int]) -> dict[int, int]:
    """Client port -> inode of the server's end of each connection from these ports (/proc/net/tcp, IPv4)."""
    found = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port, remote_port = (int(address.rsplit(":", 1)[1], 16) for address in fields[1:3])
        if local_port == server.port and remote_port in client_ports:
            found[remote_port] = int(fields[9])
    return found


def _connections_per_worker(server: Server, clients: list[socket.socket]) -> list[int]:
    """How many of the clients' connections each worker holds, in the order of :func:`_worker_pids`."""
    inodes = _server_side_inodes(server, {sock.getsockname()[1] for sock in clients})
    assert len(inodes) == len(clients), inodes
    return [len(_socket_inodes(pid) & set(inodes.values())) for pid in _worker_pids(server)]


def _burst_split(server: Server) -> list[int]:
    """Open BURST connections at once, each sending a request straight away like wrk does, read every answer
    (so each connection is accepted and kept alive), and count the connections each worker holds."""
    clients = []
    try:
        for _ in range(BURST):
            sock = _connect(server)
            clients.append(sock)
            sock.sendall(HEALTH)
        for sock in clients:
            status, body, _ = _read_response(sock)
            assert (status, body) == (b"HTTP/1.1 200 OK", b'{"status": "ok"}')
        return _connections_per_worker(server, clients)
    finally:
        for sock in clients:
            sock.close()


def test_a_burst_of_kept_alive_connections_spreads_over_both_workers(instance: Instance) -> None:
    """Issue 19: a client opening 16 kept-alive connections at once used to find all or nearly all of them on
    one worker most times (the worker polling the listener first took the burst), which then did all the work for
    as long as the connections lived. Accept pacing shares each burst: in 8 bursts, both workers hold a quarter
    of the connections at least, but for one burst at most (a worker the machine did not schedule for a while)."""
    server = start_server(instance, workers=2, tls=False)
    try:
        ready = time.monotonic() + 20
        while len(_worker_pids(server)) < 2 and time.monotonic() < ready:
            time.sleep(0.1)  # /healthz answers as soon as the first worker does
        assert len(_worker_pids(server)) == 2
        # The second worker, forked last, reaches its event loop: wait until a burst finds both accepting (a fixed
        # second was not always enough on a busy machine, and the bursts measured below then all went to one).
        while min(_burst_split(server)) == 0:
            assert time.monotonic() < ready, "the second worker never accepted a connection"
            time.sleep(0.3)
        splits = []
        for _ in range(8):
            splits.append(_burst_split(server))
            time.sleep(0.3)  # the closes reach the workers before the next burst
    finally:
        server.stop()
    assert all(sum(split) == BURST for split in splits), splits
    lopsided = [split for split in splits if min(split) < BURST // 4]
    assert len(lopsided) <= 1, splits


def test_a_kept_alive_connection_closes_after_100_answers(plain: Server) -> None:
    """Issue 19: like Apache's MaxKeepAliveRequests, a connection serves 100 requests kept alive, and the 101st
    answer says ``Connection: close`` and ends it: long-lived connections reconnect to whichever worker is free."""
    with _connect(plain) as sock:
        for number in range(1, 102):
            sock.sendall(HEALTH)
            head, body, rest = _read_message(sock)
            assert (head.split(b"\r\n", 1)[0], body, rest) == (b"HTTP/1.1 200 OK", b'{"status": "ok"}', b"")
            connection = re.search(rb"(?im)^connection:\s*(\S+)\s*$", head)
            assert connection is not None, head
            expected = b"close" if number == 101 else b"keep-alive"
            assert (number, connection.group(1).lower()) == (number, expected)
        assert _closed_by_server(sock)
