"""OnBehalfOf (WS-Trust 1.3 §9.1) and ActAs (WS-Trust 1.4 §3.2): a token naming someone other than the caller.

Deny by default: the relying party's :class:`~sts.relying_parties.delegation.DelegationPolicy` must list the caller.
The steps, each failure final (the caller learns nothing about the token before it is allowed to delegate):

1. shape: OnBehalfOf and ActAs together are ``wst:InvalidRequest``; a token that is neither a SAML 1.1/2.0
   assertion nor a ``wsse:UsernameToken`` is ``wst:BadRequest``;
2. policy: delegation configured, caller listed, mode allowed, else ``wst:RequestFailed``;
3. the token: an assertion through :class:`~sts.tokens.trust.IssuerTrustList` (the XSW-proof verifier of Validate,
   pinned issuer keys, validity window, audience when the policy names some, revocation and one-time use); a
   UsernameToken as a login of that user (a wrong password counts towards that user's lockout). Any refusal is
   ``wst:InvalidSecurityToken``;
4. the subject: of this STS's own token, the one its token-store record names (without a token store, its NameID,
   and only when that is the user name: else ``wst:InvalidSecurityToken``); as its user store has it now (known,
   enabled, domain and role of ``[security]``), else ``wst:InvalidSecurityToken`` (unknown or disabled) or
   ``wst:RequestFailed`` (not allowed);
5. the policy's subject rule (any, same domain, role), then the chain: ActAs appends the caller and the result may
   not be longer than the maximum depth; OnBehalfOf of a token that records a chain would hide it: refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from sts import ns
from sts.audit import AuditEvent, emit
from sts.auth.subjects import SubjectAuthorizer
from sts.auth.users import Principal, UserStoreError, split_qualified
from sts.auth.validators import X509_SIGNATURE, CallerInfo, UsernameTokenAuthenticator
from sts.clock import Clock
from sts.crypto.keystore import fingerprint
from sts.errors import BadRequest, InvalidRequest, InvalidTrustToken, RequestFailed, STSError
from sts.operations.call import TrustCall
from sts.policy.nameid import USERNAME
from sts.relying_parties.delegation import DelegationPolicy
from sts.relying_parties.directory import RelyingPartyDirectory, ResolvedParty
from sts.stores.base import ReplayCache, TokenStore
from sts.tokens import authn
from sts.tokens.base import Delegate
from sts.tokens.saml2 import BEARER, HOLDER_OF_KEY
from sts.tokens.trust import ONE_TIME_NAMESPACE, SELF, IssuerTrustList, TrustedAssertion, first_use
from sts.tokens.validation import AssertionRejected, VerifiedAssertion, saml_version
from sts.wstrust.model import RequestSecurityToken

_USERNAME_TOKEN = ns.qn(ns.WSSE, "UsernameToken")
_RETIRED = ("renewed", "cancelled")


@dataclass(frozen=True, slots=True)
class Delegation:
    """The outcome of an allowed delegation: whom the token names, the chain it records and the source token."""

    act_as: bool
    subject: Principal
    delegates: tuple[Delegate, ...]  # ActAs: the chain of the handed-in token plus the caller; OnBehalfOf: none
    source_token: str  # the handed-in assertion's ID ("" for a UsernameToken)
    expires_by: float | None  # the handed-in assertion's NotOnOrAfter: the new token does not outlive it
    # How the subject authenticated (SAML 2.0 Authentication Context §3.4): a handed-in assertion's subject in an
    # earlier session (PreviousSession), a handed-in UsernameToken's by its password, now.
    authn_context: str

    @property
    def chain(self) -> tuple[str, ...]:
        """The acting services, oldest first (for the audit log)."""
        return tuple(delegate.name for delegate in self.delegates)


class DelegationResolver:
    """Applies the delegation steps to one Issue request."""

    def __init__(
        self,
        trust: IssuerTrustList,
        subjects: SubjectAuthorizer,
        authenticator: UsernameTokenAuthenticator,
        tokens: TokenStore | None,
        replay: ReplayCache,
        clock: Clock,
        directory: RelyingPartyDirectory,
    ) -> None:
        self._directory = directory
        self._trust = trust
        self._subjects = subjects
        self._authenticator = authenticator
        self._tokens = tokens
        self._replay = replay
        self._clock = clock

    def resolve(self, call: TrustCall, rst: RequestSecurityToken, party: ResolvedParty) -> Delegation:
        """The delegation a request asks for, or the fault of the first step that refuses it (audited)."""
        try:
            return self._resolve(call, rst, party)
        except STSError as error:
            _audit_refusal(call, party, error.reason)
            raise

    def _resolve(self, call: TrustCall, rst: RequestSecurityToken, party: ResolvedParty) -> Delegation:
        if rst.on_behalf_of is not None and rst.act_as is not None:
            raise InvalidRequest("OnBehalfOf and ActAs together", reason="malformed_delegation_element")
        act_as = rst.act_as is not None
        token = rst.act_as if rst.act_as is not None else rst.on_behalf_of
        assert token is not None  # noqa: S101 - the caller only resolves requests that carry one
        is_assertion = saml_version(token) is not None
        if not is_assertion and token.tag != _USERNAME_TOKEN:
            raise BadRequest("unsupported token in OnBehalfOf/ActAs", reason="unsupported_delegation_token")
        policy = party.rp.delegation
        _check_rule(policy, call, act_as)
        if is_assertion:
            trusted = self._assertion(token, policy, party)
            subject, recorded = self._assertion_subject(trusted), trusted.verified.delegates
            source, expires = trusted.verified.assertion_id, trusted.verified.not_on_or_after
            context = authn.PREVIOUS_SESSION
        else:
            subject, recorded, source, expires = self._username_token(token, call), (), "", None
            context = authn.password_context(call.request.info.secure_transport)
        if not policy.allows_subject(call.caller.principal, subject):
            raise RequestFailed("subject not allowed for delegation", reason="subject_not_allowed")
        delegates = self._chain(call, policy, act_as, recorded)
        return Delegation(act_as, subject, delegates, source, expires.timestamp() if expires else None, context)

    def _assertion(self, token: etree._Element, policy: DelegationPolicy, party: ResolvedParty) -> TrustedAssertion:
        """Verify the handed-in assertion; every refusal is ``wst:InvalidSecurityToken``."""
        try:
            trusted = self._trust.verify(token, self._clock.now())
        except AssertionRejected as rejected:
            raise InvalidTrustToken("delegated token refused", reason=rejected.reason) from None
        verified = trusted.verified
        check_delegation_audience(party, verified)
        if trusted.issuer.source == SELF and self._tokens is not None:
            record = self._tokens.get(verified.assertion_id)
            if record is None:
                raise InvalidTrustToken("token not in the token store", reason="token_unknown")
            if record.status in _RETIRED:
                raise InvalidTrustToken("delegated token retired", reason="token_revoked")
        one_time = verified.one_time_use or trusted.issuer.single_use
        if one_time and not first_use(self._replay, ONE_TIME_NAMESPACE, trusted, self._clock.now()):
            raise InvalidTrustToken("one-time token presented again", reason="token_reused")
        return trusted

    def _assertion_subject(self, trusted: TrustedAssertion) -> Principal:
        """The subject as its store has it: this STS's tokens by their record (without a token store, by a NameID
        that is the user name), others' by the mapped name."""
        if trusted.issuer.source == SELF:
            record = self._tokens.get(trusted.verified.assertion_id) if self._tokens is not None else None
            if record is None and not nameid_is_user_name(self._directory, trusted.verified):
                raise InvalidTrustToken("delegated subject not known", reason="nameid_not_user_name")
            qualified = record.subject if record is not None else trusted.verified.subject
        else:
            try:
                qualified = f"{trusted.issuer.map_to_domain}/{trusted.user_name}"
            except AssertionRejected as rejected:
                raise InvalidTrustToken("no subject in delegated token", reason=rejected.reason) from None
        return self._authorized(qualified)

    def _authorized(self, qualified: str) -> Principal:
        try:
            split_qualified(qualified)
            return self._subjects.authorize(qualified)
        except UserStoreError:
            raise InvalidTrustToken("malformed delegated subject", reason="subject_unknown") from None
        except STSError as refusal:
            if refusal.reason in ("unknown_user", "user_disabled", "bad_username"):
                raise InvalidTrustToken("delegated subject unknown", reason=f"subject_{refusal.reason}") from None
            raise RequestFailed("subject not allowed for delegation", reason="subject_not_allowed") from None

    def _username_token(self, token: etree._Element, call: TrustCall) -> Principal:
        info = call.request.info
        try:
            return self._authenticator.authenticate_delegated(
                token, CallerInfo(info.correlation_id, info.client_address, info.secure_transport)
            )
        except STSError as refusal:
            reason = "delegated_password_invalid" if refusal.reason == "wrong_password" else (
                f"delegated_{refusal.reason}"
            )
            raise InvalidTrustToken("delegated credential refused", reason=reason) from None

    def _chain(
        self, call: TrustCall, policy: DelegationPolicy, act_as: bool, recorded: tuple[str, ...]
    ) -> tuple[Delegate, ...]:
        """ActAs: the recorded chain plus the caller, within the depth; OnBehalfOf: nothing, and no chain to hide."""
        if not act_as:
            if recorded:
                raise RequestFailed("OnBehalfOf would hide a delegation chain", reason="chain_laundering")
            return ()
        if len(recorded) + 1 > policy.max_depth:
            raise RequestFailed("delegation chain too deep", reason="chain_too_deep")
        now = self._clock.now()
        method = HOLDER_OF_KEY if call.caller.method == X509_SIGNATURE else BEARER
        earlier = tuple(Delegate(name, BEARER, now) for name in recorded)
        return (*earlier, Delegate(call.caller.principal.qualified_name, method, now))


