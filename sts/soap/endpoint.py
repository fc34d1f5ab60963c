"""One SOAP request through the pipeline: parse, envelope checks, service, response or fault.

This is the single wrap point: an :class:`~sts.errors.STSError` becomes its fault, any other exception is
logged with the correlation id and answered as ``wst:RequestFailed``; never a traceback on the wire.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from lxml import etree

from sts import ns, telemetry
from sts.audit import AuditEvent, emit, request_scope
from sts.errors import RequestFailed, STSError, VersionMismatch
from sts.operations.call import RequestInfo
from sts.service import SecurityTokenService
from sts.soap.addressing import Addressing, read_addressing, reply_headers
from sts.soap.envelope import Envelope, SoapVersion, check_must_understand, read_envelope
from sts.soap.faults import render_fault
from sts.telemetry import Observer, RequestTrace, stage
from sts.xmlutil import ParserLimits, element_children, namespace_of, parse_untrusted, serialize

_LOG = logging.getLogger("sts.soap")

# Adds the scenario's response security to a finished answer envelope (a signed Timestamp and Body for SigOnly,
# WSS 1.1 §8); faults are never protected (signing costs a private-key operation on unauthenticated input).
ResponseProtector = Callable[[etree._Element, SoapVersion], None]

# Header blocks the STS processes; any other mustUnderstand header gets a MustUnderstand fault (SOAP 1.1 §4.2.3,
# SOAP 1.2 part 1 §5.2.3).
UNDERSTOOD_HEADERS = frozenset(
    ns.qn(namespace, local)
    for namespace in (ns.WSA, ns.WSA04)
    for local in ("Action", "To", "MessageID", "ReplyTo", "FaultTo")
) | {ns.qn(ns.WSSE, "Security")}


@dataclass(frozen=True, slots=True)
class SoapRequest:
    """A request as the HTTP layer hands it over: body bytes and transport facts."""

    body: bytes
    version: SoapVersion
    http_action: str
    client_address: str
    secure_transport: bool
    charset: str | None = None  # the Content-Type parameter, checked against the document by the parser
    scenario: str = "UTOverTransport"  # the security scenario of the endpoint the request came to
    path: str = ""  # that endpoint's path
    client_certificate: bytes | None = None  # TLS client certificate (DER, or PEM from a trusted proxy)


@dataclass(frozen=True, slots=True)
class SoapResponse:
    """What goes back on the wire."""

    status: int
    content_type: str
    body: bytes


class SoapEndpoint:
    """Runs SOAP requests through the service and renders replies and faults."""

    def __init__(
        self,
        service: SecurityTokenService,
        limits: ParserLimits,
        soap12_sender_status: int = 400,
        protectors: Mapping[str, ResponseProtector] | None = None,
        observer: Observer | None = None,
    ) -> None:
        self._protectors = dict(protectors or {})
        self._service = service
        self._limits = limits
        self._soap12_sender_status = soap12_sender_status
        self._observer = observer

    def handle(self, request: SoapRequest, trace: RequestTrace | None = None) -> SoapResponse:
        """Answer one request; never raises. ``trace`` (a fresh one by default) records what it did and goes to
        the observer (metrics) once the answer is ready."""
        if trace is None and self._observer is None:
            return self._handle(request)
        trace = trace or RequestTrace()
        started = time.perf_counter()
        with telemetry.tracing(trace):
            response = self._handle(request)
        trace.seconds = time.perf_counter() - started
        trace.outcome = trace.outcome or ("success" if response.status == 200 else "failure")
        if self._observer is not None:
            self._observer.finished(trace)
        return response

    def _handle(self, request: SoapRequest) -> SoapResponse:
        with request_scope():  # one audit record for a successful request (sts.audit)
            return self._answer(request)

    def _answer(self, request: SoapRequest) -> SoapResponse:
        started = time.perf_counter()
        correlation_id = uuid.uuid4().hex
        trust_ns = ns.WST
        addressing: Addressing | None = None
        try:
            with stage("parse"):
                root = parse_untrusted(request.body, self._limits, charset=request.charset)
            addressing = _addressing_of(root, request.version)  # also for faults about the envelope itself
            with stage("envelope"):
                envelope = read_envelope(root, request.version)
                check_must_understand(envelope, UNDERSTOOD_HEADERS)
            trust_ns = _guess_trust_ns(envelope)
            # Made once the WS-Addressing action is known (a dataclasses.replace later cost more than this).
            info = RequestInfo(
                correlation_id, request.client_address, request.secure_transport, request.http_action,
                wsa_action="" if addressing is None else addressing.action,
                scenario=request.scenario, path=request.path, client_certificate=request.client_certificate,
            )
            reply = self._service.handle(envelope.version, envelope.headers, envelope.body_child, info)
            headers = reply_headers(addressing, reply.trust.response_action(reply.operation))
            protect = reply.protect or self._protectors.get(request.scenario)
            return self._reply(envelope.version, reply.body, headers, protect)
        except STSError as error:
            self._audit_failure(error, correlation_id, request.client_address, started)
            version = request.version
            if isinstance(error, VersionMismatch) and error.soap11_envelope:
                version = SoapVersion.SOAP11  # the one version the sender is known to speak
            return self._fault(error, version, correlation_id, error.trust_ns or trust_ns, addressing)
        except Exception:  # the single wrap point for the unexpected
            _LOG.exception("unexpected error", extra={"correlation_id": correlation_id})
            wrapped = RequestFailed("unexpected error", reason="internal_error")
            self._audit_failure(wrapped, correlation_id, request.client_address, started)
            return self._fault(wrapped, request.version, correlation_id, trust_ns, addressing)

    def _reply(
        self,
        version: SoapVersion,
        body_child: etree._Element,
        headers: list[etree._Element],
        protect: ResponseProtector | None = None,
    ) -> SoapResponse:
        env_ns = version.namespace
        prefix = "s11" if version is SoapVersion.SOAP11 else "s12"
        envelope = etree.Element(ns.qn(env_ns, "Envelope"), nsmap={prefix: env_ns})
        if headers or protect is not None:
            header = etree.SubElement(envelope, ns.qn(env_ns, "Header"))
            for block in headers:
                header.append(block)
        etree.SubElement(envelope, ns.qn(env_ns, "Body")).append(body_child)
        if protect is not None:
            protect(envelope, version)
        return SoapResponse(200, f"{version.media_type}; charset=utf-8", serialize(envelope))

    def _fault(
        self,
        error: STSError,
        version: SoapVersion,
        correlation_id: str,
        trust_ns: str,
        addressing: Addressing | None = None,
    ) -> SoapResponse:
        rendered = render_fault(
            error,
            version,
            correlation_id=correlation_id,
            trust_ns=trust_ns,
            headers=reply_headers(addressing, None),
            soap12_sender_status=self._soap12_sender_status,
        )
        return SoapResponse(rendered.status, rendered.content_type, rendered.body)

    @staticmethod
    def _audit_failure(error: STSError, correlation_id: str, client_address: str, started: float) -> None:
        namespace, local = error.fault_qname()
        trace = telemetry.current()
        if trace is not None:
            trace.failed(local, error.reason, error.detail)
        emit(
            AuditEvent(
                event="request",
                outcome="failure",
                correlation_id=correlation_id,
                client_address=client_address,
                fault=local,
                reason=error.reason,
                duration_ms=round((time.perf_counter() - started) * 1000, 3),
            )
        )


def _addressing_of(root: etree._Element, version: SoapVersion) -> Addressing | None:
    """WS-Addressing headers of a parsed envelope, whatever else is wrong with it: faults carry RelatesTo too."""
    header = root.find(ns.qn(version.namespace, "Header"))
    return None if header is None else read_addressing(tuple(element_children(header)))


def _guess_trust_ns(envelope: Envelope) -> str:
    return ns.WST05 if namespace_of(envelope.body_child) == ns.WST05 else ns.WST
