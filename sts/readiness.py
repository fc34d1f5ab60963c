"""``GET /readyz``: whether the stores, directories, cache and HSM this node depends on answer, within a short time.

``/healthz`` says the process serves HTTP (liveness: restart it if not); ``/readyz`` says it can issue tokens
(readiness: send it traffic or not). The probes run one after the other on a thread of their own, one probe run
at a time per worker: the request threads never wait on a store for a probe, concurrent ``/readyz`` calls share
the run in progress, a result is reused for a second, and a caller waits at most the timeout; a run still going
after that (a store that hangs) is reported as not ready, without starting another behind it.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

Probe = tuple[str, Callable[[], object]]


@dataclass(frozen=True, slots=True)
class ReadinessReport:
    """The verdict and each dependency's state: ``ok``, ``down`` or ``timeout``."""

    ready: bool
    checks: dict[str, str]


class Readiness:
    """Runs the probes for ``GET /readyz``, bounded by ``timeout`` seconds."""

    def __init__(self, probes: Sequence[Probe], timeout: float, fresh_for: float = 1.0) -> None:
        self._probes = tuple(probes)
        self._timeout = timeout
        self._fresh_for = fresh_for
        self._lock = threading.Lock()
        self._pid = -1
        self._running: tuple[float, Future[ReadinessReport], dict[str, str]] | None = None
        self._last: tuple[float, ReadinessReport] | None = None

    def report(self) -> ReadinessReport:
        """The current verdict: fresh, shared with a run in progress, or a timeout."""
        with self._lock:
            now = time.monotonic()
            if self._last is not None and self._pid == os.getpid() and now - self._last[0] < self._fresh_for:
                return self._last[1]
            started, future, progress = self._start(now)
        try:
            result = future.result(timeout=max(0.0, started + self._timeout - time.monotonic()))
        except FutureTimeout:
            return ReadinessReport(False, {name: progress.get(name, "timeout") for name, _ in self._probes})
        with self._lock:
            self._last = (time.monotonic(), result)
        return result

    def _start(self, now: float) -> tuple[float, Future[ReadinessReport], dict[str, str]]:
        """The run in progress, or a new one (call with the lock held)."""
        if self._pid != os.getpid():  # a forked worker: the parent's thread and results are not ours
            self._running, self._last, self._pid = None, None, os.getpid()
        if self._running is not None and not self._running[1].done():
            return self._running
        progress: dict[str, str] = {}
        future: Future[ReadinessReport] = Future()
        # A daemon thread: a probe stuck on a hung server must not keep the worker from exiting.
        threading.Thread(target=self._run, args=(future, progress), name="sts-readiness", daemon=True).start()
        self._running = (now, future, progress)
        return self._running

    def _run(self, future: Future[ReadinessReport], progress: dict[str, str]) -> None:
        for name, probe in self._probes:
            try:
                probe()
            except Exception:  # any failure of a dependency means "not ready"
                progress[name] = "down"
            else:
                progress[name] = "ok"
        future.set_result(ReadinessReport(all(state == "ok" for state in progress.values()), dict(progress)))
