"""Issue 12 items 13 and 14 over HTTP against gunicorn: trusted proxies (client addresses behind a proxy network,
forwarded scheme headers, ``*`` refused) and certificates that expire while the server runs."""

from __future__ import annotations

import base64
import datetime as dt
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from sts import errors
from tests.support import (
    WSSE,
    WST,
    Instance,
    Server,
    audit_records,
    fault_qname,
    fault_string,
    make_instance,
    rst_envelope,
    start_server,
)

pytestmark = pytest.mark.integration

DS = "http://www.w3.org/2000/09/xmldsig#"
CLIENT_A, CLIENT_B = "198.51.100.1", "198.51.100.2"


@pytest.fixture(scope="module")
def proxy_instance(tmp_path_factory: pytest.TempPathFactory) -> Instance:
    return make_instance(tmp_path_factory.mktemp("proxies") / "var")


def _post(server: Server, body: bytes, headers: dict[str, str]) -> requests.Response:
    return requests.post(
        server.url, data=body, headers={"Content-Type": "text/xml; charset=utf-8", **headers},
        verify=server.verify, timeout=30,
    )


def _issued(response: requests.Response) -> bool:
    return response.status_code == 200 and b"RequestSecurityTokenResponse" in response.content


# --- item 13: trusted proxies ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def behind_proxy(proxy_instance: Instance) -> Iterator[Server]:
    """The STS behind a proxy on this host: every request comes from 127.0.0.1, the proxy network."""
    env = {"STS_SERVER_TRUSTED_PROXIES": "127.0.0.0/8", "STS_SECURITY_CLIENT_FAILURE_LIMIT": "3"}
    server = start_server(proxy_instance, workers=2, env=env)
    yield server
    server.stop()


def test_clients_behind_a_trusted_proxy_network_are_throttled_separately(
    behind_proxy: Server, proxy_instance: Instance
) -> None:
    """A CIDR entry used to make every client the proxy's (exempt) loopback address: nobody was throttled, and
    without the exemption one attacker would have throttled everyone."""
    a = {"X-Forwarded-For": f"203.0.113.50, {CLIENT_A}"}  # the left hop is the client's own claim
    for n in range(3):
        sprayed = _post(behind_proxy, rst_envelope(f"spray-{n}", "Summer2026!"), a)
        assert fault_qname(sprayed.content) == (WSSE, "FailedAuthentication")
    refused = _post(behind_proxy, rst_envelope("admin", proxy_instance.demo_password), a)
    assert fault_qname(refused.content) == (WSSE, "FailedAuthentication")
    last = audit_records(behind_proxy.log)[-1]
    assert (last["reason"], last["client_address"]) == ("client_throttled", CLIENT_A)
    other = _post(behind_proxy, rst_envelope("admin", proxy_instance.demo_password), {"X-Forwarded-For": CLIENT_B})
    assert _issued(other), other.content[:500]
    assert audit_records(behind_proxy.log)[-1]["client_address"] == CLIENT_B


def test_a_client_cannot_pick_another_address_by_prepending_hops(
    behind_proxy: Server, proxy_instance: Instance
) -> None:
    """Only the right-most untrusted hop counts: hops the client writes to its left change nothing."""
    hops = {"X-Forwarded-For": f"{CLIENT_B}, 127.0.0.1, 198.51.100.77"}
    response = _post(behind_proxy, rst_envelope("admin", proxy_instance.demo_password), hops)
    assert _issued(response)
    assert audit_records(behind_proxy.log)[-1]["client_address"] == "198.51.100.77"


@pytest.fixture(scope="module")
def plain_behind_proxy(proxy_instance: Instance) -> Iterator[Server]:
    """Plain HTTP from a TLS-terminating proxy network (127.0.0.0/8), PasswordText over plain HTTP not allowed."""
    env = {"STS_SERVER_ALLOW_INSECURE_TRANSPORT": "false", "STS_SERVER_TRUSTED_PROXIES": "127.0.0.0/8"}
    server = start_server(proxy_instance, workers=1, tls=False, env=env)
    yield server
    server.stop()


@pytest.mark.parametrize(
    ("header", "value"),
    [("X-Forwarded-Proto", "https"), ("X-Forwarded-Ssl", "on"), ("X-Forwarded-Protocol", "ssl")],
)
def test_forwarded_scheme_from_a_trusted_proxy_network(
    plain_behind_proxy: Server, proxy_instance: Instance, header: str, value: str
) -> None:
    """gunicorn believes no forwarding header now: the STS reads each of them itself, from listed proxies only
    (a spoofed one from an unlisted client: tests/vectors/invalid, ``transport: plain-http``)."""
    body = rst_envelope("admin", proxy_instance.demo_password)
    assert _issued(_post(plain_behind_proxy, body, {header: value}))
    without = _post(plain_behind_proxy, rst_envelope("admin", proxy_instance.demo_password), {})
    assert fault_qname(without.content) == (WSSE, "FailedAuthentication")
    contradicted = _post(
        plain_behind_proxy, rst_envelope("admin", proxy_instance.demo_password),
        {header: value, "X-Forwarded-Proto" if header != "X-Forwarded-Proto" else "X-Forwarded-Ssl": "off"},
    )
    assert fault_qname(contradicted.content) == (WSSE, "FailedAuthentication")
    assert audit_records(plain_behind_proxy.log)[-1]["reason"] == "insecure_transport"


