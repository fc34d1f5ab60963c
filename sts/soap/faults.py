"""Render any :class:`~sts.errors.STSError` as a SOAP 1.1 or SOAP 1.2 fault (SOAP 1.1 §4.4; SOAP 1.2 part 1 §5.4).

SOAP 1.1: the WS-Trust or WS-Security QName *is* the ``faultcode``, its prefix declared on the element; HTTP 500
(WS-I Basic Profile R1126). SOAP 1.2: ``Code/Value`` Sender or Receiver, the QName in ``Code/Subcode/Value``
(always present: Microsoft's client code crashes without it), ``Reason/Text xml:lang="en"``; HTTP 400 for Sender
(configurable), 500 otherwise (the SOAP 1.2 HTTP binding). The fault string is the class's fixed string; the
detail carries only the correlation id that the log line also carries, so an operator can find why a client
failed without the client learning it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from lxml import etree

from sts import ns
from sts.errors import MustUnderstand, SoapFault, STSError, TrustError, VersionMismatch
from sts.soap.envelope import SoapVersion
from sts.xmlutil import serialize

STS_FAULT_NS = ns.STS_FAULT
_PREFIX_FOR = {ns.WST: "wst", ns.WST05: "wst", ns.WSSE: "wsse", STS_FAULT_NS: "sts"}
_SOAP12_CODE = {"Client": "Sender", "Server": "Receiver"}
_SOAP12_SUBCODE = {"Client": "InvalidMessage", "Server": "ServiceUnavailable"}


@dataclass(frozen=True, slots=True)
class RenderedFault:
    """A fault ready for the wire."""

    status: int
    content_type: str
    body: bytes


def render_fault(
    error: STSError,
    version: SoapVersion,
    *,
    correlation_id: str,
    trust_ns: str = ns.WST,
    headers: Sequence[etree._Element] = (),
    soap12_sender_status: int = 400,
) -> RenderedFault:
    """Build the fault envelope for ``error`` in the request's SOAP and trust versions."""
    env_ns = version.namespace
    envelope = etree.Element(ns.qn(env_ns, "Envelope"), nsmap={_env_prefix(version): env_ns})
    header = etree.SubElement(envelope, ns.qn(env_ns, "Header"))
    for block in headers:
        header.append(block)
    _soap12_fault_headers(error, version, header)
    if len(header) == 0:
        envelope.remove(header)
    body = etree.SubElement(envelope, ns.qn(env_ns, "Body"))
    code_ns, code_local = _fault_code(error, trust_ns)
    if version is SoapVersion.SOAP11:
        _soap11_fault(body, error, code_ns, code_local, correlation_id)
        status = 500
    else:
        _soap12_fault(body, error, code_ns, code_local, correlation_id)
        status = soap12_sender_status if _soap12_value(error) == "Sender" else 500
    return RenderedFault(status, f"{version.media_type}; charset=utf-8", serialize(envelope))


def _env_prefix(version: SoapVersion) -> str:
    return "s11" if version is SoapVersion.SOAP11 else "s12"


def _soap_level(error: STSError) -> bool:
    """Faults whose code lives in the envelope namespace (the SoapFault family and the bare base class)."""
    return isinstance(error, SoapFault) or error.fault_ns in (ns.S11, ns.S12)


def _fault_code(error: STSError, trust_ns: str) -> tuple[str, str]:
    if isinstance(error, TrustError):
        return trust_ns, error.fault_local
    return error.fault_ns, error.fault_local


def _qname_text(element: etree._Element, namespace: str, local: str, env_ns: str) -> None:
    """Write ``prefix:local`` as element text with the prefix declared on the element itself."""
    if namespace in (ns.S11, ns.S12):
        prefix = "s11" if namespace == ns.S11 else "s12"
        if namespace != env_ns:
            raise ValueError("fault code in a foreign envelope namespace")
    else:
        prefix = _PREFIX_FOR.get(namespace, "q")
        # Re-create the element so that it declares the prefix: lxml fixes nsmap at creation time.
        replacement = etree.Element(element.tag, nsmap={prefix: namespace})
        element.addprevious(replacement)
        element.getparent().remove(element)  # type: ignore[union-attr]
        element = replacement
    element.text = f"{prefix}:{local}"


