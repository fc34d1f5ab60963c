"""Audit events: one structured log record per request outcome, never a secret (catalogue O10, A13)."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

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


def emit(event: AuditEvent) -> None:
    """Write the event as one log record on the ``sts.audit`` logger."""
    fields = {f"audit_{k}" if k in ("event",) else k: v for k, v in asdict(event).items() if v not in ("", 0.0)}
    level = logging.INFO if event.outcome == "success" else logging.WARNING
    _AUDIT.log(level, "%s %s", event.event, event.outcome, extra=fields)
