"""Tests for sts.soap.endpoint: the single wrap point (architecture §5) with a stub service."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from xml.etree import ElementTree

import pytest
from lxml import etree

from sts import ns
from sts.errors import BadRequest, FailedAuthentication, InvalidRequest, InvalidScope, STSError
from sts.operations.call import RequestInfo
from sts.soap.endpoint import SoapEndpoint, SoapRequest, SoapResponse
from sts.soap.envelope import SoapVersion
from sts.soap.faults import STS_FAULT_NS
from sts.wstrust.actions import Operation
from sts.wstrust.version import TrustVersion
from sts.xmlutil import ParserLimits

S11, S12 = SoapVersion.SOAP11, SoapVersion.SOAP12
ISSUE_13 = "http://docs.oasis-open.org/ws-sx/ws-trust/200512/Issue"
ISSUE_05 = "http://schemas.xmlsoap.org/ws/2005/02/trust/Issue"


def _rst(trust_ns: str = ns.WST, request_type: str = ISSUE_13) -> str:
    return (
        f'<wst:RequestSecurityToken xmlns:wst="{trust_ns}">'
        f"<wst:RequestType>{request_type}</wst:RequestType></wst:RequestSecurityToken>"
    )


def _envelope(version: SoapVersion, body: str, header: str = "") -> bytes:
    return (
        f'<soap:Envelope xmlns:soap="{version.namespace}"><soap:Header>{header}</soap:Header>'
        f"<soap:Body>{body}</soap:Body></soap:Envelope>"
    ).encode()


@dataclass
class Reply:
    body: etree._Element
    operation: Operation = Operation.ISSUE
    trust: TrustVersion = TrustVersion.TRUST13
    protect: None = None  # a request's own response security (TrustReply.protect)


@dataclass
class StubService:
    """Duck-types SecurityTokenService.handle; records calls, then raises or answers."""

    raises: BaseException | None = None
    calls: list[tuple[SoapVersion, tuple[etree._Element, ...], etree._Element, RequestInfo]] = field(
        default_factory=list
    )

    def handle(
        self, soap: SoapVersion, headers: tuple[etree._Element, ...], body_child: etree._Element, info: RequestInfo
    ) -> Reply:
        self.calls.append((soap, headers, body_child, info))
        if self.raises is not None:
            raise self.raises
        answer = etree.Element(ns.qn(ns.WST, "RequestSecurityTokenResponseCollection"), nsmap={"wst": ns.WST})
        etree.SubElement(answer, ns.qn(ns.WST, "RequestSecurityTokenResponse")).text = "caf\u00e9"
        return Reply(answer)


def _handle(
    service: StubService, version: SoapVersion, body: bytes, sender_status: int = 400, action: str = ""
) -> SoapResponse:
    endpoint = SoapEndpoint(service, ParserLimits(), soap12_sender_status=sender_status)  # type: ignore[arg-type]
    request = SoapRequest(
        body=body, version=version, http_action=action, client_address="192.0.2.1", secure_transport=True
    )
    return endpoint.handle(request)


def _fault_qname(response: SoapResponse, version: SoapVersion) -> tuple[str, str]:
    root = etree.fromstring(response.body)
    if version is S11:
        element = root.find(f"{ns.qn(ns.S11, 'Body')}/{ns.qn(ns.S11, 'Fault')}/faultcode")
    else:
        element = root.find(f".//{ns.qn(ns.S12, 'Subcode')}/{ns.qn(ns.S12, 'Value')}")
    assert element is not None
    prefix, _, local = (element.text or "").partition(":")
    return element.nsmap[prefix], local


def _fault_string(response: SoapResponse, version: SoapVersion) -> str:
    root = etree.fromstring(response.body)
    if version is S11:
        return root.findtext(f"{ns.qn(ns.S11, 'Body')}/{ns.qn(ns.S11, 'Fault')}/faultstring") or ""
    return root.findtext(f".//{ns.qn(ns.S12, 'Reason')}/{ns.qn(ns.S12, 'Text')}") or ""


def _correlation_id(response: SoapResponse) -> str:
    found = etree.fromstring(response.body).findtext(f".//{ns.qn(STS_FAULT_NS, 'CorrelationId')}")
    assert found
    return found


# --- success ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [S11, S12])
def test_success_wrapped_in_envelope_of_request_version(version: SoapVersion) -> None:
    service = StubService()
    response = _handle(service, version, _envelope(version, _rst()))
    assert response.status == 200
    assert response.content_type == f"{version.media_type}; charset=utf-8"
    root = etree.fromstring(response.body)
    assert root.tag == ns.qn(version.namespace, "Envelope")
    assert [child.tag for child in root] == [ns.qn(version.namespace, "Body")]
    body = root[0]
    assert len(body) == 1
    assert body[0].tag == ns.qn(ns.WST, "RequestSecurityTokenResponseCollection")
    assert body[0][0].text == "caf\u00e9"
    response.body.decode("ascii")  # non-ASCII as character references


def test_service_receives_envelope_parts_and_request_info() -> None:
    service = StubService()
    header = f'<wsa:Action xmlns:wsa="{ns.WSA}">x</wsa:Action>'
    _handle(service, S12, _envelope(S12, _rst(), header), action="urn:act")
    [(soap, headers, body_child, info)] = service.calls
    assert soap is S12
    assert [h.tag for h in headers] == [ns.qn(ns.WSA, "Action")]
    assert body_child.tag == ns.qn(ns.WST, "RequestSecurityToken")
    assert info.client_address == "192.0.2.1"
    assert info.secure_transport is True
    assert info.http_action == "urn:act"
    assert len(info.correlation_id) == 32


# --- STSError from the service -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "qname", "s12_status"),
    [
        (InvalidRequest("secret-detail"), (ns.WST, "InvalidRequest"), 400),
        (InvalidScope("secret-detail"), (ns.WST, "InvalidScope"), 400),
        (FailedAuthentication("secret-detail"), (ns.WSSE, "FailedAuthentication"), 400),
    ],
)
@pytest.mark.parametrize("version", [S11, S12])
def test_sts_error_becomes_its_fault(
    error: STSError, qname: tuple[str, str], s12_status: int, version: SoapVersion
) -> None:
    response = _handle(StubService(raises=error), version, _envelope(version, _rst()))
    assert _fault_qname(response, version) == qname
    assert response.status == (500 if version is S11 else s12_status)
    assert response.content_type == f"{version.media_type}; charset=utf-8"
    assert b"secret-detail" not in response.body


def test_soap12_sender_status_setting_is_used() -> None:
    response = _handle(StubService(raises=InvalidRequest()), S12, _envelope(S12, _rst()), sender_status=500)
    assert response.status == 500


@pytest.mark.parametrize("version", [S11, S12])
def test_feb2005_request_gets_feb2005_trust_faults(version: SoapVersion) -> None:
    response = _handle(StubService(raises=InvalidRequest()), version, _envelope(version, _rst(ns.WST05, ISSUE_05)))
    assert _fault_qname(response, version) == (ns.WST05, "InvalidRequest")
    assert ns.WST.encode() not in response.body


@pytest.mark.parametrize("version", [S11, S12])
def test_feb2005_unexpected_error_is_feb2005_request_failed(version: SoapVersion) -> None:
    response = _handle(
        StubService(raises=RuntimeError("boom")), version, _envelope(version, _rst(ns.WST05, ISSUE_05))
    )
    assert _fault_qname(response, version) == (ns.WST05, "RequestFailed")


# --- unexpected exceptions ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [S11, S12])
def test_unexpected_exception_becomes_request_failed(version: SoapVersion, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="sts.soap")
    response = _handle(StubService(raises=ZeroDivisionError("secret-detail")), version, _envelope(version, _rst()))
    assert response.status == 500
    assert _fault_qname(response, version) == (ns.WST, "RequestFailed")
    if version is S12:
        root = etree.fromstring(response.body)
        value = root.find(f".//{ns.qn(ns.S12, 'Code')}/{ns.qn(ns.S12, 'Value')}")
        assert value is not None and value.text == "s12:Receiver"
    for leak in (b"secret-detail", b"Traceback", b"ZeroDivisionError", b"File \""):
        assert leak not in response.body
    # the log carries the traceback and the same correlation id as the fault
    correlation_id = _correlation_id(response)
    records = [r for r in caplog.records if r.name == "sts.soap"]
    assert len(records) == 1
    assert records[0].correlation_id == correlation_id  # type: ignore[attr-defined]
    assert records[0].exc_info is not None and records[0].exc_info[0] is ZeroDivisionError


def test_each_request_gets_a_fresh_correlation_id() -> None:
    service = StubService(raises=InvalidRequest())
    first = _correlation_id(_handle(service, S11, _envelope(S11, _rst())))
    second = _correlation_id(_handle(service, S11, _envelope(S11, _rst())))
    assert first != second


def test_failure_is_audited(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="sts.audit")
    response = _handle(StubService(raises=InvalidScope("secret-detail")), S11, _envelope(S11, _rst()))
    [record] = [r for r in caplog.records if r.name == "sts.audit"]
    assert record.levelno == logging.WARNING
    assert record.fault == "InvalidScope"  # type: ignore[attr-defined]
    assert record.reason == "invalid_scope"  # type: ignore[attr-defined]
    assert record.correlation_id == _correlation_id(response)  # type: ignore[attr-defined]
    assert "secret-detail" not in record.getMessage()


# --- errors before the service ----------------------------------------------------------------------------------


def test_malformed_body_never_reaches_the_service() -> None:
    service = StubService()
    response = _handle(service, S11, b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>')
    assert service.calls == []
    assert _fault_qname(response, S11) == (ns.S11, "Client")
    assert response.status == 500
    assert b"passwd" not in response.body


def test_a_soap11_envelope_under_the_soap12_media_type_gets_a_soap11_version_mismatch() -> None:
    """SOAP 1.2 Part 1, Appendix A: the fault is a SOAP/1.1 message (the sender speaks 1.1), with an Upgrade."""
    service = StubService()
    response = _handle(service, S12, _envelope(S11, _rst()))
    assert service.calls == []
    assert response.status == 500 and response.content_type.startswith("text/xml")
    root = etree.fromstring(response.body)
    assert root.tag == ns.qn(ns.S11, "Envelope")
    assert _fault_qname(response, S11) == (ns.S11, "VersionMismatch")
    assert root.find(f"{ns.qn(ns.S11, 'Header')}/{ns.qn(ns.S12, 'Upgrade')}") is not None


def test_a_soap12_envelope_under_the_soap11_media_type_gets_a_soap11_version_mismatch() -> None:
    response = _handle(StubService(), S11, _envelope(S12, _rst()))
    assert _fault_qname(response, S11) == (ns.S11, "VersionMismatch")


def test_unknown_mandatory_header_must_understand() -> None:
    service = StubService()
    header = f'<x:Foo xmlns:x="urn:x" xmlns:soap="{ns.S12}" soap:mustUnderstand="true"/>'
    response = _handle(service, S12, _envelope(S12, _rst(), header))
    assert service.calls == []
    root = etree.fromstring(response.body)
    value = root.find(f".//{ns.qn(ns.S12, 'Code')}/{ns.qn(ns.S12, 'Value')}")
    assert value is not None and value.text == "s12:MustUnderstand"
    not_understood = root.find(f"{ns.qn(ns.S12, 'Header')}/{ns.qn(ns.S12, 'NotUnderstood')}")
    assert not_understood is not None
    assert not_understood.nsmap[not_understood.get("qname", "").split(":")[0]] == "urn:x"


def test_unqualified_mandatory_header_fault_is_namespace_well_formed() -> None:
    """SOAP 1.2 part 1 §5.4.8 for a header with no namespace: readable by a namespace-aware parser (expat)."""
    service = StubService()
    header = f'<Foo xmlns:soap="{ns.S12}" soap:mustUnderstand="true"/>'
    response = _handle(service, S12, _envelope(S12, _rst(), header))
    assert service.calls == []
    # expat, namespace-aware, refuses xmlns:h="" ("must not undeclare prefix"); the input is our own output
    root = ElementTree.fromstring(response.body)  # noqa: S314
    not_understood = root.find(f"{ns.qn(ns.S12, 'Header')}/{ns.qn(ns.S12, 'NotUnderstood')}")
    assert not_understood is not None
    assert not_understood.get("qname") == "Foo"  # unprefixed, and no default namespace in scope: no namespace
    assert b"xmlns=" not in response.body and b'=""' not in response.body


def test_charset_that_contradicts_the_body_is_a_client_fault() -> None:
    service = StubService()
    endpoint = SoapEndpoint(service, ParserLimits())  # type: ignore[arg-type]
    body = _envelope(S11, _rst()).decode().encode("utf-16")
    request = SoapRequest(body, S11, "", "192.0.2.1", True, charset="utf-8")
    response = endpoint.handle(request)
    assert service.calls == []
    assert _fault_qname(response, S11) == (ns.S11, "Client")
    assert endpoint.handle(replace(request, charset="utf-16")).status == 200
    assert len(service.calls) == 1


@pytest.mark.parametrize(
    "understood",
    [(ns.WSSE, "Security"), (ns.WSA, "Action"), (ns.WSA04, "To"), (ns.WSA, "MessageID")],
)
def test_understood_mandatory_headers_pass(understood: tuple[str, str]) -> None:
    service = StubService()
    namespace, local = understood
    header = f'<h:{local} xmlns:h="{namespace}" xmlns:soap="{ns.S11}" soap:mustUnderstand="1"/>'
    response = _handle(service, S11, _envelope(S11, _rst(), header))
    assert response.status == 200
    assert len(service.calls) == 1


def test_two_body_children_invalid_request_without_calling_the_service() -> None:
    service = StubService()
    response = _handle(service, S11, _envelope(S11, _rst() + _rst()))
    assert service.calls == []
    assert _fault_qname(response, S11) == (ns.WST, "InvalidRequest")


def test_handle_never_raises_for_base_exceptions_of_the_service() -> None:
    response = _handle(StubService(raises=KeyError("secret-detail")), S11, _envelope(S11, _rst()))
    assert response.status == 500
    assert b"secret-detail" not in response.body
    assert b"KeyError" not in response.body


# --- trust namespace of faults about an encrypted Body -------------------------------------------------------------


@pytest.mark.parametrize("version", [S11, S12])
def test_faults_about_a_decrypted_feb2005_rst_are_in_the_feb2005_namespace(version: SoapVersion) -> None:
    """Scenarios 5 and 8 (SigEncr, SgnEncrUsername) encrypt the Body: the endpoint sees xenc:EncryptedData, and only
    the service, once it has opened the request, knows the RST is WS-Trust February 2005. Its WS-Trust faults are
    then in that namespace, never the 1.3 one (one namespace per answer)."""
    from sts.auth.encrypted_requests import OpenedRequest
    from sts.service import SecurityTokenService

    def opened(*_: object) -> OpenedRequest:
        return OpenedRequest("SgnEncrUsername", etree.fromstring(_rst(ns.WST05, ISSUE_05)), lambda *_: None)

    def refuse(_: object) -> Reply:
        raise BadRequest("secret-detail")

    service = SecurityTokenService(
        {Operation.ISSUE: refuse},  # type: ignore[dict-item]
        authenticate=lambda _: None,  # type: ignore[arg-type, return-value]
        open_request=opened,
    )
    encrypted = f'<xenc:EncryptedData xmlns:xenc="{ns.XENC}"/>'
    response = _handle(service, version, _envelope(version, encrypted))  # type: ignore[arg-type]
    assert _fault_qname(response, version) == (ns.WST05, "BadRequest")
    assert _fault_string(response, version) == "The specified RequestSecurityToken is not understood"
