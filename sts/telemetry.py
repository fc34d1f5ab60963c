"""What one request did, recorded as it runs: the pipeline stages it passed, their times, its store round trips,
its outcome. Framework-free: :mod:`sts.metrics` turns finished traces into Prometheus samples and ``sts explain``
prints them, so both read the one pipeline instead of a copy of it.

The SOAP endpoint opens a :class:`RequestTrace` per request in a context variable; the pipeline's code marks
stages with :func:`stage` (timed) and checks with :func:`passed` (only recorded when the trace is ``detailed``, for
``sts explain``). Outside a request (tools, readiness probes) both cost one context-variable read and do nothing.
Nothing here is a secret or a user name: stage names, reason codes, store names, the registered RP address.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, cast

_T = TypeVar("_T")


@dataclass(slots=True)
class Step:
    """One stage or check of the pipeline: its name, whether it passed and how long it took (0 for checks)."""

    name: str
    ok: bool
    seconds: float = 0.0


@dataclass(slots=True)
class RequestTrace:
    """The record of one request (mutable while it runs, handed to an :class:`Observer` once it is done)."""

    detailed: bool = False  # also record the checks of :func:`passed` (sts explain)
    operation: str = ""  # issue | validate | renew | cancel, once the RST's RequestType was read
    outcome: str = ""  # success | failure
    fault: str = ""  # the fault's local name (FailedAuthentication, InvalidScope, ...)
    reason: str = ""  # the operator-facing reason code of the audit event
    detail: str = ""  # the logs-only detail of the error: shown by sts explain, never exported
    token_type: str = ""
    relying_party: str = ""  # the registered address of the RP the token was issued for
    seconds: float = 0.0
    steps: list[Step] = field(default_factory=list)
    stores: list[tuple[str, float, bool]] = field(default_factory=list)  # (store, seconds, failed)
    events: list[str] = field(default_factory=list)  # account_locked, client_throttled, ...

    def failed(self, fault: str, reason: str, detail: str) -> None:
        """Record the error the request was answered with."""
        self.outcome, self.fault, self.reason, self.detail = "failure", fault, reason, detail


class Observer(Protocol):
    """Receives each finished trace (:class:`sts.metrics.Metrics`)."""

    def finished(self, trace: RequestTrace) -> None:
        """Account for one finished request."""
        ...


_CURRENT: ContextVar[RequestTrace | None] = ContextVar("sts_request_trace", default=None)
# Bound once: the stage and store timers below run a dozen times per request.
_current = _CURRENT.get
_clock = time.perf_counter


def current() -> RequestTrace | None:
    """The trace of the request running in this context, if any."""
    return _CURRENT.get()


@contextmanager
def tracing(trace: RequestTrace) -> Iterator[RequestTrace]:
    """Make ``trace`` the current one for the duration of the block."""
    token = _CURRENT.set(trace)
    try:
        yield trace
    finally:
        _CURRENT.reset(token)


class _Stage:
    """Time one pipeline stage (parse, authentication, build, sign, encrypt, store, ...) of the current request:
    ``with stage("sign"): ...``; a stage left by an exception is recorded as failed.

    A class used directly as :func:`stage` (a generator-based context manager costs several times more, and a
    factory function around the class one more call per stage).
    """

    __slots__ = ("_name", "_started", "_trace")

    def __init__(self, name: str) -> None:
        self._name = name

    def __enter__(self) -> None:
        trace = self._trace = _current()
        if trace is not None:
            self._started = _clock()

    def __exit__(self, kind: object, error: object, traceback: object) -> None:
        trace = self._trace
        if trace is not None:
            trace.steps.append(Step(self._name, kind is None, _clock() - self._started))


stage = _Stage


def passed(check: str) -> None:
    """Mark a check as passed, for ``sts explain`` (recorded only in a detailed trace)."""
    trace = _CURRENT.get()
    if trace is not None and trace.detailed:
        trace.steps.append(Step(check, True))


def note(event: str) -> None:
    """Count an event of the current request (``account_locked``, ``client_throttled``)."""
    trace = _CURRENT.get()
    if trace is not None:
        trace.events.append(event)


def describe(operation: str = "", token_type: str = "", relying_party: str = "") -> None:
    """Say what the current request is: its operation and, once issued, the token type and relying party."""
    trace = _CURRENT.get()
    if trace is None:
        return
    if operation:
        trace.operation = operation
    if token_type:
        trace.token_type = token_type
    if relying_party:
        trace.relying_party = relying_party


class _Timed:
    """Forwards to a store and times each method call into the current trace (see :func:`timed`)."""

    def __init__(self, target: object, name: str) -> None:
        self._target = target
        self._name = name

    def __getattr__(self, attribute: str) -> Any:
        value = getattr(self._target, attribute)
        if not callable(value) or attribute.startswith("_") or attribute == "close":
            return value
        name = self._name

        def call(*args: Any, **kwargs: Any) -> Any:
            trace = _current()
            if trace is None:
                return value(*args, **kwargs)
            started = _clock()
            try:
                result = value(*args, **kwargs)
            except BaseException:
                trace.stores.append((name, _clock() - started, True))
                raise
            trace.stores.append((name, _clock() - started, False))
            return result

        self.__dict__[attribute] = call  # looked up once; later calls skip __getattr__
        return call


def timed(target: _T, name: str) -> _T:
    """``target`` with every public method call's round trip recorded in the current trace as store ``name``
    (``store``, ``directory``, ``cache``); an exception counts as an error."""
    return cast(_T, _Timed(target, name))


def unwrap(value: _T) -> _T:
    """The object behind :func:`timed` (for ``isinstance`` checks), or ``value`` itself."""
    return cast(_T, value._target) if isinstance(value, _Timed) else value

