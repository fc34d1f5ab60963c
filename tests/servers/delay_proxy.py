"""A TCP proxy on 127.0.0.1 that delays every chunk it forwards: a slow network or an overloaded server that still
answers each operation within its timeout (``tc netem`` needs privileges the tests do not have)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from tests.servers._process import LOOPBACK


class DelayProxy:
    """Forwards connections to ``LOOPBACK:target_port``, each chunk in either direction after ``delay`` seconds."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.delay = 0.0
        self._listener = socket.create_server((LOOPBACK, 0))
        self.port: int = self._listener.getsockname()[1]
        self._closed = False
        threading.Thread(target=self._accept, name="delay-proxy", daemon=True).start()

    def close(self) -> None:
        """Stop accepting; forwarded connections end with their peers."""
        self._closed = True
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                continue
            try:
                server = socket.create_connection((LOOPBACK, self.target_port))
            except OSError:
                client.close()
                continue
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                time.sleep(self.delay)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            source.close()  # each socket is the source of one pump: closed once, by it


@contextmanager
def delay_proxy(target_port: int) -> Iterator[DelayProxy]:
    """A :class:`DelayProxy` closed when the block ends."""
    proxy = DelayProxy(target_port)
    try:
        yield proxy
    finally:
        proxy.close()