def _soap11_fault(body: etree._Element, error: STSError, code_ns: str, code_local: str, corr: str) -> None:
    fault = etree.SubElement(body, ns.qn(ns.S11, "Fault"))
    code_ns = ns.S11 if _soap_level(error) else code_ns
    _qname_text(etree.SubElement(fault, "faultcode"), code_ns, code_local, ns.S11)
    etree.SubElement(fault, "faultstring").text = error.fault_string
    detail = etree.SubElement(fault, "detail")
    _correlation(detail, corr)


def _soap12_value(error: STSError) -> str:
    if isinstance(error, (VersionMismatch, MustUnderstand)):
        return error.fault_local
    return "Sender" if error.sender else "Receiver"


def _soap12_fault(body: etree._Element, error: STSError, code_ns: str, code_local: str, corr: str) -> None:
    fault = etree.SubElement(body, ns.qn(ns.S12, "Fault"))
    code = etree.SubElement(fault, ns.qn(ns.S12, "Code"))
    _qname_text(etree.SubElement(code, ns.qn(ns.S12, "Value")), ns.S12, _soap12_value(error), ns.S12)
    if _soap_level(error):
        code_ns, code_local = STS_FAULT_NS, _SOAP12_SUBCODE.get(error.fault_local, error.fault_local)
    subcode = etree.SubElement(code, ns.qn(ns.S12, "Subcode"))
    _qname_text(etree.SubElement(subcode, ns.qn(ns.S12, "Value")), code_ns, code_local, ns.S12)
    reason = etree.SubElement(fault, ns.qn(ns.S12, "Reason"))
    text = etree.SubElement(reason, ns.qn(ns.S12, "Text"))
    text.set(ns.qn(ns.XML, "lang"), "en")
    text.text = error.fault_string
    _correlation(etree.SubElement(fault, ns.qn(ns.S12, "Detail")), corr)


def _correlation(detail: etree._Element, correlation_id: str) -> None:
    element = etree.SubElement(detail, ns.qn(STS_FAULT_NS, "CorrelationId"), nsmap={"sts": STS_FAULT_NS})
    element.text = correlation_id


def _soap12_fault_headers(error: STSError, version: SoapVersion, header: etree._Element) -> None:
    """SOAP 1.2 §5.4.7-5.4.8: Upgrade lists the envelopes we speak; NotUnderstood names the header. A SOAP 1.1
    VersionMismatch fault carries the Upgrade header too (SOAP 1.2 Part 1, Appendix A)."""
    if isinstance(error, VersionMismatch):
        upgrade = etree.SubElement(header, ns.qn(ns.S12, "Upgrade"))
        for supported in (ns.S12, ns.S11):
            env = etree.SubElement(upgrade, ns.qn(ns.S12, "SupportedEnvelope"), nsmap={"e": supported})
            env.set("qname", "e:Envelope")
    elif version is SoapVersion.SOAP12 and isinstance(error, MustUnderstand) and error.not_understood is not None:
        namespace, local = error.not_understood
        if namespace:
            element = etree.SubElement(header, ns.qn(ns.S12, "NotUnderstood"), nsmap={"h": namespace})
            element.set("qname", f"h:{local}")
        else:
            # An un-namespaced header's name is the unprefixed xs:QName (XML Schema Part 2 §3.2.18), which
            # resolves to no namespace because this envelope declares no default namespace. Binding a prefix
            # to "" instead is not namespace-well-formed (Namespaces in XML 1.0 §3, "No Prefix Undeclaring").
            etree.SubElement(header, ns.qn(ns.S12, "NotUnderstood")).set("qname", local)
