"""Issue 6: holder-of-key tokens and the lifecycle over HTTP against gunicorn with 2 workers.

Issue → Validate (valid) → Renew → Validate (valid) → Cancel → Validate (invalid) → Renew refused, for SAML 1.1
and 2.0; the symmetric proof key found in the assertion (decrypted with the RP key) equals the client's key,
for random and PSHA1-computed keys; PublicKey tokens carry the client's X.509 certificate.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives import serialization
from lxml import etree

from sts.crypto.keygen import generate_rsa_key, load_private_key, self_signed_certificate
from sts.crypto.keywrap import unwrap_key
from sts.wstrust.keys import p_sha1
from tests.support import WSSE, WST, Instance, Server, fault_qname, make_instance, rst_envelope, start_server
from tests.token_checks import decrypt_with_python_xmlsec, verify_with_both

pytestmark = pytest.mark.integration

SAML2 = "urn:oasis:names:tc:SAML:2.0:assertion"
SAML1 = "urn:oasis:names:tc:SAML:1.0:assertion"
DS = "http://www.w3.org/2000/09/xmldsig#"
XENC = "http://www.w3.org/2001/04/xmlenc#"
APPLIES = "https://localhost:8443/demo-rp/"
TOKEN_TYPES = {"saml20": f"{SAML2}", "saml11": f"{SAML1}"}


@pytest.fixture(scope="module")
def life_instance(tmp_path_factory: pytest.TempPathFactory) -> Instance:
    return make_instance(tmp_path_factory.mktemp("life") / "var")


@pytest.fixture(scope="module")
def life_server(life_instance: Instance) -> Iterator[Server]:
    server = start_server(life_instance, workers=2)
    yield server
    server.stop()


def post_ok(server: Server, body: bytes, action: str) -> etree._Element:
    response = server.post(body, action=action)
    assert response.status_code == 200, response.content[:1500]
    return etree.fromstring(response.content)


def issue(
    server: Server, instance: Instance, token_type: str, extra: str = "", key_type: str = "Bearer"
) -> etree._Element:
    body = rst_envelope("admin", instance.demo_password, token_type=token_type, extra_rst=extra)
    body = body.replace(f"{WST}/Bearer</wst:KeyType>".encode(), f"{WST}/{key_type}</wst:KeyType>".encode())
    return post_ok(server, body, f"{WST}/RST/Issue")


def lifecycle_request(instance: Instance, operation: str, target: etree._Element | str, token_type: str) -> bytes:
    target_xml = target if isinstance(target, str) else etree.tostring(target).decode()
    extra = f"<wst:{operation}Target>{target_xml}</wst:{operation}Target>"
    kind = f"{WST}/RSTR/Status" if operation == "Validate" else token_type
    return rst_envelope(
        "admin", instance.demo_password, token_type=kind, extra_rst=extra, request_type=f"{WST}/{operation}"
    )


def first_token(root: etree._Element) -> etree._Element:
    holder = root.find(f".//{{{WST}}}RequestedSecurityToken")
    assert holder is not None and len(holder) == 1
    return holder[0]


def status_of(root: etree._Element) -> str:
    code = root.findtext(f".//{{{WST}}}Status/{{{WST}}}Code")
    assert code is not None
    return code.rsplit("/", 1)[-1]


def decrypted(token: etree._Element, instance: Instance) -> etree._Element:
    encrypted = token if token.tag == f"{{{XENC}}}EncryptedData" else token[0]
    return etree.fromstring(decrypt_with_python_xmlsec(encrypted, instance.rp_key))


@pytest.mark.parametrize("token_type", ["saml20", "saml11"])
def test_issue_validate_renew_cancel(life_server: Server, life_instance: Instance, token_type: str) -> None:
    uri = TOKEN_TYPES[token_type]
    issued = issue(life_server, life_instance, uri, '<wst:Renewing Allow="true"/>')
    token = first_token(issued)

    def validate(target: etree._Element) -> str:
        body = lifecycle_request(life_instance, "Validate", target, uri)
        answer = post_ok(life_server, body, f"{WST}/RST/Validate")
        assert answer.findtext(f".//{{{WST}}}TokenType") == f"{WST}/RSTR/Status"
        return status_of(answer)

    assert validate(token) == "valid"  # the token exactly as issued (encrypted): matched in the token store
    plain = decrypted(token, life_instance)
    assert validate(plain) == "valid"  # the assertion as the RP holds it: signature verified

    renewed_root = post_ok(life_server, lifecycle_request(life_instance, "Renew", token, uri), f"{WST}/RST/Renew")
    assert renewed_root.find(f".//{{{WST}}}RequestSecurityTokenResponseCollection") is None  # Renew: a bare RSTR
    renewed = first_token(renewed_root)
    renewed_plain = decrypted(renewed, life_instance)
    id_attr = "ID" if token_type == "saml20" else "AssertionID"
    assert renewed_plain.get(id_attr) != plain.get(id_attr)
    verify_with_both(etree.tostring(renewed_plain), life_instance.signing_cert, token_type == "saml11")
    assert validate(renewed) == "valid"

    cancelled = post_ok(life_server, lifecycle_request(life_instance, "Cancel", renewed, uri), f"{WST}/RST/Cancel")
    assert cancelled.find(f".//{{{WST}}}RequestedTokenCancelled") is not None
    assert validate(renewed) == "invalid"
    assert validate(renewed_plain) == "invalid"

    refused = life_server.post(lifecycle_request(life_instance, "Renew", renewed, uri), action=f"{WST}/RST/Renew")
    assert fault_qname(refused.content) == (WST, "UnableToRenew")


def test_validate_by_security_token_reference(life_server: Server, life_instance: Instance) -> None:
    token = first_token(issue(life_server, life_instance, SAML2))
    plain = decrypted(token, life_instance)
    reference = (
        f'<wsse:SecurityTokenReference xmlns:wsse="{WSSE}"><wsse:KeyIdentifier ValueType="http://docs.oasis-open.org'
        f'/wss/oasis-wss-saml-token-profile-1.1#SAMLID">{plain.get("ID")}</wsse:KeyIdentifier>'
        "</wsse:SecurityTokenReference>"
    )
    body = lifecycle_request(life_instance, "Validate", reference, SAML2)
    assert status_of(post_ok(life_server, body, f"{WST}/RST/Validate")) == "valid"


def test_tampered_and_unknown_tokens_are_invalid_not_faults(life_server: Server, life_instance: Instance) -> None:
    plain = decrypted(first_token(issue(life_server, life_instance, SAML2)), life_instance)
    name_id = plain.find(f".//{{{SAML2}}}NameID")
    assert name_id is not None
    name_id.text = "root"
    body = lifecycle_request(life_instance, "Validate", plain, SAML2)
    assert status_of(post_ok(life_server, body, f"{WST}/RST/Validate")) == "invalid"
    body = lifecycle_request(
        life_instance,
        "Validate",
        '<wsse:SecurityTokenReference xmlns:wsse="'
        + WSSE
        + '"><wsse:Reference URI="#_nope"/></wsse:SecurityTokenReference>',
        SAML2,
    )
    assert status_of(post_ok(life_server, body, f"{WST}/RST/Validate")) == "invalid"


def test_malformed_targets_are_invalid_requests(life_server: Server, life_instance: Instance) -> None:
    body = rst_envelope(
        "admin", life_instance.demo_password, token_type=f"{WST}/RSTR/Status", request_type=f"{WST}/Validate"
    )
    assert fault_qname(life_server.post(body).content) == (WST, "InvalidRequest")
    body = lifecycle_request(life_instance, "Validate", '<x xmlns="urn:x"/>', SAML2)
    assert fault_qname(life_server.post(body).content) == (WST, "InvalidRequest")


def test_cancel_unknown_token_is_invalid_request(life_server: Server, life_instance: Instance) -> None:
    target = (
        f'<wsse:SecurityTokenReference xmlns:wsse="{WSSE}"><wsse:Reference URI="#_unknown"/>'
        "</wsse:SecurityTokenReference>"
    )
    body = lifecycle_request(life_instance, "Cancel", target, SAML2)
    assert fault_qname(life_server.post(body).content) == (WST, "InvalidRequest")


def test_not_renewable_token_is_refused(life_server: Server, life_instance: Instance) -> None:
    token = first_token(issue(life_server, life_instance, SAML2, '<wst:Renewing Allow="false"/>'))
    refused = life_server.post(lifecycle_request(life_instance, "Renew", token, SAML2))
    assert fault_qname(refused.content) == (WST, "UnableToRenew")


@pytest.mark.parametrize("token_type", ["saml20", "saml11"])
def test_symmetric_proof_key_random(life_server: Server, life_instance: Instance, token_type: str) -> None:
    root = issue(life_server, life_instance, TOKEN_TYPES[token_type], key_type="SymmetricKey")
    secret = root.findtext(f".//{{{WST}}}RequestedProofToken/{{{WST}}}BinarySecret")
    assert secret is not None and root.findtext(f".//{{{WST}}}KeySize") == "256"
    client_key = base64.b64decode(secret)
    assert len(client_key) == 32
    assert rp_proof_key(root, life_instance, token_type) == client_key


def test_symmetric_proof_key_computed_with_psha1(life_server: Server, life_instance: Instance) -> None:
    client_entropy = bytes(range(32))
    extra = (
        f'<wst:Entropy><wst:BinarySecret Type="{WST}/Nonce">{base64.b64encode(client_entropy).decode()}'
        f"</wst:BinarySecret></wst:Entropy><wst:ComputedKeyAlgorithm>{WST}/CK/PSHA1</wst:ComputedKeyAlgorithm>"
        "<wst:KeySize>256</wst:KeySize>"
    )
    root = issue(life_server, life_instance, SAML2, extra, key_type="SymmetricKey")
    assert root.findtext(f".//{{{WST}}}RequestedProofToken/{{{WST}}}ComputedKey") == f"{WST}/CK/PSHA1"
    server_entropy = root.findtext(f".//{{{WST}}}RequestSecurityTokenResponse/{{{WST}}}Entropy/{{{WST}}}BinarySecret")
    assert server_entropy is not None
    client_key = p_sha1(client_entropy, base64.b64decode(server_entropy), 32)
    assert rp_proof_key(root, life_instance, "saml20") == client_key


def rp_proof_key(root: etree._Element, instance: Instance, token_type: str) -> bytes:
    """The proof key as the relying party finds it: decrypt the token, verify it, unwrap the EncryptedKey."""
    plain = decrypted(first_token(root), instance)
    verify_with_both(etree.tostring(plain), instance.signing_cert, token_type == "saml11")
    if token_type == "saml20":
        confirmation = plain.find(f".//{{{SAML2}}}SubjectConfirmation")
        assert confirmation is not None and confirmation.get("Method") == "urn:oasis:names:tc:SAML:2.0:cm:holder-of-key"
    else:
        method = plain.findtext(f".//{{{SAML1}}}ConfirmationMethod")
        assert method == "urn:oasis:names:tc:SAML:1.0:cm:holder-of-key"
    encrypted_key = plain.find(f".//{{{DS}}}KeyInfo/{{{XENC}}}EncryptedKey")
    assert encrypted_key is not None
    rp_key = load_private_key(instance.rp_key, None)
    return unwrap_key(encrypted_key, rp_key)


def register_client(instance: Instance, name: str, key: object) -> object:
    """Register a client certificate to the demo user (``sts user add-cert``): an unsigned PublicKey request may
    bind a token only to a key registered to its caller."""
    cert = self_signed_certificate(key, name)  # type: ignore[arg-type]
    path = instance.base / f"{name}.crt.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    assert instance.cli("user", "add-cert", "admin", str(path)) == 0
    return cert


def test_public_key_token_carries_the_use_key_certificate(life_server: Server, life_instance: Instance) -> None:
    client_key = generate_rsa_key(2048)
    cert = register_client(life_instance, "client-bst", client_key)
    der = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()  # type: ignore[attr-defined]
    extra = (
        f'<wst:UseKey><wsse:BinarySecurityToken xmlns:wsse="{WSSE}" ValueType="http://docs.oasis-open.org/wss/2004/01/'
        'oasis-200401-wss-x509-token-profile-1.0#X509v3" EncodingType="http://docs.oasis-open.org/wss/2004/01/'
        f'oasis-200401-wss-soap-message-security-1.0#Base64Binary">{der}</wsse:BinarySecurityToken></wst:UseKey>'
    )
    root = issue(life_server, life_instance, SAML2, extra, key_type="PublicKey")
    assert root.find(f".//{{{WST}}}RequestedProofToken") is None
    plain = decrypted(first_token(root), life_instance)
    embedded = plain.findtext(
        f".//{{{SAML2}}}SubjectConfirmationData/{{{DS}}}KeyInfo/{{{DS}}}X509Data/{{{DS}}}X509Certificate"
    )
    assert embedded == der


def test_malformed_use_key_is_invalid_request(life_server: Server, life_instance: Instance) -> None:
    extra = (
        f'<wst:UseKey><wsse:BinarySecurityToken xmlns:wsse="{WSSE}" ValueType="http://docs.oasis-open.org/wss/2004/01/'
        'oasis-200401-wss-x509-token-profile-1.0#X509v3">bm90IGEgY2VydA==</wsse:BinarySecurityToken></wst:UseKey>'
    )
    body = rst_envelope("admin", life_instance.demo_password, extra_rst=extra)
    body = body.replace(f"{WST}/Bearer</wst:KeyType>".encode(), f"{WST}/PublicKey</wst:KeyType>".encode())
    assert fault_qname(life_server.post(body).content) == (WST, "InvalidRequest")


@pytest.mark.parametrize("bits", ["64", "1024", "abc"])
def test_bad_key_size_is_invalid_request(life_server: Server, life_instance: Instance, bits: str) -> None:
    body = rst_envelope("admin", life_instance.demo_password, extra_rst=f"<wst:KeySize>{bits}</wst:KeySize>")
    body = body.replace(f"{WST}/Bearer</wst:KeyType>".encode(), f"{WST}/SymmetricKey</wst:KeyType>".encode())
    assert fault_qname(life_server.post(body).content) == (WST, "InvalidRequest")


def test_another_users_token_cannot_be_cancelled(life_server: Server, life_instance: Instance) -> None:
    import io
    import os

    saved, os.sys.stdin = os.sys.stdin, io.StringIO("Other-Pass-1\n")  # type: ignore[attr-defined]
    try:
        assert life_instance.cli("user", "add", "other", "--role", "admin", "--password-stdin") == 0
    finally:
        os.sys.stdin = saved  # type: ignore[attr-defined]
    token = first_token(issue(life_server, life_instance, SAML2))
    body = rst_envelope(
        "other",
        "Other-Pass-1",
        token_type=SAML2,
        extra_rst=f"<wst:CancelTarget>{etree.tostring(token).decode()}</wst:CancelTarget>",
        request_type=f"{WST}/Cancel",
    )
    assert fault_qname(life_server.post(body).content) == (WST, "FailedAuthentication")


def test_public_key_token_from_an_rsa_key_value(life_server: Server, life_instance: Instance) -> None:
    key = generate_rsa_key(2048)
    register_client(life_instance, "client-keyvalue", key)
    numbers = key.public_key().public_numbers()
    modulus = base64.b64encode(numbers.n.to_bytes(256, "big")).decode()
    extra = (
        f'<wst:UseKey><ds:KeyInfo xmlns:ds="{DS}"><ds:KeyValue><ds:RSAKeyValue><ds:Modulus>{modulus}</ds:Modulus>'
        "<ds:Exponent>AQAB</ds:Exponent></ds:RSAKeyValue></ds:KeyValue></ds:KeyInfo></wst:UseKey>"
    )
    root = issue(life_server, life_instance, SAML2, extra, key_type="PublicKey")
    plain = decrypted(first_token(root), life_instance)
    path = f".//{{{SAML2}}}SubjectConfirmationData/{{{DS}}}KeyInfo/{{{DS}}}KeyValue/{{{DS}}}RSAKeyValue"
    assert plain.findtext(f"{path}/{{{DS}}}Modulus") == modulus


def test_weak_rsa_key_value_is_invalid_request(life_server: Server, life_instance: Instance) -> None:
    weak = base64.b64encode((2**1023 + 1).to_bytes(128, "big")).decode()
    extra = (
        f'<wst:UseKey><ds:KeyInfo xmlns:ds="{DS}"><ds:KeyValue><ds:RSAKeyValue><ds:Modulus>{weak}</ds:Modulus>'
        "<ds:Exponent>AQAB</ds:Exponent></ds:RSAKeyValue></ds:KeyValue></ds:KeyInfo></wst:UseKey>"
    )
    body = rst_envelope("admin", life_instance.demo_password, extra_rst=extra)
    body = body.replace(f"{WST}/Bearer</wst:KeyType>".encode(), f"{WST}/PublicKey</wst:KeyType>".encode())
    assert fault_qname(life_server.post(body).content) == (WST, "InvalidRequest")


def test_unregistered_use_key_is_invalid_request(life_server: Server, life_instance: Instance) -> None:
    cert = self_signed_certificate(generate_rsa_key(2048), "stranger")
    der = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
    extra = (
        f'<wst:UseKey><wsse:BinarySecurityToken xmlns:wsse="{WSSE}" ValueType="http://docs.oasis-open.org/wss/2004/01/'
        f'oasis-200401-wss-x509-token-profile-1.0#X509v3">{der}</wsse:BinarySecurityToken></wst:UseKey>'
    )
    body = rst_envelope("admin", life_instance.demo_password, extra_rst=extra)
    body = body.replace(f"{WST}/Bearer</wst:KeyType>".encode(), f"{WST}/PublicKey</wst:KeyType>".encode())
    assert fault_qname(life_server.post(body).content) == (WST, "InvalidRequest")
