"""What Issue, Renew and Validate's token transformation share: the plan of a token, its subject and claims, the
AppliesTo echo, and minting it.

Each decides a :class:`MintPlan` (Issue from the request, Renew again from the stored renewal record, Validate from
the validated token);
:class:`TokenMinter` then has the token provider make the token, records it in the ledger (for Renew, retiring
the old token in the same atomic step) and returns the values of the RSTR, so a renewed token is made exactly
like an issued one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from lxml import etree

from sts import telemetry
from sts.auth.users import Principal
from sts.crypto.algorithms import KEY_TRANSPORT_NAMES
from sts.crypto.keywrap import ClientKey
from sts.errors import UnableToRenew
from sts.operations.records import RenewalRecord, TokenLedger, token_digest
from sts.policy.nameid import subject_of
from sts.relying_parties.directory import RelyingPartyDirectory, ResolvedParty
from sts.stores.base import TokenRecord
from sts.tokens.base import Attribute, Delegate
from sts.tokens.provider import (
    KeyRequirements,
    Recipient,
    TokenProvider,
    TokenProviderParameters,
    TokenProviderResponse,
)
from sts.wstrust.model import AppliesTo, Renewing, RequestedClaims
from sts.wstrust.rstr import IssuedTokenResponse, ProofToken, TokenReference
from sts.wstrust.tokentypes import REFERENCE_TOKEN_TYPE, REFERENCE_VALUE_TYPE, KeyKind, TokenType
from sts.wstrust.version import TrustVersion


@dataclass(frozen=True, slots=True)
class MintPlan:
    """Everything decided about a token before it is made."""

    trust: TrustVersion  # the version the answer is written in: the request's
    context: str | None
    token_type: TokenType
    key_kind: KeyKind
    key_type_uri: str
    party: ResolvedParty
    subject: str  # DOMAIN/name of the principal
    name_id: str
    name_id_format: str
    attributes: tuple[Attribute, ...]
    authn_context: str
    applies_to: AppliesTo | None = None
    renewing: Renewing | None = None
    key_bits: int | None = None
    entropy: bytes | None = None
    client_key: ClientKey | None = None  # PublicKey: the accepted key of the requestor
    requested_claims: RequestedClaims | None = None  # the request's wst:Claims, decided again at each renewal
    chain_started: float | None = None  # first issue time of a renewal chain
    chain: str | None = None  # assertion ID of the first token of a renewal chain
    delegates: tuple[Delegate, ...] = ()  # ActAs: the acting services, recorded in the token (WS-Trust 1.4)
    expires_by: float | None = None  # delegation: the token handed in expires then; the new one not later
    # A delegated token is never renewable: a renewal would outlive the token handed in and lose its chain.
    delegated: bool = False


def subject_and_claims(
    principal: Principal, party: ResolvedParty, requested: RequestedClaims | None
) -> tuple[str, str, tuple[Attribute, ...]]:
    """NameID, its Format and the attributes for this principal and relying party: what Issue decides and Renew
    decides again from the current user store and RP settings (a renewal never re-mints an old snapshot)."""
    name_id, name_format = subject_of(principal, party.settings.nameid, party.settings.nameid_format)
    attributes = party.claims.select(requested, principal.claims, principal.roles)  # the RP's, worked out once
    return name_id, name_format, attributes


def applies_to_echo(applies_to: AppliesTo | None, party: ResolvedParty) -> AppliesTo | None:
    """Echo AppliesTo, in the namespace the RP's profile wants (.NET breaks on the W3C one).

    The echo names the scope the token was issued for (WS-Trust 1.3 §4.4.1): the address asked for when it
    matched, the relying party's audience when the request fell back to ``default_relying_party``.
    """
    if applies_to is None or not party.rp.applies_to_in_response:
        return None
    if party.fallback:
        applies_to = replace(applies_to, address=party.audience)
    if party.settings.applies_to_ns is not None:
        return replace(applies_to, policy_ns=party.settings.applies_to_ns)
    return applies_to


class TokenMinter:
    """Makes the token of a plan with the provider, records it when there is a ledger, answers with it."""

    def __init__(
        self, provider: TokenProvider, directory: RelyingPartyDirectory, ledger: TokenLedger | None = None
    ) -> None:
        self._provider = provider
        self._directory = directory
        self._ledger = ledger

    def mint(self, plan: MintPlan, renews: str | None = None) -> IssuedTokenResponse:
        """Make, record and describe one token.

        ``renews``: the ID of the token this one replaces. It is retired and the new token recorded in one atomic
        step; when another request retired it first, ``wst:UnableToRenew`` and the new token is never handed out.
        """
        made = self._provider.create_token(self._parameters(plan))
        if self._ledger is not None:
            with telemetry.stage("store"):
                self._ledger.record(_token_record(plan, made), renews)
        elif renews is not None:
            raise UnableToRenew("no token store", reason="no_token_store")
        # Labels of the issued-token metrics: the version, never the URI spelling; the RP's registered address.
        telemetry.describe(token_type=plan.token_type.version.value, relying_party=plan.party.rp.address)
        return _response(plan, made)

    def _parameters(self, plan: MintPlan) -> TokenProviderParameters:
        party = plan.party
        recipient = Recipient(
            audience=party.audience,
            lifetime=party.rp.lifetime,
            certificate=party.certificate,
            key_transport=KEY_TRANSPORT_NAMES[party.settings.key_transport],
            encrypt=_PartyEncryption(self._directory, party) if party.rp.encrypt else None,
        )
        keys = KeyRequirements(plan.key_kind, plan.key_bits, plan.entropy, plan.client_key)
        return TokenProviderParameters(
            version=plan.token_type.version,
            name_id=plan.name_id,
            name_id_format=plan.name_id_format,
            attributes=plan.attributes,
            authn_context=plan.authn_context,
            recipient=recipient,
            keys=keys,
            delegates=plan.delegates,
            expires_by=plan.expires_by,
        )


@dataclass(frozen=True, slots=True)
class _PartyEncryption:
    """Encrypts for one relying party with the worker's encrypter, fetched only when a token is encrypted."""

    directory: RelyingPartyDirectory
    party: ResolvedParty

    def __call__(self, signed: etree._Element) -> etree._Element:
        """The encrypted assertion (``xenc:EncryptedData``)."""
        return self.directory.encrypter(self.party).encrypt(signed)


