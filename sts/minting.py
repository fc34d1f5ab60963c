"""Minting one token from a decided plan: build, confirm (bearer or holder-of-key), sign, encrypt, record.

Shared by Issue and Renew, so a renewed token is made exactly like an issued one (architecture.md §1, 5d-5g).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass

from lxml import etree

from sts import ns
from sts.clock import Clock
from sts.crypto.algorithms import KEY_TRANSPORT_NAMES
from sts.crypto.keywrap import wrap_key
from sts.crypto.signer import AssertionSigner
from sts.errors import RequestFailed, UnableToRenew
from sts.relying_parties.directory import RelyingPartyDirectory, ResolvedParty
from sts.stores.base import TokenRecord, TokenStore
from sts.tokens.base import AssertionContent, Attribute, new_assertion_id
from sts.tokens.saml2 import build_saml2
from sts.tokens.saml11 import build_saml11
from sts.wstrust.keys import symmetric_proof
from sts.wstrust.model import AppliesTo, Renewing, RequestedClaims
from sts.wstrust.rstr import IssuedTokenResponse, ProofToken, TokenReference
from sts.wstrust.tokentypes import REFERENCE_TOKEN_TYPE, REFERENCE_VALUE_TYPE, KeyKind, TokenType


@dataclass(frozen=True, slots=True)
class IssuerIdentity:
    """The issuer name and the validity rules of issued tokens."""

    issuer: str
    lifetime: int = 300
    max_lifetime: int = 43200
    clock_skew: int = 60


@dataclass(frozen=True, slots=True)
class MintPlan:
    """Everything decided about a token before it is made."""

    trust_ns: str
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
    use_key_info: etree._Element | None = None
    requested_claims: RequestedClaims | None = None  # the request's wst:Claims, decided again at each renewal
    chain_started: float | None = None  # first issue time of a renewal chain
    chain: str | None = None  # assertion ID of the first token of a renewal chain


def token_digest(token: etree._Element) -> str:
    """SHA-256 of the token's exclusive canonical form: how a token handed back as issued is recognised."""
    return hashlib.sha256(etree.tostring(token, method="c14n", exclusive=True)).hexdigest()


