"""Validate with token transformation (WS-Trust 1.3 §7): a valid token exchanged for a new one, deny by default.

A Validate request whose ``TokenType`` names a SAML token type (any accepted spelling) and that carries an
``AppliesTo`` asks for the status of the target **and** a new token of that type for that relying party, as Apache
CXF's ``TokenValidateOperation`` answers. The new token is an issuance for the subject of the validated token, so:

1. before the target is looked at: the token type is one the STS issues (else ``wst:InvalidRequest``, as for
   any TokenType Validate cannot answer), the key type is
   Bearer with no key material (else ``wst:InvalidRequest``), the target is the assertion itself, not a reference or
   the encrypted form (else ``wst:InvalidRequest``: only the assertion says who issued it and which delegation
   chain it records), ``AppliesTo`` names a registered relying party (else ``wst:InvalidRequest`` when absent,
   ``wst:InvalidScope`` when unknown; never the default relying party) whose transformation policy names at
   least one source (else ``wst:RequestFailed``);
2. the target is validated exactly as a status-only Validate does; an invalid one gets the ``status/invalid``
   answer and nothing is issued;
3. a valid one must belong to an allowed source: this STS's own token (live in the token store) or the assertion of
   a ``[[trusted_issuers]]`` entry, verified again with the pinned keys of the issuer it names
   (:class:`~sts.tokens.trust.IssuerTrustList`, which also binds the issuer's name and user mapping to its keys);
   a OneTimeUse assertion is used up;
4. the subject, as its user store has it now (exists, enabled, allowed domain and role, as a Renew decides it again);
   of this STS's own token, the one its record names (without a token store, its NameID, only when that is the
   user name);
5. the caller: the token's own subject, or a caller the relying party's delegation policy allows for OnBehalfOf,
   for this subject (the new token names the subject only, as an OnBehalfOf token does), with a token addressed to
   one of its delegation audiences when it lists some;
6. a delegation chain the token records is kept, within the relying party's maximum depth.

Every refusal of a valid token is ``wst:RequestFailed`` (the reason in the audit log only), except a token outside
the delegation audiences: ``wst:InvalidSecurityToken``, as OnBehalfOf refuses it. The new token is minted
like any other: claims from the user's current entry within the relying party's claim ceiling, signed, encrypted
for the relying party, recorded; it does not outlive the validated token and is not renewable.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from sts.auth.subjects import SubjectAuthorizer
from sts.auth.users import Principal
from sts.clock import Clock
from sts.errors import BadRequest, InvalidRequest, InvalidScope, RequestFailed, STSError
from sts.operations.call import TrustCall
from sts.operations.delegation import (
    caller_fingerprint,
    check_delegation_audience,
    nameid_is_user_name,
)
from sts.operations.events import audit
from sts.operations.minting import MintPlan, TokenMinter, applies_to_echo, subject_and_claims
from sts.operations.targets import ResolvedTarget
from sts.relying_parties.directory import RelyingPartyDirectory, ResolvedParty
from sts.relying_parties.transformation import source_of
from sts.stores.base import ReplayCache, TokenStore
from sts.tokens import authn
from sts.tokens.base import Delegate
from sts.tokens.saml2 import BEARER
from sts.tokens.trust import ONE_TIME_NAMESPACE, SELF, IssuerTrustList, TrustedAssertion, first_use
from sts.tokens.validation import AssertionRejected, VerifiedAssertion, saml_version
from sts.wstrust.model import RequestSecurityToken
from sts.wstrust.rstr import IssuedTokenResponse
from sts.wstrust.tokentypes import KeyKind, SamlVersion, TokenType, resolve_key_type, resolve_token_type


@dataclass(frozen=True, slots=True)
class TransformRequest:
    """What a transformation asks for, checked before the target is looked at."""

    party: ResolvedParty
    token_type: TokenType
    key_type_uri: str
    target: etree._Element  # the assertion as sent (verified again against its issuer's pinned keys)


@dataclass(frozen=True, slots=True)
class Transformed:
    """The new token and what the audit says about it."""

    response: IssuedTokenResponse
    subject: str
    chain: tuple[str, ...]
    source_token: str


class TokenTransformer:
    """Decides and mints the token of a Validate request that asks for one (see the module's steps)."""

    def __init__(
        self,
        directory: RelyingPartyDirectory,
        minter: TokenMinter,
        trust: IssuerTrustList,
        subjects: SubjectAuthorizer,
        tokens: TokenStore | None,
        replay: ReplayCache,
        clock: Clock,
    ) -> None:
        self._directory = directory
        self._minter = minter
        self._trust = trust
        self._subjects = subjects
        self._tokens = tokens
        self._replay = replay
        self._clock = clock

    def prepare(self, call: TrustCall, rst: RequestSecurityToken) -> TransformRequest:
        """Step 1: the request's shape and the relying party's policy, before the target is examined."""
        try:
            return self._prepare(rst)
        except STSError as error:
            audit(call, "validate", "failure", token_id="", reason=error.reason)
            raise

    def _prepare(self, rst: RequestSecurityToken) -> TransformRequest:
        try:
            token_type = resolve_token_type(rst.token_type, SamlVersion.SAML20)
        except BadRequest:  # as before transformation existed: a TokenType Validate cannot answer
            raise InvalidRequest("unsupported Validate TokenType", reason="validate_token_type") from None
        kind, key_type_uri = resolve_key_type(rst.key_type, rst.trust)
        if kind is not KeyKind.BEARER or rst.key_size or rst.entropy is not None or rst.use_key is not None:
            raise InvalidRequest("transformation issues bearer tokens", reason="transform_key_type")
        if rst.target is None or saml_version(rst.target) is None:
            raise InvalidRequest("transformation needs the assertion", reason="transform_needs_assertion")
        if rst.applies_to is None:
            raise InvalidRequest("transformation needs AppliesTo", reason="transform_without_applies_to")
        party = self._directory.resolve(rst.applies_to.address)
        if party.fallback:  # a token is exchanged only for a relying party the operator registered
            raise InvalidScope("AppliesTo matches no relying party", reason="unknown_applies_to")
        if not party.rp.transformation.enabled:
            raise RequestFailed("transformation not allowed", reason="transform_not_allowed")
        return TransformRequest(party, token_type, key_type_uri, rst.target)

    def transform(
        self, call: TrustCall, rst: RequestSecurityToken, asked: TransformRequest, target: ResolvedTarget
    ) -> Transformed:
        """Steps 3-6 for a target Validate found valid, then mint; a refusal is audited and raised."""
        try:
            return self._transform(call, rst, asked, target)
        except STSError as error:
            audit(
                call, "validate", "failure", token_id=target.token_id, reason=error.reason,
                applies_to=asked.party.rp.address,
            )
            raise

    def _transform(
        self, call: TrustCall, rst: RequestSecurityToken, asked: TransformRequest, target: ResolvedTarget
    ) -> Transformed:
        party = asked.party
        trusted = self._source(asked.target)
        source = source_of(None if trusted.issuer.source == SELF else trusted.issuer.entity_id)
        if not party.rp.transformation.allows(source):
            raise RequestFailed("source not allowed", reason="transform_source_not_allowed")
        subject = self._subject(trusted, target)
        _check_caller(call, party, subject, trusted.verified)
        recorded = trusted.verified.delegates
        if len(recorded) > party.rp.max_delegation_depth:
            raise RequestFailed("delegation chain too deep", reason="chain_too_deep")
        now = self._clock.now()
        # SAML 2.0 core §2.5.1.5 OneTimeUse: one use in all, whether as ActAs/OnBehalfOf or in exchange.
        one_time = trusted.verified.one_time_use or trusted.issuer.single_use
        if one_time and not first_use(self._replay, ONE_TIME_NAMESPACE, trusted, now):
            raise RequestFailed("one-time token presented again", reason="token_reused")
        name_id, name_format, attributes = subject_and_claims(subject, party, rst.claims)
        expires = trusted.verified.not_on_or_after
        plan = MintPlan(
            trust=rst.trust,
            context=rst.context,
            token_type=asked.token_type,
            key_kind=KeyKind.BEARER,
            key_type_uri=asked.key_type_uri,
            party=party,
            subject=subject.qualified_name,
            name_id=name_id,
            name_id_format=name_format,
            attributes=attributes,
            authn_context=authn.PREVIOUS_SESSION,  # the subject authenticated earlier, to the token's issuer
            applies_to=applies_to_echo(rst.applies_to, party),
            requested_claims=rst.claims,
            delegates=tuple(Delegate(name, BEARER, now) for name in recorded),
            expires_by=expires.timestamp() if expires is not None else None,
            delegated=True,  # never renewable: a renewal would outlive the validated token
        )
        response = self._minter.mint(plan)
        return Transformed(response, subject.qualified_name, recorded, trusted.verified.assertion_id)

    def _source(self, assertion: etree._Element) -> TrustedAssertion:
        """The issuer the assertion belongs to: the one it names, whose pinned keys verify it."""
        try:
            return self._trust.verify(assertion, self._clock.now())
        except AssertionRejected as rejected:
            raise RequestFailed("source not trusted", reason=f"transform_source_{rejected.reason}") from None

    def _subject(self, trusted: TrustedAssertion, target: ResolvedTarget) -> Principal:
        """This STS's tokens name the subject their record keeps (without a token store, a NameID that is the user
        name); others' the mapped name, as for delegation."""
        if trusted.issuer.source == SELF:
            if self._tokens is not None and target.record is None:
                raise RequestFailed("token not in the token store", reason="token_unknown")
            if target.record is None and not nameid_is_user_name(self._directory, trusted.verified):
                raise RequestFailed("subject not known", reason="nameid_not_user_name")
            qualified = target.record.subject if target.record is not None else trusted.verified.subject
        else:
            try:
                qualified = f"{trusted.issuer.map_to_domain}/{trusted.user_name}"
            except AssertionRejected as rejected:
                raise RequestFailed("no subject", reason=rejected.reason) from None
        try:
            return self._subjects.authorize(qualified)
        except STSError as refusal:
            raise RequestFailed("subject refused", reason=f"subject_{refusal.reason}") from None


def _check_caller(call: TrustCall, party: ResolvedParty, subject: Principal, verified: VerifiedAssertion) -> None:
    """The subject may exchange its own token; anyone else acts on its behalf and needs the RP's OnBehalfOf rule,
    including its delegation audiences (the same rule as an OnBehalfOf Issue, so Validate is no way around it)."""
    caller = call.caller.principal
    if caller.qualified_name.casefold() == subject.qualified_name.casefold():
        return
    policy = party.rp.delegation
    if not (
        policy.enabled
        and policy.allows_caller(caller, caller_fingerprint(call))
        and policy.mode.allows(act_as=False)
    ):
        raise RequestFailed("caller may not exchange this token", reason="caller_not_allowed")
    check_delegation_audience(party, verified)
    if not policy.allows_subject(caller, subject):
        raise RequestFailed("caller may not exchange this token", reason="caller_not_allowed")
