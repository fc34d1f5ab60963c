"""Spyne, the STS's SOAP framework, behind one object: :class:`SpyneAdapter` (the only module importing Spyne).

Spyne's own parser, dispatch-by-element and fault rendering do not fit WS-Trust (Spyne dispatches on the Body
element alone, but all four WS-Trust bindings share ``wst:RequestSecurityToken``): the
protocol subclass below takes no part in parsing (the request bytes reach :class:`SoapEndpoint` untouched),
routes every request to the single ``RequestSecurityToken`` method, and the method writes the response bytes,
status and content type itself, so Spyne never serializes or renders a fault of its own. What Spyne does is the
WSGI exchange: one application per SOAP version, the service method, the response headers and body.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from io import BytesIO
from typing import Any
from wsgiref.types import StartResponse, WSGIEnvironment

from sts.soap import spyne_compat

with warnings.catch_warnings():
    # Spyne 2.14 imports `cgi` and a vendored `six` that warn (DeprecationWarning, ImportWarning).
    warnings.simplefilter("ignore", DeprecationWarning)
    warnings.simplefilter("ignore", ImportWarning)
    spyne_compat.install()
    from spyne import Application, ServiceBase, const, rpc
    from spyne.protocol.soap import Soap11, Soap12
    from spyne.server.wsgi import WsgiApplication

from sts.soap.endpoint import SoapEndpoint, SoapRequest
from sts.soapenv import SoapVersion

# Spyne runs a full gc.collect() when a method context closes at most once a second, to return file
# descriptors of streamed uploads; the STS streams nothing, and the collection showed up in the request profile.
const.MIN_GC_INTERVAL = float("inf")

TNS = "urn:python-sts:spyne"
_METHOD = f"{{{TNS}}}RequestSecurityToken"


@dataclass(frozen=True, slots=True)
class _Exchange:
    """The request Spyne is answering and the endpoint that answers it."""

    endpoint: SoapEndpoint
    request: SoapRequest


# Set by SpyneAdapter.__call__ around the one synchronous call into Spyne: the service method runs inside it, in
# the same thread and context, so the request reaches the method without riding in the WSGI environ.
_EXCHANGE: ContextVar[_Exchange] = ContextVar("sts_soap_exchange")


class _PassThrough:
    """Protocol hooks shared by the SOAP 1.1 and 1.2 subclasses."""

    def create_in_document(self, ctx: Any, charset: str | None = None) -> None:
        ctx.in_document = (None, {})  # parsed later, by sts.xmlutil, inside SoapEndpoint

    def decompose_incoming_envelope(self, ctx: Any, message: Any = None) -> None:
        ctx.in_document = None
        ctx.in_header_doc = None
        ctx.in_body_doc = None
        ctx.method_request_string = _METHOD

    def deserialize(self, ctx: Any, message: Any) -> None:
        ctx.in_object = []


class StsSoap11(_PassThrough, Soap11):  # type: ignore[misc]
    """SOAP 1.1 with parsing, routing and serialization delegated to the STS."""


class StsSoap12(_PassThrough, Soap12):  # type: ignore[misc]
    """SOAP 1.2 with parsing, routing and serialization delegated to the STS."""


class SecurityTokenServiceSoap(ServiceBase):  # type: ignore[misc]
    """The one bare method every WS-Trust request is routed to."""

    @rpc(_body_style="bare", _in_message_name="RequestSecurityToken")  # type: ignore[untyped-decorator]
    def RequestSecurityToken(ctx: Any) -> None:  # noqa: N802, N805 - Spyne's naming and calling convention
        """Hand the request to the endpoint and write its answer as the raw response."""
        exchange = _EXCHANGE.get()
        response = exchange.endpoint.handle(exchange.request)
        ctx.transport.resp_code = _status_line(response.status)
        ctx.transport.resp_headers["Content-Type"] = response.content_type
        ctx.out_string = [response.body]


def _status_line(status: int) -> str:
    return {200: "200 OK", 400: "400 Bad Request", 500: "500 Internal Server Error"}[status]


def _wsgi_application(version: SoapVersion) -> WsgiApplication:
    """A Spyne WSGI application for one SOAP version."""
    protocol = StsSoap12 if version is SoapVersion.SOAP12 else StsSoap11
    application = Application(
        [SecurityTokenServiceSoap],
        tns=TNS,
        name="SecurityTokenService",
        in_protocol=protocol(),
        out_protocol=protocol(),
    )
    return WsgiApplication(application)


class SpyneAdapter:
    """The SOAP dispatcher of :class:`~sts.soap.transport.Transport`: runs a request through Spyne to the endpoint.

    The transport has already read (and capped) the body and made the :class:`SoapRequest`; Spyne gets an empty
    body and the request itself, and answers with whatever :meth:`SoapEndpoint.handle` returned.
    """

    def __init__(self, endpoint: SoapEndpoint) -> None:
        self._endpoint = endpoint
        self._applications = {version: _wsgi_application(version) for version in SoapVersion}

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse, request: SoapRequest
    ) -> Iterable[bytes]:
        """Answer one SOAP request through the Spyne application of its SOAP version."""
        inner = dict(environ)
        inner["wsgi.input"] = BytesIO(b"")
        inner["CONTENT_LENGTH"] = "0"
        inner.pop("HTTP_TRANSFER_ENCODING", None)
        token = _EXCHANGE.set(_Exchange(self._endpoint, request))
        try:
            result: Iterable[bytes] = self._applications[request.version](inner, start_response)
        finally:
            _EXCHANGE.reset(token)
        return result
