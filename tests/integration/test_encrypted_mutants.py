"""Mutants of WSO2 scenario 5 (SigEncr) and 8 (SgnEncrUsername) requests against a real gunicorn (plain HTTP, one
worker), built in Python (tests/encrypted_support.py) so that a tampered message can be signed again: by its
sender (scenario 8: anyone can choose K) or by another registered client (scenario 5). WSS4J's corpus
(test_wss4j_scenarios.py) covers the shapes a real client makes; these are the ones only an attacker makes.

* an EncryptedKey goes through one message: not one captured from SgnEncrUsername re-signed on SigEncr, not the
  same EncryptedKey in a new SgnEncrUsername message (WSS 1.1 §13);
* every decryption failure, whatever it is (key transport, GCM tag and IV, CBC padding, a plaintext that is not
  the one element its place takes), is one answer, byte for byte (Jager & Somorovsky, CCS 2011);
* what is refused before anything is decrypted (XML Encryption 1.1 §3-5; WS-SecurityPolicy 1.3 §6.1, §7.4),
  and signatures that leave out a part the symmetric binding requires: each its exact fault code and string.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from lxml import etree

from sts.config import load_settings
from sts.stores.sqlite import Database
from sts.stores.sqlite_stores import SqliteReplayCache
from tests import encrypted_support as es
from tests.encrypted_support import DS, XENC, Options, Sender, q
from tests.support import (
    S11,
    WSSE,
    WST,
    Instance,
    Server,
    audit_records,
    fault_qname,
    fault_string,
    make_instance,
    rst_body,
    start_server,
)
from tests.x509_support import Client, make_cert, rsa_key, write_client

pytestmark = pytest.mark.integration

PATHS = {"s5": "/services/wso2carbon-sts/SigEncr", "s8": "/services/wso2carbon-sts/SgnEncrUsername"}
FAILED_CHECK = (WSSE, "FailedCheck"), "The signature or decryption was invalid"
INVALID_SECURITY = (WSSE, "InvalidSecurity"), "An error was discovered processing the <wsse:Security> header"
UNSUPPORTED_ALGORITHM = (WSSE, "UnsupportedAlgorithm"), "An unsupported signature or encryption algorithm was used"
FAILED_AUTHENTICATION = (WSSE, "FailedAuthentication"), "The security token could not be authenticated or authorized"
STS_FAULT_NS = "urn:python-sts:fault"
RST = rst_body().encode()

Fault = tuple[tuple[str, str], str]
Edit = Callable[[etree._Element], object]


@dataclass
class Setup:
    instance: Instance
    server: Server
    sts: x509.Certificate
    alice: Client  # registered to admin
    mallory: Client  # another client, registered to admin too

    def sender(self, scenario: str, client: Client | None = None) -> Sender:
        if scenario == "s5":
            client = client or self.alice
            return Sender(certificate=client.cert, key=client.key)
        return Sender(username="admin", password=self.instance.demo_password)

    def build(self, scenario: str, **options: object) -> es.Built:
        return es.build(scenario, self.sts, self.sender(scenario), Options(**options))  # type: ignore[arg-type]

    def post(self, scenario: str, body: bytes) -> requests.Response:
        origin = self.server.url.replace("/services/wso2carbon-sts", "")
        headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{WST}/RST/Issue"'}
        return requests.post(origin + PATHS[scenario], data=body, headers=headers, timeout=30)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    instance = make_instance(tmp_path_factory.mktemp("encrypted-mutants") / "var")
    clients = {}
    for name in ("alice", "mallory"):
        key = rsa_key()
        clients[name] = write_client(instance.base / "clients", name, make_cert(name, key), key)
        assert instance.cli("user", "add-cert", "admin", str(clients[name].cert_file)) == 0
    env = {"STS_SECURITY_SCENARIOS": "UTOverTransport,SigEncr,SgnEncrUsername", "STS_SECURITY_INBOUND_CBC": "true"}
    server = start_server(instance, workers=1, tls=False, env=env)
    sts = x509.load_pem_x509_certificate(instance.signing_cert.read_bytes())
    yield Setup(instance, server, sts, clients["alice"], clients["mallory"])
    server.stop()


def _issued(response: requests.Response) -> bool:
    return response.status_code == 200 and b"Fault" not in response.content and b"EncryptedData" in response.content


def _refused(response: requests.Response, fault: Fault) -> None:
    assert not _issued(response)
    assert (fault_qname(response.content), fault_string(response.content)) == fault, response.content[:600]


def _reason(setup: Setup, response: requests.Response) -> object:
    """The audit reason of the request ``response`` answered (found by its correlation id; the worker may write
    the event just after answering)."""
    correlation = etree.fromstring(response.content).findtext(f".//{{{STS_FAULT_NS}}}CorrelationId")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for record in audit_records(setup.server.log):
            if record.get("audit_event") == "request" and record.get("correlation_id") == correlation:
                return record.get("reason")
        time.sleep(0.05)
    return None


# --- mutations ---------------------------------------------------------------------------------------------------


def _security(root: etree._Element) -> etree._Element:
    return root[0][0]


def _encrypted_key(root: etree._Element) -> etree._Element:
    key = _security(root).find(q(XENC, "EncryptedKey"))
    assert key is not None
    return key


def _body_data(root: etree._Element) -> etree._Element:
    return root[1][0]


def _token_data(root: etree._Element) -> etree._Element:
    data = _security(root).find(q(XENC, "EncryptedData"))
    assert data is not None
    return data


def _cipher_value(element: etree._Element) -> etree._Element:
    value = element.find(f"{q(XENC, 'CipherData')}/{q(XENC, 'CipherValue')}")
    assert value is not None
    return value


def _set_cipher(get: Callable[[etree._Element], etree._Element], data: bytes) -> Edit:
    def edit(root: etree._Element) -> None:
        _cipher_value(get(root)).text = base64.b64encode(data).decode()

    return edit


def _flip(get: Callable[[etree._Element], etree._Element], index: int) -> Edit:
    def edit(root: etree._Element) -> None:
        value = _cipher_value(get(root))
        data = bytearray(base64.b64decode(value.text or ""))
        data[index] ^= 1
        value.text = base64.b64encode(bytes(data)).decode()

    return edit


def _wrapped_plus_modulus(sts: x509.Certificate) -> Edit:
    """c + n: the same key modulo n in a CipherValue of the modulus's length, when it fits (else c + n overflows
    one byte and is refused for its length, as it must be either way)."""

    def edit(root: etree._Element) -> None:
        value = _cipher_value(_encrypted_key(root))
        public = sts.public_key()
        assert isinstance(public, rsa.RSAPublicKey)
        larger = int.from_bytes(base64.b64decode(value.text or ""), "big") + public.public_numbers().n
        value.text = base64.b64encode(larger.to_bytes((larger.bit_length() + 7) // 8, "big")).decode()

    return edit


def _key_info(get: Callable[[etree._Element], etree._Element], content: str) -> Edit:
    def edit(root: etree._Element) -> None:
        holder = get(root)
        key_info = etree.fromstring(f'<ds:KeyInfo xmlns:ds="{DS}" xmlns:xenc="{XENC}">{content}</ds:KeyInfo>')
        old = holder.find(q(DS, "KeyInfo"))
        if old is None:
            holder.insert(1, key_info)
        else:
            holder.replace(old, key_info)

    return edit


def _references(*ids: str) -> Edit:
    def edit(root: etree._Element) -> None:
        listed = _encrypted_key(root).find(q(XENC, "ReferenceList"))
        assert listed is not None
        for child in list(listed):
            listed.remove(child)
        for identifier in ids:
            etree.SubElement(listed, q(XENC, "DataReference"), URI="#" + identifier)

    return edit


def _cipher_reference(root: etree._Element) -> None:
    cipher_data = _body_data(root).find(q(XENC, "CipherData"))
    assert cipher_data is not None
    cipher_data.replace(cipher_data[0], etree.Element(q(XENC, "CipherReference"), URI="http://127.0.0.1:9/cipher"))


def _key_names_key(root: etree._Element) -> None:
    """The EncryptedKey's STR points at a second EncryptedKey (a key wrapped by a key)."""
    key = _encrypted_key(root)
    other = copy.deepcopy(key)
    other.set("Id", "EK-2")
    other.remove(other[-1])
    reference = key.find(f"{q(DS, 'KeyInfo')}/{q(WSSE, 'SecurityTokenReference')}")
    assert reference is not None
    reference.replace(reference[0], etree.Element(q(WSSE, "Reference"), URI="#EK-2",
                                                  ValueType=es.ENCRYPTED_KEY_TYPE))
    _security(root).append(other)