def _token_record(plan: MintPlan, made: TokenProviderResponse) -> TokenRecord:
    """What the token store keeps about the token: never the signed XML, its digest and renewal record."""
    content = made.content
    renewing = plan.renewing or Renewing()
    renewal = RenewalRecord(
        trust=plan.trust,
        token_type=plan.token_type,
        key_kind=plan.key_kind,
        key_type_uri=plan.key_type_uri,
        key_bits=plan.key_bits,
        requested_claims=plan.requested_claims,
        authn_context=plan.authn_context,
        chain=plan.chain or content.assertion_id,
        chain_started=plan.chain_started or content.issue_instant.timestamp(),
        client_key=plan.client_key,
    )
    return TokenRecord(
        token_id=content.assertion_id,
        subject=plan.subject,
        relying_party=plan.party.rp.address,
        token_type=plan.token_type.uri,
        not_before=content.not_before.timestamp(),
        not_on_or_after=content.not_on_or_after.timestamp(),
        status="issued",
        renewable=renewing.allow and not plan.delegated,
        renew_after_expiry=renewing.allow and renewing.ok and not plan.delegated,
        digest=token_digest(made.token),
        data=renewal.to_json(),
    )


def _response(plan: MintPlan, made: TokenProviderResponse) -> IssuedTokenResponse:
    """The values of the RSTR (WS-Trust 1.3 §4.4): the token, its references, lifetime and proof key."""
    content, version = made.content, plan.token_type.version
    reference = TokenReference(REFERENCE_TOKEN_TYPE[version], REFERENCE_VALUE_TYPE[version], content.assertion_id)
    return IssuedTokenResponse(
        trust=plan.trust,
        token_type=plan.token_type.uri,
        token=made.token,
        reference=reference,
        created=content.not_before,
        expires=content.not_on_or_after,
        key_type=plan.key_type_uri,
        context=plan.context,
        applies_to=plan.applies_to,
        proof=_proof_token(made),
    )


def _proof_token(made: TokenProviderResponse) -> ProofToken | None:
    """The requestor's proof key: the issuer entropy of a computed key, else the key itself (§4.4.3)."""
    proof = made.proof
    if proof is None:
        return None
    if proof.issuer_entropy is not None:
        return ProofToken(proof.bits, issuer_entropy=proof.issuer_entropy)
    return ProofToken(proof.bits, secret=proof.key)
