"""Mutants of WSO2 scenario 5 (SigEncr) and 8 (SgnEncrUsername) requests against a real gunicorn (plain HTTP, one
worker), built in Python (tests/encrypted_support.py) so that a tampered message can be signed again: by its
sender (scenario 8: anyone can choose K) or by another registered client (scenario 5). WSS4J's corpus
(test_wss4j_scenarios.py) covers the shapes a real client makes; these are the ones only an attacker makes.

* an EncryptedKey goes through one message: not one captured from SgnEncrUsername re-signed on SigEncr, not the
  same EncryptedKey in a new SgnEncrUsername message (WSS 1.1 §13);
"""

from __future__ import annotations

import base64
import copy
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from lxml import etree

from tests import encrypted_support as es
from tests.encrypted_support import DS, XENC, Options, Sender, q
from tests.support import (
    WSSE,
    WST,
    Instance,
    Server,
    audit_records,
    fault_qname,
    fault_string,
    make_instance,
    start_server,
)
from tests.x509_support import Client, make_cert, rsa_key, write_client

pytestmark = pytest.mark.integration

PATHS = {"s5": "/services/wso2carbon-sts/SigEncr", "s8": "/services/wso2carbon-sts/SgnEncrUsername"}
INVALID_SECURITY = (WSSE, "InvalidSecurity"), "An error was discovered processing the <wsse:Security> header"
STS_FAULT_NS = "urn:python-sts:fault"

Fault = tuple[tuple[str, str], str]


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


def _cipher_value(element: etree._Element) -> etree._Element:
    value = element.find(f"{q(XENC, 'CipherData')}/{q(XENC, 'CipherValue')}")
    assert value is not None
    return value


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
