"""Tests for sts.soap.faults: SOAP 1.1 / 1.2 fault shapes, QNames, status codes (wstrust-protocol.md §12-13)."""

from __future__ import annotations

from dataclasses import dataclass
from xml.etree import ElementTree

import pytest
from lxml import etree

from sts import ns
from sts.errors import (
    FailedAuthentication,
    InvalidRequest,
    MalformedMessage,
    MessageExpired,
    MustUnderstand,
    RequestFailed,
    ServiceUnavailable,
    STSError,
    VersionMismatch,
)
from sts.soap.envelope import SoapVersion
from sts.soap.faults import STS_FAULT_NS, RenderedFault, render_fault

S11, S12 = SoapVersion.SOAP11, SoapVersion.SOAP12
SECRET = "secret-detail-/etc/sts/key.pem-alice"
CORRELATION = "c0ffee0123456789"


@dataclass(frozen=True)
class Case:
    error: STSError
    s11_code: tuple[str, str]  # the exact faultcode QName in SOAP 1.1
    s12_value: str  # Code/Value local name in the SOAP 1.2 namespace
    s12_subcode: tuple[str, str]  # the exact Subcode/Value QName
    fault_string: str


CASES = {
    "InvalidRequest": Case(
        InvalidRequest(SECRET), (ns.WST, "InvalidRequest"), "Sender", (ns.WST, "InvalidRequest"),
        "The request was invalid or malformed",
    ),
    "FailedAuthentication": Case(
        FailedAuthentication(SECRET), (ns.WSSE, "FailedAuthentication"), "Sender",
        (ns.WSSE, "FailedAuthentication"), "The security token could not be authenticated or authorized",
    ),
    "MessageExpired": Case(
        MessageExpired(SECRET), (ns.WSSE, "MessageExpired"), "Sender", (ns.WSSE, "MessageExpired"),
        "The message has expired",
    ),
    "MalformedMessage": Case(
        MalformedMessage(SECRET), (ns.S11, "Client"), "Sender", (STS_FAULT_NS, "InvalidMessage"), "Invalid request",
    ),
    "VersionMismatch": Case(
        VersionMismatch(SECRET), (ns.S11, "VersionMismatch"), "VersionMismatch", (STS_FAULT_NS, "VersionMismatch"),
        "Invalid request",
    ),
    "MustUnderstand": Case(
        MustUnderstand(SECRET, not_understood=("urn:x", "Foo")), (ns.S11, "MustUnderstand"), "MustUnderstand",
        (STS_FAULT_NS, "MustUnderstand"), "A mandatory header was not understood",
    ),
    "ServiceUnavailable": Case(
        ServiceUnavailable(SECRET), (ns.S11, "Server"), "Receiver", (STS_FAULT_NS, "ServiceUnavailable"),
        "Service unavailable",
    ),
    "RequestFailed": Case(
        RequestFailed(SECRET), (ns.WST, "RequestFailed"), "Receiver", (ns.WST, "RequestFailed"),
        "The specified request failed",
    ),
}
NAMES = list(CASES)


def _resolve(element: etree._Element) -> tuple[str, str]:
    """Resolve a ``prefix:local`` QName in element text via the element's in-scope namespaces."""
    text = (element.text or "").strip()
    prefix, sep, local = text.partition(":")
    assert sep, f"QName without prefix: {text!r}"
    namespace = element.nsmap.get(prefix)
    assert namespace is not None, f"prefix {prefix!r} not declared"
    return namespace, local


def _render(error: STSError, version: SoapVersion, **kwargs: object) -> tuple[RenderedFault, etree._Element]:
    rendered = render_fault(error, version, correlation_id=CORRELATION, **kwargs)  # type: ignore[arg-type]
    root = etree.fromstring(rendered.body)
    assert root.tag == ns.qn(version.namespace, "Envelope")
    return rendered, root


def _body_fault(root: etree._Element, version: SoapVersion) -> etree._Element:
    body = root.find(ns.qn(version.namespace, "Body"))
    assert body is not None and len(body) == 1
    fault = body[0]
    assert fault.tag == ns.qn(version.namespace, "Fault")
    return fault


def _assert_no_leak(rendered: RenderedFault) -> None:
    for fragment in (SECRET, "secret-detail", "/etc/sts", "alice", "Traceback", "Error("):
        assert fragment.encode() not in rendered.body


# --- SOAP 1.1 -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_soap11_fault_shape(name: str) -> None:
    case = CASES[name]
    rendered, root = _render(case.error, S11)
    assert rendered.status == 500
    assert rendered.content_type == "text/xml; charset=utf-8"
    fault = _body_fault(root, S11)
    assert [child.tag for child in fault] == ["faultcode", "faultstring", "detail"]
    assert _resolve(fault.find("faultcode")) == case.s11_code  # type: ignore[arg-type]
    assert fault.findtext("faultstring") == case.fault_string
    assert fault.findtext("faultstring") == type(case.error).fault_string
    assert (root.find(ns.qn(ns.S11, "Header")) is None) is not isinstance(case.error, VersionMismatch)  # Upgrade


