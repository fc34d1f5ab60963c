"""Issue 2: the service starts from a fresh `sts init`, serves the WSDL and health check over TLS, and answers
malformed, hostile and oversize requests with the right fault or HTTP status."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import zeep
from lxml import etree

from tests.support import S11, Instance, Server, fault_qname, fault_string, start_server

pytestmark = pytest.mark.integration

WST = "http://docs.oasis-open.org/ws-sx/ws-trust/200512"


def test_health_over_tls(server: Server) -> None:
    response = requests.get(
        server.url.replace("/services/wso2carbon-sts", "/healthz"), verify=server.verify, timeout=30
    )
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_wsdl_over_tls_is_static_ws_trust_wsdl(server: Server, tmp_path: Path) -> None:
    response = requests.get(server.url + "?wsdl", verify=server.verify, timeout=30)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/xml")
    root = etree.fromstring(response.content)
    assert root.tag == "{http://schemas.xmlsoap.org/wsdl/}definitions"
    policy = root.find("{http://schemas.xmlsoap.org/ws/2004/09/policy}Policy")
    assert policy is not None
    wsdl_file = tmp_path / "sts.wsdl"
    wsdl_file.write_bytes(response.content)
    client = zeep.Client(str(wsdl_file), settings=zeep.Settings(forbid_dtd=True, forbid_entities=True))
    service = client.wsdl.services["wso2carbon-sts"]
    origin = server.url.removesuffix("/services/wso2carbon-sts")
    addresses = {name: port.binding_options["address"] for name, port in service.ports.items()}
    assert addresses == {
        "wso2carbon-stsHttpsSoap11Endpoint": server.url,
        "wso2carbon-stsHttpsSoap12Endpoint": server.url + ".wso2carbon-stsHttpsSoap12Endpoint",
        "UserNameWSTrustBinding_IWSTrust13Async": origin + "/adfs/services/trust/13/usernamemixed",
        "UserNameWSTrustBinding_IWSTrustFeb2005Async": origin + "/adfs/services/trust/2005/usernamemixed",
    }


def test_malformed_envelope_gets_soap_client_fault(server: Server) -> None:
    response = server.post(b"<not-an-envelope/>")
    assert response.status_code == 500
    assert response.headers["Content-Type"].startswith("text/xml")
    assert fault_qname(response.content) == (S11, "Client")
    assert fault_string(response.content) == "Invalid request"


def test_non_rst_body_gets_wst_invalid_request(server: Server) -> None:
    body = f'<s:Envelope xmlns:s="{S11}"><s:Body><x xmlns="urn:x"/></s:Body></s:Envelope>'.encode()
    response = server.post(body)
    assert fault_qname(response.content) == (WST, "InvalidRequest")


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    "payload",
    [
        b'<!DOCTYPE r [<!ENTITY % p SYSTEM "file:///dev/zero"> %p;]><r/>',
        b'<!DOCTYPE e [<!ENTITY x SYSTEM "file:///etc/passwd">]><s:Envelope xmlns:s="'
        + S11.encode()
        + b'"><s:Body>&x;</s:Body></s:Envelope>',
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;">'
        b'<!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;">]><lolz>&lol2;</lolz>',
    ],
    ids=["parameter_entity_dev_zero", "xxe_passwd", "entity_expansion"],
)
def test_dtd_payloads_get_a_fast_fault(server: Server, payload: bytes) -> None:
    started = time.monotonic()
    response = server.post(payload)
    assert time.monotonic() - started < 2
    assert fault_qname(response.content) == (S11, "Client")
    assert b"root:" not in response.content


def test_oversize_body_gets_413(server: Server) -> None:
    response = server.post(b"A" * (64 * 1024 + 1))
    assert response.status_code == 413


def test_oversize_chunked_body_gets_413(server: Server) -> None:
    def chunks():  # type: ignore[no-untyped-def]
        for _ in range(100):
            yield b"A" * 1024

    response = requests.post(
        server.url, data=chunks(), headers={"Content-Type": "text/xml"}, verify=server.verify, timeout=30
    )
    assert response.status_code == 413


def test_wrong_method_and_media_type(server: Server) -> None:
    assert requests.put(server.url, verify=server.verify, timeout=30).status_code == 405
    response = requests.post(
        server.url, data=b"{}", headers={"Content-Type": "application/json"}, verify=server.verify, timeout=30
    )
    assert response.status_code == 415


def test_gunicorn_conf_from_repo_root_with_sts_config(instance: Instance, repo_root: Path) -> None:
    """Ops run `gunicorn -c gunicorn.conf.py` with STS_CONFIG set."""
    srv = start_server(
        instance,
        workers=1,
        tls=True,
        command=[sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py"],
        env={"STS_CONFIG": str(instance.config)},
        cwd=repo_root,
    )
    try:
        assert requests.get(srv.url + "?wsdl", verify=srv.verify, timeout=30).status_code == 200
    finally:
        srv.stop()


def test_serve_refuses_a_broken_config(tmp_path: Path) -> None:
    config = tmp_path / "sts.toml"
    config.write_text("[server]\nbind = 12\n")
    result = subprocess.run(
        [str(Path(sys.executable).with_name("sts")), "--config", str(config), "serve"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "[server] bind" in result.stderr


@pytest.mark.parametrize("path", ["/mex", "/services/wso2carbon-sts/mex", "/adfs/services/trust/mex"])
def test_mex_get_returns_the_soap12_wsdl_with_its_policy(server: Server, path: str) -> None:
    url = server.url.replace("/services/wso2carbon-sts", path)
    response = requests.get(url, verify=server.verify, timeout=30)
    assert response.status_code == 200
    # As AD FS serves it: a bare wsdl:definitions (MSAL/ADAL read its bindings as children of the root).
    definitions = etree.fromstring(response.content)
    assert definitions.tag == "{http://schemas.xmlsoap.org/wsdl/}definitions"
    assert len(definitions.findall("{http://schemas.xmlsoap.org/ws/2004/09/policy}Policy")) == 2
    bindings = definitions.findall("{http://schemas.xmlsoap.org/wsdl/}binding")
    assert len(bindings) == 2
    assert all(b.find("{http://schemas.xmlsoap.org/wsdl/soap12/}binding") is not None for b in bindings)
    assert requests.post(url, data=b"x", verify=server.verify, timeout=30).status_code == 405