def _data_in_another_security_header(root: etree._Element) -> None:
    other = etree.SubElement(root[0], q(WSSE, "Security"))
    other.set(q(S11, "actor"), "urn:someone-else")
    other.append(es.encrypted_data("ED-X", "Element", es.AES256_GCM, os.urandom(64)))


def _hmac_output_length(root: etree._Element) -> None:
    method = root.find(f".//{q(DS, 'SignatureMethod')}")
    assert method is not None
    etree.SubElement(method, q(DS, "HMACOutputLength")).text = "128"


def _signature_value(transform: Callable[[bytes], bytes]) -> Edit:
    def edit(root: etree._Element) -> None:
        value = root.find(f".//{q(DS, 'SignatureValue')}")
        assert value is not None
        value.text = base64.b64encode(transform(base64.b64decode(value.text or ""))).decode()

    return edit


def _method(get: Callable[[etree._Element], etree._Element], algorithm: str) -> Edit:
    def edit(root: etree._Element) -> None:
        method = get(root).find(q(XENC, "EncryptionMethod"))
        assert method is not None
        method.set("Algorithm", algorithm)

    return edit


def _swap_signed_token(root: etree._Element) -> None:
    """Before encryption: the signed UsernameToken moved to a header block of its own, a fresh unsigned one in its
    place (the one to be encrypted and authenticated)."""
    security = _security(root)
    token = security.find(q(WSSE, "UsernameToken"))
    assert token is not None
    fresh = copy.deepcopy(token)
    fresh.set(q(es.WSU, "Id"), "UT-2")
    security.replace(token, fresh)
    etree.SubElement(root[0], "{urn:evil}Wrapper").append(token)