@pytest.mark.parametrize("name", NAMES)
def test_soap11_status_ignores_the_soap12_sender_setting(name: str) -> None:
    rendered, _root = _render(CASES[name].error, S11, soap12_sender_status=400)
    assert rendered.status == 500


# --- SOAP 1.2 -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_soap12_fault_shape(name: str) -> None:
    case = CASES[name]
    rendered, root = _render(case.error, S12)
    assert rendered.content_type == "application/soap+xml; charset=utf-8"
    fault = _body_fault(root, S12)
    code = fault.find(ns.qn(ns.S12, "Code"))
    assert code is not None
    value = code.find(ns.qn(ns.S12, "Value"))
    assert value is not None and _resolve(value) == (ns.S12, case.s12_value)
    subcode_value = code.find(f"{ns.qn(ns.S12, 'Subcode')}/{ns.qn(ns.S12, 'Value')}")
    assert subcode_value is not None, "Subcode/Value must always be present"
    assert _resolve(subcode_value) == case.s12_subcode
    texts = fault.findall(f"{ns.qn(ns.S12, 'Reason')}/{ns.qn(ns.S12, 'Text')}")
    assert len(texts) == 1
    assert texts[0].get(ns.qn(ns.XML, "lang")) == "en"
    assert texts[0].text == case.fault_string
    assert [etree.QName(child).localname for child in fault] == ["Code", "Reason", "Detail"]


@pytest.mark.parametrize("name", NAMES)
def test_soap12_status(name: str) -> None:
    case = CASES[name]
    rendered, _root = _render(case.error, S12)
    assert rendered.status == (400 if case.s12_value == "Sender" else 500)


@pytest.mark.parametrize("name", NAMES)
def test_soap12_sender_status_is_configurable(name: str) -> None:
    rendered, _root = _render(CASES[name].error, S12, soap12_sender_status=500)
    assert rendered.status == 500


def test_soap12_version_mismatch_has_upgrade_header() -> None:
    _rendered, root = _render(VersionMismatch(SECRET), S12)
    header = root.find(ns.qn(ns.S12, "Header"))
    assert header is not None
    upgrade = header.find(ns.qn(ns.S12, "Upgrade"))
    assert upgrade is not None
    supported = upgrade.findall(ns.qn(ns.S12, "SupportedEnvelope"))
    resolved = []
    for element in supported:
        prefix, _, local = element.get("qname", "").partition(":")
        resolved.append((element.nsmap[prefix], local))
    assert resolved == [(ns.S12, "Envelope"), (ns.S11, "Envelope")]
    # Header comes before Body
    assert [etree.QName(child).localname for child in root] == ["Header", "Body"]


def test_soap12_must_understand_has_not_understood_header() -> None:
    _rendered, root = _render(MustUnderstand(SECRET, not_understood=("urn:x", "Foo")), S12)
    header = root.find(ns.qn(ns.S12, "Header"))
    assert header is not None
    not_understood = header.find(ns.qn(ns.S12, "NotUnderstood"))
    assert not_understood is not None
    prefix, _, local = not_understood.get("qname", "").partition(":")
    assert (not_understood.nsmap[prefix], local) == ("urn:x", "Foo")


def test_soap12_not_understood_for_an_unqualified_header_is_namespace_well_formed() -> None:
    """An un-namespaced header is named by the unprefixed QName: never a prefix bound to "" (Namespaces in XML §3)."""
    rendered, root = _render(MustUnderstand(SECRET, not_understood=("", "Foo")), S12)
    path = f"{ns.qn(ns.S12, 'Header')}/{ns.qn(ns.S12, 'NotUnderstood')}"
    expat_element = ElementTree.fromstring(rendered.body).find(path)  # noqa: S314 - our output; expat refuses xmlns:h=""
    assert expat_element is not None and expat_element.get("qname") == "Foo"
    not_understood = root.find(path)
    assert not_understood is not None
    assert None not in not_understood.nsmap  # no default namespace in scope: "Foo" resolves to no namespace


def test_soap12_must_understand_without_header_name_has_no_header() -> None:
    _rendered, root = _render(MustUnderstand(SECRET), S12)
    assert root.find(ns.qn(ns.S12, "Header")) is None


def test_soap11_has_no_soap12_not_understood() -> None:
    _rendered, root = _render(MustUnderstand(not_understood=("urn:x", "Foo")), S11)
    assert root.find(ns.qn(ns.S11, "Header")) is None
    assert b"NotUnderstood" not in etree.tostring(root)