class TokenMinter:
    """Makes tokens for plans; records them in the token store when one is configured."""

    def __init__(
        self,
        identity: IssuerIdentity,
        directory: RelyingPartyDirectory,
        signer: AssertionSigner,
        clock: Clock,
        store: TokenStore | None = None,
        keep_after_expiry: int = 1800,
    ) -> None:
        self._identity = identity
        self._directory = directory
        self._signer = signer
        self._clock = clock
        self._store = store
        self._keep_after_expiry = keep_after_expiry

    def mint(self, plan: MintPlan, renews: str | None = None) -> tuple[IssuedTokenResponse, AssertionContent]:
        """Make, sign, protect and record one token; return the response values and what it says.

        ``renews``: the ID of the token this one replaces. It is retired and the new token recorded in one atomic
        step; when another request retired it first, :class:`~sts.errors.UnableToRenew` and the new token is
        never handed out.
        """
        key_info, proof = self._confirmation(plan)
        content = self._content(plan, key_info)
        if plan.token_type.version.value == "saml20":
            signed = self._signer.sign_saml2(build_saml2(content, plan.authn_context))
        else:
            signed = self._signer.sign_saml11(build_saml11(content))
        token = self._protect(signed, plan)
        self._record(plan, content, token, renews)
        version = plan.token_type.version
        reference = TokenReference(REFERENCE_TOKEN_TYPE[version], REFERENCE_VALUE_TYPE[version], content.assertion_id)
        response = IssuedTokenResponse(
            trust_ns=plan.trust_ns,
            token_type=plan.token_type.uri,
            token=token,
            reference=reference,
            created=content.not_before,
            expires=content.not_on_or_after,
            key_type=plan.key_type_uri,
            context=plan.context,
            applies_to=plan.applies_to,
            proof=proof,
        )
        return response, content

    def _content(self, plan: MintPlan, key_info: etree._Element | None) -> AssertionContent:
        now = self._clock.now().astimezone(dt.UTC).replace(microsecond=0)
        lifetime = min(plan.party.rp.lifetime or self._identity.lifetime, self._identity.max_lifetime)
        return AssertionContent(
            assertion_id=new_assertion_id(),
            issuer=self._identity.issuer,
            issue_instant=now,
            not_before=now - dt.timedelta(seconds=self._identity.clock_skew),
            not_on_or_after=now + dt.timedelta(seconds=lifetime),
            audience=plan.party.audience,
            recipient=plan.party.audience,
            name_id=plan.name_id,
            name_id_format=plan.name_id_format,
            authn_instant=now,
            attributes=plan.attributes,
            key_info=key_info,
        )

    def _confirmation(self, plan: MintPlan) -> tuple[etree._Element | None, ProofToken | None]:
        """Bearer: nothing. SymmetricKey: a proof key wrapped for the RP. PublicKey: the client's key."""
        if plan.key_kind is KeyKind.BEARER:
            return None, None
        if plan.key_kind is KeyKind.PUBLIC:
            return plan.use_key_info, None
        certificate = plan.party.certificate
        if certificate is None:
            raise RequestFailed("holder-of-key needs the relying party's certificate", reason="hok_without_rp_cert")
        proof = symmetric_proof(plan.key_bits, plan.entropy)
        transport = KEY_TRANSPORT_NAMES[plan.party.settings.key_transport]
        key_info = etree.Element(ns.qn(ns.DS, "KeyInfo"), nsmap={"ds": ns.DS})
        key_info.append(wrap_key(certificate, proof.key, transport))
        if proof.issuer_entropy is not None:
            return key_info, ProofToken(proof.bits, issuer_entropy=proof.issuer_entropy)
        return key_info, ProofToken(proof.bits, secret=proof.key)

    def _protect(self, signed: etree._Element, plan: MintPlan) -> etree._Element:
        """Encrypt for the RP when configured: SAML 2.0 as EncryptedAssertion, SAML 1.1 as bare EncryptedData."""
        if not plan.party.rp.encrypt:
            return signed
        # Encrypt the assertion while it is its own root, so the plaintext declares its own namespaces.
        encrypted = self._directory.encrypter(plan.party).encrypt(signed)
        if plan.token_type.version.value == "saml11":
            return encrypted
        wrapper = etree.Element(ns.qn(ns.SAML2, "EncryptedAssertion"), nsmap={"saml2": ns.SAML2})
        wrapper.append(encrypted)
        return wrapper

    def _record(self, plan: MintPlan, content: AssertionContent, token: etree._Element, renews: str | None) -> None:
        if self._store is None:
            if renews is not None:
                raise UnableToRenew("no token store", reason="no_token_store")
            return
        renewing = plan.renewing or Renewing()
        issued = content.issue_instant.timestamp()
        requested = plan.requested_claims
        data = {
            "trust_ns": plan.trust_ns,
            "token_type": plan.token_type.uri,
            "key_kind": plan.key_kind.value,
            "key_type_uri": plan.key_type_uri,
            "key_bits": plan.key_bits,
            "requested_claims": None
            if requested is None
            else {"dialect": requested.dialect, "claims": [[c.uri, c.optional] for c in requested.claims]},
            "authn_context": plan.authn_context,
            "chain": plan.chain or content.assertion_id,
            "chain_started": plan.chain_started or issued,
            "use_key": etree.tostring(plan.use_key_info).decode() if plan.use_key_info is not None else None,
        }
        expires = content.not_on_or_after.timestamp()
        record = TokenRecord(
            token_id=content.assertion_id,
            subject=plan.subject,
            relying_party=plan.party.rp.address,
            token_type=plan.token_type.uri,
            not_before=content.not_before.timestamp(),
            not_on_or_after=expires,
            status="issued",
            renewable=renewing.allow,
            renew_after_expiry=renewing.allow and renewing.ok,
            digest=token_digest(token),
            data=json.dumps(data, separators=(",", ":")),
        )
        # Kept while it may still be renewed: until expiry + skew + the renewal window after expiry.
        keep_until = expires + self._identity.clock_skew + self._keep_after_expiry
        if renews is None:
            self._store.put(record, keep_until)
        elif not self._store.renew(renews, record, keep_until):
            raise UnableToRenew("token renewed or cancelled meanwhile", reason="renewed_meanwhile")
