"""Issuance policy rows: the token is encrypted for the registered RP whatever the request says (I15), legacy
algorithm wishes are ignored (I16), and a prefix RP's audience is its identifier, not the request string (I05)."""

from __future__ import annotations

import base64
import time

import pytest
from cryptography.hazmat.primitives import serialization
from lxml import etree

from sts.crypto.keygen import generate_rsa_key, self_signed_certificate
from sts.relying_parties.model import RelyingParty
from sts.relying_parties.registry import RelyingPartyRegistry
from sts.stores.sqlite import Database
from sts.stores.sqlite_relying_parties import SqliteRelyingPartyStore
from tests.support import WSSE, WST, Instance, Server, rst_envelope
from tests.token_checks import decrypt_with_python_xmlsec, verify_with_both

pytestmark = pytest.mark.integration
SAML2 = "urn:oasis:names:tc:SAML:2.0:assertion"
XENC = "http://www.w3.org/2001/04/xmlenc#"
DS = "http://www.w3.org/2000/09/xmldsig#"


def issue(server: Server, instance: Instance, **kwargs: str) -> etree._Element:
    response = server.post(rst_envelope("admin", instance.demo_password, **kwargs))
    assert response.status_code == 200, response.content[:1000]
    holder = etree.fromstring(response.content).find(f".//{{{WST}}}RequestedSecurityToken")
    assert holder is not None
    return holder[0]


def test_i15_token_is_encrypted_for_the_registered_rp_not_a_key_in_the_request(
    server: Server, instance: Instance
) -> None:
    attacker = self_signed_certificate(generate_rsa_key(2048), "attacker")
    der = base64.b64encode(attacker.public_bytes(serialization.Encoding.DER)).decode()
    bst = f'<wsse:BinarySecurityToken xmlns:wsse="{WSSE}">{der}</wsse:BinarySecurityToken>'
    token = issue(server, instance, extra_rst=f"<wst:Encryption>{bst}</wst:Encryption>")
    plain = decrypt_with_python_xmlsec(token[0], instance.rp_key)  # the demo RP's key opens it
    verify_with_both(plain, instance.signing_cert, False)


def test_i16_legacy_algorithm_wishes_are_ignored(server: Server, instance: Instance) -> None:
    wishes = (
        "<wst:EncryptWith>http://www.w3.org/2001/04/xmlenc#aes128-cbc</wst:EncryptWith>"
        "<wst:KeyWrapAlgorithm>http://www.w3.org/2001/04/xmlenc#rsa-1_5</wst:KeyWrapAlgorithm>"
        "<wst:SignWith>http://www.w3.org/2000/09/xmldsig#rsa-sha1</wst:SignWith>"
        "<wst:SignatureAlgorithm>http://www.w3.org/2000/09/xmldsig#rsa-sha1</wst:SignatureAlgorithm>"
    )
    token = issue(server, instance, extra_rst=wishes)
    methods = [m.get("Algorithm") for m in token.iter(f"{{{XENC}}}EncryptionMethod")]
    assert methods == ["http://www.w3.org/2009/xmlenc11#aes256-gcm", "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"]
    plain = etree.fromstring(decrypt_with_python_xmlsec(token[0], instance.rp_key))
    signature_method = plain.find(f".//{{{DS}}}SignatureMethod")
    assert signature_method is not None
    assert signature_method.get("Algorithm") == "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"


def test_i05_prefix_rp_audience_is_its_identifier(server: Server, instance: Instance) -> None:
    with Database(instance.base / "sts.db") as db:
        RelyingPartyRegistry(SqliteRelyingPartyStore(db)).add(
            RelyingParty(
                address="https://localhost:8443/apps/",
                match="prefix",
                identifier="https://apps.example.com/",
                cert_file="demo-rp.crt.pem",
            )
        )
    time.sleep(1.2)  # workers look at the registry version at most once a second
    token = issue(server, instance, applies_to="https://localhost:8443/apps/../admin")
    plain = etree.fromstring(decrypt_with_python_xmlsec(token[0], instance.rp_key))
    audiences = [a.text for a in plain.iter(f"{{{SAML2}}}Audience")]
    assert audiences == ["https://apps.example.com/"]
    confirmation = plain.find(f".//{{{SAML2}}}SubjectConfirmationData")
    assert confirmation is not None and confirmation.get("Recipient") == "https://apps.example.com/"
