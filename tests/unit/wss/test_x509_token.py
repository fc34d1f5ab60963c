"""Tests for sts.wss.x509_token: BinarySecurityTokens and SecurityTokenReference forms (WSS X.509 Token Profile 1.1
§3; message-security reference §5, W32, G31, P06)."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from lxml import etree

from sts import errors, ns
from sts.wss.x509_token import (
    SKI,
    THUMBPRINT,
    X509TP,
    X509V3,
    TokenReference,
    read_binary_token,
    read_token_reference,
)
from tests.x509_support import make_cert, rsa_key, undecodable_name_der

NSDECL = f'xmlns:wsse="{ns.WSSE}" xmlns:wsu="{ns.WSU}" xmlns:ds="{ns.DS}"'


@pytest.fixture(scope="module")
def cert() -> x509.Certificate:
    return make_cert("alice", rsa_key())


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _bst(cert: x509.Certificate, attrs: str = f'ValueType="{X509V3}" EncodingType="{ns.BASE64_BINARY}"',
         token_id: str = "X509-1", text: str | None = None) -> str:
    content = _b64(_der(cert)) if text is None else text
    return f'<wsse:BinarySecurityToken {attrs} wsu:Id="{token_id}">{content}</wsse:BinarySecurityToken>'


def _security(*children: str) -> etree._Element:
    return etree.fromstring(f"<wsse:Security {NSDECL}>{''.join(children)}</wsse:Security>")


def _str(inner: str) -> etree._Element:
    return etree.fromstring(f"<wsse:SecurityTokenReference {NSDECL}>{inner}</wsse:SecurityTokenReference>")


def test_an_x509v3_token_yields_its_certificate(cert: x509.Certificate) -> None:
    token = _security(_bst(cert))[0]
    assert read_binary_token(token) == cert
    no_encoding = _security(_bst(cert, f'ValueType=" {X509V3} "'))[0]  # EncodingType is optional; whitespace trimmed
    assert read_binary_token(no_encoding) == cert


@pytest.mark.parametrize(
    ("attrs", "error", "reason"),
    [
        (f'ValueType="{X509TP}X509PKIPathv1"', errors.UnsupportedSecurityToken, "bst_path_unsupported"),
        (f'ValueType="{X509TP}PKCS7"', errors.UnsupportedSecurityToken, "bst_path_unsupported"),
        ('ValueType="urn:other"', errors.InvalidSecurityToken, "bst_value_type"),
        ("", errors.InvalidSecurityToken, "bst_value_type"),
        (f'ValueType="{X509V3}" EncodingType="urn:hex"', errors.InvalidSecurityToken, "bst_encoding"),
    ],
    ids=["W32_pkipath", "W32_pkcs7", "other_value_type", "no_value_type", "other_encoding"],
)
def test_tokens_other_than_one_x509v3_certificate_are_refused(
    cert: x509.Certificate, attrs: str, error: type[errors.STSError], reason: str
) -> None:
    with pytest.raises(error) as caught:
        read_binary_token(_security(_bst(cert, attrs))[0])
    assert caught.value.reason == reason


def test_token_content_must_be_one_base64_der_certificate(cert: x509.Certificate) -> None:
    cases = {
        "bst_structure": f'<wsse:BinarySecurityToken ValueType="{X509V3}"><x/></wsse:BinarySecurityToken>',
        "token_base64": _bst(cert, f'ValueType="{X509V3}"', text="not*base64"),
        "bad_certificate": _bst(cert, f'ValueType="{X509V3}"', text=_b64(b"not a certificate")),
        "token_too_large": _bst(cert, f'ValueType="{X509V3}"', text="A" * (17 * 1024 * 4 // 3)),
    }
    for reason, xml in cases.items():
        with pytest.raises(errors.InvalidSecurityToken) as caught:
            read_binary_token(_security(xml)[0])
        assert caught.value.reason == reason


def test_a_direct_reference_resolves_to_the_bst_of_our_security_header(cert: x509.Certificate) -> None:
    security = _security(_bst(cert))
    reference = _str(f'<wsse:Reference URI="#X509-1" ValueType="{X509V3}"/>')
    assert read_token_reference(reference, security) == TokenReference(certificate=cert, token_id="X509-1")
    untyped = _str('<wsse:Reference URI="#X509-1"/>')
    assert read_token_reference(untyped, security).certificate == cert


@pytest.mark.parametrize(
    ("inner", "error", "reason"),
    [
        ('<wsse:Reference URI="http://127.0.0.1/cert"/>', errors.SecurityTokenUnavailable, "str_external"),
        ('<wsse:Reference URI="#"/>', errors.SecurityTokenUnavailable, "str_external"),
        ('<wsse:Reference URI="#elsewhere"/>', errors.SecurityTokenUnavailable, "str_dangling"),
        ('<wsse:Reference URI="#X509-1" ValueType="urn:saml"/>', errors.UnsupportedSecurityToken, "str_value_type"),
        ('<wsse:Reference URI="#X509-1"/><wsse:Reference URI="#X509-1"/>', errors.InvalidSecurityToken,
         "str_structure"),
        ("", errors.InvalidSecurityToken, "str_structure"),
        ("<wsse:Embedded/>", errors.UnsupportedSecurityToken, "str_unsupported"),
        ("<ds:KeyName>alice</ds:KeyName>", errors.UnsupportedSecurityToken, "str_unsupported"),
    ],
    ids=["external", "empty_fragment", "G31_dangling", "other_token_type", "two_references", "empty",
         "W32_embedded", "W32_key_name"],
)
def test_unusable_references_are_refused(
    cert: x509.Certificate, inner: str, error: type[errors.STSError], reason: str
) -> None:
    with pytest.raises(error) as caught:
        read_token_reference(_str(inner), _security(_bst(cert)))
    assert caught.value.reason == reason


def test_g31_a_bst_in_another_security_header_is_not_ours(cert: x509.Certificate) -> None:
    """BSP R3066: the direct reference is looked up in our Security header only."""
    ours = _security()
    with pytest.raises(errors.SecurityTokenUnavailable):
        read_token_reference(_str('<wsse:Reference URI="#X509-1"/>'), ours)


def test_key_identifiers_name_a_certificate_to_look_up(cert: x509.Certificate) -> None:
    der = _der(cert)
    thumbprint = hashlib.sha1(der).digest()  # noqa: S324 - the profile's identifier
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest

    def ki(value_type: str, value: bytes) -> etree._Element:
        return _str(f'<wsse:KeyIdentifier ValueType="{value_type}" EncodingType="{ns.BASE64_BINARY}">{_b64(value)}'
                    "</wsse:KeyIdentifier>")

    assert read_token_reference(ki(THUMBPRINT, thumbprint), _security()) == TokenReference(thumbprint=thumbprint)
    assert read_token_reference(ki(SKI, ski), _security()) == TokenReference(ski=ski)
    assert read_token_reference(ki(X509V3, der), _security()) == TokenReference(certificate=cert)


@pytest.mark.parametrize(
    ("inner", "error", "reason"),
    [
        (f'<wsse:KeyIdentifier ValueType="{THUMBPRINT}">{_b64(b"short")}</wsse:KeyIdentifier>',
         errors.InvalidSecurityToken, "ki_thumbprint"),
        (f'<wsse:KeyIdentifier ValueType="{THUMBPRINT}" EncodingType="urn:hex">00</wsse:KeyIdentifier>',
         errors.InvalidSecurityToken, "ki_encoding"),
        (f'<wsse:KeyIdentifier ValueType="{X509TP}X509IssuerSerial">AAAA</wsse:KeyIdentifier>',
         errors.UnsupportedSecurityToken, "ki_value_type"),
        (f'<wsse:KeyIdentifier ValueType="{SKI}">{"A" * 200}</wsse:KeyIdentifier>',
         errors.InvalidSecurityToken, "token_too_large"),
    ],
    ids=["short_thumbprint", "hex_encoding", "other_value_type", "oversized"],
)
def test_malformed_key_identifiers_are_refused(inner: str, error: type[errors.STSError], reason: str) -> None:
    with pytest.raises(error) as caught:
        read_token_reference(_str(inner), _security())
    assert caught.value.reason == reason


def _issuer_serial(issuer: str, serial: str, extra: str = "") -> etree._Element:
    return _str(f"<ds:X509Data><ds:X509IssuerSerial><ds:X509IssuerName>{issuer}</ds:X509IssuerName>"
                f"<ds:X509SerialNumber>{serial}</ds:X509SerialNumber></ds:X509IssuerSerial>{extra}</ds:X509Data>")


def test_p06_issuer_serial_is_compared_as_a_parsed_name_and_integer(cert: x509.Certificate) -> None:
    """.NET's ``S=``/``E=`` spellings parse to the same Name; extra spaces around values do not matter."""
    parsed = read_token_reference(_issuer_serial("CN=alice, O=sts tests", "  42 "), _security())
    assert parsed.issuer_serial == (cert.issuer, 42)
    dotnet = read_token_reference(_issuer_serial("E=a@example.org,S=Bavaria,CN=x", "7"), _security())
    assert dotnet.issuer_serial is not None
    assert dotnet.issuer_serial[0] == x509.Name.from_rfc4514_string(
        "1.2.840.113549.1.9.1=a@example.org,ST=Bavaria,CN=x"
    )
    embedded = read_token_reference(
        _issuer_serial("CN=alice", "1", f"<ds:X509Certificate>{_b64(_der(cert))}</ds:X509Certificate>"), _security()
    )
    assert embedded.embedded == cert


