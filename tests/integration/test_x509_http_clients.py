"""Issue 16: signed SigOnly requests over plain HTTP (loopback, ``allow_insecure_transport``) from the sample client
(``sts request --cert --key``) and from an independent signer, the ``xmlsec1`` command line tool (libxmlsec1 over
OpenSSL: nothing of this project's signing code is involved).

The xmlsec1 request is a WSS template (Timestamp, BinarySecurityToken, a ``ds:Signature`` with References to the
Timestamp and the Body and a SecurityTokenReference to the BST) signed with ``xmlsec1 --sign --id-attr:Id
Timestamp --id-attr:Id Body`` (xmlsec1 matches ``wsu:Id`` by local name).
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from lxml import etree

from tests.support import (
    S11,
    WSSE,
    WST,
    WSU,
    Instance,
    Server,
    fault_qname,
    make_instance,
    now_text,
    rst_body,
    start_server,
)
from tests.x509_support import Client, make_cert, rsa_key, write_client

pytestmark = pytest.mark.integration

SIG_ONLY = "/services/wso2carbon-sts/SigOnly"
DEMO_RP = "https://localhost:8443/demo-rp/"
STS = Path(sys.executable).with_name("sts")
DS = "http://www.w3.org/2000/09/xmldsig#"
X509V3 = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3"
B64 = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"


@pytest.fixture(scope="module")
def http_instance(tmp_path_factory: pytest.TempPathFactory) -> tuple[Instance, Client]:
    instance = make_instance(tmp_path_factory.mktemp("x509http") / "var")
    key = rsa_key()
    alice = write_client(instance.base / "clients", "alice", make_cert("alice", key), key)
    assert instance.cli("user", "add-cert", "admin", str(alice.cert_file)) == 0
    return instance, alice


@pytest.fixture(scope="module")
def http_server(http_instance: tuple[Instance, Client]) -> Iterator[Server]:
    instance, _ = http_instance
    server = start_server(instance, workers=1, tls=False, env={"STS_SECURITY_SCENARIOS": "UTOverTransport,SigOnly"})
    yield server
    server.stop()


def _origin(server: Server) -> str:
    return server.url.replace("/services/wso2carbon-sts", "")


def _post(server: Server, body: bytes) -> requests.Response:
    headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{WST}/RST/Issue"'}
    return requests.post(_origin(server) + SIG_ONLY, data=body, headers=headers, timeout=30)


def test_sts_request_signs_with_cert_and_key_over_http(
    http_server: Server, http_instance: tuple[Instance, Client], tmp_path: Path
) -> None:
    _, alice = http_instance
    out = tmp_path / "token.xml"
    done = subprocess.run(
        [str(STS), "request", _origin(http_server) + SIG_ONLY, "--cert", str(alice.cert_file), "--key",
         str(alice.key_file), "--applies-to", DEMO_RP, "--out", str(out)],
        capture_output=True, text=True, timeout=60, check=False, stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    assert etree.QName(etree.fromstring(out.read_bytes())).localname in ("EncryptedAssertion", "Assertion")
    # The same command without a key is a usage error, before anything is sent.
    missing = subprocess.run(
        [str(STS), "request", _origin(http_server) + SIG_ONLY, "--cert", str(alice.cert_file), "--applies-to",
         DEMO_RP], capture_output=True, text=True, timeout=60, check=False, stdin=subprocess.DEVNULL,
    )
    assert missing.returncode == 1 and "--cert and --key go together" in missing.stderr


def _template(alice: Client) -> bytes:
    """A SigOnly request with an unsigned signature template (WSS 1.1 §8, X.509 Token Profile 1.1 §3.2)."""
    der = alice.cert.public_bytes(serialization.Encoding.DER)

    def reference(uri: str) -> str:
        return (f'<ds:Reference URI="#{uri}"><ds:Transforms><ds:Transform Algorithm="{EXC_C14N}"/></ds:Transforms>'
                '<ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue/>'
                "</ds:Reference>")

    return f"""<s:Envelope xmlns:s="{S11}" xmlns:wsse="{WSSE}" xmlns:wsu="{WSU}" xmlns:ds="{DS}"><s:Header>
<wsse:Security s:mustUnderstand="1">
<wsu:Timestamp wsu:Id="TS-xmlsec1"><wsu:Created>{now_text()}</wsu:Created><wsu:Expires>{now_text(300)}</wsu:Expires>
</wsu:Timestamp>
<wsse:BinarySecurityToken ValueType="{X509V3}" EncodingType="{B64}" wsu:Id="X509-xmlsec1">{
base64.b64encode(der).decode()}</wsse:BinarySecurityToken>
<ds:Signature><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="{EXC_C14N}"/>
<ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/>
{reference("TS-xmlsec1")}{reference("Body-xmlsec1")}</ds:SignedInfo><ds:SignatureValue/>
<ds:KeyInfo><wsse:SecurityTokenReference><wsse:Reference URI="#X509-xmlsec1" ValueType="{X509V3}"/>
</wsse:SecurityTokenReference></ds:KeyInfo></ds:Signature>
</wsse:Security></s:Header><s:Body wsu:Id="Body-xmlsec1">{rst_body(applies_to=DEMO_RP)}</s:Body></s:Envelope>
""".encode()


def _xmlsec1_sign(template: bytes, key_file: Path, tmp_path: Path) -> bytes:
    source, signed = tmp_path / "template.xml", tmp_path / "signed.xml"
    source.write_bytes(template)
    done = subprocess.run(
        ["xmlsec1", "--sign", "--privkey-pem", str(key_file), "--id-attr:Id", "Timestamp", "--id-attr:Id", "Body",
         "--output", str(signed), str(source)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr
    return signed.read_bytes()


@pytest.mark.skipif(shutil.which("xmlsec1") is None, reason="xmlsec1 is installed by make install-test")
def test_a_request_signed_by_the_xmlsec1_cli_is_accepted_on_sig_only(
    http_server: Server, http_instance: tuple[Instance, Client], tmp_path: Path
) -> None:
    _, alice = http_instance
    signed = _xmlsec1_sign(_template(alice), alice.key_file, tmp_path)
    assert b"<ds:SignatureValue/>" not in signed
    response = _post(http_server, signed)
    assert response.status_code == 200 and b"RequestSecurityTokenResponse" in response.content, response.content[:600]
    # ...and once only: the same signature again is a replay.
    assert fault_qname(_post(http_server, signed).content) == (WSSE, "InvalidSecurity")
    # A Body changed after xmlsec1 signed it does not verify.
    tampered = signed.replace(DEMO_RP.encode(), b"https://localhost:8443/other-rp/")
    assert fault_qname(_post(http_server, tampered).content) == (WSSE, "FailedCheck")
