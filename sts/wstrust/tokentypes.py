"""Token-type URIs (WSS SAML Token Profile 1.1 §3.6) and key-type URIs (WS-Trust 1.3 §4.4)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from sts import ns
from sts.errors import BadRequest, InvalidRequest

if TYPE_CHECKING:  # the version enum builds on KeyKind, defined here
    from sts.wstrust.version import TrustVersion


class SamlVersion(Enum):
    """The two assertion versions the STS issues."""

    SAML11 = "saml11"
    SAML20 = "saml20"


PROFILE_11 = "http://docs.oasis-open.org/wss/oasis-wss-saml-token-profile-1.1"
SAML11_PROFILE_URI = f"{PROFILE_11}#SAMLV1.1"
SAML20_PROFILE_URI = f"{PROFILE_11}#SAMLV2.0"
SAML11_URN = "urn:oasis:names:tc:SAML:1.0:assertion"
SAML20_URN = "urn:oasis:names:tc:SAML:2.0:assertion"
_SPELLINGS = {
    SAML11_PROFILE_URI: SamlVersion.SAML11,
    SAML11_URN: SamlVersion.SAML11,
    SAML20_PROFILE_URI: SamlVersion.SAML20,
    SAML20_URN: SamlVersion.SAML20,
}
# With no TokenType in the request: the urn: spelling, which every client accepts.
DEFAULT_SPELLING = {SamlVersion.SAML11: SAML11_URN, SamlVersion.SAML20: SAML20_URN}
# RequestedAttachedReference / RequestedUnattachedReference (WS-Trust 1.3 §4.4).
REFERENCE_TOKEN_TYPE = {SamlVersion.SAML11: SAML11_PROFILE_URI, SamlVersion.SAML20: SAML20_PROFILE_URI}
REFERENCE_VALUE_TYPE = {
    SamlVersion.SAML11: "http://docs.oasis-open.org/wss/oasis-wss-saml-token-profile-1.0#SAMLAssertionID",
    SamlVersion.SAML20: f"{PROFILE_11}#SAMLID",
}
NO_PROOF_KEY = f"{ns.WSID}/NoProofKey"


@dataclass(frozen=True, slots=True)
class TokenType:
    """The version to issue and the URI to answer with (the request's own spelling)."""

    version: SamlVersion
    uri: str


def version_of(token_type: str) -> SamlVersion | None:
    """The SAML version a TokenType URI names (either spelling), None for any other URI."""
    return _SPELLINGS.get(token_type.strip())


def resolve_token_type(requested: str | None, default: SamlVersion, profile_spelling: bool = False) -> TokenType:
    """Map a requested TokenType to a version, keeping the spelling the client used.

    With none requested: the default version, spelled ``urn:oasis:names:tc:SAML:…`` (what every client accepts)
    or, for profiles that want it, in the token-profile form (``…#SAMLV2.0``).
    """
    if requested is None:
        spelling = REFERENCE_TOKEN_TYPE[default] if profile_spelling else DEFAULT_SPELLING[default]
        return TokenType(default, spelling)
    version = _SPELLINGS.get(requested)
    if version is None:
        raise BadRequest("unsupported TokenType", reason="unsupported_token_type")
    return TokenType(version, requested)


class KeyKind(Enum):
    """Subject-confirmation key kinds (WS-Trust 1.3 §9.2)."""

    BEARER = "Bearer"
    SYMMETRIC = "SymmetricKey"
    PUBLIC = "PublicKey"


def resolve_key_type(requested: str | None, trust: TrustVersion) -> tuple[KeyKind, str]:
    """The key kind and the URI to echo; Feb 2005 bearer is also spelled ``wsid:NoProofKey`` (as .NET sends it)."""
    if requested is None:
        return KeyKind.BEARER, trust.bearer
    kind = trust.key_kind_of(requested)
    if kind is None:
        raise InvalidRequest("unsupported KeyType", reason="unsupported_key_type")  # WS-Trust 1.3 §4.4 defines three
    return kind, requested
