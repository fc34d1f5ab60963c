"""Key rotation and message-level security, against gunicorn (2 workers) and Apache WSS4J (a client no one here
wrote): once ``sts key rotate`` has published the next certificate, a SigEncr request encrypted to it is
decrypted; once ``sts key promote`` has made it the signing key, SigOnly and SigEncr answers are signed with it
(WSSecurityEngine verifies them with the new certificate), and a token it signed is accepted as OnBehalfOf by the
same STS, all without a reload.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from lxml import etree

from sts.config import load_settings
from tests.clients import wss4j as harness
from tests.clients.wss4j import ClientKey, Wss4j
from tests.integration.delegation_support import issue
from tests.support import WST, Instance, Server, make_instance, rst_body, start_server
from tests.token_checks import decrypt_with_python_xmlsec, verify_with_both

pytestmark = pytest.mark.integration

XENC = "http://www.w3.org/2001/04/xmlenc#"
SAML2 = "urn:oasis:names:tc:SAML:2.0:assertion"
PATHS = {"s2": "/services/wso2carbon-sts/SigOnly", "s5": "/services/wso2carbon-sts/SigEncr"}
RELOAD_WAIT = 1.2  # workers look at the key files at most once a second (sts.crypto.keyring.CHECK_INTERVAL)
FRONTEND, BACKEND = "https://front.example.test/", "https://back.example.test/"


@pytest.fixture(scope="module")
def rotating(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Instance, ClientKey, Server]]:
    instance = make_instance(tmp_path_factory.mktemp("rotation-messages") / "var")
    client = ClientKey.generate("alice")
    (instance.base / "alice.pem").write_bytes(client.cert_pem)
    assert instance.cli("user", "add-cert", "admin", str(instance.base / "alice.pem")) == 0
    for address in (FRONTEND, BACKEND):
        assert instance.cli("rp", "add", address, "--no-encrypt") == 0
    policy = ("--allow-delegation", "admin", "--delegation-subjects", "any")
    assert instance.cli("rp", "update", BACKEND, *policy) == 0
    env = {"STS_SECURITY_SCENARIOS": "UTOverTransport,SigOnly,SigEncr"}
    server = start_server(instance, workers=2, tls=True, env=env)
    yield instance, client, server
    server.stop()


def _post(server: Server, scenario: str, body: bytes) -> requests.Response:
    origin = server.url.replace("/services/wso2carbon-sts", "")
    headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{WST}/RST/Issue"'}
    return requests.post(origin + PATHS[scenario], data=body, headers=headers, verify=server.verify, timeout=30)


def _answered(response: requests.Response) -> bytes:
    assert response.status_code == 200 and b"Fault" not in response.content, response.content[:800]
    return response.content


def _token(document: bytes, instance: Instance, signing_cert: Path) -> etree._Element:
    """The issued assertion, decrypted for the demo RP and verified (signxml and xmlsec1) with ``signing_cert``."""
    holder = etree.fromstring(document).find(f".//{{{WST}}}RequestedSecurityToken")
    assert holder is not None and len(holder) == 1, document[:800]
    encrypted = holder[0] if holder[0].tag == f"{{{XENC}}}EncryptedData" else holder[0][0]
    return verify_with_both(decrypt_with_python_xmlsec(encrypted, instance.rp_key), signing_cert, saml11=False)


def test_rotated_and_promoted_keys_serve_message_level_security_without_a_reload(
    rotating: tuple[Instance, ClientKey, Server], wss4j: Wss4j, tmp_path: Path
) -> None:
    instance, client, server = rotating
    old_cert = tmp_path / "old.crt.pem"  # `sts key promote` replaces the files: keep copies
    old_cert.write_bytes(instance.signing_cert.read_bytes())
    assert instance.cli("key", "rotate") == 0
    next_cert = tmp_path / "next.crt.pem"
    next_cert.write_bytes(load_settings(instance.config, env={}).issuer.next_signing_cert.read_bytes())
    envelope = harness.envelope(rst_body())
    # Every message is sent once (replays are refused); all are made in one JVM run, encrypted to the next key.
    generated = wss4j.generate(
        [harness.sig_encr("s5-to-next", envelope), harness.sig_only("s2-after", envelope),
         harness.sig_encr("s5-after", envelope)],
        client, next_cert.read_bytes(),
    )
    time.sleep(RELOAD_WAIT)
    before = _answered(_post(server, "s5", generated["s5-to-next"].xml))  # decrypted with the next key
    assert instance.cli("key", "promote") == 0
    time.sleep(RELOAD_WAIT)
    after = {name: _answered(_post(server, name[:2], generated[name].xml)) for name in ("s2-after", "s5-after")}

    verdict = wss4j.verify_responses({"s5-to-next": before}, client, old_cert.read_bytes(),
                                     {"s5-to-next": generated["s5-to-next"].key or b""})["s5-to-next"]
    assert verdict.ok, verdict.error  # not promoted yet: the current key signed the answer
    _token(verdict.document, instance, old_cert)
    verdicts = wss4j.verify_responses(after, client, next_cert.read_bytes(),
                                      {"s5-after": generated["s5-after"].key or b""})
    for name, verdict in verdicts.items():
        assert verdict.ok, (name, verdict.error)  # the promoted key signs the answers, named by its thumbprint
        assert "signature" in [line.split(" ")[0] for line in verdict.results]
        token = _token(verdict.document if name.startswith("s5") else after[name], instance, next_cert)
        assert token.findtext(f".//{{{SAML2}}}NameID") == "admin"
    # A token the promoted key signed, handed back as OnBehalfOf: this STS believes its own new key.
    user_token = issue(server, "admin", FRONTEND, password=instance.demo_password).token
    verify_with_both(etree.tostring(user_token), next_cert, saml11=False)
    delegated = issue(server, "admin", BACKEND, password=instance.demo_password, on_behalf_of=user_token).token
    verify_with_both(etree.tostring(delegated), next_cert, saml11=False)