@pytest.mark.parametrize(
    ("reference", "error", "reason"),
    [
        (lambda: _issuer_serial("CN=alice", "0x2a"), errors.InvalidSecurityToken, "issuer_serial"),  # P06: hex
        (lambda: _issuer_serial("not a DN", "1"), errors.InvalidSecurityToken, "issuer_serial"),
        (lambda: _str("<ds:X509Data><ds:X509IssuerSerial><ds:X509SerialNumber>1</ds:X509SerialNumber>"
                      "</ds:X509IssuerSerial></ds:X509Data>"), errors.InvalidSecurityToken, "issuer_serial"),
        (lambda: _str("<ds:X509Data><ds:X509SubjectName>CN=a</ds:X509SubjectName></ds:X509Data>"),
         errors.UnsupportedSecurityToken, "x509data_form"),
        (lambda: _issuer_serial("CN=a", "1", "<ds:X509SKI>AAAA</ds:X509SKI>"), errors.UnsupportedSecurityToken,
         "x509data_form"),
    ],
    ids=["P06_hex_serial", "unparsable_issuer", "missing_issuer_name", "subject_name", "extra_child"],
)
def test_malformed_x509_data_is_refused(reference: object, error: type[errors.STSError], reason: str) -> None:
    with pytest.raises(error) as caught:
        read_token_reference(reference(), _security())  # type: ignore[operator]
    assert caught.value.reason == reason


