"""WS-Addressing over the wire: replies relate to the request; a mismatched action is refused."""

from __future__ import annotations

import pytest
from lxml import etree

from tests.support import WSA, WST, Instance, Server, fault_qname, rst_envelope

pytestmark = pytest.mark.integration


def with_addressing(body: bytes, action: str, namespace: str = WSA) -> bytes:
    headers = (
        f'<wsa:Action xmlns:wsa="{namespace}" s:mustUnderstand="1">{action}</wsa:Action>'
        f'<wsa:MessageID xmlns:wsa="{namespace}">urn:uuid:0f2a</wsa:MessageID>'
        f'<wsa:To xmlns:wsa="{namespace}" s:mustUnderstand="1">https://sts.example/</wsa:To>'
    )
    return body.replace(b"<s:Header>", b"<s:Header>" + headers.encode(), 1)


@pytest.mark.parametrize("namespace", [WSA, "http://schemas.xmlsoap.org/ws/2004/08/addressing"])
def test_reply_carries_action_and_relates_to(server: Server, instance: Instance, namespace: str) -> None:
    body = with_addressing(rst_envelope("admin", instance.demo_password), f"{WST}/RST/Issue", namespace)
    response = server.post(body, action=f"{WST}/RST/Issue")
    assert response.status_code == 200, response.content
    root = etree.fromstring(response.content)
    assert root.findtext(f".//{{{namespace}}}Action") == f"{WST}/RSTRC/IssueFinal"
    assert root.findtext(f".//{{{namespace}}}RelatesTo") == "urn:uuid:0f2a"


def test_mismatched_wsa_action_is_invalid_request(server: Server, instance: Instance) -> None:
    body = with_addressing(rst_envelope("admin", instance.demo_password), f"{WST}/RST/Validate")
    response = server.post(body)
    assert fault_qname(response.content) == (WST, "InvalidRequest")
    root = etree.fromstring(response.content)
    assert root.findtext(f".//{{{WSA}}}Action") == f"{WSA}/soap/fault"


def test_mismatched_soap_action_is_invalid_request(server: Server, instance: Instance) -> None:
    response = server.post(rst_envelope("admin", instance.demo_password), action=f"{WST}/RST/Cancel")
    assert fault_qname(response.content) == (WST, "InvalidRequest")


def test_unknown_must_understand_header(server: Server, instance: Instance) -> None:
    body = rst_envelope("admin", instance.demo_password).replace(
        b"<s:Header>", b'<s:Header><x:Foo xmlns:x="urn:x" s:mustUnderstand="1"/>', 1
    )
    response = server.post(body)
    assert fault_qname(response.content) == ("http://schemas.xmlsoap.org/soap/envelope/", "MustUnderstand")
