"""Compatibility profiles: one word that sets what an ecosystem's relying parties expect (interop §17).

A relying party's explicit settings win; what it leaves empty comes from its profile (or the ``[tokens]
profile`` default). Profiles never weaken signatures (always RSA-SHA256) and never enable RSA 1.5 or 3DES;
``adfs`` selects AES-256-CBC because .NET Framework/WIF relying parties have no AES-GCM (R30).

The table of what each profile sets is in README ("Client compatibility") and in :data:`PROFILES`:
``strict`` (SAML 2.0, ``urn:`` spelling, AES-256-GCM + RSA-OAEP-MGF1P, AppliesTo echoed as sent), ``wso2``
(SAML 1.1 as WSO2 defaults to, R45), ``adfs`` (SAML 1.1, AES-256-CBC for WIF), ``cxf`` (SAML 2.0 in the
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
from sts.config.relying_parties import RelyingParty
from sts.config.settings import PROFILE_NAMES
from sts.policy.nameid import default_format


@dataclass(frozen=True, slots=True)
class Profile:
    """The defaults one profile gives a relying party."""

    token_type: str  # saml20 | saml11
    profile_spelling: bool  # token-type URI when none was requested: the token-profile form, else urn:
    nameid: str
    cipher: str
    key_transport: str
    applies_to_ns: str | None  # None: echo AppliesTo in the request's policy namespace
    timestamp_required: bool = True  # endpoint rule (see the module docstring); the WSDL publishes it


PROFILES: dict[str, Profile] = {
    "strict": Profile("saml20", False, "username", "aes256-gcm", "rsa-oaep-mgf1p", None),
    "wso2": Profile("saml11", False, "username", "aes256-gcm", "rsa-oaep-mgf1p", ns.WSP),
    "adfs": Profile("saml11", False, "username", "aes256-cbc", "rsa-oaep-mgf1p", ns.WSP),
    "cxf": Profile("saml20", True, "username", "aes256-gcm", "rsa-oaep", ns.WSP),
}

if tuple(PROFILES) != PROFILE_NAMES:  # the table and the names checked at configuration load must agree
    raise RuntimeError("sts.config.profiles.PROFILES does not match PROFILE_NAMES")


@dataclass(frozen=True, slots=True)
class EffectiveSettings:
    """A relying party's settings with every gap filled from its profile."""

    profile: str
    token_type: str
    profile_spelling: bool
    nameid: str  # username | email | a claim URI
    cipher: str
    key_transport: str
    applies_to_ns: str | None
    nameid_format: str = ""  # the RP's own, else the default of its NameID source


def timestamp_required(instance_profile: str) -> bool:
    """Whether the endpoint refuses a message without ``wsu:Timestamp`` (and publishes ``sp:IncludeTimestamp``)."""
    return PROFILES[instance_profile].timestamp_required


def effective(rp: RelyingParty, default_profile: str) -> EffectiveSettings:
    """Resolve a relying party's settings: explicit values first, then its profile's."""
    name = rp.profile or default_profile
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
