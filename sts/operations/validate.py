"""Validate (WS-Trust 1.3 §7): a Status for the target token, valid or invalid, never a fault for an invalid one.

Every kind of invalidity gets the same Status and reason text; the real reason goes to the audit log only. Only
the live token of a renewal chain is valid: a token that was renewed or cancelled validates as invalid.

A ``TokenType`` other than ``…/RSTR/Status`` asks for token transformation (WS-Trust 1.3 §7): with a
:class:`~sts.operations.transformation.TokenTransformer`, a valid target whose exchange the relying party allows is
answered with the status and a new token; an invalid one with the same ``status/invalid`` answer as ever.
"""

from __future__ import annotations

from sts.clock import Clock
from sts.errors import InvalidRequest
from sts.operations.call import TrustCall, TrustReply
from sts.operations.events import audit
from sts.operations.targets import ResolvedTarget, TargetResolver
from sts.operations.transformation import TokenTransformer
from sts.tokens.validation import within_validity
from sts.wstrust.rst import parse_rst
from sts.wstrust.rstr import status_answer, transformed_answer

RETIRED = ("renewed", "cancelled")  # statuses of tokens that are no longer valid, whatever their window


class ValidateOperation:
    """``RequestType …/Validate`` → RSTR with ``Status`` (never a fault for an invalid token)."""

    def __init__(
        self, resolver: TargetResolver, clock: Clock, skew: int, transformer: TokenTransformer | None = None
    ) -> None:
        self._resolver = resolver
        self._clock = clock
        self._skew = skew
        self._transformer = transformer

    def __call__(self, call: TrustCall) -> TrustReply:
        """Validate the target token (and, when a token type is asked for, exchange a valid one)."""
        request = call.request
        rst = parse_rst(request.rst, request.trust, request.operation)
        asked = None
        if rst.token_type not in (None, request.trust.status_token_type):
            if self._transformer is None:  # only a Status can be asked for
                raise InvalidRequest("Validate TokenType must be RSTR/Status", reason="validate_token_type")
            asked = self._transformer.prepare(call, rst)
        target = self._resolver.resolve(rst.target)
        reason = self._invalidity(target)
        if asked is not None and self._transformer is not None and not reason:
            made = self._transformer.transform(call, rst, asked, target)
            audit(
                call, "validate", "valid", token_id=made.response.reference.identifier, reason="transformed",
                applies_to=asked.party.rp.address, token_type=made.response.token_type, subject=made.subject,
                chain=made.chain, source_token=made.source_token,
            )
            return TrustReply(transformed_answer(made.response), request.operation, request.trust)
        audit(call, "validate", "invalid" if reason else "valid", token_id=target.token_id, reason=reason or "valid")
        return TrustReply(status_answer(request.trust, not reason, rst.context), request.operation, request.trust)

    def _invalidity(self, target: ResolvedTarget) -> str:
        """Empty when valid, else the operator-facing reason."""
        now = self._clock.now()
        if target.rejected:
            return target.rejected
        if target.verified is not None:
            if target.verified.not_on_or_after is None:
                # SAML (2.0 core §2.5.1.2) lets an assertion without NotOnOrAfter be valid forever: a stolen one
                # would then be vouched for forever. Like the issuer-trust rules for tokens the STS acts on, a
                # token that never expires is invalid (every token this STS issues has a NotOnOrAfter).
                return "token_window_missing"
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
