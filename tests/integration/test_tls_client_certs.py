"""Issue 16: TLS client certificates (``certificatetransport``) against a real gunicorn, and the sample client's
``sts request --cert --key`` in each certificate scenario.

gunicorn terminates TLS and asks every client for a certificate (``[server] tls_client_ca_file``, CERT_OPTIONAL:
the UsernameToken endpoint on the same listener keeps working without one); the same listener also believes
``X-SSL-Client-Cert`` from its one trusted proxy address (127.0.0.1), and from nobody else (127.0.0.2 is another
loopback address, so "another peer"). Each certificate goes through the same trust and user mapping as signing
certificates (registered, or issued by the client CA with ``cn`` mapping), with the exact fault for each refusal
and no token.
"""

from __future__ import annotations

import base64
import http.client
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from lxml import etree

from sts.client import Connection, IssueOptions, PublicKey, request_token
from tests.integration.test_operations import decrypted_token
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
    rst_envelope,
    start_server,
)
from tests.x509_support import Client, make_cert, make_crl, rsa_key, write_client

pytestmark = pytest.mark.integration

TRANSPORT = "/services/wso2carbon-sts/certificatetransport"
ADFS_TRANSPORT = "/adfs/services/trust/13/certificatetransport"
HEADER = "X-SSL-Client-Cert"
FAILED_AUTH = (WSSE, "FailedAuthentication")
DEMO_RP = "https://localhost:8443/demo-rp/"
STS = Path(sys.executable).with_name("sts")


@dataclass
class Pki:
    """The client material: registered, CA-issued, revoked and foreign certificates."""

    alice: Client  # self-signed, registered to admin, in the TLS bundle
    bob: Client  # self-signed, in the TLS bundle, registered to nobody
    ca_admin: Client  # issued by the client CA, CN=admin
    ca_nobody: Client  # issued by the client CA, CN names no user
    ca_revoked: Client  # issued by the client CA, CN=admin, in the CRL
    foreign: Client  # issued by a CA the listener does not know


@pytest.fixture(scope="module")
def tls_instance(tmp_path_factory: pytest.TempPathFactory) -> tuple[Instance, Pki]:
    instance = make_instance(tmp_path_factory.mktemp("tlscert") / "var")
    clients = instance.base / "clients"
    ca = _ca("Client CA")
    other_ca = _ca("Other CA")

    def client(name: str, cn: str | None = None, **kwargs: Any) -> Client:
        key = rsa_key()
        return write_client(clients, name, make_cert(cn or name, key, **kwargs), key)

    pki = Pki(
        alice=client("alice"),
        bob=client("bob"),
        ca_admin=client("ca-admin", "admin", issuer=ca),
        ca_nobody=client("ca-nobody", "nobody-here", issuer=ca),
        ca_revoked=client("ca-revoked", "admin", issuer=ca),
        foreign=client("foreign", "admin", issuer=other_ca),
    )
    pem = serialization.Encoding.PEM
    (instance.base / "client-ca.pem").write_bytes(ca[0].public_bytes(pem))
    (instance.base / "client-ca.crl").write_bytes(make_crl(ca, [pki.ca_revoked.cert.serial_number]))
    # What OpenSSL verifies in the handshake: the client CA and the registered self-signed certificates.
    bundle = b"".join(c.public_bytes(pem) for c in (ca[0], pki.alice.cert, pki.bob.cert))
    (instance.base / "tls-clients.pem").write_bytes(bundle)
    assert instance.cli("user", "add-cert", "admin", str(pki.alice.cert_file)) == 0
    return instance, pki


def _ca(name: str) -> tuple[Any, Any]:
    key = rsa_key()
    return make_cert(name, key, ca=True, extended=None, key_usage="none", days=(-1, 365)), key


@pytest.fixture(scope="module")
def tls_server(tls_instance: tuple[Instance, Pki]) -> Iterator[Server]:
    instance, _ = tls_instance
    env = {
        "STS_SECURITY_SCENARIOS": "UTOverTransport,SigOnly,certificatemixed,certificatetransport",
        "STS_SECURITY_CLIENT_CA_FILE": str(instance.base / "client-ca.pem"),
        "STS_SECURITY_CLIENT_CRL_FILE": str(instance.base / "client-ca.crl"),
        "STS_SECURITY_CLIENT_CERT_USER": "cn",
        "STS_SERVER_TLS_CLIENT_CA_FILE": str(instance.base / "tls-clients.pem"),
        "STS_SERVER_TRUSTED_PROXIES": "127.0.0.1",
        "STS_SERVER_CLIENT_CERT_HEADER": HEADER,
    }
    server = start_server(instance, workers=1, tls=True, env=env)
    yield server
    server.stop()


def _origin(server: Server) -> str:
    return server.url.replace("/services/wso2carbon-sts", "")


