"""The WSS4J harness makes what the STS's tests need, checked without the STS: python-xmlsec verifies the
signatures with the client certificate and decrypts with the STS key, and the Security headers have the shapes of
WS-Security 1.1 and the X.509 Token Profile (one JVM run for all requests, one for the response checks)."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from pathlib import Path

import pytest
import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from lxml import etree

from tests.clients import wss4j as harness
from tests.clients.wss4j import ClientKey, Generated, Wss4j
from tests.support import S11, WSA, WSSE, WST, WSU, rst_body

DS = "http://www.w3.org/2000/09/xmldsig#"
XENC = "http://www.w3.org/2001/04/xmlenc#"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
X509TP = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#"
WSS11 = "http://docs.oasis-open.org/wss/oasis-wss-soap-message-security-1.1#"
NS = {"s": S11, "wsse": WSSE, "wsu": WSU, "ds": DS, "xenc": XENC, "wst": WST, "wsa": WSA}
TO = "https://127.0.0.1:9443/adfs/services/trust/13/certificatemixed"
USERNAME, PASSWORD = "alice", "correct horse"


@dataclass(frozen=True)
class Vectors:
    client: ClientKey
    sts: ClientKey  # stands in for the STS's certificate and key
    envelope: bytes
    generated: dict[str, Generated]

    def root(self, name: str) -> etree._Element:
        return etree.fromstring(self.generated[name].xml)


@pytest.fixture(scope="module")
def vectors(wss4j: Wss4j) -> Vectors:
    client, sts = ClientKey.generate("alice"), ClientKey.generate("sts")
    envelope = wss4j_envelope()
    messages = harness.standard_set(envelope, username=USERNAME, password=PASSWORD, to=TO)
    messages.append(harness.sig_only("s2-x509-key-identifier", envelope, key_id="x509_key_identifier"))
    messages.append(harness.sig_only("s2-legacy", envelope, signature=harness.RSA_SHA1, digest=harness.SHA1))
    messages.append(harness.sig_only("s2-soap12", harness.envelope(rst_body(), soap12=True)))
    return Vectors(client, sts, envelope, wss4j.generate(messages, client, sts.cert_pem))


def wss4j_envelope() -> bytes:
    return harness.envelope(rst_body(applies_to="https://rp.example/"))


def security(root: etree._Element) -> etree._Element:
    (header,) = root.findall(f"{{{etree.QName(root).namespace}}}Header/wsse:Security", NS)
    return header


def references(root: etree._Element) -> dict[str, etree._Element]:
    """The element each ``ds:Reference`` names (by ``wsu:Id``, unique in the message)."""
    by_id: dict[str, etree._Element] = {}
    for element in root.iter():
        ident = element.get(f"{{{WSU}}}Id")
        if ident is not None:
            assert ident not in by_id, f"duplicate wsu:Id {ident}"
            by_id[ident] = element
    found = {}
    for ref in root.findall(".//ds:SignedInfo/ds:Reference", NS):
        uri = ref.get("URI", "")
        assert uri.startswith("#")
        found[etree.QName(by_id[uri[1:]]).localname] = ref
    return found


def verify(root: etree._Element, key: xmlsec.Key) -> None:
    """python-xmlsec verifies the message's one signature with ``key`` (wsu:Id registered as an ID)."""
    xmlsec.tree.add_ids(root, ["Id"])
    (signature,) = root.findall(".//ds:Signature", NS)
    context = xmlsec.SignatureContext()
    context.key = key
    context.verify(signature)


def cert_key(identity: ClientKey) -> xmlsec.Key:
    return xmlsec.Key.from_memory(identity.cert_pem, xmlsec.constants.KeyDataFormatCertPem)


def decrypt_key(root: etree._Element, identity: ClientKey) -> bytes:
    """Unwrap the EncryptedKey with the recipient's private key (python-xmlsec)."""
    (encrypted_key,) = security(root).findall("xenc:EncryptedKey", NS)
    context = xmlsec.EncryptionContext()
    context.key = xmlsec.Key.from_memory(identity.key_pem, xmlsec.constants.KeyDataFormatPem)
    return bytes(context.decrypt(encrypted_key))


