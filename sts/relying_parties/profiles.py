"""Compatibility profiles: one word that sets what an ecosystem's relying parties expect (interop §17).

A relying party's explicit settings win; what it leaves empty comes from its profile (or the ``[tokens]
profile`` default). Profiles never weaken signatures (always RSA-SHA256) and never enable RSA 1.5 or 3DES;
``adfs`` selects AES-256-CBC because .NET Framework/WIF relying parties have no AES-GCM.

The table of what each profile sets is in README ("Client compatibility") and in :data:`PROFILES`:
``strict`` (SAML 2.0, ``urn:`` spelling, AES-256-GCM + RSA-OAEP-MGF1P, AppliesTo echoed as sent), ``wso2``
(SAML 1.1 as WSO2 defaults to), ``adfs`` (SAML 1.1, AES-256-CBC for WIF), ``cxf`` (SAML 2.0 in the
token-profile spelling, xmlenc11 RSA-OAEP with SHA-256); all but ``strict`` echo AppliesTo in WS-Policy 2004/09.

``timestamp_required`` is a rule of the endpoint, not of a relying party: a message is authenticated before its
AppliesTo is read, and one WSDL/mex is published per endpoint. It therefore follows the instance's ``[tokens]
profile`` (:func:`timestamp_required`), and the published policy carries ``sp:IncludeTimestamp`` exactly when it
is true. Every profile requires a Timestamp: each ecosystem's clients send one (WCF and MSAL/ADAL, WSS4J/CXF,
Rampart/Rahas, zeep with a Timestamp token) and their own servers refuse a message without one under this policy.
"""

from __future__ import annotations

from dataclasses import dataclass

from sts import ns
from sts.config.settings import ProfileName
from sts.crypto.algorithms import CipherName, KeyTransportName
from sts.policy.nameid import default_format
from sts.relying_parties.model import RelyingParty, TokenFormat


@dataclass(frozen=True, slots=True)
class Profile:
    """The defaults one profile gives a relying party."""

    token_type: TokenFormat
    profile_spelling: bool  # token-type URI when none was requested: the token-profile form, else urn:
    nameid: str
    cipher: CipherName
    key_transport: KeyTransportName
    applies_to_ns: str | None  # None: echo AppliesTo in the request's policy namespace
    timestamp_required: bool = True  # endpoint rule (see the module docstring); the WSDL publishes it


_GCM, _CBC = CipherName.AES256_GCM, CipherName.AES256_CBC
_MGF1P, _OAEP = KeyTransportName.RSA_OAEP_MGF1P, KeyTransportName.RSA_OAEP
PROFILES: dict[ProfileName, Profile] = {
    ProfileName.STRICT: Profile(TokenFormat.SAML20, False, "username", _GCM, _MGF1P, None),
    ProfileName.WSO2: Profile(TokenFormat.SAML11, False, "username", _GCM, _MGF1P, ns.WSP),
    ProfileName.ADFS: Profile(TokenFormat.SAML11, False, "username", _CBC, _MGF1P, ns.WSP),
    ProfileName.CXF: Profile(TokenFormat.SAML20, True, "username", _GCM, _OAEP, ns.WSP),
}

if set(PROFILES) != set(ProfileName):  # every name [tokens] profile accepts has a table entry
    raise RuntimeError("sts.relying_parties.profiles.PROFILES does not cover ProfileName")


@dataclass(frozen=True, slots=True)
class EffectiveSettings:
    """A relying party's settings with every gap filled from its profile."""

    profile: ProfileName
    token_type: TokenFormat
    profile_spelling: bool
    nameid: str  # username | email | a claim URI
    cipher: CipherName
    key_transport: KeyTransportName
    applies_to_ns: str | None
    nameid_format: str = ""  # the RP's own, else the default of its NameID source


def timestamp_required(instance_profile: str) -> bool:
    """Whether the endpoint refuses a message without ``wsu:Timestamp`` (and publishes ``sp:IncludeTimestamp``)."""
    return PROFILES[ProfileName(instance_profile)].timestamp_required


def effective(rp: RelyingParty, default_profile: str) -> EffectiveSettings:
    """Resolve a relying party's settings: explicit values first, then its profile's (``default_profile``, the
    ``[tokens] profile``, when it names none)."""
    name = rp.profile or ProfileName(default_profile)
    profile = PROFILES[name]
    nameid = rp.nameid or profile.nameid
    return EffectiveSettings(
        profile=name,
        token_type=rp.token_type or profile.token_type,
        profile_spelling=profile.profile_spelling,
        nameid=nameid,
        cipher=rp.cipher or profile.cipher,
        key_transport=rp.key_transport or profile.key_transport,
        applies_to_ns=profile.applies_to_ns,
        nameid_format=rp.nameid_format or default_format(nameid),
    )