@pytest.mark.parametrize("which", ["issuer", "subject"])
def test_a_certificate_whose_names_do_not_decode_is_a_bad_token(which: str) -> None:
    """cryptography decodes names only when they are read: the token reader reads them, so such a certificate is
    this token's error (InvalidSecurityToken) in each place a certificate is carried, not a ValueError later."""
    der = undecodable_name_der(make_cert("zzqqx", rsa_key()), which)
    text = base64.b64encode(der).decode()
    carried = {
        "bst": lambda: read_binary_token(_security(f'<wsse:BinarySecurityToken ValueType="{X509V3}"'
                                                   f">{text}</wsse:BinarySecurityToken>")[0]),
        "key_identifier": lambda: read_token_reference(
            _str(f'<wsse:KeyIdentifier ValueType="{X509V3}">{text}</wsse:KeyIdentifier>'), _security()),
        "x509_data": lambda: read_token_reference(
            _str("<ds:X509Data><ds:X509IssuerSerial><ds:X509IssuerName>CN=zzqqx</ds:X509IssuerName>"
                 f"<ds:X509SerialNumber>1</ds:X509SerialNumber></ds:X509IssuerSerial>"
                 f"<ds:X509Certificate>{text}</ds:X509Certificate></ds:X509Data>"), _security()),
    }
    for read in carried.values():
        with pytest.raises(errors.InvalidSecurityToken) as caught:
            read()
        assert caught.value.reason == "bad_certificate"
