"""WS-Addressing in and out (wstrust-protocol.md §14), through the endpoint."""

from __future__ import annotations

from lxml import etree

from sts import ns
from sts.operations.call import RequestInfo, TrustReply
from sts.soap.addressing import Addressing, read_addressing, reply_headers
from sts.soap.endpoint import SoapEndpoint, SoapRequest
from sts.soap.envelope import SoapVersion
from sts.wstrust.actions import Operation
from sts.wstrust.version import TrustVersion
from sts.xmlutil import ParserLimits


def headers(namespace: str, *pairs: tuple[str, str]) -> tuple[etree._Element, ...]:
    out = []
    for local, text in pairs:
        element = etree.Element(ns.qn(namespace, local))
        element.text = text
        out.append(element)
    return tuple(out)


def test_reads_both_namespaces() -> None:
    for namespace in (ns.WSA, ns.WSA04):
        found = read_addressing(headers(namespace, ("Action", " urn:a "), ("MessageID", "urn:uuid:1")))
        assert found == Addressing(namespace, "urn:a", "urn:uuid:1")
    assert read_addressing(()) is None


def _blocks(xml: str) -> tuple[etree._Element, ...]:
    header = etree.fromstring(f'<h xmlns:a="{ns.WSA}" xmlns:b="{ns.WSA04}">{xml}</h>')
    return tuple(header.iterchildren(etree.Element))


def test_the_1_0_namespace_wins_wherever_it_appears() -> None:
    blocks = _blocks("<b:Action>urn:old</b:Action><b:MessageID>m4</b:MessageID><a:To>urn:to</a:To>")
    assert read_addressing(blocks) == Addressing(ns.WSA, "", "")
    assert read_addressing(blocks[:2]) == Addressing(ns.WSA04, "urn:old", "m4")


def test_only_simple_content_headers_count() -> None:
    assert read_addressing(_blocks("<a:ReplyTo><a:Address>urn:x</a:Address></a:ReplyTo>")) is None
    assert read_addressing(_blocks("<a:Action>x<a:y/></a:Action>")) is None
    assert read_addressing(_blocks("<a:FaultTo>urn:f</a:FaultTo>")) == Addressing(ns.WSA, "", "")
    assert read_addressing(_blocks("<a:Other>urn:o</a:Other><b:Unknown/>")) is None


def test_last_action_and_message_id_win_text_read_across_comments() -> None:
    blocks = _blocks(
        "<a:Action>urn:first</a:Action><a:MessageID>m1</a:MessageID>"
        "<a:Action> urn:<!-- c -->second\n x </a:Action><a:MessageID> m2 </a:MessageID>"
    )
    assert read_addressing(blocks) == Addressing(ns.WSA, "urn:second x", "m2")
    long_id = "u" * 2000
    assert read_addressing(_blocks(f"<a:MessageID>{long_id}</a:MessageID>")) == Addressing(ns.WSA, "", long_id[:1024])


def test_reply_headers_relate_to_the_request() -> None:
    blocks = reply_headers(Addressing(ns.WSA04, "urn:a", "urn:uuid:1"), f"{ns.WST}/RSTRC/IssueFinal")
    by_name = {etree.QName(b).localname: b.text for b in blocks}
    assert by_name["Action"] == f"{ns.WST}/RSTRC/IssueFinal"
    assert by_name["RelatesTo"] == "urn:uuid:1"
    assert by_name["To"] == f"{ns.WSA04}/role/anonymous"
    assert all(etree.QName(b).namespace == ns.WSA04 for b in blocks)
    fault = reply_headers(Addressing(ns.WSA, "", "urn:uuid:2"), None)
    assert fault[0].text == f"{ns.WSA}/soap/fault"
    assert reply_headers(None, "urn:a") == []


class _Service:
    def __init__(self) -> None:
        self.info: RequestInfo | None = None

    def handle(self, soap: SoapVersion, hdrs: object, body: etree._Element, info: RequestInfo) -> TrustReply:
        self.info = info
        answer = etree.Element(ns.qn(ns.WST, "RequestSecurityTokenResponseCollection"))
        return TrustReply(answer, Operation.ISSUE, TrustVersion.TRUST13)


def test_endpoint_answers_with_action_and_relates_to() -> None:
    service = _Service()
    endpoint = SoapEndpoint(service, ParserLimits())  # type: ignore[arg-type]
    body = (
        f'<s:Envelope xmlns:s="{ns.S11}" xmlns:a="{ns.WSA}"><s:Header><a:Action s:mustUnderstand="1">'
        f"{ns.WST}/RST/Issue</a:Action><a:MessageID>urn:uuid:42</a:MessageID></s:Header><s:Body>"
        f'<t:RequestSecurityToken xmlns:t="{ns.WST}"/></s:Body></s:Envelope>'
    ).encode()
    response = endpoint.handle(SoapRequest(body, SoapVersion.SOAP11, "", "127.0.0.1", True))
    root = etree.fromstring(response.body)
    assert root.findtext(f".//{{{ns.WSA}}}Action") == f"{ns.WST}/RSTRC/IssueFinal"
    assert root.findtext(f".//{{{ns.WSA}}}RelatesTo") == "urn:uuid:42"
    assert service.info is not None and service.info.wsa_action == f"{ns.WST}/RST/Issue"
