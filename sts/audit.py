"""Audit events: one structured log record per request outcome, never a secret (OWASP Logging Cheat Sheet).

Inside a request (:func:`request_scope`, opened by the SOAP endpoint) a successful authentication is not a record
of its own: it is held, and the request's next record (the operation's outcome, or the failure that ended the
request; never another login's record, such as a delegated identity's) carries its method as ``auth_method`` and
its user and domain when it names none. A request that authenticates and then records nothing else still gets
the authentication record, when the scope closes. Failed authentications are written at once, as before. So a
successful request costs one record, not two.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Protocol

_AUDIT = logging.getLogger("sts.audit")


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """What an operator needs to know about one request; ``reason`` is for operators only."""

    event: str  # e.g. "issue", "authentication"
    outcome: str  # "success" | "failure"
    correlation_id: str
    client_address: str = ""
    user: str = ""
    domain: str = ""
    operation: str = ""
    applies_to: str = ""
    token_type: str = ""
    token_id: str = ""
    fault: str = ""
    reason: str = ""
    duration_ms: float = 0.0
    subject: str = ""  # delegation: the DOMAIN/name the token names (``user``/``domain`` are the caller's)
    chain: str = ""  # delegation: the acting services, oldest first, " > "-separated
    source_token: str = ""  # delegation / transformation: the ID of the token handed in
    auth_method: str = ""  # how the caller authenticated (password, x509, ...), from the held authentication
    # A UsernameToken login: the account the user store named (DOMAIN/ + case-folded name, the lockout's key), the
    # same whichever spelling was typed (alice, ALICE, a UPN, TEST\alice), so one account's events group together.
    account: str = ""


_FIELDS = tuple(f.name for f in dataclasses.fields(AuditEvent))
# "event" would clash with nothing in logging, but keep it recognisable as the audit event's kind.
_FIELD_NAMES = {name: ("audit_event" if name == "event" else name) for name in _FIELDS}


@dataclass(slots=True)
class _Scope:
    """The authentication success of the current request, until a record carries it."""

    authentication: AuditEvent | None = None


_SCOPE: ContextVar[_Scope | None] = ContextVar("sts_audit_scope", default=None)
_LOGIN_EVENTS = frozenset({"authentication", "delegated_authentication"})


@contextmanager
def request_scope() -> Iterator[None]:
    """Hold the request's authentication success for its next record (see the module docstring)."""
    scope = _Scope()
    token = _SCOPE.set(scope)
    try:
        yield
    finally:
        _SCOPE.reset(token)
        if scope.authentication is not None:
            _write(scope.authentication)


def emit(event: AuditEvent) -> None:
    """Record ``event``: held when it is an authentication success inside a request scope, else written with the
    held authentication folded in."""
    scope = _SCOPE.get()
    held = None
    if scope is not None:
        if event.event == "authentication" and event.outcome == "success":
            scope.authentication = event
            return
        # Another login's record (a delegated identity's, WS-Trust 1.3 §9.1) never carries the caller's.
        if scope.authentication is not None and event.event not in _LOGIN_EVENTS:
            held, scope.authentication = scope.authentication, None
    _write(event, held)


class RequestFacts(Protocol):
    """What a login record names about the request (``CallerInfo``, ``RequestInfo``)."""

    @property
    def correlation_id(self) -> str: ...

    @property
    def client_address(self) -> str: ...


def login(
    request: RequestFacts, outcome: str, reason: str, *, user: str = "", domain: str = "",
    event: str = "authentication", account: str = "",
) -> None:
    """Record one login (``authentication``, or ``delegated_authentication`` for a delegated identity) and its
    reason: the method on success, the refusal's reason code on failure."""
    emit(AuditEvent(event=event, outcome=outcome, correlation_id=request.correlation_id,
                    client_address=request.client_address, user=user, domain=domain, reason=reason,
                    account=account))


def _write(event: AuditEvent, held: AuditEvent | None = None) -> None:
    """Write the event as one log record on the ``sts.audit`` logger, with the ``held`` authentication's method,
    and its user and domain where the event names none."""
    level = logging.INFO if event.outcome == "success" else logging.WARNING
    if not _AUDIT.isEnabledFor(level):
        return
    # A shallow walk: dataclasses.asdict deep-copies every value, and dataclasses.replace (for the fold) re-runs
    # the frozen __init__; both showed up in the request profile. The dict keeps the fields' order.
    values = {name: getattr(event, name) for name in _FIELDS}
    if held is not None:
        values["auth_method"] = event.auth_method or held.reason
        values["user"] = event.user or held.user
        values["domain"] = event.domain or held.domain
        values["account"] = event.account or held.account
    fields = {_FIELD_NAMES[name]: value for name, value in values.items() if value not in ("", 0.0)}
    # What Logger.log does, less its walk up the stack for the caller's file and line (here always this
    # function), which no formatter of ours prints: a record made and handled directly.
    record = _AUDIT.makeRecord(
        _AUDIT.name, level, __file__, 0, "%s %s", (event.event, event.outcome), None, "emit", fields
    )
    _AUDIT.handle(record)
