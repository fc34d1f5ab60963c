"""Renew (WS-Trust 1.3 §5): a new token in place of a live token of the caller, decided again like a fresh Issue.

Kept from the token being renewed: its relying party, found by the registered address recorded with the token
(never by AppliesTo matching, so a token never moves to a prefix, regex or default relying party), its token
type and key type, the request's ``wst:Claims``, the renewal flags and the start of the renewal chain.

Decided again, as a fresh Issue would: the subject must still exist, be enabled, be in an allowed domain and
hold an allowed role (read from the user store now, not from the verified-credential cache); its NameID and
claims come from the current user store and the relying party's current settings (claim ceiling, mapping,
NameID source, lifetime, encryption); a PublicKey token's key must still be a registered, unexpired client key.
A symmetric holder-of-key token gets a fresh proof key.

The answer is written in the version of the Renew request, as every answer is (its RSTR, KeyType and proof-token
URIs; the Action header already was), whichever version the token was issued in: a client that issued in the
February 2005 version and renews in WS-Trust 1.3 reads a 1.3 answer.

A renewal chain has one live token: the old token is retired and the new one recorded in one transaction, so of
any number of concurrent renewals of one token exactly one succeeds; a renewed token validates as invalid and
cannot be renewed again. Time is the injected clock, with the validity skew Validate applies.
"""

from __future__ import annotations

from dataclasses import dataclass

from sts.auth.subjects import SubjectAuthorizer
from sts.auth.users import Principal
from sts.clock import Clock
from sts.crypto.keywrap import ClientKey, TrustedClientKeys, UseKeyRejected, accept_client_key
from sts.errors import STSError, UnableToRenew
from sts.operations.call import TrustCall, TrustReply, confidential_answer
from sts.operations.events import audit
from sts.operations.minting import MintPlan, TokenMinter, subject_and_claims
from sts.operations.records import RenewalRecord
from sts.operations.targets import TargetResolver, owned_record
from sts.relying_parties.directory import RelyingPartyDirectory, ResolvedParty
from sts.stores.base import TokenRecord
from sts.wstrust.model import Renewing
from sts.wstrust.rst import parse_rst
from sts.wstrust.rstr import issued_rstr
from sts.wstrust.tokentypes import KeyKind
from sts.wstrust.version import TrustVersion


@dataclass(frozen=True, slots=True)
class RenewalPolicy:
    """``[lifecycle]`` and ``[tokens]`` values that decide whether a token may still be renewed."""

    clock_skew: int = 60
    renew_after_expiry: int = 1800
    max_renewal_age: int = 86400
    # Roles the caller must hold for the lifecycle bindings (None: the Issue roles are enough).
    lifecycle_roles: frozenset[str] | None = None


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
        legacy_unproven_use_key: bool = False,
        *,
        allow_insecure_transport: bool = False,
    ) -> None:
        self._allow_insecure = allow_insecure_transport
        self._legacy_unproven = legacy_unproven_use_key
        self._resolver = resolver
        self._directory = directory
        self._minter = minter
        self._subjects = subjects
        self._clock = clock
        self._policy = policy
        self._client_keys = client_keys or TrustedClientKeys(None)

    def __call__(self, call: TrustCall) -> TrustReply:
        """Renew the caller's own live, renewable token."""
        request = call.request
        rst = parse_rst(request.rst, request.trust, request.operation)
        target = self._resolver.resolve(rst.target)
        try:
            record = owned_record(call, target, UnableToRenew)
            renewal = RenewalRecord.from_json(record.data)
            self._check_renewable(record, renewal)
            party = self._directory.registered(record.relying_party)
            if party is None:
                raise UnableToRenew("relying party no longer registered", reason="rp_gone")
            principal = self._subjects.authorize(record.subject, self._policy.lifecycle_roles)
            self._check_proof(renewal.client_key, call)
            if renewal.key_kind is KeyKind.SYMMETRIC and not confidential_answer(request, self._allow_insecure):
                # the fresh proof key would go out in clear (WS-Trust 1.3 §4.4.3)
                raise UnableToRenew("symmetric proof key over plain HTTP", reason="proof_key_not_confidential")
            plan = self._plan(record, renewal, party, principal, request.trust, rst.context)
            response = self._minter.mint(plan, renews=record.token_id)
        except STSError as error:
            audit(call, "renew", "failure", token_id=target.token_id, reason=error.reason)
            raise
        token_id = response.reference.identifier
        audit(call, "renew", "success", token_id=token_id, reason=f"renewed {record.token_id}")
        return TrustReply(issued_rstr(response), request.operation, request.trust)

    def _check_renewable(self, record: TokenRecord, renewal: RenewalRecord) -> None:
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
        if now > renewal.chain_started + self._policy.max_renewal_age:
            raise UnableToRenew("maximum renewal age exceeded", reason="max_renewal_age")

    def _plan(
        self,
        record: TokenRecord,
        renewal: RenewalRecord,
        party: ResolvedParty,
        principal: Principal,
        trust: TrustVersion,
        context: str | None,
    ) -> MintPlan:
        """The new token as a fresh Issue would make it, answered in the renewal request's version ``trust``."""
        name_id, name_format, attributes = subject_and_claims(principal, party, renewal.requested_claims)
        return MintPlan(
            trust=trust,
            context=context,
            token_type=renewal.token_type,
            key_kind=renewal.key_kind,
            key_type_uri=_key_type_uri(renewal, trust),
            party=party,
            subject=principal.qualified_name,
            name_id=name_id,
            name_id_format=name_format,
            attributes=attributes,
            authn_context=renewal.authn_context,
            renewing=Renewing(record.renewable, record.renew_after_expiry),
            key_bits=renewal.key_bits,
            client_key=self._client_key(renewal.client_key),
            requested_claims=renewal.requested_claims,
            chain_started=renewal.chain_started,
            chain=renewal.chain,
        )

    def _check_proof(self, key: ClientKey | None, call: TrustCall) -> None:
        """A PublicKey token is renewed only by a request signed with its key (CXF ``SAMLTokenRenewer``
        ``verifyProofOfPossession``): a password or another key proves nothing about the holder of this one."""
        if key is None:
            return
        proof = call.caller.proof
        if proof is None or not key.same_key(proof.certificate):
            raise UnableToRenew("renewal not signed with the token's key", reason="no_proof_of_possession")

    def _client_key(self, key: ClientKey | None) -> ClientKey | None:
        """A PublicKey token's key, checked again: still a registered client key, its certificate unexpired."""
        if key is None:
            return None
        try:
            # Proven: only a request signed with this key gets here (_check_proof).
            accept_client_key(
                key, self._clock.now(), self._client_keys, check_registered=self._legacy_unproven, proven=True
            )
        except UseKeyRejected:
            raise UnableToRenew("client key no longer accepted", reason="use_key_rejected") from None
        return key


def _key_type_uri(renewal: RenewalRecord, trust: TrustVersion) -> str:
    """The token's KeyType as the renewal request's version spells it (WS-Trust 1.3 §9.2): the Issue request's own
    spelling when it was of that version (February 2005 ``wsid:NoProofKey`` stays), else that version's URI."""
    return renewal.key_type_uri if renewal.trust is trust else trust.key_type(renewal.key_kind)
