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
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import start_http_server
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from sts.certificates import CertificateExpiry
from sts.telemetry import RequestTrace

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
STAGES = frozenset({"parse", "authentication", "build", "sign", "encrypt", "store"})
MAX_RELYING_PARTIES = 500
_SAFE_LABEL = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_CERTIFICATE_RECHECK = 60.0
_FAST_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0)


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
        self._children: dict[tuple[str, tuple[str, ...]], Any] = {}
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
        self._exposition: CollectorRegistry | None = None

    def finished(self, trace: RequestTrace) -> None:
        """Account for one finished request."""
        operation = trace.operation or "unknown"
        self._child(self._requests, operation, trace.outcome).inc()
        self._child(self._latency, operation).observe(trace.seconds)
        if trace.outcome == "failure":
            self._child(self._failures, operation, _safe(trace.fault), _safe(trace.reason)).inc()
        elif trace.token_type:
            self._child(self._issued, operation, trace.token_type, self._relying_party(trace.relying_party)).inc()
        for step in trace.steps:
            if step.name in STAGES:
                self._child(self._stages, step.name).observe(step.seconds)
        for store, seconds, failed in trace.stores:
            self._child(self._stores, store).observe(seconds)
            if failed:
                self._child(self._store_errors, store).inc()
        for event in trace.events:
            self._child(self._events, _safe(event)).inc()

    def _child(self, metric: Any, *labels: str) -> Any:
        """The labelled child, cached: ``labels()`` validates and locks on every call."""
        key = (metric._name, labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def _relying_party(self, address: str) -> str:
        if address in self._relying_parties or len(self._relying_parties) < MAX_RELYING_PARTIES:
            self._relying_parties.add(address)
            return address
        return "other"

    def render(self) -> tuple[bytes, str]:
        """The exposition of every process's samples and the certificates' days to expiry; its content type."""
        return generate_latest(self._exposition_registry()), CONTENT_TYPE_LATEST

    def serve(self, bind: str) -> None:
        """Serve the exposition on a listener of its own (a thread of the calling process: gunicorn's master)."""
        host, _, port = bind.rpartition(":")
        start_http_server(int(port), host.strip("[]") or "127.0.0.1", registry=self._exposition_registry())

    def _exposition_registry(self) -> CollectorRegistry:
        if self._exposition is None:
            if os.environ.get(MULTIPROC_ENV):
                registry = CollectorRegistry()
                MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            else:
                registry = self._registry
            registry.register(_CertificateCollector(self._certificates, self._now))
            self._exposition = registry
        return self._exposition


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


def process_dead(pid: int) -> None:
    """Tell the multiprocess files that a worker is gone (gunicorn's ``child_exit``, in the master)."""
    if os.environ.get(MULTIPROC_ENV):
        mark_process_dead(pid)  # type: ignore[no-untyped-call]


def _safe(value: str) -> str:
    """A label value from the code's fixed vocabulary; anything else is ``other`` (bounded cardinality)."""
    return value if _SAFE_LABEL.fullmatch(value) else "other"
