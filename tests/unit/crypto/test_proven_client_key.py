"""Tests for sts.crypto.keywrap's proof-of-possession rules for PublicKey tokens (WS-Trust 1.3 §9.2 UseKey): a signed
request binds only the key that signed it (I21, I23), an unsigned one only a certificate registered to the caller."""

from __future__ import annotations

import base64
import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from lxml import etree

from sts import ns
from sts.crypto.keywrap import ClientKey, UseKeyRejected, accept_registered_key, proven_client_key
from tests.x509_support import make_cert, rsa_key

NOW = dt.datetime.now(dt.UTC)
X509V3 = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3"


@pytest.fixture(scope="module")
def alice() -> x509.Certificate:
    return make_cert("alice", rsa_key())


@pytest.fixture(scope="module")
def bob() -> x509.Certificate:
    return make_cert("bob", rsa_key())


def _use_key(inner: str, sig: str | None = None) -> etree._Element:
    attrs = f' Sig="{sig}"' if sig is not None else ""
    use_key = etree.fromstring(f'<wst:UseKey xmlns:wst="{ns.WST}" xmlns:wsse="{ns.WSSE}" xmlns:ds="{ns.DS}"{attrs}>'
                               f"{inner}</wst:UseKey>")
    return use_key[0]


def _b64(cert: x509.Certificate) -> str:
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


def _key_value(cert: x509.Certificate) -> str:
    numbers = cert.public_key().public_numbers()  # type: ignore[union-attr]
    modulus = base64.b64encode(numbers.n.to_bytes(256, "big")).decode()  # type: ignore[union-attr]
    return (f"<ds:KeyInfo><ds:KeyValue><ds:RSAKeyValue><ds:Modulus>{modulus}</ds:Modulus>"
            "<ds:Exponent>AQAB</ds:Exponent></ds:RSAKeyValue></ds:KeyValue></ds:KeyInfo>")


def test_the_signing_key_is_bound_in_every_form(alice: x509.Certificate) -> None:
    assert proven_client_key(None, alice, "X509-1", None) == ClientKey(alice)
    forms = [
        '<wsse:SecurityTokenReference><wsse:Reference URI="#X509-1"/></wsse:SecurityTokenReference>',
        f'<wsse:BinarySecurityToken ValueType="{X509V3}">{_b64(alice)}</wsse:BinarySecurityToken>',
        f"<ds:KeyInfo><ds:X509Data><ds:X509Certificate>{_b64(alice)}</ds:X509Certificate></ds:X509Data></ds:KeyInfo>",
        _key_value(alice),
    ]
    for inner in forms:
        bound = proven_client_key(_use_key(inner, sig="#SIG-1"), alice, "X509-1", "SIG-1")
        assert bound.same_key(alice)


@pytest.mark.parametrize(
    "case",
    ["I21_other_certificate", "I21_other_token", "I23_other_key_value", "I23_dangling_sig", "sig_unsigned",
     "str_without_token"],
)
def test_a_key_the_request_did_not_prove_is_refused(alice: x509.Certificate, bob: x509.Certificate, case: str) -> None:
    inner, sig, token_id, signature_id = {
        "I21_other_certificate": (f'<wsse:BinarySecurityToken ValueType="{X509V3}">{_b64(bob)}'
                                  "</wsse:BinarySecurityToken>", None, "X509-1", None),
        "I21_other_token": ('<wsse:SecurityTokenReference><wsse:Reference URI="#X509-2"/>'
                            "</wsse:SecurityTokenReference>", None, "X509-1", None),
        "I23_other_key_value": (_key_value(bob), None, "X509-1", None),
        "I23_dangling_sig": (_key_value(alice), "#nope", "X509-1", "SIG-1"),
        "sig_unsigned": (_key_value(alice), "#SIG-1", "X509-1", None),
        "str_without_token": ('<wsse:SecurityTokenReference><wsse:Reference URI="#X509-1"/>'
                              "</wsse:SecurityTokenReference>", None, None, None),
    }[case]
    with pytest.raises(UseKeyRejected):
        proven_client_key(_use_key(inner, sig), alice, token_id, signature_id)


def test_an_unsigned_request_binds_only_a_valid_certificate_registered_to_the_caller(
    alice: x509.Certificate, bob: x509.Certificate
) -> None:
    accept_registered_key(ClientKey(alice), NOW, [bob, alice])
    accept_registered_key(ClientKey(alice.public_key()), NOW, [alice])  # type: ignore[arg-type]  # bare RSA key
    with pytest.raises(UseKeyRejected):
        accept_registered_key(ClientKey(alice), NOW, [bob])
    key = rsa_key()
    expired = make_cert("old", key, days=(-30, -1))
    with pytest.raises(UseKeyRejected):  # the bare key of a registered certificate that expired
        accept_registered_key(ClientKey(key.public_key()), NOW, [expired])
