"""The client's UseKey as a typed ClientKey: read once, checked at each use, stored as DER, rendered as KeyInfo."""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree

from sts import ns
from sts.crypto.keygen import certificate_der, certificate_pem, generate_rsa_key, self_signed_certificate
from sts.crypto.keywrap import (
    X509V3,
    ClientKey,
    TrustedClientKeys,
    UseKeyRejected,
    accept_client_key,
    read_use_key,
)

DS = ns.DS


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unsigned(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def key_info_x509(der: bytes) -> etree._Element:
    return etree.fromstring(
        f'<ds:KeyInfo xmlns:ds="{DS}"><ds:X509Data><ds:X509Certificate>{_b64(der)}'
        "</ds:X509Certificate></ds:X509Data></ds:KeyInfo>"
    )


def key_value(public: rsa.RSAPublicKey) -> etree._Element:
    numbers = public.public_numbers()
    return etree.fromstring(
        f'<ds:KeyInfo xmlns:ds="{DS}"><ds:KeyValue><ds:RSAKeyValue>'
        f"<ds:Modulus>\n{_b64(_unsigned(numbers.n))}\n</ds:Modulus><ds:Exponent>{_b64(_unsigned(numbers.e))}"
        "</ds:Exponent></ds:RSAKeyValue></ds:KeyValue></ds:KeyInfo>"
    )


@pytest.fixture(scope="module")
def client_key() -> rsa.RSAPrivateKey:
    return generate_rsa_key(2048)


@pytest.fixture
def registered(tmp_path: Path, client_key: rsa.RSAPrivateKey) -> TrustedClientKeys:
    (tmp_path / "client.pem").write_bytes(certificate_pem(self_signed_certificate(client_key, "client")))
    return TrustedClientKeys(tmp_path)


def now() -> dt.datetime:
    """The time of the test itself: certificates made during it are valid from 5 minutes before the real time,
    however long after collection the test runs."""
    return dt.datetime.now(dt.UTC)


def test_the_three_use_key_forms_are_read(client_key: rsa.RSAPrivateKey) -> None:
    cert = self_signed_certificate(client_key, "client")
    bst = etree.fromstring(
        f'<wsse:BinarySecurityToken xmlns:wsse="{ns.WSSE}" ValueType="{X509V3}">{_b64(certificate_der(cert))}'
        "</wsse:BinarySecurityToken>"
    )
    assert read_use_key(bst) == ClientKey(cert)
    assert read_use_key(key_info_x509(certificate_der(cert))) == ClientKey(cert)
    bare = read_use_key(key_value(client_key.public_key()))
    assert isinstance(bare.material, rsa.RSAPublicKey)
    assert bare.material.public_numbers() == client_key.public_key().public_numbers()


@pytest.mark.parametrize(
    "use_key",
    [
        f'<wsse:BinarySecurityToken xmlns:wsse="{ns.WSSE}" ValueType="urn:other">AAAA</wsse:BinarySecurityToken>',
        f'<ds:KeyInfo xmlns:ds="{DS}"><ds:X509Data><ds:X509Certificate>bm90IGEgY2VydA=='
        "</ds:X509Certificate></ds:X509Data></ds:KeyInfo>",
        f'<ds:KeyInfo xmlns:ds="{DS}"><ds:KeyValue><ds:RSAKeyValue><ds:Modulus>AQAB</ds:Modulus>'
        "</ds:RSAKeyValue></ds:KeyValue></ds:KeyInfo>",
        f'<ds:KeyInfo xmlns:ds="{DS}"><ds:KeyName>client</ds:KeyName></ds:KeyInfo>',
        f'<ds:X509Data xmlns:ds="{DS}"/>',
    ],
)
def test_malformed_or_unsupported_forms_are_refused(use_key: str) -> None:
    with pytest.raises(UseKeyRejected):
        read_use_key(etree.fromstring(use_key))


def test_a_registered_key_is_accepted_in_either_form(
    client_key: rsa.RSAPrivateKey, registered: TrustedClientKeys
) -> None:
    accept_client_key(ClientKey(self_signed_certificate(client_key, "another cert, same key")), now(), registered)
    accept_client_key(ClientKey(client_key.public_key()), now(), registered)


def test_unregistered_small_and_expired_keys_are_refused(
    client_key: rsa.RSAPrivateKey, registered: TrustedClientKeys
) -> None:
    stranger = generate_rsa_key(2048)
    for key in (ClientKey(stranger.public_key()), ClientKey(self_signed_certificate(stranger, "stranger"))):
        with pytest.raises(UseKeyRejected, match="not a registered client key"):
            accept_client_key(key, now(), registered)
    with pytest.raises(UseKeyRejected, match="at least 2048 bits"):
        accept_client_key(ClientKey(generate_rsa_key(1024).public_key()), now(), registered)
    later = now() + dt.timedelta(days=900)  # past the certificate's 825 days
    with pytest.raises(UseKeyRejected, match="expired"):
        accept_client_key(ClientKey(self_signed_certificate(client_key, "client")), later, registered)


def test_stored_form_round_trips_and_refuses_anything_else(client_key: rsa.RSAPrivateKey) -> None:
    cert_key, bare_key = ClientKey(self_signed_certificate(client_key, "client")), ClientKey(client_key.public_key())
    form, der = cert_key.encoded()
    assert form == "x509" and ClientKey.decoded(form, der) == cert_key
    form, der = bare_key.encoded()
    decoded = ClientKey.decoded(form, der)
    assert form == "rsa" and isinstance(decoded.material, rsa.RSAPublicKey)
    assert decoded.material.public_numbers() == client_key.public_key().public_numbers()
    for bad in (("dsa", der), ("x509", der), ("rsa", b"\x30\x00")):
        with pytest.raises(ValueError):
            ClientKey.decoded(*bad)


def test_key_info_names_the_key_as_it_was_given(client_key: rsa.RSAPrivateKey) -> None:
    cert = self_signed_certificate(client_key, "client")
    rendered = ClientKey(cert).key_info()
    assert etree.tostring(rendered) == etree.tostring(key_info_x509(certificate_der(cert)))
    bare = ClientKey(client_key.public_key()).key_info()
    assert read_use_key(bare).encoded() == ClientKey(client_key.public_key()).encoded()
    modulus = bare.findtext(f"{{{DS}}}KeyValue/{{{DS}}}RSAKeyValue/{{{DS}}}Modulus")
    assert modulus == _b64(_unsigned(client_key.public_key().public_numbers().n))  # canonical: no whitespace