def _token_data_moved_out(root: etree._Element) -> None:
    """The encrypted UsernameToken moved from our Security header into a header block of its own."""
    etree.SubElement(root[0], "{urn:evil}Wrapper").append(_token_data(root))


def _username_token(identifier: str, password: str) -> bytes:
    return (f'<wsse:UsernameToken xmlns:wsse="{WSSE}" xmlns:wsu="{es.WSU}" wsu:Id="{identifier}">'
            f"<wsse:Username>admin</wsse:Username><wsse:Password>{password}</wsse:Password>"
            f"</wsse:UsernameToken>").encode()


def _cbc(key: bytes, data: bytes, last: int) -> bytes:
    """AES-256-CBC of ``data`` padded with random filler and ``last`` as the padding length byte."""
    pad = 16 - len(data) % 16
    iv = os.urandom(16)
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return iv + encryptor.update(data + os.urandom(pad - 1) + bytes([last])) + encryptor.finalize()


# --- one EncryptedKey, one message -------------------------------------------------------------------------------


def _resigned_on_sig_encr(setup: Setup, captured: etree._Element) -> bytes:
    """Mallory's SigEncr request carrying a captured request's EncryptedKey and encrypted Body: the Body digest
    copied from its SignedInfo (the plaintext she never saw), her own certificate, Timestamp and signature."""
    wrapped = _cipher_value(_encrypted_key(captured)).text
    body_digest = captured.findtext(f".//{q(DS, 'Reference')}[@URI='#Body-1']/{q(DS, 'DigestValue')}")

    def graft(root: etree._Element) -> None:
        _cipher_value(_encrypted_key(root)).text = wrapped
        root[1].replace(_body_data(root), copy.deepcopy(_body_data(captured)))
        signed_info = root.find(f".//{q(DS, 'SignedInfo')}")
        value = root.find(f".//{q(DS, 'SignatureValue')}")
        digest = root.find(f".//{q(DS, 'Reference')}[@URI='#Body-1']/{q(DS, 'DigestValue')}")
        assert signed_info is not None and value is not None and digest is not None
        digest.text = body_digest
        signature = setup.mallory.key.sign(es.c14n(signed_info), padding.PKCS1v15(), hashes.SHA256())
        value.text = base64.b64encode(signature).decode()

    return es.build("s5", setup.sts, setup.sender("s5", setup.mallory), Options(after=graft)).xml()