def decrypt_all(root: etree._Element, key: bytes) -> None:
    """Decrypt every EncryptedData of the message in place with K."""
    for data in root.findall(".//xenc:EncryptedData", NS):
        context = xmlsec.EncryptionContext()
        context.key = xmlsec.Key.from_binary_data(xmlsec.constants.KeyDataAes, key)
        context.decrypt(data)


# --- every message ---------------------------------------------------------------------------------------------


def test_every_message_has_one_mustunderstand_security_header_with_a_fresh_timestamp(vectors: Vectors) -> None:
    assert len(vectors.generated) == 14
    for name in vectors.generated:
        root = vectors.root(name)
        header = security(root)
        soap = etree.QName(root).namespace
        assert header.get(f"{{{soap}}}mustUnderstand") == ("1" if soap == S11 else "true"), name
        (timestamp,) = header.findall("wsu:Timestamp", NS)
        created, expires = (timestamp.findtext(f"wsu:{part}", namespaces=NS) for part in ("Created", "Expires"))
        assert created and expires and created < expires, name
        assert len(root.findall(".//ds:Signature", NS)) == 1, name


def test_signature_algorithms_and_signed_parts(vectors: Vectors) -> None:
    expected = {
        "s2-bst": ("rsa-sha256", {"Timestamp", "Body"}),
        "s5-gcm": ("rsa-sha256", {"Timestamp", "Body"}),
        "s8-plain-ut": ("hmac-sha256", {"Timestamp", "Body", "UsernameToken"}),  # s8-gcm's UT is encrypted
        "certificatemixed": ("rsa-sha256", {"Timestamp", "Body", "To"}),
        "certificatemixed-wcf": ("rsa-sha256", {"Timestamp", "To"}),
        "s2-legacy": ("rsa-sha1", {"Timestamp", "Body"}),
    }
    for name, (method, parts) in expected.items():
        root = vectors.root(name)
        (signed_info,) = root.findall(".//ds:SignedInfo", NS)
        assert signed_info.find("ds:CanonicalizationMethod", NS).get("Algorithm") == EXC_C14N  # type: ignore[union-attr]
        assert signed_info.find("ds:SignatureMethod", NS).get("Algorithm", "").endswith(f"#{method}"), name  # type: ignore[union-attr]
        refs = references(root)
        assert set(refs) == parts, name
        digest = harness.SHA1 if name == "s2-legacy" else harness.SHA256
        for ref in refs.values():
            assert ref.find("ds:DigestMethod", NS).get("Algorithm") == digest, name  # type: ignore[union-attr]
            (transform,) = ref.findall("ds:Transforms/ds:Transform", NS)
            assert transform.get("Algorithm") == EXC_C14N


# --- scenario 2: key references, verified by python-xmlsec --------------------------------------------------------


def key_info_str(root: etree._Element) -> etree._Element:
    (reference,) = root.findall(".//ds:Signature/ds:KeyInfo/wsse:SecurityTokenReference", NS)
    return reference


def test_bst_direct_reference(vectors: Vectors) -> None:
    root = vectors.root("s2-bst")
    (bst,) = security(root).findall("wsse:BinarySecurityToken", NS)
    assert bst.get("ValueType") == f"{X509TP}X509v3"
    assert base64.b64decode(bst.text or "") == vectors.client.certificate.public_bytes(serialization.Encoding.DER)
    (reference,) = key_info_str(root)
    assert reference.tag == f"{{{WSSE}}}Reference"
    assert reference.get("URI") == "#" + bst.get(f"{{{WSU}}}Id", "")


def test_issuer_serial_reference(vectors: Vectors) -> None:
    root = vectors.root("s2-issuer-serial")
    assert security(root).find("wsse:BinarySecurityToken", NS) is None
    (data,) = key_info_str(root)
    issuer_serial = data.find("ds:X509IssuerSerial", NS)
    assert issuer_serial is not None
    assert issuer_serial.findtext("ds:X509SerialNumber", namespaces=NS) == str(vectors.client.certificate.serial_number)
    assert issuer_serial.findtext("ds:X509IssuerName", namespaces=NS) == "CN=alice,O=sts tests"


