"""Audit events: one structured log record per request outcome, never a secret (OWASP Logging Cheat Sheet)."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

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


_FIELDS = tuple(f.name for f in dataclasses.fields(AuditEvent))
# "event" would clash with nothing in logging, but keep it recognisable as the audit event's kind.
_FIELD_NAMES = {name: ("audit_event" if name == "event" else name) for name in _FIELDS}


def emit(event: AuditEvent) -> None:
    """Write the event as one log record on the ``sts.audit`` logger."""
    # A shallow walk: dataclasses.asdict deep-copies every value, which showed up in the request profile.
    fields = {
        _FIELD_NAMES[name]: value
        for name in _FIELDS
        if (value := getattr(event, name)) not in ("", 0.0)
    }
    level = logging.INFO if event.outcome == "success" else logging.WARNING
    if not _AUDIT.isEnabledFor(level):
        return
    # What Logger.log does, less its walk up the stack for the caller's file and line (here always this
    # function), which no formatter of ours prints: a record made and handled directly.
    record = _AUDIT.makeRecord(
        _AUDIT.name, level, __file__, 0, "%s %s", (event.event, event.outcome), None, "emit", fields
    )
    _AUDIT.handle(record)
