"""Issue (WS-Trust 1.3 §4): RST → signed (and, per relying party, encrypted) SAML 1.1 / 2.0 assertion → RSTR(C).

Parse the RST strictly, match AppliesTo to a registered relying party, decide token type, key type (bearer,
symmetric or public-key holder-of-key), subject and claims, then let the :class:`~sts.operations.minting.TokenMinter`
make and record the token, and answer in the request's version.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

from cryptography import x509
from lxml import etree

from sts import telemetry
from sts.auth.transport_certs import TLS_CLIENT_METHOD
from sts.auth.users import Principal
from sts.auth.validators import X509_SIGNATURE
from sts.clock import Clock
from sts.crypto.keywrap import (
    ClientKey,
    TrustedClientKeys,
    UseKeyRejected,
    accept_client_key,
    accept_registered_key,
    proven_client_key,
    read_use_key,
)
from sts.errors import BadRequest, InvalidRequest
from sts.operations.call import TrustCall, TrustReply, confidential_answer
from sts.operations.delegation import Delegation, DelegationResolver
from sts.operations.events import audit
from sts.operations.issued_callers import ISSUED_TOKEN
from sts.operations.minting import MintPlan, TokenMinter, applies_to_echo, subject_and_claims
from sts.relying_parties.directory import RelyingPartyDirectory, ResolvedParty
from sts.tokens import authn
from sts.wstrust.keys import key_bits
from sts.wstrust.model import RequestSecurityToken
from sts.wstrust.rst import parse_rst
from sts.wstrust.rstr import issue_answer
from sts.wstrust.tokentypes import KeyKind, SamlVersion, resolve_key_type, resolve_token_type

# How each kind of caller authenticated (AuthenticatedCaller.method), as the assertion states it; the password
# methods by their transport (authn.password_context).
_CONTEXT_OF_METHOD = {
    X509_SIGNATURE: authn.X509,
    TLS_CLIENT_METHOD: authn.TLS_CLIENT,
    ISSUED_TOKEN: authn.PREVIOUS_SESSION,
}


class IssueOperation:
    """Handles ``RequestType …/Issue`` for an authenticated caller."""

    def __init__(
        self,
        directory: RelyingPartyDirectory,
        minter: TokenMinter,
        clock: Clock,
        client_keys: TrustedClientKeys | None = None,
        caller_certificates: Callable[[Principal], list[x509.Certificate]] | None = None,
        legacy_unproven_use_key: bool = False,
        delegation: DelegationResolver | None = None,
        *,
        allow_insecure_transport: bool = False,
    ) -> None:
        self._allow_insecure = allow_insecure_transport
        self._delegation = delegation
        self._client_keys = client_keys or TrustedClientKeys(None)
        self._caller_certificates = caller_certificates or (lambda _principal: [])
        self._legacy_unproven = legacy_unproven_use_key
        self._directory = directory
        self._minter = minter
        self._clock = clock

    def __call__(self, call: TrustCall) -> TrustReply:
        """Issue one token; raises the WS-Trust faults of the issuance binding (WS-Trust 1.3 §11)."""
        started = time.perf_counter()
        request, principal = call.request, call.caller.principal
        rst = parse_rst(request.rst, request.trust, request.operation)
        telemetry.passed("request")
        party = self._directory.resolve(rst.applies_to.address if rst.applies_to else None)
        delegation = self._delegated(call, rst, party)
        if delegation is not None:
            principal = delegation.subject
        telemetry.passed("relying party")
        plan = self._plan(call, rst, principal, party, delegation)
        if delegation is not None:
            plan = replace(
                plan, delegates=delegation.delegates, expires_by=delegation.expires_by, delegated=True
            )
        telemetry.passed("token plan")
        response = self._minter.mint(plan)
        audit(
            call,
            "issue",
            "success",
            applies_to=party.rp.address,
            token_type=plan.token_type.uri,
            token_id=response.reference.identifier,
            reason=_reason(plan, delegation),
            started=started,
            subject=principal.qualified_name if delegation is not None else "",
            chain=delegation.chain if delegation is not None else (),
            source_token=delegation.source_token if delegation is not None else "",
        )
        return TrustReply(issue_answer(response), request.operation, request.trust)

    def _delegated(
        self, call: TrustCall, rst: RequestSecurityToken, party: ResolvedParty
    ) -> Delegation | None:
        """The delegation the request asks for (OnBehalfOf / ActAs), decided by the relying party's policy."""
        if rst.on_behalf_of is None and rst.act_as is None:
            return None
        if self._delegation is None:
            raise BadRequest("delegation is not offered", reason="delegation_not_enabled")
        return self._delegation.resolve(call, rst, party)

    def _plan(
        self,
        call: TrustCall,
        rst: RequestSecurityToken,
        principal: Principal,
        party: ResolvedParty,
        delegation: Delegation | None,
    ) -> MintPlan:
        if delegation is not None:
            context = delegation.authn_context
        else:
            context = caller_authn_context(call.caller.method, call.request.info.secure_transport)
        plan = plan_issue(rst, principal, party, context)
        return self._key_requirements(plan, rst, call)

    def _key_requirements(self, plan: MintPlan, rst: RequestSecurityToken, call: TrustCall) -> MintPlan:
        """KeySize, Entropy, ComputedKeyAlgorithm and UseKey, each only where its key type allows it."""
        symmetric_only = rst.entropy is not None or rst.computed_key_algorithm is not None
        if plan.key_kind is KeyKind.BEARER:
            if rst.key_size or symmetric_only or rst.use_key is not None:
                raise InvalidRequest("key material with a Bearer key type", reason="bearer_key_material")
            return plan
        if plan.key_kind is KeyKind.PUBLIC:
            proof = call.caller.proof
            if (rst.use_key is None and proof is None) or rst.key_size or symmetric_only:
                raise InvalidRequest("PublicKey needs UseKey and nothing else", reason="public_key_material")
            try:
                client_key = self._client_key(rst.use_key, call)
            except UseKeyRejected:
                raise InvalidRequest("unusable UseKey", reason="bad_use_key") from None
            return replace(plan, client_key=client_key)
        if rst.use_key is not None:
            raise InvalidRequest("UseKey with a SymmetricKey key type", reason="symmetric_use_key")
        if rst.entropy is not None and rst.computed_key_algorithm not in (None, plan.trust.psha1):
            raise InvalidRequest("unsupported ComputedKeyAlgorithm", reason="bad_computed_key")
        if not confidential_answer(call.request, self._allow_insecure):
            raise InvalidRequest("symmetric proof key over plain HTTP", reason="proof_key_not_confidential")
        return replace(plan, key_bits=key_bits(rst.key_size), entropy=rst.entropy)

    def _client_key(self, use_key: etree._Element | None, call: TrustCall) -> ClientKey:
        """The key a PublicKey token is bound to (WS-Trust 1.3 §9.2), proven by the request's signature.

        A signed request binds the signing key (UseKey absent or naming it). An unsigned one proves no key: its
        UseKey must be a certificate registered to the caller (``sts user add-cert``), whose registration stands in
        for the proof; ``legacy_unproven_use_key`` restores the old rule (any key in ``trusted_client_certs``).
        """
        proof = call.caller.proof
        if proof is not None:
            return proven_client_key(use_key, proof.certificate, proof.token_id, proof.signature_id)
        if use_key is None:
            raise UseKeyRejected("no UseKey")
        client_key = read_use_key(use_key)
        if self._legacy_unproven:
            accept_client_key(client_key, self._clock.now(), self._client_keys)
        else:
            accept_registered_key(client_key, self._clock.now(), self._caller_certificates(call.caller.principal))
        return client_key