@pytest.mark.parametrize(
    ("name", "value_type"),
    [("s2-ski", f"{X509TP}X509SubjectKeyIdentifier"), ("s2-thumbprint", f"{WSS11}ThumbprintSHA1"),
     ("s2-x509-key-identifier", f"{X509TP}X509v3")],
)
def test_key_identifier_references(vectors: Vectors, name: str, value_type: str) -> None:
    cert = vectors.client.certificate
    expected = {
        "s2-ski": cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest,
        "s2-thumbprint": hashlib.sha1(cert.public_bytes(serialization.Encoding.DER)).digest(),
        "s2-x509-key-identifier": cert.public_bytes(serialization.Encoding.DER),
    }[name]
    (identifier,) = key_info_str(vectors.root(name))
    assert identifier.tag == f"{{{WSSE}}}KeyIdentifier"
    assert identifier.get("ValueType") == value_type
    assert base64.b64decode(identifier.text or "") == expected


@pytest.mark.parametrize(
    "name",
    ["s2-bst", "s2-issuer-serial", "s2-ski", "s2-thumbprint", "s2-x509-key-identifier", "s2-legacy", "s2-soap12",
     "certificatemixed", "certificatemixed-wcf"],
)
def test_signature_verifies_with_the_client_certificate(vectors: Vectors, name: str) -> None:
    verify(vectors.root(name), cert_key(vectors.client))


def test_tampered_or_foreign_signature_fails(vectors: Vectors) -> None:
    tampered = etree.fromstring(vectors.generated["s2-bst"].xml.replace(b"https://rp.example/", b"https://rp.evil/"))
    with pytest.raises(xmlsec.VerificationError):
        verify(tampered, cert_key(vectors.client))
    with pytest.raises(xmlsec.VerificationError):
        verify(vectors.root("s2-bst"), cert_key(vectors.sts))


def test_certificatemixed_signs_wsa_to(vectors: Vectors) -> None:
    root = vectors.root("certificatemixed")
    to = references(root)["To"]
    (header_to,) = root.findall("s:Header/wsa:To", NS)
    assert to.get("URI") == "#" + header_to.get(f"{{{WSU}}}Id", "")
    assert header_to.text == TO


# --- scenario 5: RSA-OAEP key transport, AES-GCM / CBC Body ------------------------------------------------------


@pytest.mark.parametrize(("name", "cipher"), [("s5-gcm", harness.AES256_GCM), ("s5-cbc", harness.AES256_CBC)])
def test_scenario5_decrypts_with_the_sts_key_and_the_plaintext_body_verifies(
    vectors: Vectors, name: str, cipher: str
) -> None:
    root = vectors.root(name)
    (encrypted_key,) = security(root).findall("xenc:EncryptedKey", NS)
    assert encrypted_key.find("xenc:EncryptionMethod", NS).get("Algorithm") == harness.RSA_OAEP_MGF1P  # type: ignore[union-attr]
    (thumbprint,) = encrypted_key.findall("ds:KeyInfo/wsse:SecurityTokenReference/wsse:KeyIdentifier", NS)
    sts_der = vectors.sts.certificate.public_bytes(serialization.Encoding.DER)
    assert base64.b64decode(thumbprint.text or "") == hashlib.sha1(sts_der).digest()
    (data,) = root.findall("s:Body/xenc:EncryptedData", NS)
    assert data.get("Type") == f"{XENC}Content"
    assert data.find("xenc:EncryptionMethod", NS).get("Algorithm") == cipher  # type: ignore[union-attr]
    assert root.find(".//wst:RequestSecurityToken", NS) is None
    key = decrypt_key(root, vectors.sts)
    assert key == vectors.generated[name].key and len(key) == 32
    decrypt_all(root, key)
    rst = root.find("s:Body/wst:RequestSecurityToken", NS)
    assert rst is not None and rst.findtext(".//wsa:Address", namespaces=NS) == "https://rp.example/"
    verify(root, cert_key(vectors.client))  # WSS4J signs first: the digest is over the plaintext Body


def test_scenario5_key_does_not_unwrap_with_another_key(vectors: Vectors) -> None:
    with pytest.raises(xmlsec.Error):
        decrypt_key(vectors.root("s5-gcm"), vectors.client)


