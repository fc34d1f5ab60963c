"""The per-RP transformation policy (Validate with a token type, WS-Trust 1.3 §7): sources, matching, storage."""

from __future__ import annotations

import pytest

from sts.relying_parties.delegation import DelegationError
from sts.relying_parties.model import RelyingParty
from sts.relying_parties.transformation import TransformationPolicy, normalize_source, source_of


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("self", "self"),
        (" SELF ", "self"),
        ("https://idp.example.test", "issuer:https://idp.example.test"),
        ("issuer:https://idp.example.test", "issuer:https://idp.example.test"),
        ("urn:example:idp", "issuer:urn:example:idp"),
    ],
)
def test_sources_are_stored_in_one_form(given: str, stored: str) -> None:
    assert normalize_source(given) == stored


@pytest.mark.parametrize("given", ["", "issuer:", "idp", "https://idp.example .test", "x:" + "a" * 2050])
def test_unusable_sources_are_refused(given: str) -> None:
    with pytest.raises(DelegationError):
        normalize_source(given)


def test_deny_by_default() -> None:
    policy = RelyingParty(address="https://rp.test/", encrypt=False).transformation
    assert not policy.enabled
    assert not policy.allows("self")
    assert policy.describe() == "denied (no sources allowed)"


def test_matching_is_exact() -> None:
    policy = TransformationPolicy(("self", "issuer:https://idp.example.test"))
    assert policy.allows(source_of(None))
    assert policy.allows(source_of("https://idp.example.test"))
    assert not policy.allows(source_of("https://idp.example.test/"))  # entity ids compare exactly
    assert not policy.allows(source_of("https://other.example.test"))
    assert policy.describe().startswith("from self, issuer:https://idp.example.test;")


def test_policy_survives_the_database_round_trip() -> None:
    rp = RelyingParty(address="https://rp.test/", encrypt=False, transform_from=("self",))
    assert RelyingParty.from_json(rp.to_json()) == rp
    legacy = RelyingParty.from_json('{"address": "https://rp.test/", "encrypt": false}')
    assert not legacy.transformation.enabled
