"""Idle, slow-header and slow-body connections held open against a server on 127.0.0.1 (issue 12, item 1).

A background thread keeps ``idle`` TCP connections that send nothing (not even a TLS ClientHello), ``slow_head``
connections that send a request line and then one header byte per tick, never finishing the header section,
and ``slow_body`` connections that send a whole head announcing a body, then one body byte per tick. Whatever
the server closes is opened again, so the pressure stays on for as long as the ``with`` block lasts. Every
socket operation has a timeout, and the thread stops when the block ends: the load is bounded.
"""

from __future__ import annotations

import selectors
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType

_TICK = 0.5
_CONNECT_TIMEOUT = 2.0
_HANDSHAKE_BUDGET = 1.0  # seconds of TLS handshakes per tick, so a server that never answers cannot stall us
_HEAD = b"POST /services/wso2carbon-sts HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/xml; charset=utf-8\r\n"
SLOW_HEAD = _HEAD + b"X-Slow: "
SLOW_BODY = _HEAD + b"Content-Length: 60000\r\n\r\n<"


@dataclass
class HeldStats:
    """What the attack achieved: connections opened in all, and how many were open at each tick."""

    opened: dict[str, int] = field(default_factory=lambda: {"idle": 0, "slow_head": 0, "slow_body": 0})
    samples: list[dict[str, int]] = field(default_factory=list)

    def least_open(self, kind: str) -> int:
        """The fewest connections of one kind open at any tick after the first two (the ramp-up)."""
        return min((sample[kind] for sample in self.samples[2:]), default=0)


class HeldConnections:
    """Context manager holding idle, slow-header and slow-body connections to 127.0.0.1:``port``."""

    def __init__(
        self, port: int, *, idle: int, slow_head: int, slow_body: int = 0, tls: ssl.SSLContext | None = None
    ) -> None:
        self._port = port
        self._tls = tls
        self._targets = {"idle": idle, "slow_head": slow_head, "slow_body": slow_body}
        self._open: dict[str, list[socket.socket]] = {kind: [] for kind in self._targets}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="held-connections", daemon=True)
        self.stats = HeldStats()

    def __enter__(self) -> HeldConnections:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        for socks in self._open.values():
            for sock in socks:
                sock.close()

    def now_open(self) -> dict[str, int]:
        """The connections open at the last tick."""
        return dict(self.stats.samples[-1]) if self.stats.samples else dict.fromkeys(self._targets, 0)

    def _run(self) -> None:
        while not self._stop.is_set():
            for kind in self._open:
                self._open[kind] = _prune(self._open[kind])
            self._top_up_idle()
            budget_end = time.monotonic() + _HANDSHAKE_BUDGET
            self._top_up_slow("slow_head", SLOW_HEAD, budget_end)
            self._top_up_slow("slow_body", SLOW_BODY, budget_end)
            for kind, payload in (("slow_head", b"a"), ("slow_body", b"a")):
                self._open[kind] = _trickle(self._open[kind], payload)
            self.stats.samples.append({kind: len(socks) for kind, socks in self._open.items()})
            self._stop.wait(_TICK)

    def _connect(self) -> socket.socket | None:
        try:
            return socket.create_connection(("127.0.0.1", self._port), timeout=_CONNECT_TIMEOUT)
        except OSError:
            return None

    def _top_up_idle(self) -> None:
        socks = self._open["idle"]
        while len(socks) < self._targets["idle"] and not self._stop.is_set():
            sock = self._connect()
            if sock is None:
                return
            socks.append(sock)
            self.stats.opened["idle"] += 1

    def _top_up_slow(self, kind: str, first_bytes: bytes, budget_end: float) -> None:
        socks = self._open[kind]
        while len(socks) < self._targets[kind] and time.monotonic() < budget_end and not self._stop.is_set():
            sock = self._connect()
            if sock is None:
                return
            try:
                if self._tls is not None:
                    sock.settimeout(max(budget_end - time.monotonic(), 0.05))
                    sock = self._tls.wrap_socket(sock, server_hostname="localhost")
                sock.settimeout(_CONNECT_TIMEOUT)
                sock.sendall(first_bytes)
            except OSError:
                sock.close()
                continue
            socks.append(sock)
            self.stats.opened[kind] += 1


def _trickle(socks: list[socket.socket], payload: bytes) -> list[socket.socket]:
    """One more byte on every connection; those the server closed are dropped."""
    alive = []
    for sock in socks:
        try:
            sock.sendall(payload)
            alive.append(sock)
        except OSError:
            sock.close()
    return alive


def _prune(socks: list[socket.socket]) -> list[socket.socket]:
    """Drop the connections the server closed (or wrote an error to before closing)."""
    if not socks:
        return socks
    with selectors.DefaultSelector() as selector:
        for sock in socks:
            selector.register(sock, selectors.EVENT_READ)
        readable = [key.fileobj for key, _ in selector.select(timeout=0)]
    closed = {id(sock) for sock in readable if isinstance(sock, socket.socket) and _closed(sock)}
    for sock in socks:
        if id(sock) in closed:
            sock.close()
    return [sock for sock in socks if id(sock) not in closed]


def _closed(sock: socket.socket) -> bool:
    """Whether a readable socket was closed by the server (TLS 1.3 session tickets make it readable too)."""
    try:
        sock.settimeout(0)
        sock.recv(4096)
    except (ssl.SSLWantReadError, BlockingIOError):
        return False
    except OSError:
        return True
    finally:
        try:
            sock.settimeout(_CONNECT_TIMEOUT)
        except OSError:
            pass
    return True  # end of stream, or an error response the server wrote before closing