def test_python_built_requests_get_tokens(setup: Setup) -> None:
    """The mutants' originals are good requests: both scenarios, AES-GCM and AES-CBC."""
    for scenario in ("s5", "s8"):
        for cipher in (es.AES256_GCM, es.AES256_CBC):
            response = setup.post(scenario, setup.build(scenario, cipher=cipher).xml())
            assert _issued(response), (scenario, cipher, response.content[:600])
    response = setup.post("s5", setup.build("s5", cipher=es.AES128_GCM).xml())  # scenario 5's policy allows it
    assert _issued(response), response.content[:600]


def test_the_encrypted_key_of_a_captured_sgn_encr_username_request_is_not_unwrapped_for_sig_encr(
    setup: Setup,
) -> None:
    """Alice's SgnEncrUsername request (over plain HTTP, as scenario 8 allows) is captured; Mallory, a registered
    SigEncr client, re-signs its EncryptedKey and encrypted Body: the STS must not decrypt Alice's request and
    answer it to Mallory."""
    captured = setup.build("s8")
    assert _issued(setup.post("s8", captured.xml()))
    response = setup.post("s5", _resigned_on_sig_encr(setup, captured.root))
    _refused(response, INVALID_SECURITY)
    assert _reason(setup, response) == "encrypted_key_replayed"


def test_an_encrypted_key_goes_through_one_sgn_encr_username_message(setup: Setup) -> None:
    """The same EncryptedKey in a new message (fresh Timestamp and HMAC) is refused; K itself, wrapped afresh, may
    be used again (only its holder can)."""
    key = os.urandom(32)
    wrapped = es.wrap(setup.sts, key)
    assert _issued(setup.post("s8", setup.build("s8", key=key, wrapped_key=wrapped).xml()))
    response = setup.post("s8", setup.build("s8", key=key, wrapped_key=wrapped).xml())
    _refused(response, INVALID_SECURITY)
    assert _reason(setup, response) == "encrypted_key_replayed"
    assert _issued(setup.post("s8", setup.build("s8", key=key).xml()))


# --- decryption failures: one answer ------------------------------------------------------------------------------


