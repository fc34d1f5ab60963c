"""The gunicorn worker ``sts serve`` runs: gunicorn's threaded worker, with clients read in its event loop.

gunicorn's ``gthread`` worker hands every new connection to a thread, which waits up to 5 s for a first byte,
then performs the TLS handshake and reads the request head with no time limit; its ``sync`` worker is worse
(two silent connections stop a two-worker server). Here the event loop does all of the waiting: it accepts,
completes the TLS handshake and reads the whole request, head and body (framing: :mod:`sts.http_framing`),
without blocking, and only then serves it: gunicorn's parser reads the request from memory (it never reads the
socket) and the application runs, on one of the worker's threads, or with ``[server] threads = 1`` (the
default) in the event loop's own thread: one thread serves one request at a time either way, and a hand-off
to a second thread cost two thread switches per request and a loop that took the interpreter lock from the
request whenever the next one arrived. Whatever a client does or fails to do costs a buffer and a
file descriptor, never a thread, and for at most ``read_timeout`` seconds from its connection (or, kept alive,
from its next byte).
A thread never waits for a client to read either: the next request on a connection is served only once the
previous answer has left the server (a client that stops reading while pipelining requests would otherwise
hold a thread in a blocked write), and the send buffer holds a whole answer (256 KiB). Graceful closes
(RFC 9112 §9.6: half-close, then drain) wait in the event loop too, not in a thread. At ``worker_connections``
a new connection closes the one that has waited longest for its request, so a flood of idle connections cannot
keep new clients in the listen backlog.

Kept-alive connections never move between workers, so they must land spread out: all workers poll the one
listening socket, and the worker that runs first would take a whole burst of connections (a client's or a load
balancer's pool) while the others are not even scheduled yet. With several workers, a worker holding
connections gives the others a head start on each waiting connection, longer the more connections it holds: a
burst is shared, and a new connection goes to the worker holding fewest. A connection is closed after
``_KEEPALIVE_REQUESTS`` answers, so connections that did land badly re-home in time.
"""

from __future__ import annotations

import errno
import queue
import selectors
import signal
import socket
import ssl
import sys
import time
from concurrent.futures import Future
from functools import partial
from typing import Any

from gunicorn import http
from gunicorn import sock as gunicorn_sock
from gunicorn.workers.gthread import ThreadWorker

from sts.gunicorn_conn import (
    BUFFER_FULL,
    FRAMING_REFUSALS,
    BufferedConn,
    PlainErrorAnswer,
    refusal,
    refusal_reason,
    settle_head,
    unsent_bytes,
)
from sts.http_framing import Framing, RequestFraming

_RECV_BYTES = 65536
_LINGER_SECONDS = 2.0
# A client sending a body over the cap is still sending when its 413 goes out: it must be able to finish (and
# then read the answer) before the close, or its kernel receives a reset instead (gunicorn drains 64 KiB).
_LINGER_MAX_BYTES = 4 * 1024 * 1024
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_WOULD_BLOCK = (BlockingIOError, InterruptedError, ssl.SSLWantReadError)
_STOP_IDLE_LINGER = 1.0  # seconds a stopping worker keeps idle kept-alive connections open
_SEND_BUFFER = 262144  # answers are a few KiB: one always fits, so writing it never waits for the client
# Accept pacing (several workers only): the head start a worker gives the others on a waiting connection, seconds
# per connection it holds, and at most. Another worker woken by the same burst needs a few ms on a busy machine to
# run; the worker holding fewest connections waits least, so it takes the connection, and a new connection waits
# in the kernel's backlog for the least loaded worker's head start only (none for an empty one; 2 ms at most).
# The cap bounds what pacing costs clients that open a connection per request: a worker then still accepts 500
# connections a second, more than the tokens it can sign.
_ACCEPT_PAUSE_PER_CONNECTION = 0.0005
_ACCEPT_PAUSE_MAX = 0.002
# accept(2) out of file descriptors or memory: seconds a worker stops accepting (and logs one warning), instead of
# gunicorn's loop dying of the error with every connection the worker holds. Closing connections free descriptors.
_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_RESOURCE_PAUSE = 0.5
_FULL_PAUSE = 0.05  # seconds a worker at worker_connections, all of them holding complete requests, stops accepting
# Answers a connection is kept alive for; the next one carries "Connection: close" (like Apache's
# MaxKeepAliveRequests and nginx's keepalive_requests, default 100 in both until nginx 1.19.10). The client
# reconnects to whichever worker accepts first, which is the least busy one: a connection pool that landed badly
# is spread out again within seconds under load (a token takes ms), while the reconnection (a TLS handshake costs
# less than one token) adds about 1 % at most. nginx's newer 1000 would take minutes to re-home a pool.
_KEEPALIVE_REQUESTS = 100
# The signals gunicorn's master sends its workers to stop them: graceful (TERM) and immediate (INT, QUIT).
_STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGQUIT})


