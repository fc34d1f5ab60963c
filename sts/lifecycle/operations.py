"""Validate, Renew and Cancel for an authenticated caller.

Validate answers a Status (valid / invalid with the same reason text for every kind of invalidity; the real
reason goes to the audit log only, row J07). Renew makes a new token for the same subject, audience and claims
with a fresh window; Cancel marks a token cancelled, after which it validates as invalid and cannot be renewed.
"""

from __future__ import annotations

import json
import time

from sts.audit import AuditEvent, emit
from sts.clock import Clock
from sts.config.directory import RelyingPartyDirectory
from sts.errors import InvalidRequest, STSError, TrustFailedAuthentication, UnableToRenew
from sts.issuance import caller_of
from sts.lifecycle.targets import ResolvedTarget, TargetResolver
from sts.minting import MintPlan, TokenMinter
from sts.service import TrustCall, TrustReply
from sts.stores.base import TokenRecord, TokenStore
from sts.tokens.base import Attribute
from sts.tokens.validation import within_validity
from sts.wstrust.model import Renewing
from sts.wstrust.rst import parse_rst
from sts.wstrust.rstr import cancelled_answer, issued_rstr, status_answer
from sts.wstrust.tokentypes import KeyKind, SamlVersion, resolve_token_type
from sts.xmlutil import ParserLimits, parse_untrusted


def _audit(call: TrustCall, event: str, outcome: str, token_id: str, reason: str) -> None:
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
        _audit(call, "validate", "valid" if not reason else "invalid", target.token_id, reason or "valid")
        return TrustReply(status_answer(call.trust_ns, not reason, rst.context), call.operation, call.trust_ns)

    def _invalidity(self, target: ResolvedTarget) -> str:
        """Empty when valid, else the operator-facing reason."""
        now = self._clock.now()
        if target.rejected:
            return target.rejected
        if target.verified is not None:
            if not within_validity(target.verified, now, self._skew):
                return "outside_validity"
            if target.record is not None and target.record.status == "cancelled":
                return "cancelled"
            return ""
        record = target.record
        if record is None:
            return "unknown_token"
        if record.status == "cancelled":
            return "cancelled"
        stamp = now.timestamp()
        if not record.not_before - self._skew <= stamp < record.not_on_or_after + self._skew:
            return "outside_validity"
        return ""


class CancelOperation:
    """``RequestType …/Cancel`` → RSTR with ``RequestedTokenCancelled``."""

    def __init__(self, resolver: TargetResolver, store: TokenStore) -> None:
        self._resolver = resolver
        self._store = store

    def __call__(self, call: TrustCall) -> TrustReply:
        """Cancel the caller's own token."""
        rst = parse_rst(call.rst, call.trust_ns, call.operation)
        target = self._resolver.resolve(rst.target)
        try:
            record = _owned_record(call, target, InvalidRequest)
            self._store.set_status(record.token_id, "cancelled", ("issued", "renewed", "cancelled"))
        except STSError as error:
            _audit(call, "cancel", "failure", target.token_id, error.reason)
            raise
        _audit(call, "cancel", "success", record.token_id, "cancelled")
        return TrustReply(cancelled_answer(call.trust_ns, rst.context), call.operation, call.trust_ns)


class RenewOperation:
    """``RequestType …/Renew`` → RSTR with a new token (same subject, audience and claims; fresh window)."""

    def __init__(
        self,
        resolver: TargetResolver,
        store: TokenStore,
        directory: RelyingPartyDirectory,
        minter: TokenMinter,
        clock: Clock,
        renew_after_expiry: int,
        max_renewal_age: int,
    ) -> None:
        self._resolver = resolver
        self._store = store
        self._directory = directory
        self._minter = minter
        self._clock = clock
        self._after_expiry = renew_after_expiry
        self._max_age = max_renewal_age

    def __call__(self, call: TrustCall) -> TrustReply:
        """Renew the caller's own renewable token."""
        rst = parse_rst(call.rst, call.trust_ns, call.operation)
        target = self._resolver.resolve(rst.target)
        try:
            record = _owned_record(call, target, UnableToRenew)
            data = json.loads(record.data)
            self._check_renewable(record, data)
            response, content = self._minter.mint(self._plan(call, record, data, rst.context))
            if not self._store.set_status(record.token_id, "renewed", ("issued", "renewed")):
                raise UnableToRenew("token cancelled meanwhile", reason="cancelled")
        except STSError as error:
            _audit(call, "renew", "failure", target.token_id, error.reason)
            raise
        _audit(call, "renew", "success", content.assertion_id, f"renewed {record.token_id}")
        return TrustReply(issued_rstr(response), call.operation, call.trust_ns)

    def _check_renewable(self, record: TokenRecord, data: dict[str, object]) -> None:
        now = time.time()
        if record.status == "cancelled":
            raise UnableToRenew("token cancelled", reason="cancelled")
        if not record.renewable:
            raise UnableToRenew("token not renewable", reason="not_renewable")
        if now >= record.not_on_or_after:
            if not record.renew_after_expiry or now > record.not_on_or_after + self._after_expiry:
                raise UnableToRenew("token expired", reason="expired")
        started = data.get("chain_started")
        if isinstance(started, (int, float)) and now > started + self._max_age:
            raise UnableToRenew("maximum renewal age exceeded", reason="max_renewal_age")

    def _plan(self, call: TrustCall, record: TokenRecord, data: dict[str, object], context: str | None) -> MintPlan:
        try:
            party = self._directory.resolve(record.relying_party)
        except STSError:
            raise UnableToRenew("relying party no longer registered", reason="rp_gone") from None
        use_key = data.get("use_key")
        attributes = data.get("attributes", [])
        key_bits = data.get("key_bits")
        started = data.get("chain_started")
        return MintPlan(
            trust_ns=str(data.get("trust_ns", call.trust_ns)),
            context=context,
            token_type=resolve_token_type(str(data["token_type"]), SamlVersion.SAML20),
            key_kind=KeyKind(str(data.get("key_kind", "Bearer"))),
            key_type_uri=str(data["key_type_uri"]),
            party=party,
            subject=record.subject,
            name_id=str(data["name_id"]),
            name_id_format=str(data["name_id_format"]),
            attributes=tuple(Attribute(uri, tuple(values)) for uri, values in attributes)
            if isinstance(attributes, list)
            else (),
            authn_context=str(data["authn_context"]),
            renewing=Renewing(record.renewable, record.renew_after_expiry),
            key_bits=key_bits if isinstance(key_bits, int) else None,
            use_key_info=parse_untrusted(str(use_key).encode(), ParserLimits()) if use_key else None,
            chain_started=float(started) if isinstance(started, (int, float)) else time.time(),
        )


def _owned_record(call: TrustCall, target: ResolvedTarget, unknown: type[STSError]) -> TokenRecord:
    """The target's record, if the STS issued it to this caller (else ``unknown`` / wst:FailedAuthentication)."""
    record = target.record
    if record is None:
        raise unknown("token not issued by this STS", reason=target.rejected or "unknown_token")
    if record.subject.casefold() != caller_of(call).principal.qualified_name.casefold():
        raise TrustFailedAuthentication("token belongs to another subject", reason="not_token_owner")
    return record


