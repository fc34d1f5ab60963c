"""Token-type spellings (R3) and key types (§8, R15)."""

from __future__ import annotations

import pytest

from sts import errors, ns
from sts.wstrust.tokentypes import (
    SAML11_PROFILE_URI,
    SAML11_URN,
    SAML20_PROFILE_URI,
    SAML20_URN,
    KeyKind,
    SamlVersion,
    resolve_key_type,
    resolve_token_type,
)
from sts.wstrust.version import TrustVersion

WST, WST05 = TrustVersion.TRUST13, TrustVersion.FEB2005


@pytest.mark.parametrize(
    ("uri", "version"),
    [
        (SAML11_PROFILE_URI, SamlVersion.SAML11),
        (SAML11_URN, SamlVersion.SAML11),
        (SAML20_PROFILE_URI, SamlVersion.SAML20),
        (SAML20_URN, SamlVersion.SAML20),
    ],
)
def test_every_spelling_is_echoed(uri: str, version: SamlVersion) -> None:
    resolved = resolve_token_type(uri, SamlVersion.SAML20)
    assert (resolved.version, resolved.uri) == (version, uri)


def test_default_uses_the_urn_spelling() -> None:
    assert resolve_token_type(None, SamlVersion.SAML11).uri == SAML11_URN
    assert resolve_token_type(None, SamlVersion.SAML20).uri == SAML20_URN


def test_unknown_token_type_is_bad_request() -> None:
    with pytest.raises(errors.BadRequest):
        resolve_token_type("urn:oasis:names:tc:SAML:2.0:assertion ", SamlVersion.SAML20)


def test_key_types() -> None:
    assert resolve_key_type(None, WST) == (KeyKind.BEARER, f"{ns.WST}/Bearer")
    assert resolve_key_type(f"{ns.WST}/SymmetricKey", WST)[0] is KeyKind.SYMMETRIC
    assert resolve_key_type(f"{ns.WST}/PublicKey", WST)[0] is KeyKind.PUBLIC
    assert resolve_key_type(f"{ns.WST05}/Bearer", WST05) == (KeyKind.BEARER, f"{ns.WST05}/Bearer")
    no_proof = "http://schemas.xmlsoap.org/ws/2005/05/identity/NoProofKey"
    assert resolve_key_type(no_proof, WST05) == (KeyKind.BEARER, no_proof)
    with pytest.raises(errors.InvalidRequest):
        resolve_key_type(no_proof, WST)
    with pytest.raises(errors.InvalidRequest):
        resolve_key_type(f"{ns.WST05}/Bearer", WST)