@pytest.mark.parametrize("proxies", ["*", "10.0.0.1,*", "proxy.example.com"])
def test_serve_refuses_unparseable_trusted_proxies(proxy_instance: Instance, proxies: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STS_")}
    env["STS_SERVER_TRUSTED_PROXIES"] = proxies
    result = subprocess.run(
        [str(Path(sys.executable).with_name("sts")), "--config", str(proxy_instance.config), "serve"],
        capture_output=True, text=True, timeout=60, env=env,
    )
    assert result.returncode == 1
    assert "STS_SERVER_TRUSTED_PROXIES: must list IP addresses or networks" in result.stderr


# --- item 14: certificates expiring while the server runs -------------------------------------------------------


def _short_lived(key: rsa.RSAPrivateKey, not_after: dt.datetime) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "short-lived")])
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(not_after).sign(key, hashes.SHA256())
    )


def _use_key(key: rsa.RSAPrivateKey) -> str:
    numbers = key.public_key().public_numbers()
    modulus = base64.b64encode(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")).decode()
    return (
        f'<wst:UseKey><ds:KeyInfo xmlns:ds="{DS}"><ds:KeyValue><ds:RSAKeyValue><ds:Modulus>{modulus}</ds:Modulus>'
        "<ds:Exponent>AQAB</ds:Exponent></ds:RSAKeyValue></ds:KeyValue></ds:KeyInfo></wst:UseKey>"
    )


def test_certificates_expiring_while_the_server_runs_stop_being_used(
    proxy_instance: Instance, tmp_path: Path
) -> None:
    """An RP certificate loaded while valid used to be used after it expired (the cache never re-checked dates);
    a registered client certificate's key stayed usable for PublicKey tokens likewise (the legacy rule: any key in
    trusted_client_certs, possession unproven)."""
    server = start_server(proxy_instance, workers=1, env={"STS_SECURITY_LEGACY_UNPROVEN_USE_KEY": "true"})
    try:
        rp_key, client_key = rsa.generate_private_key(65537, 2048), rsa.generate_private_key(65537, 2048)
        # After the key generation (seconds on a busy machine): the 12 s are for the requests made while valid.
        expiry = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(seconds=12)
        rp_cert = tmp_path / "rp.crt.pem"
        rp_cert.write_bytes(_short_lived(rp_key, expiry).public_bytes(serialization.Encoding.PEM))
        rp = "https://short-lived.example/app/"
        assert proxy_instance.cli("rp", "add", rp, "--cert", str(rp_cert)) == 0
        client_cert = proxy_instance.base / "keystore" / "clients" / "short-lived.crt.pem"
        client_cert.write_bytes(_short_lived(client_key, expiry).public_bytes(serialization.Encoding.PEM))

        def to_rp() -> requests.Response:
            return server.post(rst_envelope("admin", proxy_instance.demo_password, applies_to=rp))

        def public_key() -> requests.Response:
            body = rst_envelope("admin", proxy_instance.demo_password, extra_rst=_use_key(client_key))
            bearer, public = f"{WST}/Bearer</wst:KeyType>", f"{WST}/PublicKey</wst:KeyType>"
            return server.post(body.replace(bearer.encode(), public.encode()))

        assert _issued(to_rp()), "the RP certificate is valid: the token is issued"
        assert _issued(public_key()), "the client certificate is valid: its key is accepted"
        time.sleep(max(0.0, (expiry - dt.datetime.now(dt.UTC)).total_seconds()) + 1.0)
        refused = to_rp()
        assert fault_qname(refused.content) == (WST, "RequestFailed")
        assert fault_string(refused.content) == errors.RequestFailed.fault_string
        use_key = public_key()
        assert fault_qname(use_key.content) == (WST, "InvalidRequest")
        assert fault_string(use_key.content) == errors.InvalidRequest.fault_string
        log = server.log.read_text()
        assert f"relying party {rp}: certificate expired on" in log
        assert "client certificate short-lived.crt.pem: expired on" in log
    finally:
        server.stop()
        client_cert = proxy_instance.base / "keystore" / "clients" / "short-lived.crt.pem"
        client_cert.unlink(missing_ok=True)
