"""Compatibility profiles fill what a relying party leaves empty; explicit settings win."""

from __future__ import annotations

import pytest

from sts import ns
from sts.config.settings import PROFILE_NAMES
from sts.relying_parties.model import RelyingParty
from sts.relying_parties.profiles import PROFILES, effective, timestamp_required


def test_strict_defaults() -> None:
    settings = effective(RelyingParty("https://rp.example/"), "strict")
    assert (settings.token_type, settings.cipher, settings.key_transport, settings.nameid) == (
        "saml20",
        "aes256-gcm",
        "rsa-oaep-mgf1p",
        "username",
    )
    assert settings.applies_to_ns is None and not settings.profile_spelling


def test_rp_profile_beats_the_global_one_and_explicit_settings_beat_both() -> None:
    adfs = effective(RelyingParty("https://rp.example/", profile="adfs"), "strict")
    assert (adfs.profile, adfs.token_type, adfs.cipher, adfs.applies_to_ns) == ("adfs", "saml11", "aes256-cbc", ns.WSP)
    explicit = effective(RelyingParty("https://rp.example/", profile="adfs", cipher="aes256-gcm"), "strict")
    assert explicit.cipher == "aes256-gcm"
    global_cxf = effective(RelyingParty("https://rp.example/"), "cxf")
    assert global_cxf.profile_spelling and global_cxf.key_transport == "rsa-oaep"


def test_no_profile_uses_legacy_key_transport_or_weak_ciphers() -> None:
    for profile in PROFILES.values():
        assert profile.key_transport in ("rsa-oaep-mgf1p", "rsa-oaep")
        assert profile.cipher in ("aes256-gcm", "aes256-cbc")


@pytest.mark.parametrize("name", PROFILE_NAMES)
def test_every_profile_requires_a_timestamp(name: str) -> None:
    # WCF/MSAL, WSS4J, Rampart and zeep (given a Timestamp token) all send one, and their servers require it;
    # the published policy follows this value (tests/integration/test_metadata.py checks both ends per profile).
    assert timestamp_required(name) is True
    assert PROFILES[name].timestamp_required is True