def _decryption_failures(setup: Setup) -> dict[str, tuple[str, bytes]]:
    key = os.urandom(32)
    assert len(RST) % 16, "a padding length of 16 must be a wrong one for the RST"
    cases: dict[str, tuple[str, dict[str, object]]] = {
        "oaep-c-plus-n": ("s5", {"after": _wrapped_plus_modulus(setup.sts)}),
        "wrapped-key-of-wrong-length": ("s5", {"wrapped_key": es.wrap(setup.sts, os.urandom(24))}),
        "wrapped-key-for-s8-mangled": ("s8", {"after": _flip(_encrypted_key, 9)}),
        "gcm-iv-truncated": ("s5", {"after": _set_cipher(_body_data, os.urandom(27))}),
        "gcm-iv-flipped": ("s5", {"after": _flip(_body_data, 0)}),
        "cbc-padding-length-16-on-a-short-pad": (
            "s5", {"key": key, "cipher": es.AES256_CBC, "after": _set_cipher(_body_data, _cbc(key, RST, 16))}),
        "cbc-padding-length-0": (
            "s5", {"key": key, "cipher": es.AES256_CBC, "after": _set_cipher(_body_data, _cbc(key, RST, 0))}),
        "plaintext-processing-instruction": ("s5", {"body_plaintext": b"<?x y?>" + RST}),
        "plaintext-xml-declaration": ("s5", {"body_plaintext": b'<?xml version="1.0"?>' + RST}),
        "plaintext-closes-the-wrapper": ("s5", {"body_plaintext": RST + b"</sts-decrypted-content><a>"}),
        "plaintext-two-elements": ("s5", {"body_plaintext": RST + RST}),
        "plaintext-nested-encrypted-data": (
            "s5", {"body_plaintext": f'<x xmlns:xenc="{XENC}"><xenc:EncryptedData/></x>'.encode()}),
        "plaintext-repeats-the-body-id": ("s5", {"body_plaintext": RST.replace(b"Token ", b'Token Id="Body-1" ', 1)}),
        "token-plaintext-not-a-username-token": ("s8", {"ut_plaintext": RST}),
        "token-tag-flipped": ("s8", {"after": _flip(_token_data, -1)}),
        "hmac-truncated": ("s8", {"after": _signature_value(lambda value: value[:16])}),
        "hmac-with-another-key": ("s8", {"sign_key": os.urandom(32)}),
    }
    return {name: (scenario, setup.build(scenario, **options).xml()) for name, (scenario, options) in cases.items()}


def _without_correlation(body: bytes) -> bytes:
    value = etree.fromstring(body).findtext(f".//{{{STS_FAULT_NS}}}CorrelationId")
    assert value
    return body.replace(value.encode(), b"CORRELATION-ID")


def test_every_decryption_failure_is_one_answer(setup: Setup) -> None:
    """Key transport, GCM, CBC padding, a plaintext that is not the one element its place takes, a short or foreign
    HMAC: the same FailedCheck, status and bytes (but the correlation id)."""
    answers = {}
    for name, (scenario, body) in _decryption_failures(setup).items():
        response = setup.post(scenario, body)
        _refused(response, FAILED_CHECK)
        answers[name] = (response.status_code, response.headers["Content-Type"],
                         _without_correlation(response.content))
    assert len(set(answers.values())) == 1, answers


# --- refused before decryption, and partial signatures -------------------------------------------------------------

