"""Request encodings over HTTP (security rows T11, X14): UTF-8 and UTF-16 get tokens, and every cap holds in both.

The negative corpus (``tests/vectors/invalid``) holds the byte-exact hostile inputs; these tests need real
credentials inside UTF-16 bodies, which corpus placeholders (filled as UTF-8 bytes) cannot provide.
"""

from __future__ import annotations

import pytest
import requests

from tests.support import S11, Instance, Server, fault_qname, fault_string, rst_envelope

pytestmark = pytest.mark.integration

FLOOD = "".join(f' xmlns:p{i}="urn:x:{i}"' for i in range(900))


def _post(server: Server, body: bytes, content_type: str) -> requests.Response:
    return requests.post(
        server.url, data=body, headers={"Content-Type": content_type}, verify=server.verify, timeout=30
    )


def _request(instance: Instance, extra_namespaces: str = "") -> str:
    text = rst_envelope("admin", instance.demo_password).decode()
    return text.replace("<s:Envelope ", f"<s:Envelope{extra_namespaces} ", 1)


@pytest.mark.parametrize(
    ("codec", "prefix", "content_type"),
    [
        ("utf-16", "", "text/xml; charset=utf-16"),
        ("utf-16-be", "\ufeff", "text/xml; charset=UTF-16BE"),
        ("utf-16-le", '<?xml version="1.0" encoding="UTF-16LE"?>', "text/xml"),
        ("utf-8", '<?xml version="1.0" encoding="utf-8"?>', "text/xml; charset=utf-8"),
    ],
    ids=["utf16-bom-charset", "utf16be-bom-charset", "utf16le-declared", "utf8-declared"],
)
def test_t11_utf8_and_utf16_requests_get_a_token(
    server: Server, instance: Instance, codec: str, prefix: str, content_type: str
) -> None:
    response = _post(server, (prefix + _request(instance)).encode(codec), content_type)
    assert response.status_code == 200, response.content[:300]
    assert b"RequestSecurityTokenResponse" in response.content


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-be"])
def test_x14_namespace_flood_in_utf16_is_refused_before_parsing(server: Server, instance: Instance, codec: str) -> None:
    """900 declarations against the cap of 256, with valid credentials: before the fix this issued a token."""
    body = _request(instance, FLOOD).encode(codec)
    assert body.count(b"xmlns") == 0  # what a byte count sees
    response = _post(server, body, "text/xml; charset=utf-16")
    assert response.status_code == 500
    assert b"RequestSecurityTokenResponse" not in response.content
    assert fault_qname(response.content) == (S11, "Client")
    assert fault_string(response.content) == "Invalid request"


def test_t11_utf8_request_labelled_latin1_is_refused(server: Server, instance: Instance) -> None:
    response = _post(server, _request(instance).encode(), "text/xml; charset=iso-8859-1")
    assert response.status_code == 500
    assert fault_qname(response.content) == (S11, "Client")
