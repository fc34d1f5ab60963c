"""Issue 16: Apache WSS4J (a client no one here wrote) gets tokens through WSO2 scenarios 2, 5 and 8 and AD FS
``certificatemixed`` from a real gunicorn (TLS, 2 workers), WSSecurityEngine verifies (and decrypts) every answer
with the STS certificate, and the tokens are checked as the other integration tests check them. Then the
encryption cases of the negative corpus (message-security §13: E07-E13, W30, W33): each its exact fault, nothing
issued, and every decryption failure answered with the same bytes.

Every message carries a fresh Timestamp and is sent once (the STS refuses replays): all are made in one JVM run in
the module fixture.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from lxml import etree

from sts.clock import format_instant
from tests.clients import wss4j as harness
from tests.clients.wss4j import ClientKey, Generated, Wss4j
from tests.support import WSSE, WST, WSU, Instance, Server, fault_qname, make_instance, rst_body, start_server
from tests.token_checks import decrypt_with_python_xmlsec, verify_with_both

pytestmark = pytest.mark.integration

XENC = "http://www.w3.org/2001/04/xmlenc#"
SAML2 = "urn:oasis:names:tc:SAML:2.0:assertion"
STS_FAULT_NS = "urn:python-sts:fault"
PATHS = {
    "s2": "/services/wso2carbon-sts/SigOnly",
    "s5": "/services/wso2carbon-sts/SigEncr",
    "s8": "/services/wso2carbon-sts/SgnEncrUsername",
    "ce": "/services/wso2carbon-sts/certificatemixed",
}
DS = "http://www.w3.org/2000/09/xmldsig#"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
FAILED_CHECK = (WSSE, "FailedCheck")
INVALID_SECURITY = (WSSE, "InvalidSecurity")
UNSUPPORTED_ALGORITHM = (WSSE, "UnsupportedAlgorithm")
SCENARIOS = "UTOverTransport,SigOnly,SigEncr,SgnEncrUsername,certificatemixed"


@dataclass
class Setup:
    instance: Instance
    client: ClientKey
    password: str
    messages: dict[str, Generated]


@pytest.fixture(scope="module")
def wss_instance(tmp_path_factory: pytest.TempPathFactory) -> tuple[Instance, ClientKey]:
    instance = make_instance(tmp_path_factory.mktemp("wss4j-scenarios") / "var")
    client = ClientKey.generate("alice")
    (instance.base / "alice.pem").write_bytes(client.cert_pem)
    assert instance.cli("user", "add-cert", "admin", str(instance.base / "alice.pem")) == 0
    return instance, client


@pytest.fixture(scope="module")
def tls_server(wss_instance: tuple[Instance, ClientKey]) -> Iterator[Server]:
    env = {"STS_SECURITY_SCENARIOS": SCENARIOS, "STS_SECURITY_INBOUND_CBC": "true"}
    server = start_server(wss_instance[0], workers=2, tls=True, env=env)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def http_server(wss_instance: tuple[Instance, ClientKey]) -> Iterator[Server]:
    """Plain HTTP, default settings: AES-CBC not allowed, a plain UsernameToken not accepted on scenario 8."""
    server = start_server(wss_instance[0], workers=1, tls=False, env={"STS_SECURITY_SCENARIOS": SCENARIOS})
    yield server
    server.stop()


def _origin(server: Server) -> str:
    return server.url.replace("/services/wso2carbon-sts", "")


@pytest.fixture(scope="module")
def setup(wss4j: Wss4j, wss_instance: tuple[Instance, ClientKey], tls_server: Server) -> Setup:
    instance, client = wss_instance
    password = instance.demo_password
    envelope = harness.envelope(rst_body())
    body = harness.body_of(envelope)
    messages = harness.standard_set(envelope, username="admin", password=password,
                                    to=_origin(tls_server) + PATHS["ce"])
    cases = {
        "s5-replay": harness.sig_encr("s5-replay", envelope),
        "s5-resigned": harness.sig_encr("s5-resigned", envelope),
        "s8-replay": harness.sgn_encr_username("s8-replay", envelope, "admin", password),
        "s5-oaep-flipped": harness.sig_encr("s5-oaep-flipped", envelope),
        "s5-gcm-tag": harness.sig_encr("s5-gcm-tag", envelope),
        "s5-rsa15": harness.sig_encr("s5-rsa15", envelope),
        "s5-3des": harness.sig_encr("s5-3des", envelope, cipher=harness.AES256_CBC),
        "s5-unsigned-body": harness.Message("s5-unsigned-body", envelope, sign=(harness.TIMESTAMP,),
                                            cipher=harness.AES256_GCM, encrypt=(f"{body}:Content",)),
        "s5-plain-body": harness.sig_only("s5-plain-body", envelope),
        "s5-cbc-over-http": harness.sig_encr("s5-cbc-over-http", envelope, cipher=harness.AES256_CBC),
        "s8-cbc-over-http": harness.sgn_encr_username("s8-cbc-over-http", envelope, "admin", password,
                                                       cipher=harness.AES256_CBC),
        "s8-plain-ut-over-http": harness.sgn_encr_username("s8-plain-ut-over-http", envelope, "admin", password,
                                                            encrypt_ut=False),
        "s8-over-http": harness.sgn_encr_username("s8-over-http", envelope, "admin", password),
        "s8-wrong-password": harness.sgn_encr_username("s8-wrong-password", envelope, "admin", "not-it-1"),
    }
    cases.update({f"s5-cbc-{kind}": harness.sig_encr(f"s5-cbc-{kind}", envelope, cipher=harness.AES256_CBC)
                  for kind in CBC_PLAINTEXTS})
    messages += cases.values()
    generated = wss4j.generate(messages, client, instance.signing_cert.read_bytes())
    # EncryptedKeys for a certificate that is not the STS's: the key does not unwrap.
    stranger = ClientKey.generate("not the sts")
    generated.update(wss4j.generate([harness.sig_encr("s5-other-recipient", envelope),
                                     harness.sgn_encr_username("s8-other-recipient", envelope, "admin", password)],
                                    client, stranger.cert_pem))
    return Setup(instance, client, password, generated)


def _post(server: Server, scenario: str, body: bytes) -> requests.Response:
    headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{WST}/RST/Issue"'}
    return requests.post(_origin(server) + PATHS[scenario], data=body, headers=headers, verify=server.verify,
                         timeout=30)


def _issued(response: requests.Response) -> bool:
    """An answer (scenarios 5 and 8: its Body encrypted, so the RSTR is seen only after decryption)."""
    content = response.content
    return response.status_code == 200 and b"Fault" not in content and (
        b"RequestSecurityTokenResponse" in content or b"EncryptedData" in content
    )


def _refused(response: requests.Response, fault: tuple[str, str]) -> None:
    assert not _issued(response)
    assert b"Assertion" not in response.content and b"EncryptedData" not in response.content
    assert fault_qname(response.content) == fault, response.content[:600]


def _assertion(document: bytes, instance: Instance) -> etree._Element:
    """The issued assertion of an answer WSS4J decrypted, decrypted for the demo RP and its signature verified."""
    holder = etree.fromstring(document).find(f".//{{{WST}}}RequestedSecurityToken")
    assert holder is not None and len(holder) == 1, document[:800]
    token = holder[0]
    encrypted = token if token.tag == f"{{{XENC}}}EncryptedData" else token[0]
    plaintext = decrypt_with_python_xmlsec(encrypted, instance.rp_key)
    return verify_with_both(plaintext, instance.signing_cert, saml11=False)


# --- real clients ----------------------------------------------------------------------------------------------

POSITIVE = ("s2-bst", "s2-issuer-serial", "s2-ski", "s2-thumbprint", "s5-gcm", "s5-cbc", "s8-gcm", "s8-cbc",
            "s8-plain-ut", "certificatemixed", "certificatemixed-wcf")


def test_wss4j_gets_tokens_through_every_scenario_and_verifies_every_answer(
    setup: Setup, tls_server: Server, wss4j: Wss4j
) -> None:
    responses, keys = {}, {}
    for name in POSITIVE:
        response = _post(tls_server, name[:2], setup.messages[name].xml)
        assert _issued(response), (name, response.content[:800])
        responses[name] = response.content
        if name.startswith("s8"):
            keys[name] = setup.messages[name].key or b""
    verdicts = wss4j.verify_responses(responses, setup.client, setup.instance.signing_cert.read_bytes(), keys)
    for name, verdict in verdicts.items():
        assert verdict.ok, (name, verdict.error)
        kinds = [line.split(" ")[0] for line in verdict.results]
        if name.startswith(("s2", "s5", "s8")):
            assert "signature" in kinds, (name, verdict.results)
        if name.startswith(("s5", "s8")):
            assert "decryption" in kinds and "signature-confirmation" in kinds, (name, verdict.results)
            confirmed = [line for line in verdict.results if line.startswith("signature-confirmation")]
            value = base64.b64encode(setup.messages[name].signature_value).decode()
            assert confirmed == [f"signature-confirmation value={value}"]  # WSS 1.1 §8.5: the request's value
            assert b"RequestSecurityTokenResponse" not in responses[name]  # the Body went encrypted
        assertion = _assertion(verdict.document if name.startswith(("s5", "s8")) else responses[name],
                               setup.instance)
        assert assertion.findtext(f".//{{{SAML2}}}NameID") == "admin"


def test_wss4j_issuer_serial_names_a_keytool_certificate(
    wss_instance: tuple[Instance, ClientKey], tls_server: Server, wss4j: Wss4j
) -> None:
    """Java's keytool writes names as PrintableString and IssuerSerial is WSS4J's default key identifier: the
    issuer WSS4J writes into ds:X509IssuerName ("CN=keytool, O=sts tests") names the registered certificate."""
    instance = wss_instance[0]
    keytool = ClientKey.generate("keytool", printable=True)
    issuer = keytool.certificate.issuer.public_bytes()
    assert b"\x13\x07keytool" in issuer  # PrintableString (tag 0x13), not UTF8String (0x0c)
    (instance.base / "keytool.pem").write_bytes(keytool.cert_pem)
    assert instance.cli("user", "add-cert", "admin", str(instance.base / "keytool.pem")) == 0
    message = harness.sig_only("kt-issuer-serial", harness.envelope(rst_body()), key_id="issuer_serial")
    generated = wss4j.generate([message], keytool, instance.signing_cert.read_bytes())["kt-issuer-serial"]
    assert b"X509IssuerSerial" in generated.xml
    response = _post(tls_server, "s2", generated.xml)
    assert _issued(response), response.content[:800]


def test_scenario8_with_an_encrypted_username_token_works_over_plain_http(setup: Setup, http_server: Server) -> None:
    """The UsernameToken travels encrypted (SignedEncryptedSupportingTokens), so PasswordText needs no TLS."""
    response = _post(http_server, "s8", setup.messages["s8-over-http"].xml)
    assert _issued(response), response.content[:800]


def test_wrong_password_in_scenario8_is_the_username_token_fault(setup: Setup, tls_server: Server) -> None:
    _refused(_post(tls_server, "s8", setup.messages["s8-wrong-password"].xml), (WSSE, "FailedAuthentication"))


# --- negative corpus --------------------------------------------------------------------------------------------


def _tree(generated: Generated) -> etree._Element:
    return etree.fromstring(generated.xml)


def _cipher_value(root: etree._Element, parent: str) -> etree._Element:
    (value,) = root.findall(f".//{{{XENC}}}{parent}/{{{XENC}}}CipherData/{{{XENC}}}CipherValue")
    return value


def _flip(value: etree._Element, index: int) -> None:
    data = bytearray(base64.b64decode(value.text or ""))
    data[index] ^= 0x01
    value.text = base64.b64encode(bytes(data)).decode()


def _body_cipher(root: etree._Element) -> etree._Element:
    (value,) = root.findall(f"./{{*}}Body/{{{XENC}}}EncryptedData/{{{XENC}}}CipherData/{{{XENC}}}CipherValue")
    return value


def _cbc(key: bytes, plaintext: bytes) -> str:
    iv = secrets.token_bytes(16)
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return base64.b64encode(iv + encryptor.update(plaintext) + encryptor.finalize()).decode()


def _padded(data: bytes, last: int | None = None) -> bytes:
    """XML Encryption padding (random filler, last byte = length), or ``last`` as a wrong last byte."""
    pad = 16 - len(data) % 16
    return data + secrets.token_bytes(pad - 1) + bytes([pad if last is None else last])


RST = rst_body().encode()
CBC_PLAINTEXTS = {
    "bad-padding": _padded(RST, last=0),
    "padding-too-long": _padded(RST, last=17),
    "garbled-xml": _padded(RST[: len(RST) // 2]),
    "not-xml": _padded(b"hello, this is not XML at all" * 4),
    "other-rst": _padded(rst_body(applies_to="https://evil.example/").encode()),
    "doctype": _padded(b'<!DOCTYPE x [<!ENTITY e "x">]>' + RST),
}


def _decryption_failures(setup: Setup) -> dict[str, bytes]:
    """Each way decryption can fail, applied to its own fresh scenario 5 or 8 request."""
    cases: dict[str, bytes] = {}
    for kind, plaintext in CBC_PLAINTEXTS.items():
        generated = setup.messages[f"s5-cbc-{kind}"]
        root = _tree(generated)
        _body_cipher(root).text = _cbc(generated.key or b"", plaintext)
        cases[f"E10-cbc-{kind}"] = etree.tostring(root)
    root = _tree(setup.messages["s5-gcm-tag"])
    _flip(_body_cipher(root), -1)
    cases["E12-gcm-tag"] = etree.tostring(root)
    root = _tree(setup.messages["s5-oaep-flipped"])
    _flip(_cipher_value(root, "EncryptedKey"), 7)
    cases["E09-oaep-byte-flipped"] = etree.tostring(root)
    cases["E09-other-recipient-s5"] = setup.messages["s5-other-recipient"].xml
    cases["E09-other-recipient-s8"] = setup.messages["s8-other-recipient"].xml
    cases["unsigned-encrypted-body"] = setup.messages["s5-unsigned-body"].xml
    return cases


def _without_correlation(body: bytes) -> bytes:
    value = etree.fromstring(body).findtext(f".//{{{STS_FAULT_NS}}}CorrelationId")
    assert value
    return body.replace(value.encode(), b"CORRELATION-ID")


def test_every_decryption_failure_is_the_same_failed_check(setup: Setup, tls_server: Server) -> None:
    """E09, E10, E12, E15: wrong recipient, mangled OAEP, CBC bad padding / garbled / non-XML / other plaintext,
    a DTD in the plaintext, a GCM tag flipped, an unsigned Body: one fault, byte for byte (no padding oracle)."""
    answers = {}
    for name, body in _decryption_failures(setup).items():
        response = _post(tls_server, "s8" if name.endswith("-s8") else "s5", body)
        _refused(response, FAILED_CHECK)
        answers[name] = (response.status_code, response.headers["Content-Type"],
                         _without_correlation(response.content))
    assert len(set(answers.values())) == 1, answers


@pytest.mark.parametrize(
    ("case", "scenario", "fault"),
    [
        ("E07-rsa15", "s5", UNSUPPORTED_ALGORITHM),
        ("E08-3des", "s5", UNSUPPORTED_ALGORITHM),
        ("E13-plain-body", "s5", INVALID_SECURITY),
    ],
)
def test_refused_before_decryption(setup: Setup, tls_server: Server, case: str, scenario: str,
                                   fault: tuple[str, str]) -> None:
    if case == "E07-rsa15":
        root = _tree(setup.messages["s5-rsa15"])
        (method,) = root.findall(f".//{{{XENC}}}EncryptedKey/{{{XENC}}}EncryptionMethod")
        method.set("Algorithm", XENC + "rsa-1_5")
    elif case == "E08-3des":
        root = _tree(setup.messages["s5-3des"])
        (method,) = root.findall(f".//{{{XENC}}}EncryptedData/{{{XENC}}}EncryptionMethod")
        method.set("Algorithm", XENC + "tripledes-cbc")
    else:
        root = _tree(setup.messages["s5-plain-body"])
    _refused(_post(tls_server, scenario, etree.tostring(root)), fault)


def test_cbc_is_refused_unless_inbound_cbc_is_set(setup: Setup, http_server: Server) -> None:
    _refused(_post(http_server, "s5", setup.messages["s5-cbc-over-http"].xml), UNSUPPORTED_ALGORITHM)
    _refused(_post(http_server, "s8", setup.messages["s8-cbc-over-http"].xml), UNSUPPORTED_ALGORITHM)


def test_w33_plain_username_token_over_http_is_refused(setup: Setup, http_server: Server) -> None:
    _refused(_post(http_server, "s8", setup.messages["s8-plain-ut-over-http"].xml), INVALID_SECURITY)


@pytest.mark.parametrize("scenario", ["s5", "s8"])
def test_w30_replayed_encrypted_request_is_refused(setup: Setup, tls_server: Server, scenario: str) -> None:
    body = setup.messages[f"{scenario}-replay"].xml
    assert _issued(_post(tls_server, scenario, body))
    _refused(_post(tls_server, scenario, body), INVALID_SECURITY)


def _c14n(element: etree._Element, method_holder: etree._Element) -> bytes:
    """Exclusive c14n with the InclusiveNamespaces PrefixList the message names for it (WSS4J writes one)."""
    inclusive = method_holder.find(f".//{{{EXC_C14N}}}InclusiveNamespaces")
    prefixes = (inclusive.get("PrefixList") or "").split() if inclusive is not None else None
    return etree.tostring(element, method="c14n", exclusive=True, inclusive_ns_prefixes=prefixes)


def _resigned(message: bytes, signer: ClientKey) -> bytes:
    """Another registered client's copy of a captured SigEncr request: its EncryptedKey, encrypted Body and Body
    digest kept (the plaintext it never saw), a new Timestamp, the signer's certificate, a signature of its own."""
    root = etree.fromstring(message)
    security = root.find(f".//{{{WSSE}}}Security")
    assert security is not None
    timestamp = security.find(f"{{{WSU}}}Timestamp")
    signed_info = security.find(f"{{{DS}}}Signature/{{{DS}}}SignedInfo")
    token = security.find(f"{{{WSSE}}}BinarySecurityToken")
    assert timestamp is not None and signed_info is not None and token is not None
    created = timestamp.find(f"{{{WSU}}}Created")
    assert created is not None
    created.text = format_instant(dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
    token.text = base64.b64encode(signer.certificate.public_bytes(serialization.Encoding.DER)).decode()
    reference = signed_info.find(f"{{{DS}}}Reference[@URI='#{timestamp.get(f'{{{WSU}}}Id')}']")
    assert reference is not None
    digest = hashlib.sha256(_c14n(timestamp, reference))
    reference.find(f"{{{DS}}}DigestValue").text = base64.b64encode(digest.digest()).decode()  # type: ignore[union-attr]
    key = serialization.load_pem_private_key(signer.key_pem, None)
    assert isinstance(key, rsa.RSAPrivateKey)
    value = key.sign(_c14n(signed_info, signed_info[0]), padding.PKCS1v15(), hashes.SHA256())
    security.find(f"{{{DS}}}Signature/{{{DS}}}SignatureValue").text = base64.b64encode(value).decode()  # type: ignore[union-attr]
    return etree.tostring(root)


def test_another_client_resigning_a_captured_sig_encr_request_is_refused(
    setup: Setup, tls_server: Server, tmp_path: Path
) -> None:
    """A new SignedInfo passes the signature replay cache; the EncryptedKey, the sender's, must not be unwrapped
    for anyone a second time (WSS 1.1 §13: one decryption per captured message)."""
    mallory = ClientKey.generate("mallory")
    (tmp_path / "mallory.pem").write_bytes(mallory.cert_pem)
    assert setup.instance.cli("user", "add-cert", "admin", str(tmp_path / "mallory.pem")) == 0
    captured = setup.messages["s5-resigned"].xml
    assert _issued(_post(tls_server, "s5", captured))
    _refused(_post(tls_server, "s5", _resigned(captured, mallory)), INVALID_SECURITY)


def test_wsdl_lists_the_encrypting_scenarios_with_their_policies(tls_server: Server, tmp_path: Path) -> None:
    wsdl = etree.fromstring(requests.get(tls_server.url + "?wsdl", verify=tls_server.verify, timeout=30).content)
    ids = {p.get("{http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd}Id")
           for p in wsdl.iter("{http://schemas.xmlsoap.org/ws/2004/09/policy}Policy")}
    assert {"SigEncr", "SgnEncrUsername"} <= ids
    addresses = {a.get("location") for a in wsdl.iter("{http://schemas.xmlsoap.org/wsdl/soap/}address")}
    assert any(a.endswith(PATHS["s5"]) for a in addresses) and any(a.endswith(PATHS["s8"]) for a in addresses)
    mex = requests.get(_origin(tls_server) + "/mex", verify=tls_server.verify, timeout=30).content
    assert b'wsu:Id="SgnEncrUsername"' in mex and b"SignedEncryptedSupportingTokens" in mex
