"""This STS's own issuer entry believes the certificates in force at each verification (a key promoted while the
worker runs), other issuers their pinned certificates only."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509

from sts.crypto.keygen import generate_rsa_key, self_signed_certificate
from sts.crypto.signer import AssertionSigner
from sts.tokens.trust import SELF, IssuerTrust, IssuerTrustList
from sts.tokens.validation import AssertionRejected
from sts.wstrust.tokentypes import SamlVersion
from tests.xsw import build_signed, make_content

ISSUER = "https://sts.example/"  # the issuer tests.xsw writes


def _signer(name: str) -> tuple[AssertionSigner, x509.Certificate]:
    key = generate_rsa_key(2048)
    cert = self_signed_certificate(key, name)
    return AssertionSigner(key, cert), cert


def test_own_tokens_verify_with_the_certificates_in_force_now() -> None:
    (old_signer, old), (new_signer, new) = _signer("old"), _signer("new")
    in_force: list[tuple[x509.Certificate, ...]] = [(old,)]
    trust = IssuerTrustList((IssuerTrust(ISSUER, (old,), SELF),), 60, lambda: in_force[0])
    now = dt.datetime.now(dt.UTC)
    promoted = build_signed(new_signer, SamlVersion.SAML20, make_content())
    with pytest.raises(AssertionRejected):
        trust.verify(promoted, now)
    in_force[0] = (new, old)  # promoted: the new key signs, the old certificate is still accepted
    assert trust.verify(promoted, now).issuer.source == SELF
    assert trust.verify(build_signed(old_signer, SamlVersion.SAML20, make_content()), now).issuer.source == SELF


def test_another_issuer_keeps_its_pinned_certificates() -> None:
    (signer, cert), (_, ours) = _signer("idp"), _signer("sts")
    trust = IssuerTrustList((IssuerTrust(ISSUER, (cert,), ISSUER),), 60, lambda: (ours,))
    token = build_signed(signer, SamlVersion.SAML20, make_content())
    assert trust.verify(token, dt.datetime.now(dt.UTC)).issuer.entity_id == ISSUER