def _plain_rst(timestamp: bool = True, extra_rst: str = "", key_type: str = f"{WST}/Bearer") -> bytes:
    """An Issue request with no credential in the message (at most a Timestamp), as a TLS-authenticated client
    sends it."""
    security = (
        f'<wsse:Security xmlns:wsse="{WSSE}" xmlns:wsu="{WSU}"><wsu:Timestamp wsu:Id="TS-1"><wsu:Created>'
        f"{now_text()}</wsu:Created><wsu:Expires>{now_text(300)}</wsu:Expires></wsu:Timestamp></wsse:Security>"
        if timestamp else ""
    )
    body = rst_body(applies_to=DEMO_RP, extra_rst=extra_rst, key_type=key_type)
    return f'<s:Envelope xmlns:s="{S11}"><s:Header>{security}</s:Header><s:Body>{body}</s:Body></s:Envelope>'.encode()


def _post(server: Server, path: str, body: bytes, client: Client | None = None, **headers: str) -> requests.Response:
    """POST over TLS with the ``requests`` library (a client no one here wrote), presenting ``client``'s cert."""
    all_headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{WST}/RST/Issue"', **headers}
    cert = None if client is None else (str(client.cert_file), str(client.key_file))
    with requests.Session() as session:
        session.trust_env = False
        return session.post(_origin(server) + path, data=body, headers=all_headers, verify=server.verify, cert=cert,
                            timeout=30)


def _issued(response: requests.Response) -> bool:
    return response.status_code == 200 and b"RequestSecurityTokenResponse" in response.content


def _refused(response: requests.Response, fault: tuple[str, str] = FAILED_AUTH) -> None:
    assert not _issued(response) and b"Assertion" not in response.content
    assert fault_qname(response.content) == fault, response.content[:600]


def _escaped(client: Client) -> str:
    """The certificate as nginx's ``$ssl_client_escaped_cert`` writes it (URL-encoded PEM)."""
    return quote(client.cert.public_bytes(serialization.Encoding.PEM).decode("ascii"), safe="")


# --- certificates presented in our own TLS handshake -------------------------------------------------------------


@pytest.mark.parametrize("path", [TRANSPORT, ADFS_TRANSPORT])
def test_a_registered_tls_client_certificate_gets_a_token(
    tls_server: Server, tls_instance: tuple[Instance, Pki], path: str
) -> None:
    _, pki = tls_instance
    assert _issued(_post(tls_server, path, _plain_rst(), pki.alice))
    assert _issued(_post(tls_server, path, _plain_rst(timestamp=False), pki.alice))  # the Timestamp is optional


def test_the_token_states_tls_client_authentication(tls_server: Server, tls_instance: tuple[Instance, Pki]) -> None:
    """SAML 2.0 Authentication Context §3.4.22 TLSClient: the caller was proven by its handshake certificate."""
    instance, pki = tls_instance
    response = _post(tls_server, TRANSPORT, _plain_rst(), pki.alice)
    assert _issued(response), response.content[:600]
    saml = "urn:oasis:names:tc:SAML:2.0:assertion"
    stated = decrypted_token(response.content, instance).findtext(f".//{{{saml}}}AuthnContextClassRef")
    assert stated == "urn:oasis:names:tc:SAML:2.0:ac:classes:TLSClient"


def test_a_ca_issued_tls_client_certificate_maps_its_cn(tls_server: Server, tls_instance: tuple[Instance, Pki]) -> None:
    _, pki = tls_instance
    assert _issued(_post(tls_server, TRANSPORT, _plain_rst(), pki.ca_admin))


def test_other_endpoints_on_the_listener_work_without_a_client_certificate(
    tls_server: Server, tls_instance: tuple[Instance, Pki]
) -> None:
    instance, _ = tls_instance
    assert _issued(_post(tls_server, "/services/wso2carbon-sts", rst_envelope("admin", instance.demo_password)))


@pytest.mark.parametrize(
    "who",
    [None, "ca_revoked", "ca_nobody", "bob"],
    ids=["P07_no_client_certificate", "P03_revoked", "P05_cn_names_no_user", "unregistered_self_signed_in_bundle"],
)
def test_untrusted_tls_client_is_refused(
    tls_server: Server, tls_instance: tuple[Instance, Pki], who: str | None
) -> None:
    _, pki = tls_instance
    _refused(_post(tls_server, TRANSPORT, _plain_rst(), None if who is None else getattr(pki, who)))


def test_p07_certificate_of_a_foreign_ca_fails_the_handshake(
    tls_server: Server, tls_instance: tuple[Instance, Pki]
) -> None:
    _, pki = tls_instance
    with pytest.raises(requests.exceptions.SSLError):
        _post(tls_server, TRANSPORT, _plain_rst(), pki.foreign)