REFUSALS: dict[str, tuple[str, Callable[[Setup], dict[str, object]], Fault]] = {
    "cipher-reference-is-never-fetched": ("s5", lambda s: {"after": _cipher_reference}, INVALID_SECURITY),
    "encrypted-data-key-info-retrieval-method": (
        "s5", lambda s: {"after": _key_info(_body_data, '<ds:RetrievalMethod URI="http://127.0.0.1:9/key"/>')},
        INVALID_SECURITY),
    "encrypted-data-key-info-embedded-key": (
        "s5", lambda s: {"after": _key_info(_body_data, "<xenc:EncryptedKey/>")}, INVALID_SECURITY),
    "encrypted-key-key-info-key-name": (
        "s5", lambda s: {"after": _key_info(_encrypted_key, "<ds:KeyName>sts</ds:KeyName>")}, INVALID_SECURITY),
    "encrypted-key-wrapped-by-an-encrypted-key": ("s8", lambda s: {"after": _key_names_key}, INVALID_SECURITY),
    "body-data-typed-element": (
        "s5", lambda s: {"after": lambda root: _body_data(root).set("Type", XENC + "Element")}, INVALID_SECURITY),
    "reference-list-names-the-body": ("s5", lambda s: {"after": _references("Body-1")}, INVALID_SECURITY),
    "reference-list-names-the-data-twice": (
        "s5", lambda s: {"after": _references("ED-Body", "ED-Body")}, INVALID_SECURITY),
    "encrypted-data-in-another-security-header": (
        "s8", lambda s: {"after": _data_in_another_security_header}, INVALID_SECURITY),
    "hmac-output-length": ("s8", lambda s: {"before_encrypt": _hmac_output_length}, INVALID_SECURITY),
    # Basic256Sha256 (WS-SecurityPolicy 1.3 §6.1) fixes the symmetric binding's key, which keys the HMAC too, at 256
    # bits; the asymmetric binding's content key is the sender's own business (below).
    "s8-128-bit-key": ("s8", lambda s: {"cipher": es.AES128_GCM}, UNSUPPORTED_ALGORITHM),
    "s8-128-bit-key-cbc": ("s8", lambda s: {"cipher": es.AES128_CBC}, UNSUPPORTED_ALGORITHM),
    "s8-token-with-a-128-bit-cipher": ("s8", lambda s: {"ut_cipher": es.AES128_GCM}, UNSUPPORTED_ALGORITHM),
    "rsa-1_5-on-s8": ("s8", lambda s: {"after": _method(_encrypted_key, XENC + "rsa-1_5")}, UNSUPPORTED_ALGORITHM),
    "kw-aes256-key-transport": (
        "s5", lambda s: {"after": _method(_encrypted_key, XENC + "kw-aes256")}, UNSUPPORTED_ALGORITHM),
    "s8-signature-leaves-out-the-username-token": ("s8", lambda s: {"sign": ("TS", "Body-1")}, FAILED_CHECK),
    "s8-signature-leaves-out-the-body": ("s8", lambda s: {"sign": ("TS", "UT-1")}, FAILED_CHECK),
    "s8-signature-leaves-out-the-timestamp": ("s8", lambda s: {"sign": ("Body-1", "UT-1")}, FAILED_CHECK),
    "s8-signed-token-moved-out-unsigned-one-encrypted": (
        "s8", lambda s: {"before_encrypt": _swap_signed_token}, FAILED_CHECK),
    "s8-decrypted-token-repeats-the-body-id": (
        "s8", lambda s: {"ut_plaintext": _username_token("Body-1", s.instance.demo_password)}, FAILED_CHECK),
    "s8-plain-username-token-over-http": ("s8", lambda s: {"encrypt_ut": False}, INVALID_SECURITY),
    "s8-encrypted-token-moved-to-another-header": ("s8", lambda s: {"after": _token_data_moved_out},
                                                   FAILED_AUTHENTICATION),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_refused(setup: Setup, case: str) -> None:
    scenario, options, fault = REFUSALS[case]
    _refused(setup.post(scenario, setup.build(scenario, **options(setup)).xml()), fault)


# --- a rolling upgrade: nodes of an earlier release share the replay cache ---------------------------------------


def _key_of_earlier_releases(root: etree._Element) -> bytes:
    """What releases before the SignedInfo key entered for a signature: SHA-256 of its SignatureValue as sent,
    whitespace removed."""
    value = root.findtext(f".//{{{DS}}}SignatureValue")
    assert value is not None
    return hashlib.sha256(b"".join(value.encode("ascii").split())).digest()


@contextmanager
def _replay_cache(setup: Setup) -> Iterator[SqliteReplayCache]:
    """The instance's replay cache (the SQLite database the server shares), as another node sees it."""
    with Database(load_settings(setup.instance.config, env={}).store.database) as db:
        yield SqliteReplayCache(db)


def test_a_sig_encr_message_an_earlier_release_accepted_is_refused_and_the_other_way_round(setup: Setup) -> None:
    """A message that a node of an earlier release entered is refused here; one accepted here is entered under that
    release's key, so its nodes refuse it."""
    seen, fresh = setup.build("s5"), setup.build("s5")
    expires = time.time() + 300
    with _replay_cache(setup) as cache:
        assert cache.check_and_add("wss-signature", _key_of_earlier_releases(seen.root), expires)
    response = setup.post("s5", seen.xml())
    _refused(response, INVALID_SECURITY)
    assert _reason(setup, response) == "signature_replayed"
    assert _issued(setup.post("s5", fresh.xml()))
    with _replay_cache(setup) as cache:
        assert not cache.check_and_add("wss-signature", _key_of_earlier_releases(fresh.root), expires)