def caller_fingerprint(call: TrustCall) -> str | None:
    """The SHA-256 fingerprint of the certificate the caller proved possession of, if it did (X.509 callers carry
    a ``proof`` with the certificate); None for password and assertion callers: ``cert:`` entries never match."""
    proof = call.caller.proof
    if proof is None:
        return None
    return fingerprint(proof.certificate)


def check_delegation_audience(party: ResolvedParty, verified: VerifiedAssertion) -> None:
    """``--delegation-audience``: a token used on someone else's behalf must be addressed to one of the relying
    party's listed audiences (SAML 2.0 core §2.5.1.4), whether handed in as OnBehalfOf/ActAs or exchanged by a
    caller other than its subject (Validate with transformation); no list, no rule. Else
    ``wst:InvalidSecurityToken``."""
    audiences = party.rp.delegation_audiences
    if audiences and not verified.addressed_to(audiences):
        raise InvalidTrustToken("delegated token for another audience", reason="token_audience_mismatch")


def nameid_is_user_name(directory: RelyingPartyDirectory, verified: VerifiedAssertion) -> bool:
    """Whether the NameID of this STS's own token is its subject's user name: only when the relying party it was
    issued to (its one audience) takes the NameID from ``username``. Without a token store the NameID is all that
    names the subject, and ``email`` or a claim URI make it a claim value, which may be another user's name."""
    if len(verified.audiences) != 1 or len(verified.audiences[0]) != 1:  # this STS writes one, of one audience
        return False
    [audience] = verified.audiences[0]
    return directory.nameid_sources(audience) == {USERNAME}


def _check_rule(policy: DelegationPolicy, call: TrustCall, act_as: bool) -> None:
    if not policy.enabled:
        raise RequestFailed("delegation not configured", reason="delegation_not_configured")
    if not policy.allows_caller(call.caller.principal, caller_fingerprint(call)):
        raise RequestFailed("caller may not delegate", reason="caller_not_allowed")
    if not policy.mode.allows(act_as):
        raise RequestFailed("delegation mode not allowed", reason="mode_not_allowed")


def _audit_refusal(call: TrustCall, party: ResolvedParty, reason: str) -> None:
    principal, info = call.caller.principal, call.request.info
    emit(
        AuditEvent(
            event="delegation",
            outcome="failure",
            correlation_id=info.correlation_id,
            client_address=info.client_address,
            user=principal.name,
            domain=principal.domain,
            operation=call.request.operation.value,
            applies_to=party.rp.address,
            reason=reason,
        )
    )