def _reason(plan: MintPlan, delegation: Delegation | None) -> str:
    """The audit reason of an issuance: the key type, and how the subject was delegated."""
    if delegation is None:
        return plan.key_kind.value
    return f"{plan.key_kind.value} {'act_as' if delegation.act_as else 'on_behalf_of'}"


def caller_authn_context(method: str, secure_transport: bool) -> str:
    """The authentication context class of a caller who authenticated by ``method`` (SAML 2.0 Authentication
    Context §3.4): a certificate or an issued token as such, a password by its transport."""
    return _CONTEXT_OF_METHOD.get(method) or authn.password_context(secure_transport)


def plan_issue(
    rst: RequestSecurityToken, principal: Principal, party: ResolvedParty, authn_context: str
) -> MintPlan:
    """What Issue decides for this caller and relying party before any key material: token type, key type,
    subject, claims (also ``sts preview``'s answer, so the preview cannot drift from issuance); ``authn_context``
    states how the subject authenticated."""
    settings = party.settings
    token_type = resolve_token_type(rst.token_type, SamlVersion(settings.token_type), settings.profile_spelling)
    kind, key_type_uri = resolve_key_type(rst.key_type, rst.trust)
    name_id, name_format, attributes = subject_and_claims(principal, party, rst.claims)
    return MintPlan(
        trust=rst.trust,
        context=rst.context,
        token_type=token_type,
        key_kind=kind,
        key_type_uri=key_type_uri,
        party=party,
        subject=principal.qualified_name,
        name_id=name_id,
        name_id_format=name_format,
        attributes=attributes,
        authn_context=authn_context,
        applies_to=applies_to_echo(rst.applies_to, party),
        renewing=rst.renewing,
        requested_claims=rst.claims,
    )

