"""Prometheus metrics (the only module importing ``prometheus_client``): finished request traces in, text out.

Under gunicorn every worker writes its samples to memory-mapped files in ``$PROMETHEUS_MULTIPROC_DIR``, a
directory of the instance's own that the gunicorn settings create and empty at start (:mod:`sts.gunicorn_conf`);
a scrape, in any worker or in the master's own listener, adds up the files of every process (prometheus_client's
multiprocess mode). Without that variable (tools, tests) the samples stay in this process.

Labels are bounded: operations, outcomes, fault names, reason codes and stage names are fixed sets of the code;
the relying-party label is the registered address of an RP a token was issued for (never a requested AppliesTo)
and at most :data:`MAX_RELYING_PARTIES` per process; user names, client addresses and secrets are never labels.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest, make_wsgi_app
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import start_http_server
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from sts.certificates import CertificateExpiry
from sts.telemetry import RequestTrace

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
STAGES = frozenset({"parse", "authentication", "build", "sign", "encrypt", "store"})
# Why the HTTP front end (sts.gunicorn_worker) closed a connection before a request reached the application.
CONNECTION_REFUSALS = frozenset({
    "bad_request", "content_too_large", "header_too_large", "uri_too_long", "not_implemented", "internal_error",
    "read_timeout", "tls_handshake", "evicted", "accept_failed",
})
MAX_RELYING_PARTIES = 500
FLUSH_SECONDS = 1.0
_SAFE_LABEL = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_CERTIFICATE_RECHECK = 60.0
_FAST_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0)
_Key = tuple[str, tuple[str, ...]]  # a metric family's name in Metrics._families and a child's label values


class Metrics:
    """The STS's metrics: an :class:`~sts.telemetry.Observer` of finished requests, and their exposition."""

    def __init__(
        self,
        certificates: Callable[[], Sequence[CertificateExpiry]] = tuple,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self._registry = CollectorRegistry(auto_describe=True)
        self._certificates = certificates
        self._now = now
        self._relying_parties: set[str] = set()
        self._children: dict[_Key, Any] = {}
        reg = self._registry
        self._requests = Counter("sts_requests", "WS-Trust requests by operation and outcome",
                                 ("operation", "outcome"), registry=reg)
        self._issued = Counter("sts_tokens_issued", "Tokens issued (Issue and Renew) by token type and relying party",
                               ("operation", "token_type", "relying_party"), registry=reg)
        self._failures = Counter("sts_request_failures", "Requests answered with a fault, by fault and reason code",
                                 ("operation", "fault", "reason"), registry=reg)
        self._latency = Histogram("sts_request_duration_seconds", "Time to answer a WS-Trust request",
                                  ("operation",), registry=reg, buckets=_REQUEST_BUCKETS)
        self._stages = Histogram("sts_stage_duration_seconds", "Time spent in each pipeline stage",
                                 ("stage",), registry=reg, buckets=_FAST_BUCKETS)
        self._stores = Histogram("sts_store_duration_seconds", "Round trips to the stores, directories and cache",
                                 ("store",), registry=reg, buckets=_FAST_BUCKETS)
        self._store_errors = Counter("sts_store_errors", "Store, directory and cache calls that failed",
                                     ("store",), registry=reg)
        self._events = Counter("sts_security_events", "Accounts locked and requests refused by client throttling",
                               ("event",), registry=reg)
        self._connections = Counter("sts_connections_refused",
                                    "Connections the HTTP front end refused or closed before a request reached the "
                                    "application, by reason", ("reason",), registry=reg)
        self._families: dict[str, Any] = {
            "requests": self._requests, "issued": self._issued, "failures": self._failures,
            "latency": self._latency, "stages": self._stages, "stores": self._stores,
            "store_errors": self._store_errors, "events": self._events, "connections": self._connections,
        }
        bounds = {name: tuple(metric._upper_bounds) for name, metric in self._families.items()
                  if isinstance(metric, Histogram)}
        self._batch = _Batch(bounds, self._write)
        self._exposition: CollectorRegistry | None = None
        # Built by the first scrape; two scrapes at once on request threads must not both build it (registering
        # the certificate collector twice in one registry raises DuplicateTimeseries).
        self._exposition_lock = threading.Lock()

    def finished(self, trace: RequestTrace) -> None:
        """Account for one finished request: a few dictionary updates; the samples reach the shared files within
        :data:`FLUSH_SECONDS` (:class:`_Batch`)."""
        operation = trace.operation or "unknown"
        counted: list[_Key] = [("requests", (operation, trace.outcome))]
        observed: list[tuple[_Key, float]] = [(("latency", (operation,)), trace.seconds)]
        if trace.outcome == "failure":
            counted.append(("failures", (operation, _safe(trace.fault), _safe(trace.reason))))
        elif trace.token_type:
            counted.append(("issued", (operation, trace.token_type, self._relying_party(trace.relying_party))))
        observed += [(("stages", (step.name,)), step.seconds) for step in trace.steps if step.name in STAGES]
        for store, seconds, failed in trace.stores:
            observed.append((("stores", (store,)), seconds))
            if failed:
                counted.append(("store_errors", (store,)))
        counted += [("events", (_safe(event),)) for event in trace.events]
        self._batch.add(counted, observed)

    def connection_refused(self, reason: str) -> None:
        """Account for a connection the HTTP front end refused or closed without serving a request (one of
        :data:`CONNECTION_REFUSALS`; anything else counts as ``other``): what a flood, slow clients or malformed
        framing cost, which no request trace and no access-log line records."""
        self._batch.add([("connections", (reason if reason in CONNECTION_REFUSALS else "other",))], [])

    def flush(self) -> None:
        """Write this process's pending samples now (before a scrape in this process, and as a worker exits)."""
        self._batch.flush()

    def _write(self, counts: dict[_Key, float], observed: dict[_Key, _Observed]) -> None:
        """Hand a batch to prometheus_client: one write per counter, per histogram sum and per touched bucket."""
        for (name, labels), amount in counts.items():
            self._child(name, labels).inc(amount)
        for (name, labels), batch in observed.items():
            child = self._child(name, labels)
            # prometheus_client's Histogram child: ``_sum`` and one value per bucket (non-cumulative), the
            # values observe() increments one at a time; tests/unit/ops pins this against the exposition.
            child._sum.inc(batch.total)
            for index, count in enumerate(batch.buckets):
                if count:
                    child._buckets[index].inc(count)

    def _child(self, name: str, labels: tuple[str, ...]) -> Any:
        """The labelled child, cached: ``labels()`` validates and locks on every call."""
        key = (name, labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._families[name].labels(*labels)
        return child

    def _relying_party(self, address: str) -> str:
        if address in self._relying_parties or len(self._relying_parties) < MAX_RELYING_PARTIES:
            self._relying_parties.add(address)
            return address
        return "other"

    def render(self) -> tuple[bytes, str]:
        """The exposition of every process's samples and the certificates' days to expiry; its content type."""
        self.flush()
        return generate_latest(self._exposition_registry()), CONTENT_TYPE_LATEST

    def serve(self, bind: str) -> None:
        """Serve the exposition on a listener of its own (a thread of the calling process: gunicorn's master).

        The process has one such listener: the application a reload builds takes over the one already serving
        ``bind`` (without closing its socket, so no scrape is refused), whose certificates are those of the
        configuration replaced; a listener on another address is started, then the old one stopped
        (:func:`stop_listener`; first when it holds the port itself). When the new address cannot be bound (taken by
        another program, not allowed), the old listener is back on its address, serving this application, and the
        ``OSError`` is raised: a reload must not leave the master without the listener it had.
        """
        registry = self._exposition_registry()
        if _listener and _listener[0][0] == bind:
            _listener[0][1].set_app(make_wsgi_app(registry))
            return
        old = _listener[0][0] if _listener else None
        try:
            server = _start_listener(bind, registry)
        except OSError:
            if old is None:
                raise
            # The old listener may hold that very port (the same port under another host: 127.0.0.1:9100 to
            # 0.0.0.0:9100): free it and try again; failing that, back on its address.
            stop_listener()
            try:
                server = _start_listener(bind, registry)
            except OSError:
                _listener[:] = [(old, _start_listener(old, registry))]
                raise
        stop_listener()
        _listener[:] = [(bind, server)]

    def _exposition_registry(self) -> CollectorRegistry:
        exposition = self._exposition
        if exposition is not None:
            return exposition
        with self._exposition_lock:  # built once, however many scrapes arrive together
            if self._exposition is None:
                if os.environ.get(MULTIPROC_ENV):
                    registry = CollectorRegistry()
                    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
                else:
                    registry = self._registry
                registry.register(_CertificateCollector(self._certificates, self._now))
                self._exposition = registry
            return self._exposition


class _Observed:
    """Observations of one histogram child not yet written: their sum and a count per bucket."""

    __slots__ = ("buckets", "total")

    def __init__(self, size: int) -> None:
        self.total = 0.0
        self.buckets = [0] * size


Writer = Callable[[dict[_Key, float], dict[_Key, _Observed]], None]


class _Batch:
    """The samples of this process not yet written to the shared files, added up.

    Writing a sample to prometheus_client's memory-mapped files takes a lock and a few microseconds, a dozen per
    request; adding it to a dictionary takes a fraction of one. A thread of each worker writes the sums every
    :data:`FLUSH_SECONDS` (and :meth:`flush` on demand), so a scrape sees every request older than that.
    """

    def __init__(self, bounds: dict[str, tuple[float, ...]], write: Writer) -> None:
        self._bounds = bounds
        self._write = write
        self._pid = -1
        self._starting = threading.Lock()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._counts: dict[_Key, float] = {}
        self._observed: dict[_Key, _Observed] = {}

    def add(self, counted: list[_Key], observed: list[tuple[_Key, float]]) -> None:
        """Add one request's samples: one per counted key, and the observed values."""
        if self._pid != os.getpid():
            self._start()
        bounds = self._bounds
        with self._lock:
            pending, histograms = self._counts, self._observed
            for key in counted:
                pending[key] = pending.get(key, 0.0) + 1.0
            for key, value in observed:
                entry = histograms.get(key)
                if entry is None:
                    entry = histograms[key] = _Observed(len(bounds[key[0]]))
                entry.total += value
                entry.buckets[bisect_left(bounds[key[0]], value)] += 1

    def flush(self) -> None:
        """Write what is pending (swapped out under the lock, written outside it)."""
        if self._pid != os.getpid():
            # Nothing of this process is pending before its first sample (what a fork copied is the parent's),
            # and the lock and dictionaries are replaced by that first sample (_start): a flush taking the
            # inherited lock then could swap out, and write while it grows, the dictionary a request thread is
            # adding to under the new lock (a scrape, the first request of a worker, arriving with a token).
            return
        with self._lock:
            counts, observed = self._counts, self._observed
            self._counts, self._observed = {}, {}
        if counts or observed:
            self._write(counts, observed)

    def _start(self) -> None:
        """In a new process (a forked worker): fresh state and this process's flushing thread, once."""
        with self._starting:
            if self._pid == os.getpid():
                return
            self._lock, self._wake = threading.Lock(), threading.Event()
            self._counts, self._observed = {}, {}
            self._pid = os.getpid()
            threading.Thread(target=self._run, name="sts-metrics", daemon=True).start()

    def _run(self) -> None:
        pid = self._pid
        while not self._wake.wait(FLUSH_SECONDS) and self._pid == pid:
            self.flush()


class _CertificateCollector:
    """``sts_certificate_expiry_days`` at each scrape; the certificate files are re-read at most once a minute."""

    def __init__(self, certificates: Callable[[], Sequence[CertificateExpiry]], now: Callable[[], dt.datetime]) -> None:
        self._list = certificates
        self._now = now
        self._known: tuple[CertificateExpiry, ...] = ()
        self._read_at = -_CERTIFICATE_RECHECK

    def collect(self) -> Iterator[Metric]:
        """One sample per certificate: days until its notAfter (negative once expired)."""
        if time.monotonic() - self._read_at >= _CERTIFICATE_RECHECK:
            self._known, self._read_at = tuple(self._list()), time.monotonic()
        family = GaugeMetricFamily(
            "sts_certificate_expiry_days", "Days until a configured certificate expires", labels=("kind", "name")
        )
        now = self._now()
        for cert in self._known:
            family.add_metric((cert.kind, cert.name), round(cert.days_left(now), 3))
        yield family


_listener: list[tuple[str, Any]] = []  # this process's listener of [metrics] bind: its address and server


def _start_listener(bind: str, registry: CollectorRegistry) -> Any:
    """A started listener serving ``registry`` on ``bind`` (``HOST:PORT``); ``OSError`` when it cannot bind."""
    host, _, port = bind.rpartition(":")
    server, _ = start_http_server(int(port), host.strip("[]") or "127.0.0.1", registry=registry)
    return server


def stop_listener() -> None:
    """Stop this process's metrics listener, if it has one (a reload that moves or disables it)."""
    for _, server in _listener:
        server.shutdown()
        server.server_close()
    _listener.clear()


def forget_listener() -> None:
    """In a worker just forked from the master: close its copy of the master's listening socket. Kept open, it
    held the port for the worker's whole life, so the master could not listen there again after a reload moved
    the listener (the same port under another host, or back), and connections to an address the master had left
    were queued by the kernel for a socket nobody accepts on, hanging scrapes instead of refusing them. Only the
    socket: the serving thread is the master's (``shutdown`` here would wait for it for ever)."""
    for _, server in _listener:
        server.socket.close()
    _listener.clear()


def process_dead(pid: int) -> None:
    """Tell the multiprocess files that a worker is gone (gunicorn's ``child_exit``, in the master)."""
    if os.environ.get(MULTIPROC_ENV):
        mark_process_dead(pid)  # type: ignore[no-untyped-call]


def _safe(value: str) -> str:
    """A label value from the code's fixed vocabulary; anything else is ``other`` (bounded cardinality)."""
    return value if _SAFE_LABEL.fullmatch(value) else "other"
