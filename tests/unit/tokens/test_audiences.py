"""Audience restrictions of a verified assertion: kept one set per restriction, and met only when every restriction
names an acceptable audience (SAML 2.0 core §2.5.1.4; SAML 1.1 core §2.3.2.1.3 for AudienceRestrictionCondition)."""

from __future__ import annotations

import pytest
from cryptography import x509
from lxml import etree

from sts import ns
from sts.crypto.keygen import generate_rsa_key, self_signed_certificate
from sts.crypto.signer import AssertionSigner
from sts.tokens.validation import VerifiedAssertion, verify_assertion
from sts.wstrust.tokentypes import SamlVersion
from tests import xsw

FRONT, BACK = "https://front.example/", "https://back.example/"


@pytest.fixture(scope="module")
def signer() -> tuple[AssertionSigner, x509.Certificate]:
    key = generate_rsa_key(2048)
    cert = self_signed_certificate(key, "sts")
    return AssertionSigner(key, cert), cert


def restricted(
    signer: tuple[AssertionSigner, x509.Certificate], version: SamlVersion, *restrictions: tuple[str, ...]
) -> VerifiedAssertion:
    """A signed assertion whose Conditions hold exactly ``restrictions``, one restriction element each."""
    saml2 = version is SamlVersion.SAML20
    saml, tag = (ns.SAML2, "AudienceRestriction") if saml2 else (ns.SAML1, "AudienceRestrictionCondition")
    assertion = xsw.build(version, xsw.make_content())
    conditions = assertion.find(f"{{{saml}}}Conditions")
    assert conditions is not None
    for old in conditions.findall(f"{{{saml}}}{tag}"):
        conditions.remove(old)
    for audiences in restrictions:
        element = etree.SubElement(conditions, f"{{{saml}}}{tag}")
        for audience in audiences:
            etree.SubElement(element, f"{{{saml}}}Audience").text = audience
    return verify_assertion(xsw.sign(signer[0], assertion), (signer[1],))


@pytest.mark.parametrize("version", list(SamlVersion))
def test_each_restriction_must_name_an_acceptable_audience(
    signer: tuple[AssertionSigner, x509.Certificate], version: SamlVersion
) -> None:
    two = restricted(signer, version, (FRONT,), (BACK,))
    assert two.audiences == (frozenset({FRONT}), frozenset({BACK}))
    assert not two.addressed_to((FRONT,)) and not two.addressed_to((BACK,))
    assert two.addressed_to((FRONT, BACK))  # a party that is both (as named here) meets both
    one = restricted(signer, version, (FRONT, BACK))
    assert one.audiences == (frozenset({FRONT, BACK}),)
    assert one.addressed_to((FRONT,)) and one.addressed_to((BACK,))
    assert not one.addressed_to(("https://other.example/",))


@pytest.mark.parametrize("version", list(SamlVersion))
def test_no_restriction_is_addressed_to_no_one(
    signer: tuple[AssertionSigner, x509.Certificate], version: SamlVersion
) -> None:
    """Acted upon only when it names its audience: fail closed."""
    none = restricted(signer, version)
    assert none.audiences == ()
    assert not none.addressed_to((FRONT,))