class BufferingThreadWorker(ThreadWorker):  # type: ignore[misc]
    """gunicorn's threaded worker with handshakes, request reads and graceful closes in the event loop."""

    #: Seconds a client has for the TLS handshake and its whole request; also bounds each write to it.
    read_timeout = 10.0
    #: Largest request head buffered (request line and header fields), bytes; past it: 431.
    max_head_bytes = 32768
    #: Largest request body the application accepts, bytes; a bigger one is not buffered.
    max_body_bytes = 65536

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # gunicorn's loop stops accepting at worker_connections: new clients then wait in the backlog behind a
        # flood of idle connections until read deadlines free their places. accept() makes room instead.
        self.max_connections = int(self.cfg.worker_connections)
        self.worker_connections = sys.maxsize
        self._tls: ssl.SSLContext | None = None
        # Insertion-ordered, and every entry of one dict gets the same timeout: ordered by deadline.
        self._reading: dict[BufferedConn, None] = {}
        self._lingering: dict[BufferedConn, None] = {}
        # Complete requests (also in _reading) waiting for the previous answer on their connection to leave.
        self._unsent: dict[BufferedConn, None] = {}
        self._stopping_since: float | None = None
        self._accept_paused_until = 0.0  # monotonic; 0: no pause
        self._accept_due = False  # the head start is over: accept what the next poll finds waiting
        self._serving = False  # a request is being served in the event loop's thread ([server] threads = 1)
        #: The master's signal queue, set by the ``pre_fork`` hook; the child's copy of it after the fork.
        self.master_signals: queue.SimpleQueue[int] | None = None

    def init_process(self) -> None:
        """Build the TLS context once per worker (gunicorn's own path loads the key pair per connection)."""
        if self.cfg.is_ssl:
            self._tls = gunicorn_sock.ssl_context(self.cfg)
        super().init_process()

    def init_signals(self) -> None:
        """Install the worker's signal handlers, then act on a stop signal that arrived while the worker booted.

        From the fork until here the child still runs the master's handlers, which only put a signal in the
        child's copy of the master's queue: a SIGTERM sent then (``systemctl stop`` just after a start, a stop
        while a worker is being replaced) was lost, and the master waited ``graceful_timeout`` for that worker
        before killing it. A stop signal the master itself had queued before the fork is acted on too; the
        master is stopping then and would send it next.
        """
        super().init_signals()
        for sig in _stop_signals_in(self.master_signals):
            if sig == signal.SIGTERM:
                self.handle_exit(sig, None)
            else:
                self.handle_quit(sig, None)

    # -- event loop ------------------------------------------------------------------------------------------

    def accept(self, listener: socket.socket) -> None:
        """Accept one connection and start reading it, after the other workers' head start."""
        if self._give_head_start():
            return
        if self.nr_conns >= self.max_connections and not self._make_room():
            self._stop_accepting_for(_FULL_PAUSE)
            return
        try:
            client, address = listener.accept()
        except OSError as exc:
            if exc.errno in _OUT_OF_RESOURCES:
                self._pause_accepting(exc)
            elif exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        try:
            client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SEND_BUFFER)
        except OSError:
            pass  # the kernel's default then, usually large enough too
        conn = BufferedConn(self.cfg, client, address, listener.getsockname(), self)
        if self._tls is not None:
            try:
                conn.sock = self._tls.wrap_socket(
                    client, server_side=True, do_handshake_on_connect=False,
                    suppress_ragged_eofs=self.cfg.suppress_ragged_eofs,
                )
            except (OSError, ValueError):
                self._drop(conn)
                return
            conn.handshaking = True
        self.enqueue_req(conn)

    def _pause_accepting(self, exc: OSError) -> None:
        """Stop polling the listener for ``_RESOURCE_PAUSE``: the connection waits in the backlog meanwhile."""
        self._refused("accept_failed")
        self.log.warning(
            "Cannot accept connections (%s) while holding %d: pausing for %.1f s (raise the open files limit, or "
            "lower [server] worker_connections)", errno.errorcode.get(exc.errno or 0, "?"), self.nr_conns,
            _RESOURCE_PAUSE,
        )
        self._stop_accepting_for(_RESOURCE_PAUSE)

    def _stop_accepting_for(self, seconds: float) -> None:
        self._accept_paused_until = time.monotonic() + seconds
        self._accept_due = False
        super().set_accept_enabled(False)

    def _make_room(self) -> bool:
        """At worker_connections: close the connection that has waited longest for its request, idle kept alive
        or still being read (nginx likewise reuses idle kept-alive connections), so that a flood of idle or slow
        connections cannot keep new clients out. False if every connection holds a complete request."""
        if self.keepalived_conns:
            conn = self.keepalived_conns.popleft()
            self._unregister(conn)
        else:
            oldest = next((conn for conn in self._reading if conn not in self._unsent), None)
            if oldest is None:
                return False
            conn = oldest
            self._stop_reading(conn)
        self._refused("evicted")
        self._drop(conn)
        return True

    def _give_head_start(self) -> bool:
        """Stop polling the listener for a moment, so that a worker holding fewer connections takes the one
        waiting (see the module's doc); True if the accept is left for later."""
        if self._accept_due or self.cfg.workers <= 1 or not self.nr_conns:
            self._accept_due = False
            return False
        pause = min(_ACCEPT_PAUSE_PER_CONNECTION * self.nr_conns, _ACCEPT_PAUSE_MAX)
        self._accept_paused_until = time.monotonic() + pause
        self._accept_due = True
        super().set_accept_enabled(False)
        return True

    def set_accept_enabled(self, enabled: bool) -> None:
        """gunicorn's loop enables accepting whenever the worker holds fewer than ``worker_connections``: not
        before a pause ends. Disabling (the limit reached, or stopping) ends the pause."""
        if enabled and self._accept_paused_until:
            if time.monotonic() < self._accept_paused_until:
                return
            self._accept_paused_until = 0.0
        elif not enabled:
            self._accept_paused_until = 0.0
            self._accept_due = False
        super().set_accept_enabled(enabled)

    def wait_for_and_dispatch_events(self, timeout: float) -> None:
        """Wake up when a pause ends (gunicorn waits up to 1 s), so the loop polls the listener again then."""
        if self._accept_paused_until:
            remaining = self._accept_paused_until - time.monotonic()
            if remaining > 0:
                timeout = min(timeout, remaining)
            else:  # over while the loop did not enable accepting (at worker_connections): nothing to wake for
                self._accept_paused_until = 0.0
        due = self._accept_due and self._accepting
        super().wait_for_and_dispatch_events(timeout)
        if due:  # the first poll after a head start found no connection waiting: another worker took it
            self._accept_due = False

    def enqueue_req(self, conn: BufferedConn) -> None:
        """Every path to serving passes here: a connection is served (in this thread or on a request thread) only
        with its whole request read."""
        if conn.ready:
            conn.ready = False
            if self.cfg.threads > 1:
                super().enqueue_req(conn)
            elif self._serving:
                # The answer just served left a pipelined request behind it: served after the loop has polled
                # once more, so that one client's pipeline takes its turn with the other connections.
                self.method_queue.defer(self._serve_here, conn)
            else:
                self._serve_here(conn)
            return
        conn.deadline = time.monotonic() + self.read_timeout
        conn.sent_continue = conn.close_after = False
        # A connection's first request may follow a PROXY protocol preface (gunicorn's proxy_protocol reads it).
        proxy = str(self.cfg.proxy_protocol) if conn.served == 0 else "off"
        conn.framing = RequestFraming(self.max_head_bytes, self.max_body_bytes, proxy)
        if conn.parser is not None:  # a kept-alive connection: bytes the parser already read ahead come first
            conn.buffer += conn.parser.unreader.take_buffered()
        try:
            conn.sock.setblocking(False)
            self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_readable, conn))
        except (OSError, ValueError):
            self._drop(conn)
            return
        self._reading[conn] = None
        if conn.buffer:
            self._advance(conn)

    def _serve_here(self, conn: BufferedConn) -> None:
        """Serve a complete request in the event loop's thread, then do what gunicorn does when a thread is done
        (keep the connection alive, or close it). The loop waits meanwhile, as a second thread would have: the
        request is in memory, and its answer fits the send buffer (``handle`` bounds the write all the same)."""
        self._serving = True
        try:
            done: Future[Any] = Future()
            done.set_result(self.handle(conn))
            self.finish_request(conn, done)
        finally:
            self._serving = False

    def _on_readable(self, conn: BufferedConn, _fileobj: object) -> None:
        self._advance(conn)

    def _advance(self, conn: BufferedConn) -> None:
        """Make what progress the socket allows: handshake, read, then judge the request's framing."""
        try:
            if conn.handshaking:
                conn.sock.do_handshake()
                conn.handshaking = False
            ended = self._read_available(conn)
        except ssl.SSLWantWriteError:
            self._wait(conn, selectors.EVENT_WRITE)
            return
        except _WOULD_BLOCK:
            self._wait(conn, selectors.EVENT_READ)
            return
        except (OSError, ValueError) as exc:  # a failed handshake (ssl.SSLError) or a reset connection
            if isinstance(exc, ssl.SSLError):
                self._refused("tls_handshake")
            self._stop_reading(conn)
            self._drop(conn)
            return
        progress = conn.framing.progress(conn.buffer)
        if progress.framing in FRAMING_REFUSALS:
            self._refuse(conn, FRAMING_REFUSALS[progress.framing])
        elif progress.framing is Framing.INCOMPLETE and len(conn.buffer) > self._read_cap:
            # Nothing more is read, and the socket stays readable: waiting would spin the loop until the deadline.
            self._refuse(conn, BUFFER_FULL)
        elif progress.framing is not Framing.INCOMPLETE:
            conn.close_after = progress.framing is Framing.SERVE_AND_CLOSE
            if conn.parser is not None and unsent_bytes(conn.sock):
                self._unregister(conn)  # checked again by murder_pending, until the read deadline
                self._unsent[conn] = None
            else:
                self._dispatch(conn)
        elif ended:
            self._stop_reading(conn)
            self._drop(conn)
        else:
            if progress.expects_continue and not conn.sent_continue:
                # RFC 9110 §10.1.1; only here: gunicorn is told not to answer it again (settle_head).
                self._send_quietly(conn, _CONTINUE)
                conn.sent_continue = True
            self._wait(conn, selectors.EVENT_READ)

    @property
    def _read_cap(self) -> int:
        """Bytes buffered for one request at most (its head, its body, and some chunk framing)."""
        return self.max_head_bytes + self.max_body_bytes + 4096

    def _refuse(self, conn: BufferedConn, status: int) -> None:
        """Answer a request the loop will not buffer whole, and close the connection gracefully."""
        self._stop_reading(conn)
        self._refused(refusal_reason(status))
        self._send_quietly(conn, refusal(status))
        self.nr_conns -= 1
        self.linger(conn)

    def _read_available(self, conn: BufferedConn) -> bool:
        """Read until the socket would block or the buffer passes the caps; True at end of stream."""
        while len(conn.buffer) <= self._read_cap:
            try:
                data = conn.sock.recv(_RECV_BYTES)
            except _WOULD_BLOCK:
                return False
            if not data:
                return True
            conn.buffer += data
        return False

    def _wait(self, conn: BufferedConn, events: int) -> None:
        try:
            self.poller.modify(conn.sock, events, partial(self._on_readable, conn))
        except (OSError, ValueError, KeyError):
            self._stop_reading(conn)
            self._drop(conn)

    @staticmethod
    def _send_quietly(conn: BufferedConn, data: bytes) -> None:
        """A short best-effort write (fits any socket buffer); a client that cannot take it loses nothing."""
        try:
            conn.sock.send(data)
        except (OSError, ValueError):
            pass

    def _dispatch(self, conn: BufferedConn) -> None:
        """Hand the buffered request to gunicorn's parser and a thread.

        The parser reads from memory only (an exhausted iterator behind the buffer): should it want more than
        the framing judged complete, it meets the end of the stream and answers 400, never a blocking read.
        """
        self._stop_reading(conn)
        if conn.parser is None:
            conn.parser = http.get_parser(self.cfg, iter(()), conn.client)
            conn.initialized = True
        conn.parser.unreader.unread(bytes(conn.buffer))
        conn.buffer = bytearray()
        conn.data_ready = conn.ready = True
        self.enqueue_req(conn)

    def _stop_reading(self, conn: BufferedConn) -> None:
        self._reading.pop(conn, None)
        self._unsent.pop(conn, None)
        self._unregister(conn)

    def _unregister(self, conn: BufferedConn) -> None:
        try:
            self.poller.unregister(conn.sock)
        except (KeyError, ValueError, OSError):
            pass

    def _drop(self, conn: BufferedConn) -> None:
        self.nr_conns -= 1
        conn.sock.close()

    # -- graceful close ------------------------------------------------------------------------------------------

    def linger(self, conn: BufferedConn) -> None:
        """RFC 9112 §9.6: send FIN, then read until the client closes, so unread bytes cause no RST."""
        try:
            conn.sock.setblocking(False)
            conn.sock.shutdown(socket.SHUT_WR)
            self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_linger, conn))
        except (OSError, ValueError, KeyError):
            conn.sock.close()
            return
        conn.deadline = time.monotonic() + _LINGER_SECONDS
        conn.drained = 0
        self._lingering[conn] = None

    def _on_linger(self, conn: BufferedConn, _fileobj: object) -> None:
        try:
            while conn.drained < _LINGER_MAX_BYTES:
                data = conn.sock.recv(_RECV_BYTES)
                if not data:
                    break
                conn.drained += len(data)
        except _WOULD_BLOCK:
            return
        except (OSError, ValueError):
            pass
        self._end_linger(conn)

    def _end_linger(self, conn: BufferedConn) -> None:
        self._lingering.pop(conn, None)
        self._unregister(conn)
        conn.sock.close()

    # -- deadlines (gunicorn's loop runs this about once a second) ---------------------------------------------

    def murder_pending(self) -> None:
        """Serve requests whose connection has sent its previous answer; close connections past their read or
        linger deadline (a stopping worker drops silent ones after a moment)."""
        super().murder_pending()
        for conn in [conn for conn in self._unsent if not unsent_bytes(conn.sock)]:
            self._dispatch(conn)
        now = time.monotonic()
        if not self.alive and self._stopping_since is None:
            self._stopping_since = now
        # A stopping worker (reload, SIGTERM) keeps connections that have sent nothing yet (new, or kept alive) a
        # moment: a request a client sends on one meanwhile is still served (with Connection: close) instead of
        # meeting a reset; a silent one then holds the stop for at most that moment.
        idle_linger_over = self._stopping_since is not None and now - self._stopping_since >= _STOP_IDLE_LINGER
        for conn in list(self._reading):
            if conn.deadline > now and self.alive:
                break
            if conn.deadline <= now or (not conn.buffer and idle_linger_over):
                if conn.buffer or conn.handshaking:  # a request begun, not an idle connection closed
                    self._refused("read_timeout")
                self._stop_reading(conn)
                self._drop(conn)
        for conn in list(self._lingering):
            if conn.deadline > now:
                break
            self._end_linger(conn)

    def _refused(self, reason: str) -> None:
        """Count a connection closed without serving a request (``sts_connections_refused_total``), when the
        application counts them (:meth:`sts.soap.transport.Transport.connection_refused`; metrics on)."""
        count = getattr(self.wsgi, "connection_refused", None)
        if count is not None:
            count(reason)

    # -- serving (a request thread, or the loop's own) ------------------------------------------------------------

    def handle_error(self, req: Any, client: socket.socket, addr: Any, exc: BaseException) -> None:
        """gunicorn's status, logging and access log for a request it could not serve, without its HTML page."""
        super().handle_error(req, PlainErrorAnswer(client, self._refused), addr, exc)

    def handle(self, conn: BufferedConn) -> Any:
        """Serve the buffered request (gunicorn's ``handle`` for HTTP/1.1; writes bounded in time)."""
        req = None
        try:
            conn.sock.settimeout(self.read_timeout)  # the request is in memory: this bounds writes
            req = next(conn.parser)
            if not req:
                return False
            settle_head(req)
            conn.served += 1
            if conn.served > _KEEPALIVE_REQUESTS or conn.close_after:
                # The answer says "Connection: close" (gunicorn's Response.should_close): the connection does close
                # after it (RFC 9112 §9.6), and gunicorn drops an application's own Connection header.
                req.must_close = True
            keepalive = self.handle_request(req, conn)
            return not conn.close_after and self._drained(conn, keepalive)
        except http.errors.NoMoreData as exc:
            self.log.debug("Ignored premature client disconnection. %s", exc)
        except StopIteration as exc:
            self.log.debug("Closing connection. %s", exc)
        except ssl.SSLError as exc:
            if exc.args[0] == ssl.SSL_ERROR_EOF:
                self.log.debug("ssl connection closed")
            else:
                self.handle_error(req, conn.sock, conn.client, exc)
        except OSError as exc:
            if exc.errno in (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN) or isinstance(exc, TimeoutError):
                self.log.debug("Client connection error: %s", exc)
            else:
                self.log.exception("Socket error processing request.")
        except Exception as exc:
            self.handle_error(req, conn.sock, conn.client, exc)
        return False

    def _drained(self, conn: BufferedConn, keepalive: bool) -> bool:
        """gunicorn's drain of the body the application left unread, once the answer has gone out: a body that
        fails to parse then (a trailer field gunicorn refuses) closes the connection without a word. Raised to
        ``handle``, it was answered as if the request were still unanswered: a second answer (400) to one request,
        after one that had announced keep-alive, an answer nobody asked for on a reused connection."""
        try:
            return bool(self._keepalive_after(conn, keepalive))
        except Exception as exc:  # any parse error of the unread body: close, never answer again
            self.log.debug("Closing connection: its unread body is malformed. %s", type(exc).__name__)
            return False


def _stop_signals_in(signals: queue.SimpleQueue[int] | None) -> list[int]:
    """The stop signals waiting in (this process's copy of) the master's queue, which is emptied."""
    found: list[int] = []
    while signals is not None:
        try:
            sig = signals.get_nowait()
        except queue.Empty:
            break
        if sig in _STOP_SIGNALS:
            found.append(sig)
    return found


def worker_class(read_timeout: float, max_body_bytes: int) -> type[BufferingThreadWorker]:
    """The worker class carrying the instance's limits (gunicorn's ``worker_class`` accepts a class)."""
    attributes = {
        "read_timeout": float(read_timeout),
        "max_body_bytes": max_body_bytes,
        "__module__": __name__,
        "__doc__": BufferingThreadWorker.__doc__,
    }
    return type("BufferingThreadWorker", (BufferingThreadWorker,), attributes)
