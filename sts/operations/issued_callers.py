"""Issued-token callers: a signed SAML assertion from a trusted identity provider instead of a password (bearer over
TLS, WSS SAML Token Profile 1.1 §3.3; AD FS's issuedtokenmixed endpoints, WSO2 scenarios 33/34).

Order of checks, on the ``IssuedTokenOverTransport`` endpoint only:

1. the one ``wsse:Security`` header for us; every identifier in the message unique; its ``wsu:Timestamp``
   (required) fresh; exactly one SAML assertion in it and no other credential;
2. transport: TLS (a bearer token is only as safe as the channel);
3. the assertion through the issuer trust list (the XSW-proof verifier of Validate, pinned keys of the issuer it
   names): a signature that does not verify is ``wsse:FailedCheck``; then the issuer may authenticate callers
   (``callers = true``), the time window, every AudienceRestriction naming this STS, bearer confirmation only;
4. one-time use (``OneTimeUse`` or the issuer's ``single_use``): a second presentation is ``wsse:InvalidSecurity``;
5. the user mapped from NameID (or the configured attribute) into the issuer's domain: known, enabled, not locked
   out, in an allowed domain and holding an allowed role. Roles come from the user store, never the assertion.

Every refusal of 3 and 5 is the one ``wsse:FailedAuthentication`` of password logins (the reason is audited).
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from sts import ns
from sts.audit import login
from sts.auth.subjects import SubjectAuthorizer
from sts.auth.users import account_key
from sts.auth.validators import AuthenticatedCaller, CallerInfo
from sts.clock import Clock
from sts.errors import FailedAuthentication, FailedCheck, InvalidSecurity, STSError, UnsupportedSecurityToken
from sts.soapenv import SoapVersion
from sts.stores.base import LockoutStore, ReplayCache
from sts.tokens.trust import ONE_TIME_NAMESPACE, SELF, IssuerTrustList, TrustedAssertion, first_use
from sts.tokens.validation import AssertionRejected, saml_version
from sts.wss.header import check_unique_ids, find_security_header
from sts.wss.timestamp import FreshnessPolicy, check_timestamp
from sts.xmlutil import element_children

ISSUED_TOKEN = "saml-bearer"  # noqa: S105 - AuthenticatedCaller.method of an issued-token caller
_BEARER = frozenset({"urn:oasis:names:tc:SAML:2.0:cm:bearer", "urn:oasis:names:tc:SAML:1.0:cm:bearer"})
_SIGNATURE_REASONS = frozenset({"token_signature_invalid", "token_wrapped", "issuer_key_mismatch"})


@dataclass(frozen=True, slots=True)
class IssuedTokenPolicy:
    """What the endpoint requires besides the assertion itself."""

    audience: str  # this STS's entity id ([issuer] name)
    freshness: FreshnessPolicy = FreshnessPolicy()
    allow_insecure_transport: bool = False


class IssuedTokenAuthenticator:
    """Authenticates the caller of one request by the trusted assertion in its WS-Security header."""

    def __init__(
        self,
        trust: IssuerTrustList,
        subjects: SubjectAuthorizer,
        lockout: LockoutStore,
        replay: ReplayCache,
        policy: IssuedTokenPolicy,
        clock: Clock,
    ) -> None:
        self._trust = trust
        self._subjects = subjects
        self._lockout = lockout
        self._replay = replay
        self._policy = policy
        self._clock = clock

    def authenticate(
        self, headers: tuple[etree._Element, ...], version: SoapVersion, info: CallerInfo
    ) -> AuthenticatedCaller:
        """The caller the assertion names, or the WS-Security fault; audits both outcomes."""
        audit = _Audit(info)
        try:
            caller = self._authenticate(headers, version, info, audit)
        except STSError as error:
            audit.emit("failure", error.reason)
            raise
        audit.emit("success", ISSUED_TOKEN)
        return caller

    def _authenticate(
        self, headers: tuple[etree._Element, ...], version: SoapVersion, info: CallerInfo, audit: _Audit
    ) -> AuthenticatedCaller:
        assertion = self._read_header(find_security_header(headers, version))
        if not (info.secure_transport or self._policy.allow_insecure_transport):
            raise FailedAuthentication("bearer assertion over plain HTTP", reason="insecure_transport")
        try:
            trusted = self._trust.verify(assertion, self._clock.now())
        except AssertionRejected as rejected:
            if rejected.reason in _SIGNATURE_REASONS:
                raise FailedCheck("assertion signature invalid", reason=rejected.reason) from None
            raise FailedAuthentication("assertion refused", reason=rejected.reason) from None
        audit.issuer = trusted.issuer.entity_id
        self._check_use(trusted)
        qualified = self._user(trusted)
        audit.user = qualified
        principal = self._subjects.authorize(qualified)  # FailedAuthentication with the store's reason
        state = self._lockout.state(account_key(principal.domain, principal.name))
        if state is not None and state.locked_until > self._clock.now().timestamp():
            raise FailedAuthentication("account locked", reason="account_locked")
        return AuthenticatedCaller(principal, ISSUED_TOKEN)

    def _read_header(self, security: etree._Element) -> etree._Element:
        """Timestamp (fresh, required) and exactly one SAML assertion; nothing else that could authenticate."""
        check_unique_ids(security.getroottree().getroot())
        children = element_children(security)
        timestamps = [child for child in children if child.tag == ns.qn(ns.WSU, "Timestamp")]
        assertions = [child for child in children if saml_version(child) is not None]
        others = [child for child in children if child not in timestamps and child not in assertions]
        if others:
            raise UnsupportedSecurityToken("only a Timestamp and one assertion", reason="unexpected_security_token")
        if len(timestamps) != 1:
            raise InvalidSecurity("exactly one wsu:Timestamp required", reason="no_timestamp")
        check_timestamp(timestamps[0], self._clock, self._policy.freshness)
        if len(assertions) != 1:
            raise FailedAuthentication("exactly one assertion required", reason="assertion_count")
        return assertions[0]

    def _check_use(self, trusted: TrustedAssertion) -> None:
        """Issuer allowed to authenticate callers, audience this STS, bearer only, one-time use."""
        verified, issuer = trusted.verified, trusted.issuer
        if issuer.source == SELF or not issuer.callers:
            raise FailedAuthentication("issuer may not authenticate callers", reason="issuer_not_for_callers")
        if not verified.addressed_to((self._policy.audience,)):
            raise FailedAuthentication("assertion for another audience", reason="audience_not_this_sts")
        if not verified.confirmation_methods or not set(verified.confirmation_methods) <= _BEARER:
            raise FailedAuthentication("only bearer assertions", reason="confirmation_not_bearer")
        one_time = verified.one_time_use or issuer.single_use
        if one_time and not first_use(self._replay, ONE_TIME_NAMESPACE, trusted, self._clock.now()):
            raise InvalidSecurity("assertion presented again", reason="assertion_replayed")

    @staticmethod
    def _user(trusted: TrustedAssertion) -> str:
        try:
            name = trusted.user_name.strip()
        except AssertionRejected as rejected:
            raise FailedAuthentication("no user in the assertion", reason=rejected.reason) from None
        if not name or "/" in name:
            raise FailedAuthentication("unusable user name", reason="bad_username")
        return f"{trusted.issuer.map_to_domain}/{name}"


class _Audit:
    """Facts gathered for the authentication audit event."""

    def __init__(self, info: CallerInfo) -> None:
        self.info = info
        self.user = ""
        self.issuer = ""

    def emit(self, outcome: str, reason: str) -> None:
        domain, _, name = self.user.partition("/")
        login(self.info, outcome, reason if not self.issuer else f"{reason} issuer={self.issuer}",
              user=name, domain=domain)
