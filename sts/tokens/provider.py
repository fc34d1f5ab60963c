"""The token provider: one SAML assertion built, confirmed, signed and, where its relying party asks for it,
encrypted; in Apache CXF's vocabulary ``TokenProvider.createToken(TokenProviderParameters)``.

The provider knows nothing of requests, token stores or RSTRs: an operation decides what the token says and how
its subject is confirmed, hands that over as :class:`TokenProviderParameters`, then records the token and
answers with it (:mod:`sts.operations`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509
from lxml import etree

from sts import ns
from sts.clock import Clock
from sts.crypto.algorithms import KeyTransport
from sts.crypto.keywrap import ClientKey, wrap_key
from sts.crypto.signer import SamlSigner
from sts.errors import RequestFailed
from sts.telemetry import stage
from sts.tokens.base import AssertionContent, Attribute, Delegate, new_assertion_id
from sts.tokens.saml2 import build_saml2
from sts.tokens.saml11 import build_saml11
from sts.wstrust.keys import SymmetricProof, symmetric_proof
from sts.wstrust.tokentypes import KeyKind, SamlVersion


@dataclass(frozen=True, slots=True)
class IssuerIdentity:
    """The issuer name and the validity rules of issued tokens (seconds)."""

    issuer: str
    lifetime: int = 300
    max_lifetime: int = 43200
    clock_skew: int = 60


@dataclass(frozen=True, slots=True)
class KeyRequirements:
    """How the token's subject is confirmed (WS-Trust 1.3 §9.2), with what each key type needs."""

    kind: KeyKind
    key_bits: int | None = None  # SymmetricKey: the proof-key size asked for (None: the default)
    entropy: bytes | None = None  # SymmetricKey: the requestor's entropy, for a computed key (§4.4.4)
    client_key: ClientKey | None = None  # PublicKey: the requestor's key, already accepted by the operation


@dataclass(frozen=True, slots=True)
class Recipient:
    """The relying party as its token sees it."""

    audience: str
    lifetime: int | None  # the relying party's own token lifetime, if it has one
    certificate: x509.Certificate | None  # wraps a symmetric proof key for the relying party
    key_transport: KeyTransport
    # Encrypts the signed assertion for the relying party; None when its tokens go out signed only.
    encrypt: Callable[[etree._Element], etree._Element] | None = None


@dataclass(frozen=True, slots=True)
class TokenProviderParameters:
    """Everything decided about a token before it is made."""

    version: SamlVersion
    name_id: str
    name_id_format: str
    attributes: tuple[Attribute, ...]
    authn_context: str
    recipient: Recipient
    keys: KeyRequirements
    delegates: tuple[Delegate, ...] = ()  # ActAs chain, oldest first
    expires_by: float | None = None  # a POSIX time NotOnOrAfter may not pass (a delegated token's own expiry)


@dataclass(frozen=True, slots=True)
class TokenProviderResponse:
    """The token as it goes to the requestor, what it says, and the symmetric proof key made for it."""

    token: etree._Element
    content: AssertionContent
    proof: SymmetricProof | None = None


class TokenProvider:
    """Makes SAML 1.1 and 2.0 assertions with the STS's signing key and the injected clock."""

    def __init__(self, identity: IssuerIdentity, signer: SamlSigner, clock: Clock) -> None:
        self._identity = identity
        self._signer = signer
        self._clock = clock

    def create_token(self, parameters: TokenProviderParameters) -> TokenProviderResponse:
        """Build, confirm (bearer or holder-of-key), sign and protect one assertion."""
        with stage("build"):
            key_info, proof = _confirmation(parameters.keys, parameters.recipient)
            content = self._content(parameters, key_info)
            saml2 = parameters.version is SamlVersion.SAML20
            unsigned = (build_saml2 if saml2 else build_saml11)(content, parameters.authn_context)
        with stage("sign"):
            signed = self._signer.sign_saml2(unsigned) if saml2 else self._signer.sign_saml11(unsigned)
        if parameters.recipient.encrypt is None:
            return TokenProviderResponse(signed, content, proof)
        with stage("encrypt"):
            return TokenProviderResponse(_protect(signed, parameters), content, proof)

    def _content(self, parameters: TokenProviderParameters, key_info: etree._Element | None) -> AssertionContent:
        identity, recipient = self._identity, parameters.recipient
        now = self._clock.now().astimezone(dt.UTC).replace(microsecond=0)
        lifetime = token_lifetime(identity, recipient.lifetime)
        not_after = now + dt.timedelta(seconds=lifetime)
        if parameters.expires_by is not None:
            not_after = min(not_after, dt.datetime.fromtimestamp(int(parameters.expires_by), dt.UTC))
        if not_after <= now:
            raise RequestFailed("the delegated token expires now", reason="token_expired")
        return AssertionContent(
            assertion_id=new_assertion_id(),
            issuer=identity.issuer,
            issue_instant=now,
            not_before=now - dt.timedelta(seconds=identity.clock_skew),
            not_on_or_after=not_after,
            audience=recipient.audience,
            recipient=recipient.audience,
            name_id=parameters.name_id,
            name_id_format=parameters.name_id_format,
            authn_instant=now,
            attributes=parameters.attributes,
            key_info=key_info,
            delegates=parameters.delegates,
        )


def token_lifetime(identity: IssuerIdentity, recipient_lifetime: int | None) -> int:
    """Seconds an issued token is valid: the relying party's own lifetime, else the default, at most the maximum."""
    return min(recipient_lifetime or identity.lifetime, identity.max_lifetime)


def _confirmation(keys: KeyRequirements, recipient: Recipient) -> tuple[etree._Element | None, SymmetricProof | None]:
    """Bearer: nothing. SymmetricKey: a proof key wrapped for the RP. PublicKey: the client's key."""
    if keys.kind is KeyKind.BEARER:
        return None, None
    if keys.kind is KeyKind.PUBLIC:
        if keys.client_key is None:  # never a holder-of-key token that names no key
            raise RequestFailed("PublicKey without the client's key", reason="public_key_missing")
        return keys.client_key.key_info(), None
    if recipient.certificate is None:
        raise RequestFailed("holder-of-key needs the relying party's certificate", reason="hok_without_rp_cert")
    proof = symmetric_proof(keys.key_bits, keys.entropy)
    key_info = etree.Element(ns.qn(ns.DS, "KeyInfo"), nsmap={"ds": ns.DS})
    key_info.append(wrap_key(recipient.certificate, proof.key, recipient.key_transport))
    return key_info, proof


def _protect(signed: etree._Element, parameters: TokenProviderParameters) -> etree._Element:
    """Encrypt for the RP when configured: SAML 2.0 as EncryptedAssertion, SAML 1.1 as bare EncryptedData."""
    encrypt = parameters.recipient.encrypt
    if encrypt is None:
        return signed
    # Encrypt the assertion while it is its own root, so the plaintext declares its own namespaces.
    encrypted = encrypt(signed)
    if parameters.version is SamlVersion.SAML11:
        return encrypted
    wrapper = etree.Element(ns.qn(ns.SAML2, "EncryptedAssertion"), nsmap={"saml2": ns.SAML2})
    wrapper.append(encrypted)
    return wrapper