def test_a_soap11_version_mismatch_carries_the_upgrade_header() -> None:
    """SOAP 1.2 Part 1, Appendix A: the SOAP/1.1 VersionMismatch fault should say which envelopes we speak."""
    _rendered, root = _render(VersionMismatch(), S11)
    upgrade = root.find(f"{ns.qn(ns.S11, 'Header')}/{ns.qn(ns.S12, 'Upgrade')}")
    assert upgrade is not None and len(upgrade.findall(ns.qn(ns.S12, "SupportedEnvelope"))) == 2


def test_extra_headers_are_written() -> None:
    action = etree.Element(ns.qn(ns.WSA, "Action"), nsmap={"wsa": ns.WSA})
    action.text = "http://www.w3.org/2005/08/addressing/soap/fault"
    _rendered, root = _render(InvalidRequest(), S11, headers=[action])
    header = root.find(ns.qn(ns.S11, "Header"))
    assert header is not None
    assert header.findtext(ns.qn(ns.WSA, "Action")) == "http://www.w3.org/2005/08/addressing/soap/fault"


# --- trust namespace -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("error", [InvalidRequest(SECRET), RequestFailed(SECRET)])
def test_trust_faults_in_feb2005_namespace(error: STSError) -> None:
    _rendered, root = _render(error, S11, trust_ns=ns.WST05)
    assert _resolve(_body_fault(root, S11).find("faultcode")) == (ns.WST05, error.fault_local)  # type: ignore[arg-type]
    _rendered, root = _render(error, S12, trust_ns=ns.WST05)
    subcode = _body_fault(root, S12).find(f".//{ns.qn(ns.S12, 'Subcode')}/{ns.qn(ns.S12, 'Value')}")
    assert subcode is not None and _resolve(subcode) == (ns.WST05, error.fault_local)
    assert ns.WST.encode() not in etree.tostring(root)


def test_trust_ns_does_not_affect_wsse_faults() -> None:
    _rendered, root = _render(FailedAuthentication(), S11, trust_ns=ns.WST05)
    assert _resolve(_body_fault(root, S11).find("faultcode")) == (ns.WSSE, "FailedAuthentication")  # type: ignore[arg-type]


# --- correlation id and leakage ---------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [S11, S12])
@pytest.mark.parametrize("name", NAMES)
def test_correlation_id_in_detail_and_no_detail_message(name: str, version: SoapVersion) -> None:
    rendered, root = _render(CASES[name].error, version)
    fault = _body_fault(root, version)
    detail_tag = "detail" if version is S11 else ns.qn(ns.S12, "Detail")
    detail = fault.find(detail_tag)
    assert detail is not None
    assert detail.findtext(ns.qn(STS_FAULT_NS, "CorrelationId")) == CORRELATION
    _assert_no_leak(rendered)


def test_body_is_ascii_and_has_no_xml_declaration() -> None:
    rendered, _root = _render(InvalidRequest("d\u00e9tail"), S12)
    rendered.body.decode("ascii")
    assert not rendered.body.startswith(b"<?xml")


# --- every class renders ------------------------------------------------------------------------------------------


def _concrete_errors() -> list[type[STSError]]:
    found: list[type[STSError]] = []
    pending: list[type[STSError]] = [STSError]
    while pending:
        cls = pending.pop()
        for sub in cls.__subclasses__():
            if sub.__module__ == "sts.errors":
                found.append(sub)
                pending.append(sub)
    return sorted(found, key=lambda c: c.__name__)


@pytest.mark.parametrize("version", [S11, S12])
@pytest.mark.parametrize("cls", _concrete_errors(), ids=lambda c: c.__name__)
def test_every_error_class_renders(cls: type[STSError], version: SoapVersion) -> None:
    rendered, root = _render(cls(SECRET), version)
    fault = _body_fault(root, version)
    if version is S11:
        assert fault.findtext("faultstring") == cls.fault_string
    else:
        assert fault.findtext(f"{ns.qn(ns.S12, 'Reason')}/{ns.qn(ns.S12, 'Text')}") == cls.fault_string
    _assert_no_leak(rendered)


def test_bare_stserror_renders_in_soap12() -> None:
    rendered, root = _render(STSError(SECRET), S12)
    fault = _body_fault(root, S12)
    assert fault.find(f".//{ns.qn(ns.S12, 'Subcode')}/{ns.qn(ns.S12, 'Value')}") is not None
    assert fault.findtext(f"{ns.qn(ns.S12, 'Reason')}/{ns.qn(ns.S12, 'Text')}") == STSError.fault_string
    _assert_no_leak(rendered)
