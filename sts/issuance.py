"""The Issue binding: RST → signed (and, per relying party, encrypted) SAML 1.1 / 2.0 assertion → RSTR(C).

Framework-free (architecture.md §1, steps 5a-5i): parse the RST strictly, match AppliesTo to a registered
relying party, choose token type, subject, validity window and claims, build, sign with the STS key, encrypt
with the RP certificate, and answer in the request's WS-Trust version.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, replace

from lxml import etree

from sts import ns
from sts.audit import AuditEvent, emit
from sts.auth.users import PRIMARY, Principal
from sts.auth.validators import AuthenticatedCaller
from sts.clock import Clock
from sts.config.directory import RelyingPartyDirectory, ResolvedParty
from sts.crypto.signer import AssertionSigner
from sts.errors import BadRequest, InvalidRequest, RequestFailed
from sts.policy.claims import select_claims
from sts.service import TrustCall, TrustReply
from sts.tokens.base import NAMEID_EMAIL, NAMEID_UNSPECIFIED, AssertionContent, new_assertion_id
from sts.tokens.saml2 import PASSWORD_PROTECTED_TRANSPORT, build_saml2
from sts.tokens.saml11 import build_saml11
from sts.wstrust.model import AppliesTo, RequestedClaims
from sts.wstrust.rst import parse_rst
from sts.wstrust.rstr import IssuedTokenResponse, TokenReference, issue_answer
from sts.wstrust.tokentypes import (
    REFERENCE_TOKEN_TYPE,
    REFERENCE_VALUE_TYPE,
    KeyKind,
    SamlVersion,
    resolve_key_type,
    resolve_token_type,
)

_LOG = logging.getLogger("sts.issue")
EMAIL_CLAIM = "http://wso2.org/claims/emailaddress"
PASSWORD_CONTEXT = "urn:oasis:names:tc:SAML:2.0:ac:classes:Password"  # noqa: S105 - a URI


@dataclass(frozen=True, slots=True)
class IssuancePolicy:
    """``[issuer]`` and ``[tokens]`` settings the Issue binding applies."""

    issuer: str
    lifetime: int = 300
    max_lifetime: int = 43200
    clock_skew: int = 60


class IssueOperation:
    """Handles ``RequestType …/Issue`` for an authenticated caller."""

    def __init__(
        self, policy: IssuancePolicy, directory: RelyingPartyDirectory, signer: AssertionSigner, clock: Clock
    ) -> None:
        self._policy = policy
        self._directory = directory
        self._signer = signer
        self._clock = clock

    def __call__(self, call: TrustCall) -> TrustReply:
        """Issue one token; raises the WS-Trust faults of wstrust-protocol.md §12."""
        started = time.perf_counter()
        caller = call.caller
        if not isinstance(caller, AuthenticatedCaller):
            raise RequestFailed("issue without an authenticated caller", reason="no_caller")
        rst = parse_rst(call.rst, call.trust_ns, call.operation)
        party = self._directory.resolve(rst.applies_to.address if rst.applies_to else None)
        settings = party.settings
        token_type = resolve_token_type(rst.token_type, SamlVersion(settings.token_type), settings.profile_spelling)
        kind, key_type_uri = resolve_key_type(rst.key_type, call.trust_ns)
        if kind is not KeyKind.BEARER:
            raise BadRequest("holder-of-key tokens are not issued yet", reason="key_type_unsupported")
        if rst.key_size:
            raise InvalidRequest("KeySize with a Bearer key type", reason="bearer_key_size")
        content = self._content(caller.principal, party, rst.claims)
        authn = PASSWORD_PROTECTED_TRANSPORT if call.info.secure_transport else PASSWORD_CONTEXT
        if token_type.version is SamlVersion.SAML20:
            signed = self._signer.sign_saml2(build_saml2(content, authn))
        else:
            signed = self._signer.sign_saml11(build_saml11(content))
        token = self._protect(signed, party, token_type.version)
        answer = issue_answer(
            IssuedTokenResponse(
                trust_ns=call.trust_ns,
                token_type=token_type.uri,
                token=token,
                reference=TokenReference(
                    REFERENCE_TOKEN_TYPE[token_type.version],
                    REFERENCE_VALUE_TYPE[token_type.version],
                    content.assertion_id,
                ),
                created=content.not_before,
                expires=content.not_on_or_after,
                key_type=key_type_uri,
                context=rst.context,
                applies_to=_applies_to_echo(rst.applies_to, party),
            )
        )
        self._audit(call, caller.principal, party, token_type.uri, content.assertion_id, started)
        return TrustReply(answer, call.operation, call.trust_ns)

    def _content(
        self, principal: Principal, party: ResolvedParty, requested: RequestedClaims | None
    ) -> AssertionContent:
        now = self._clock.now().astimezone(dt.UTC).replace(microsecond=0)
        lifetime = min(party.rp.lifetime or self._policy.lifetime, self._policy.max_lifetime)
        name_id, name_format = _subject(principal, party.settings.nameid)
        return AssertionContent(
            assertion_id=new_assertion_id(),
            issuer=self._policy.issuer,
            issue_instant=now,
            not_before=now - dt.timedelta(seconds=self._policy.clock_skew),
            not_on_or_after=now + dt.timedelta(seconds=lifetime),
            audience=party.audience,
            recipient=party.audience,
            name_id=name_id,
            name_id_format=name_format,
            authn_instant=now,
            attributes=select_claims(
                requested, party.rp.claims, principal.claims, principal.roles, dict(party.rp.claim_mapping)
            ),
        )

    def _protect(self, signed: etree._Element, party: ResolvedParty, version: SamlVersion) -> etree._Element:
        """Encrypt for the RP when configured: SAML 2.0 as EncryptedAssertion, SAML 1.1 as bare EncryptedData."""
        if not party.rp.encrypt:
            return signed
        # Encrypt the assertion while it is its own root, so the plaintext declares its own namespaces.
        encrypted = self._directory.encrypter(party).encrypt(signed)
        if version is SamlVersion.SAML11:
            return encrypted
        wrapper = etree.Element(ns.qn(ns.SAML2, "EncryptedAssertion"), nsmap={"saml2": ns.SAML2})
        wrapper.append(encrypted)
        return wrapper

    @staticmethod
    def _audit(
        call: TrustCall, principal: Principal, party: ResolvedParty, token_type: str, token_id: str, started: float
    ) -> None:
        emit(
            AuditEvent(
                event="issue",
                outcome="success",
                correlation_id=call.info.correlation_id,
                client_address=call.info.client_address,
                user=principal.name,
                domain=principal.domain,
                operation=call.operation.value,
                applies_to=party.rp.address,
                token_type=token_type,
                token_id=token_id,
                duration_ms=round((time.perf_counter() - started) * 1000, 3),
            )
        )


def _applies_to_echo(applies_to: AppliesTo | None, party: ResolvedParty) -> AppliesTo | None:
    """Echo AppliesTo (R8), in the namespace the RP's profile wants (.NET breaks on the W3C one)."""
    if applies_to is None or not party.rp.applies_to_in_response:
        return None
    if party.settings.applies_to_ns is not None:
        return replace(applies_to, policy_ns=party.settings.applies_to_ns)
    return applies_to


def _subject(principal: Principal, nameid: str) -> tuple[str, str]:
    """NameID: the user name (without the PRIMARY/ domain) unspecified, or the email claim as emailAddress."""
    if nameid == "email":
        emails = principal.claims.get(EMAIL_CLAIM, ())
        if not emails:
            raise RequestFailed("user has no email address for the NameID", reason="nameid_unavailable")
        return emails[0], NAMEID_EMAIL
    name = principal.name if principal.domain == PRIMARY else principal.qualified_name
    return name, NAMEID_UNSPECIFIED
