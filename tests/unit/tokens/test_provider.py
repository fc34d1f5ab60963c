"""TokenProvider.create_token: one assertion built, confirmed, signed and protected, with a frozen clock."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree

from sts import ns
from sts.clock import FrozenClock, format_instant
from sts.crypto.algorithms import KeyTransport
from sts.crypto.decrypter import TokenDecrypter
from sts.crypto.encrypter import EncryptionPolicy, TokenEncrypter
from sts.crypto.keygen import generate_rsa_key, self_signed_certificate
from sts.crypto.keywrap import ClientKey, unwrap_key
from sts.crypto.signer import AssertionSigner
from sts.errors import RequestFailed
from sts.tokens.authn import PASSWORD_PROTECTED_TRANSPORT
from sts.tokens.base import NAMEID_UNSPECIFIED, Attribute, Delegate
from sts.tokens.provider import (
    IssuerIdentity,
    KeyRequirements,
    Recipient,
    TokenProvider,
    TokenProviderParameters,
)
from sts.tokens.saml2 import HOLDER_OF_KEY
from sts.tokens.validation import AssertionRejected, verify_assertion
from sts.wstrust.keys import p_sha1
from sts.wstrust.tokentypes import KeyKind, SamlVersion
from tests.token_checks import verify_with_both

T0 = dt.datetime(2030, 1, 1, 12, 0, 0, 987654, tzinfo=dt.UTC)
SAML2, DS, XENC = ns.SAML2, ns.DS, ns.XENC
AUDIENCE = "urn:rp"


@dataclass(frozen=True)
class Keys:
    sts_key: rsa.RSAPrivateKey
    sts_cert: x509.Certificate
    rp_key: rsa.RSAPrivateKey
    rp_cert: x509.Certificate


@pytest.fixture(scope="module")
def keys() -> Keys:
    sts_key, rp_key = generate_rsa_key(2048), generate_rsa_key(2048)
    return Keys(sts_key, self_signed_certificate(sts_key, "sts"), rp_key, self_signed_certificate(rp_key, "rp"))


def c14n(element: etree._Element) -> bytes:
    return etree.tostring(element, method="c14n", exclusive=True)


IDENTITY = IssuerIdentity("https://sts.example/")


def provider(keys: Keys, identity: IssuerIdentity = IDENTITY) -> TokenProvider:
    return TokenProvider(identity, AssertionSigner(keys.sts_key, keys.sts_cert), FrozenClock(T0))


def parameters(
    keys: Keys, kind: KeyKind = KeyKind.BEARER, version: SamlVersion = SamlVersion.SAML20, **recipient: object
) -> TokenProviderParameters:
    target = Recipient(AUDIENCE, None, keys.rp_cert, KeyTransport.RSA_OAEP_MGF1P)
    return TokenProviderParameters(
        version=version,
        name_id="alice",
        name_id_format=NAMEID_UNSPECIFIED,
        attributes=(Attribute("urn:mail", ("a@example",)),),
        authn_context=PASSWORD_PROTECTED_TRANSPORT,
        recipient=replace(target, **recipient),  # type: ignore[arg-type]
        keys=KeyRequirements(kind),
    )


def test_a_bearer_token_is_signed_and_dated_by_the_injected_clock(keys: Keys) -> None:
    made = provider(keys, IssuerIdentity("https://sts.example/", 300, 43200, 60)).create_token(parameters(keys))
    verified = verify_assertion(made.token, (keys.sts_cert,))
    now = T0.replace(microsecond=0)
    assert verified.assertion_id == made.content.assertion_id and verified.subject == "alice"
    assert (made.content.issue_instant, verified.not_before, verified.not_on_or_after) == (
        now,
        now - dt.timedelta(seconds=60),
        now + dt.timedelta(seconds=300),
    )
    assert verified.audiences == (frozenset({AUDIENCE}),) and made.proof is None
    assert made.token.findtext(f".//{{{SAML2}}}AuthnContextClassRef") == PASSWORD_PROTECTED_TRANSPORT


@pytest.mark.parametrize(("own", "expected"), [(None, 300), (600, 600), (90000, 43200)])
def test_lifetime_is_the_relying_partys_capped_by_the_maximum(keys: Keys, own: int | None, expected: int) -> None:
    made = provider(keys, IssuerIdentity("https://sts.example/", 300, 43200, 60)).create_token(
        parameters(keys, lifetime=own)
    )
    assert made.content.not_on_or_after - made.content.issue_instant == dt.timedelta(seconds=expected)


def test_saml11_tokens_are_made_too(keys: Keys) -> None:
    made = provider(keys).create_token(parameters(keys, version=SamlVersion.SAML11))
    assert made.token.tag == f"{{{ns.SAML1}}}Assertion"
    assert verify_assertion(made.token, (keys.sts_cert,)).version is SamlVersion.SAML11
    assert made.token.get("IssueInstant") == format_instant(T0)


def test_a_symmetric_proof_key_is_wrapped_for_the_relying_party(keys: Keys) -> None:
    params = parameters(keys, KeyKind.SYMMETRIC)
    made = provider(keys).create_token(replace(params, keys=KeyRequirements(KeyKind.SYMMETRIC, key_bits=128)))
    assert made.proof is not None and made.proof.bits == 128 and made.proof.issuer_entropy is None
    confirmation = made.token.find(f".//{{{SAML2}}}SubjectConfirmation")
    assert confirmation is not None and confirmation.get("Method") == HOLDER_OF_KEY
    wrapped = confirmation.find(f".//{{{XENC}}}EncryptedKey")
    assert wrapped is not None and unwrap_key(wrapped, keys.rp_key) == made.proof.key


def test_a_computed_key_mixes_both_entropies(keys: Keys) -> None:
    entropy = bytes(range(32))
    requirements = KeyRequirements(KeyKind.SYMMETRIC, entropy=entropy)
    made = provider(keys).create_token(replace(parameters(keys), keys=requirements))
    assert made.proof is not None and made.proof.issuer_entropy is not None
    assert made.proof.key == p_sha1(entropy, made.proof.issuer_entropy, 32)


def test_a_symmetric_key_needs_the_relying_partys_certificate(keys: Keys) -> None:
    with pytest.raises(RequestFailed) as caught:
        provider(keys).create_token(parameters(keys, KeyKind.SYMMETRIC, certificate=None))
    assert caught.value.reason == "hok_without_rp_cert"


def test_a_public_key_token_names_the_clients_key(keys: Keys) -> None:
    client = ClientKey(self_signed_certificate(generate_rsa_key(2048), "client"))
    requirements = KeyRequirements(KeyKind.PUBLIC, client_key=client)
    made = provider(keys).create_token(replace(parameters(keys), keys=requirements))
    key_info = made.token.find(f".//{{{SAML2}}}SubjectConfirmationData/{{{DS}}}KeyInfo")
    assert key_info is not None and c14n(key_info) == c14n(client.key_info())
    assert made.proof is None


def test_a_public_key_token_without_a_key_is_refused(keys: Keys) -> None:
    with pytest.raises(RequestFailed) as caught:
        provider(keys).create_token(parameters(keys, KeyKind.PUBLIC))
    assert caught.value.reason == "public_key_missing"


@pytest.mark.parametrize(
    ("version", "outer"),
    [(SamlVersion.SAML20, f"{{{SAML2}}}EncryptedAssertion"), (SamlVersion.SAML11, f"{{{XENC}}}EncryptedData")],
)
def test_encryption_for_the_relying_party(keys: Keys, version: SamlVersion, outer: str) -> None:
    encrypter = TokenEncrypter(keys.rp_cert, EncryptionPolicy())
    made = provider(keys).create_token(parameters(keys, version=version, encrypt=encrypter.encrypt))
    assert made.token.tag == outer
    encrypted = made.token if version is SamlVersion.SAML11 else made.token[0]
    plain = TokenDecrypter(keys.rp_key).decrypt(encrypted)
    assert verify_assertion(plain, (keys.sts_cert,)).assertion_id == made.content.assertion_id


def _delegated_token(keys: Keys) -> etree._Element:
    delegate = Delegate("DOMAIN/service", "urn:oasis:names:tc:SAML:2.0:cm:bearer", T0)
    return provider(keys).create_token(replace(parameters(keys), delegates=(delegate,))).token


def test_the_delegation_conditions_xsi_type_prefix_is_bound_in_what_is_signed(keys: Keys, tmp_path: Path) -> None:
    """``xsi:type="del:DelegationRestrictionType"`` names its type with a prefix the Condition element does not
    visibly use, so exclusive c14n (Exc-C14N §3, "visibly utilizes"; SAML 2.0 core §5.4.3) leaves its declaration out
    of the signed content unless the reference's InclusiveNamespaces PrefixList lists it. Without it, the signed XML
    a relying party goes on with (signxml's ``signed_xml``) has an unbound prefix in the type of the Condition."""
    cert_path = tmp_path / "sts.pem"
    cert_path.write_bytes(keys.sts_cert.public_bytes(serialization.Encoding.PEM))
    signed = verify_with_both(etree.tostring(_delegated_token(keys)), cert_path, saml11=False)
    condition = signed.find(f"{{{SAML2}}}Conditions/{{{SAML2}}}Condition")
    assert condition is not None
    prefix, _, local = (condition.get(f"{{{ns.XSI}}}type") or "").partition(":")
    assert (condition.nsmap.get(prefix), local) == (ns.SAML_DELEGATION, "DelegationRestrictionType")
    assert verify_assertion(_delegated_token(keys), (keys.sts_cert,)).delegates == ("DOMAIN/service",)


def test_rebinding_the_delegation_type_prefix_breaks_the_signature(keys: Keys) -> None:
    """The namespace the condition's type is read in is covered by the signature: binding ``del`` to another
    namespace on the Condition (the Delegate keeping its own) must not verify."""
    token = _delegated_token(keys)
    condition = token.find(f"{{{SAML2}}}Conditions/{{{SAML2}}}Condition")
    assert condition is not None
    text = etree.tostring(token).decode()
    forged = text.replace(
        f'<saml2:Condition xmlns:del="{ns.SAML_DELEGATION}"', '<saml2:Condition xmlns:del="urn:example:other"', 1
    ).replace("<del:Delegate ", f'<del:Delegate xmlns:del="{ns.SAML_DELEGATION}" ', 1)
    assert forged != text
    forged_condition = etree.fromstring(forged).find(f"{{{SAML2}}}Conditions/{{{SAML2}}}Condition")
    assert forged_condition is not None and forged_condition.nsmap["del"] == "urn:example:other"
    with pytest.raises(AssertionRejected):
        verify_assertion(etree.fromstring(forged), (keys.sts_cert,))
