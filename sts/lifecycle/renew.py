"""Renew (WS-Trust 1.3 §5): a new token in place of a live token of the caller, decided again like a fresh Issue.

Kept from the token being renewed: its relying party, found by the registered address recorded with the token
(never by AppliesTo matching, so a token never moves to a prefix, regex or default relying party), its token
type and key type, the request's ``wst:Claims``, the renewal flags and the start of the renewal chain.

Decided again, as a fresh Issue would: the subject must still exist, be enabled, be in an allowed domain and
hold an allowed role (read from the user store now, not from the verified-credential cache); its NameID and
claims come from the current user store and the relying party's current settings (claim ceiling, mapping,
NameID source, lifetime, encryption); a PublicKey token's key must still be a registered, unexpired client key.
A symmetric holder-of-key token gets a fresh proof key.

A renewal chain has one live token: the old token is retired and the new one recorded in one transaction, so of
any number of concurrent renewals of one token exactly one succeeds; a renewed token validates as invalid and
cannot be renewed again. Time is the injected clock, with the validity skew Validate applies.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from lxml import etree

from sts.auth.subjects import SubjectAuthorizer
from sts.auth.users import Principal
from sts.clock import Clock
from sts.crypto.keywrap import TrustedClientKeys, UseKeyRejected, use_key_info
from sts.errors import STSError, UnableToRenew
from sts.issuance import subject_and_claims
from sts.lifecycle.operations import audit, owned_record
from sts.lifecycle.targets import TargetResolver
from sts.minting import MintPlan, TokenMinter
from sts.relying_parties.directory import RelyingPartyDirectory, ResolvedParty
from sts.service import TrustCall, TrustReply
from sts.stores.base import TokenRecord
from sts.wstrust.model import ClaimRequest, Renewing, RequestedClaims
from sts.wstrust.rst import parse_rst
from sts.wstrust.rstr import issued_rstr
from sts.wstrust.tokentypes import KeyKind, SamlVersion, resolve_token_type
from sts.xmlutil import ParserLimits, parse_untrusted


@dataclass(frozen=True, slots=True)
class RenewalPolicy:
    """``[lifecycle]`` and ``[tokens]`` values that decide whether a token may still be renewed."""

    clock_skew: int = 60
    renew_after_expiry: int = 1800
    max_renewal_age: int = 86400
    # Roles the caller must hold for the lifecycle bindings (None: the Issue roles are enough).
    lifecycle_roles: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class RenewalBasis:
    """What the token store recorded about how a token was requested (its ``data``)."""

    trust_ns: str
    token_type: str
    key_kind: KeyKind
    key_type_uri: str
    key_bits: int | None
    requested_claims: RequestedClaims | None
    authn_context: str
    chain: str
    chain_started: float
    use_key: str | None


def renewal_basis(record: TokenRecord) -> RenewalBasis:
    """Read a record's ``data``; a record without the request's claims (written by an older version, which kept
    only the claim values it issued) cannot be decided again and is refused."""
    try:
        data: dict[str, Any] = json.loads(record.data)
        claims = data["requested_claims"]
        key_bits, use_key = data.get("key_bits"), data.get("use_key")
        return RenewalBasis(
            trust_ns=str(data["trust_ns"]),
            token_type=str(data["token_type"]),
            key_kind=KeyKind(str(data["key_kind"])),
            key_type_uri=str(data["key_type_uri"]),
            key_bits=key_bits if isinstance(key_bits, int) else None,
            requested_claims=None
            if claims is None
            else RequestedClaims(
                str(claims["dialect"]), tuple(ClaimRequest(str(uri), bool(opt)) for uri, opt in claims["claims"])
            ),
            authn_context=str(data["authn_context"]),
            chain=str(data["chain"]),
            chain_started=float(data["chain_started"]),
            use_key=str(use_key) if use_key else None,
        )
    except (ValueError, KeyError, TypeError):
        raise UnableToRenew("token record without a renewal basis", reason="legacy_record") from None


class RenewOperation:
    """``RequestType …/Renew`` → RSTR with a new token for the same subject and relying party."""

    def __init__(
        self,
        resolver: TargetResolver,
        directory: RelyingPartyDirectory,
        minter: TokenMinter,
        subjects: SubjectAuthorizer,
        clock: Clock,
        policy: RenewalPolicy,
        client_keys: TrustedClientKeys | None = None,
    ) -> None:
        self._resolver = resolver
        self._directory = directory
        self._minter = minter
        self._subjects = subjects
        self._clock = clock
        self._policy = policy
        self._client_keys = client_keys or TrustedClientKeys(None)

    def __call__(self, call: TrustCall) -> TrustReply:
        """Renew the caller's own live, renewable token."""
        rst = parse_rst(call.rst, call.trust_ns, call.operation)
        target = self._resolver.resolve(rst.target)
        try:
            record = owned_record(call, target, UnableToRenew)
            basis = renewal_basis(record)
            self._check_renewable(record, basis)
            party = self._directory.registered(record.relying_party)
            if party is None:
                raise UnableToRenew("relying party no longer registered", reason="rp_gone")
            principal = self._subjects.authorize(record.subject, self._policy.lifecycle_roles)
            plan = self._plan(record, basis, party, principal, rst.context)
            response, content = self._minter.mint(plan, renews=record.token_id)
        except STSError as error:
            audit(call, "renew", "failure", target.token_id, error.reason)
            raise
        audit(call, "renew", "success", content.assertion_id, f"renewed {record.token_id}")
        return TrustReply(issued_rstr(response), call.operation, call.trust_ns)

    def _check_renewable(self, record: TokenRecord, basis: RenewalBasis) -> None:
        """Live, renewable, inside its window (± skew, as Validate) or its renewal window, chain not too old."""
        now = self._clock.now().timestamp()
        skew = self._policy.clock_skew
        if record.status != "issued":  # renewed (it has a successor) or cancelled
            raise UnableToRenew(f"token {record.status}", reason=record.status)
        if not record.renewable:
            raise UnableToRenew("token not renewable", reason="not_renewable")
        if now < record.not_before - skew:
            raise UnableToRenew("token not yet valid", reason="not_yet_valid")
        expired_at = record.not_on_or_after + skew
        if now >= expired_at and (
            not record.renew_after_expiry or now >= expired_at + self._policy.renew_after_expiry
        ):
            raise UnableToRenew("token expired", reason="expired")
        if now > basis.chain_started + self._policy.max_renewal_age:
            raise UnableToRenew("maximum renewal age exceeded", reason="max_renewal_age")

    def _plan(
        self,
        record: TokenRecord,
        basis: RenewalBasis,
        party: ResolvedParty,
        principal: Principal,
        context: str | None,
    ) -> MintPlan:
        name_id, name_format, attributes = subject_and_claims(principal, party, basis.requested_claims)
        return MintPlan(
            trust_ns=basis.trust_ns,
            context=context,
            token_type=resolve_token_type(basis.token_type, SamlVersion.SAML20),
            key_kind=basis.key_kind,
            key_type_uri=basis.key_type_uri,
            party=party,
            subject=principal.qualified_name,
            name_id=name_id,
            name_id_format=name_format,
            attributes=attributes,
            authn_context=basis.authn_context,
            renewing=Renewing(record.renewable, record.renew_after_expiry),
            key_bits=basis.key_bits,
            use_key_info=self._use_key(basis),
            requested_claims=basis.requested_claims,
            chain_started=basis.chain_started,
            chain=basis.chain,
        )

    def _use_key(self, basis: RenewalBasis) -> etree._Element | None:
        """A PublicKey token's key, checked again: still a registered client key, its certificate unexpired."""
        if basis.use_key is None:
            return None
        stored = parse_untrusted(basis.use_key.encode(), ParserLimits())
        try:
            return use_key_info(stored, self._clock.now(), self._client_keys)
        except UseKeyRejected:
            raise UnableToRenew("client key no longer accepted", reason="use_key_rejected") from None