# --- scenario 8: symmetric binding -------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "cipher", "ut_encrypted"), [
    ("s8-gcm", harness.AES256_GCM, True),
    ("s8-cbc", harness.AES256_CBC, True),
    ("s8-plain-ut", harness.AES256_GCM, False),
])
def test_scenario8_hmac_over_timestamp_body_and_ut_keyed_with_the_wrapped_key(
    vectors: Vectors, name: str, cipher: str, ut_encrypted: bool
) -> None:
    root = vectors.root(name)
    header = security(root)
    (encrypted_key,) = header.findall("xenc:EncryptedKey", NS)
    assert encrypted_key.find("xenc:EncryptionMethod", NS).get("Algorithm") == harness.RSA_OAEP_MGF1P  # type: ignore[union-attr]
    (reference_list,) = header.findall("xenc:ReferenceList", NS)
    encrypted = root.findall(".//xenc:EncryptedData", NS)
    assert {d.get("Type") for d in encrypted} == ({f"{XENC}Content", f"{XENC}Element"} if ut_encrypted
                                                   else {f"{XENC}Content"})
    assert {r.get("URI") for r in reference_list} == {"#" + d.get("Id", "") for d in encrypted}
    assert {d.find("xenc:EncryptionMethod", NS).get("Algorithm") for d in encrypted} == {cipher}  # type: ignore[union-attr]
    assert (header.find("wsse:UsernameToken", NS) is None) == ut_encrypted
    (token_ref,) = root.findall(".//ds:Signature/ds:KeyInfo/wsse:SecurityTokenReference/wsse:Reference", NS)
    assert token_ref.get("URI") == "#" + encrypted_key.get("Id", "")
    assert token_ref.get("ValueType") == f"{WSS11}EncryptedKey"
    key = decrypt_key(root, vectors.sts)
    assert key == vectors.generated[name].key
    decrypt_all(root, key)
    assert header.findtext("wsse:UsernameToken/wsse:Username", namespaces=NS) == USERNAME
    assert root.find("s:Body/wst:RequestSecurityToken", NS) is not None
    verify(root, xmlsec.Key.from_binary_data(xmlsec.constants.KeyDataHmac, key))
    with pytest.raises(xmlsec.VerificationError):
        verify(root, xmlsec.Key.from_binary_data(xmlsec.constants.KeyDataHmac, bytes(32)))


# --- response checking with WSSecurityEngine ---------------------------------------------------------------------


def test_verify_responses_trusts_only_the_sts_certificate(wss4j: Wss4j, vectors: Vectors) -> None:
    """Stand-ins for the STS's responses, made by WSS4J with the STS's key: a signed one (scenario 2), a signed one
    encrypted to the client (5), one signed by an unknown key, a tampered one, and one without a Security header."""
    as_sts = wss4j.generate(
        [harness.sig_only("signed", vectors.envelope), harness.sig_encr("encrypted", vectors.envelope)],
        vectors.sts, vectors.client.cert_pem,
    )
    responses = {
        "signed": as_sts["signed"].xml,
        "encrypted": as_sts["encrypted"].xml,
        "foreign": vectors.generated["s2-bst"].xml,  # signed by the client, not the STS
        "tampered": as_sts["signed"].xml.replace(b"https://rp.example/", b"https://rp.evil/"),
        "bare": vectors.envelope,
    }
    checked = wss4j.verify_responses(responses, vectors.client, vectors.sts.cert_pem)
    signed = checked["signed"]
    assert signed.ok, signed.error
    (line,) = [result for result in signed.results if result.startswith("signature ")]
    assert f"method={harness.RSA_SHA256}" in line
    assert f"{{{WSU}}}Timestamp#" in line and f"{{{S11}}}Body#" in line and line.count(harness.SHA256) == 2
    encrypted = checked["encrypted"]
    assert encrypted.ok, encrypted.error
    assert any(r.startswith(f"decryption {{{S11}}}Body#") and r.endswith(harness.AES256_GCM) for r in encrypted.results)
    assert b"https://rp.example/" in encrypted.document
    assert not checked["foreign"].ok and "WSSecurityException" in checked["foreign"].error
    assert not checked["tampered"].ok
    assert not checked["bare"].ok and checked["bare"].error == "no Security header"


# --- the fixture's failure when the JDK is missing ----------------------------------------------------------------


def test_missing_jdk_or_wss4j_names_make_install_test(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(harness.Wss4jUnavailable, match="make install-test"):
        harness.java_binary("javac")
    monkeypatch.setattr(harness, "JAVA_DIR", tmp_path)
    with pytest.raises(harness.Wss4jUnavailable, match=r"wss4j\.jar.*make install-test"):
        harness.compile_client(tmp_path / "cache")
