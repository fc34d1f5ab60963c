"""Catalogue rows checked here directly because they are properties of one function or of the source."""

from __future__ import annotations

import datetime as dt
import inspect
import re
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from lxml import etree

from sts import ns
from sts.crypto import keygen
from sts.crypto.keystore import check_certificate
from sts.crypto.signer import AssertionSigner
from sts.crypto.verifier import verify_enveloped
from sts.tokens.base import NAMEID_UNSPECIFIED, AssertionContent, Attribute
from sts.tokens.saml2 import build_saml2
from sts.wss import username as username_module
from sts.wss.username import parse_username_token

SOURCE = Path(__file__).resolve().parents[2] / "sts"
T0 = dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)


def _token(username_xml: str) -> etree._Element:
    return etree.fromstring(
        f'<wsse:UsernameToken xmlns:wsse="{ns.WSSE}">{username_xml}'
        f'<wsse:Password Type="{ns.PASSWORD_TEXT}">pw</wsse:Password></wsse:UsernameToken>'
    )


@pytest.mark.parametrize(
    "username_xml",
    ["<wsse:Username><![CDATA[alice]]></wsse:Username>", "<wsse:Username>&#x61;lice</wsse:Username>"],
)
def test_x19_cdata_and_character_references_mean_the_same_name(username_xml: str) -> None:
    parser = etree.XMLParser(resolve_entities=False)
    element = etree.fromstring(etree.tostring(_token(username_xml)), parser)
    credential = parse_username_token(element, bsp_strict=False, min_nonce_bytes=16, max_password_bytes=1024)
    assert credential.username == "alice"


def test_a06_secrets_are_compared_in_constant_time() -> None:
    assert "hmac.compare_digest" in inspect.getsource(username_module.digest_matches)
    offenders = []
    pattern = re.compile(r"\b\w*(digest|password|secret|nonce|signature)\w*\s*[!=]=\s*\w", re.I)
    for path in SOURCE.rglob("*.py"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if pattern.search(code) and "password_type" not in code and "is_digest" not in code:
                offenders.append(f"{path.name}:{number}: {line.strip()}")
    assert offenders == []


def test_i10_markup_in_claim_values_is_escaped_signed_and_round_trips() -> None:
    key = keygen.generate_rsa_key(2048)
    cert = keygen.self_signed_certificate(key, "sts")
    evil = "x</saml2:AttributeValue><saml2:AttributeValue>admin]]>&amp;"
    content = AssertionContent(
        "_" + "b" * 40,
        "https://sts/",
        T0,
        T0,
        T0 + dt.timedelta(minutes=5),
        "https://rp/",
        "https://rp/",
        "alice",
        NAMEID_UNSPECIFIED,
        T0,
        (Attribute("urn:a", (evil,)),),
    )
    signed = AssertionSigner(key, cert).sign_saml2(build_saml2(content))
    verified = verify_enveloped(etree.fromstring(etree.tostring(signed)), "ID", (cert,))
    assert [v.text for v in verified.iter(ns.qn(ns.SAML2, "AttributeValue"))] == [evil]


def _cert(bits: int, days: int) -> x509.Certificate:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rp")])
    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=10)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
        .sign(key, hashes.SHA256())
    )


@pytest.mark.parametrize(("bits", "days", "problem"), [(1024, 400, "bits"), (2048, 5, "expired")])
def test_e05_weak_or_expired_relying_party_certificates_are_refused(bits: int, days: int, problem: str) -> None:
    problems, _ = check_certificate(_cert(bits, days), "relying party", dt.datetime.now(dt.UTC))
    assert any(problem in p for p in problems)