def test_a_username_token_beside_the_tls_certificate_is_refused(
    tls_server: Server, tls_instance: tuple[Instance, Pki]
) -> None:
    """One authenticating credential per request: the message may carry a Timestamp, nothing else."""
    instance, pki = tls_instance
    _refused(_post(tls_server, TRANSPORT, rst_envelope("admin", instance.demo_password), pki.alice),
             (WSSE, "InvalidSecurity"))


def test_public_key_token_binds_the_tls_certificate_only(
    tls_server: Server, tls_instance: tuple[Instance, Pki]
) -> None:
    """The handshake proved alice's key: UseKey may name her certificate, never another one (I21)."""
    instance, pki = tls_instance
    own = Connection(_origin(tls_server) + TRANSPORT, "", cafile=instance.ca_file,
                     tls_cert=pki.alice.cert_file, tls_key=pki.alice.key_file)
    issued = request_token(IssueOptions(own, applies_to=DEMO_RP, key=PublicKey(pki.alice.cert)), "")
    assert issued.token is not None
    der = pki.bob.cert.public_bytes(serialization.Encoding.DER)
    use_key = (f'<wst:UseKey><wsse:BinarySecurityToken xmlns:wsse="{WSSE}" ValueType="http://docs.oasis-open.org/'
               f'wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3">{base64.b64encode(der).decode()}'
               "</wsse:BinarySecurityToken></wst:UseKey>")
    _refused(_post(tls_server, TRANSPORT, _plain_rst(extra_rst=use_key, key_type=f"{WST}/PublicKey"), pki.alice),
             (WST, "InvalidRequest"))


# --- behind a TLS-terminating proxy --------------------------------------------------------------------------------


def _post_from(server: Server, source: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    """POST over TLS from the loopback address ``source`` (127.0.0.1 is the trusted proxy, 127.0.0.2 is not)."""
    context = ssl.create_default_context(cafile=str(server.instance.ca_file))
    conn = http.client.HTTPSConnection("127.0.0.1", server.port, context=context, timeout=30,
                                       source_address=(source, 0))
    try:
        conn.request("POST", TRANSPORT, body=body, headers={
            "Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{WST}/RST/Issue"', **headers})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_the_trusted_proxy_passes_the_verified_certificate_in_its_header(
    tls_server: Server, tls_instance: tuple[Instance, Pki]
) -> None:
    _, pki = tls_instance
    status, body = _post_from(tls_server, "127.0.0.1", _plain_rst(), {HEADER: _escaped(pki.ca_admin)})
    assert status == 200 and b"RequestSecurityTokenResponse" in body


def test_p08_the_header_from_any_other_peer_is_ignored(tls_server: Server, tls_instance: tuple[Instance, Pki]) -> None:
    _, pki = tls_instance
    status, body = _post_from(tls_server, "127.0.0.2", _plain_rst(), {HEADER: _escaped(pki.ca_admin)})
    assert b"Assertion" not in body and fault_qname(body) == FAILED_AUTH


def test_the_handshake_certificate_wins_over_a_header(tls_server: Server, tls_instance: tuple[Instance, Pki]) -> None:
    """alice's TLS certificate, a header naming a revoked one: alice authenticates (a header never overrides)."""
    _, pki = tls_instance
    response = _post(tls_server, TRANSPORT, _plain_rst(), pki.alice, **{HEADER: _escaped(pki.ca_revoked)})
    assert _issued(response)


def test_a_garbled_proxy_header_is_no_certificate(tls_server: Server) -> None:
    status, body = _post_from(tls_server, "127.0.0.1", _plain_rst(), {HEADER: "-----BEGIN%20CERTIFICATE-----x"})
    assert fault_qname(body) == FAILED_AUTH and b"Assertion" not in body


# --- the sample client ---------------------------------------------------------------------------------------------


def _sts_request(
    tls_server: Server, client: Client, path: str, scenario: str, out: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(STS), "request", _origin(tls_server) + path, "--cert", str(client.cert_file), "--key",
         str(client.key_file), "--scenario", scenario, "--applies-to", DEMO_RP, "--cafile",
         str(tls_server.instance.ca_file), "--out", str(out)],
        capture_output=True, text=True, timeout=60, check=False, stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize(
    ("scenario", "path"),
    [("SigOnly", "/services/wso2carbon-sts/SigOnly"), ("certificatemixed", "/adfs/services/trust/13/certificatemixed"),
     ("certificatetransport", TRANSPORT)],
)
def test_sts_request_with_cert_and_key_over_https(
    tls_server: Server, tls_instance: tuple[Instance, Pki], tmp_path: Path, scenario: str, path: str
) -> None:
    _, pki = tls_instance
    out = tmp_path / "token.xml"
    done = _sts_request(tls_server, pki.alice, path, scenario, out)
    assert done.returncode == 0, done.stderr
    assert etree.QName(etree.fromstring(out.read_bytes())).localname in ("EncryptedAssertion", "Assertion")
