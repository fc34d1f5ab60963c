"""The audit event of an operation's outcome: who asked, for which token, and the operator-facing reason."""

from __future__ import annotations

import time

from sts.audit import AuditEvent, emit
from sts.operations.call import TrustCall


def audit(
    call: TrustCall,
    event: str,
    outcome: str,
    *,
    token_id: str,
    reason: str,
    applies_to: str = "",
    token_type: str = "",
    started: float | None = None,
    subject: str = "",
    chain: tuple[str, ...] = (),
    source_token: str = "",
) -> None:
    """Emit one audit event for ``call``; ``started`` (a :func:`time.perf_counter` value) adds the duration."""
    principal = call.caller.principal
    info = call.request.info
    emit(
        AuditEvent(
            event=event,
            outcome=outcome,
            correlation_id=info.correlation_id,
            client_address=info.client_address,
            user=principal.name,
            domain=principal.domain,
            operation=call.request.operation.value,
            applies_to=applies_to,
            token_type=token_type,
            token_id=token_id,
            reason=reason,
            duration_ms=0.0 if started is None else round((time.perf_counter() - started) * 1000, 3),
            subject=subject,
            chain=" > ".join(chain),
            source_token=source_token,
        )
    )
