"""Validate and Cancel for an authenticated caller (Renew: :mod:`sts.lifecycle.renew`).

Validate answers a Status (valid / invalid with the same reason text for every kind of invalidity; the real
reason goes to the audit log only). Only the live token of a renewal chain is valid: a token that was renewed or
cancelled validates as invalid. Cancel ends a token's whole renewal chain (WS-Trust 1.3 §6): the token, the
tokens it was renewed from and the one that replaced it are all cancelled and can no longer be renewed.
"""

from __future__ import annotations

from sts.audit import AuditEvent, emit
from sts.clock import Clock
from sts.errors import InvalidRequest, STSError, TrustFailedAuthentication
from sts.issuance import caller_of
from sts.lifecycle.targets import ResolvedTarget, TargetResolver
from sts.service import TrustCall, TrustReply
from sts.stores.base import TokenRecord, TokenStore
from sts.tokens.validation import within_validity
from sts.wstrust.rst import parse_rst
from sts.wstrust.rstr import cancelled_answer, status_answer

RETIRED = ("renewed", "cancelled")  # statuses of tokens that are no longer valid, whatever their window


def audit(call: TrustCall, event: str, outcome: str, token_id: str, reason: str) -> None:
    """One audit event for a lifecycle request."""
    principal = caller_of(call).principal
    emit(
        AuditEvent(
            event=event,
            outcome=outcome,
            correlation_id=call.info.correlation_id,
            client_address=call.info.client_address,
            user=principal.name,
            domain=principal.domain,
            operation=call.operation.value,
            token_id=token_id,
            reason=reason,
        )
    )


class ValidateOperation:
    """``RequestType …/Validate`` → RSTR with ``Status`` (never a fault for an invalid token)."""

    def __init__(self, resolver: TargetResolver, clock: Clock, skew: int) -> None:
        self._resolver = resolver
        self._clock = clock
        self._skew = skew

    def __call__(self, call: TrustCall) -> TrustReply:
        """Validate the target token."""
        rst = parse_rst(call.rst, call.trust_ns, call.operation)
        if rst.token_type not in (None, f"{call.trust_ns}/RSTR/Status"):
            # Token transformation is not offered: only a Status can be asked for (catalogue V14).
            raise InvalidRequest("Validate TokenType must be RSTR/Status", reason="validate_token_type")
        target = self._resolver.resolve(rst.target)
        reason = self._invalidity(target)
        audit(call, "validate", "valid" if not reason else "invalid", target.token_id, reason or "valid")
        return TrustReply(status_answer(call.trust_ns, not reason, rst.context), call.operation, call.trust_ns)

    def _invalidity(self, target: ResolvedTarget) -> str:
        """Empty when valid, else the operator-facing reason."""
        now = self._clock.now()
        if target.rejected:
            return target.rejected
        if target.verified is not None:
            if not within_validity(target.verified, now, self._skew):
                return "outside_validity"
            if target.record is not None and target.record.status in RETIRED:
                return target.record.status
            return ""
        record = target.record
        if record is None:
            return "unknown_token"
        if record.status in RETIRED:
            return record.status
        stamp = now.timestamp()
        if not record.not_before - self._skew <= stamp < record.not_on_or_after + self._skew:
            return "outside_validity"
        return ""


class CancelOperation:
    """``RequestType …/Cancel`` → RSTR with ``RequestedTokenCancelled``; the token's renewal chain ends."""

    def __init__(self, resolver: TargetResolver, store: TokenStore) -> None:
        self._resolver = resolver
        self._store = store

    def __call__(self, call: TrustCall) -> TrustReply:
        """Cancel the caller's own token and the rest of its renewal chain."""
        rst = parse_rst(call.rst, call.trust_ns, call.operation)
        target = self._resolver.resolve(rst.target)
        try:
            record = owned_record(call, target, InvalidRequest)
            self._store.cancel(record.token_id)
        except STSError as error:
            audit(call, "cancel", "failure", target.token_id, error.reason)
            raise
        audit(call, "cancel", "success", record.token_id, "cancelled")
        return TrustReply(cancelled_answer(call.trust_ns, rst.context), call.operation, call.trust_ns)


def owned_record(call: TrustCall, target: ResolvedTarget, unknown: type[STSError]) -> TokenRecord:
    """The target's record, if the STS issued it to this caller (else ``unknown`` / wst:FailedAuthentication)."""
    record = target.record
    if record is None:
        raise unknown("token not issued by this STS", reason=target.rejected or "unknown_token")
    if record.subject.casefold() != caller_of(call).principal.qualified_name.casefold():
        raise TrustFailedAuthentication("token belongs to another subject", reason="not_token_owner")
    return record


