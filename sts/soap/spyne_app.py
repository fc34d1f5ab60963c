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
from collections.abc import Callable, Iterable
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
    from spyne import Application, EventManager, ServiceBase, const, rpc
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


class _Events(EventManager):  # type: ignore[misc]
    """Spyne's event manager, minus the empty ordered set it builds for each event no handler listens to.

    Spyne fires a dozen events per request through three managers (application, WSGI server, service class);
    the STS registers no handler, so building and iterating an empty set each time was a sixth of Spyne's time.
    Handlers added with ``add_listener`` run as before.
    """

    def fire_event(self, event_name: str, ctx: Any, *args: Any, **kwargs: Any) -> None:
        """Run the handlers of ``event_name`` in the order they were added."""
        for handler in self.handlers.get(event_name, ()):
            handler(ctx, *args, **kwargs)

    @classmethod
    def replacing(cls, manager: EventManager) -> _Events:
        """A manager with the parent and handlers of ``manager``."""
        return cls(manager.parent, manager.handlers)


class _PassThrough:
    """Protocol hooks shared by the SOAP 1.1 and 1.2 subclasses."""

    get_call_handles: Callable[[Any], list[Any]]  # Spyne's ProtocolBase, the other base of both subclasses

    def create_in_document(self, ctx: Any, charset: str | None = None) -> None:
        ctx.in_document = (None, {})  # parsed later, by sts.xmlutil, inside SoapEndpoint

    def decompose_incoming_envelope(self, ctx: Any, message: Any = None) -> None:
        ctx.in_document = None
        ctx.in_header_doc = None
        ctx.in_body_doc = None
        ctx.method_request_string = _METHOD

    def deserialize(self, ctx: Any, message: Any) -> None:
        ctx.in_object = []

    def generate_method_contexts(self, ctx: Any) -> list[Any]:
        """The request's one method context: ``ctx`` itself, bound to the one method.

        Spyne's version copies ``ctx`` once per method bound to the request string, so that auxiliary methods
        get contexts of their own; the STS has none, and the copy was a tenth of Spyne's time per request.
        """
        (descriptor,) = self.get_call_handles(ctx)
        ctx.descriptor = descriptor
        return [ctx]


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


def _service_events(service: type[ServiceBase]) -> None:
    """Give ``service`` and its method descriptors (which list the service's manager) an :class:`_Events`."""
    original = service.event_manager
    service.event_manager = _Events.replacing(original)
    for descriptor in service.public_methods.values():
        descriptor.event_managers = [
            service.event_manager if manager is original else manager for manager in descriptor.event_managers
        ]


_service_events(SecurityTokenServiceSoap)


def _release(ctx: Any) -> None:
    """Break the reference cycles of a closed method context, so that reference counting frees it at once.

    Spyne's method context and its transport, protocol and event contexts point at each other, and each protocol
    context at itself (the factory of its sub-contexts): without this, each request left 28 objects for the
    cyclic garbage collector, which is what made it run every ~70 requests (~0.5 ms a run, and ~3 ms for an
    older-generation pass). Spyne fires ``method_context_closed`` as the last use of the context.
    """
    ctx.transport.parent = ctx.event.parent = None
    for protocol_context in (ctx.inprot_ctx, ctx.outprot_ctx):
        if protocol_context is not None:
            protocol_context.parent = protocol_context._subctx = None


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
    application.event_manager = _Events.replacing(application.event_manager)
    application.event_manager.add_listener("method_context_closed", _release)
    server = WsgiApplication(application)
    server.event_manager = _Events.replacing(server.event_manager)
    return server


# What Spyne gets of the caller's environ: the variables PEP 3333 requires, none of the HTTP headers. The
# transport has read those (media type, body, addressing facts) into the SoapRequest; Spyne would copy each
# header into a dict of its own (with a debug log call apiece) and parse Content-Type for a charset that the
# pass-through protocol ignores.
_CGI_VARIABLES = (
    "REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL",
    "wsgi.version", "wsgi.url_scheme", "wsgi.errors", "wsgi.multithread", "wsgi.multiprocess", "wsgi.run_once",
)


class SpyneAdapter:
    """The SOAP dispatcher of :class:`~sts.soap.transport.Transport`: runs a request through Spyne to the endpoint.

    The transport has already read (and capped) the body and made the :class:`SoapRequest`; Spyne gets the
    environ's CGI variables with an empty body, and the request itself, and answers with whatever
    :meth:`SoapEndpoint.handle` returned.
    """

    def __init__(self, endpoint: SoapEndpoint) -> None:
        self._endpoint = endpoint
        self._applications = {version: _wsgi_application(version) for version in SoapVersion}

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse, request: SoapRequest
    ) -> Iterable[bytes]:
        """Answer one SOAP request through the Spyne application of its SOAP version."""
        inner = {key: environ[key] for key in _CGI_VARIABLES if key in environ}
        inner["wsgi.input"] = BytesIO(b"")
        inner["CONTENT_LENGTH"] = "0"
        token = _EXCHANGE.set(_Exchange(self._endpoint, request))
        try:
            # The URL argument spares Spyne rebuilding it from the environ: it only serves WSDL requests, and
            # the transport answers those itself.
            application = self._applications[request.version]
            result: Iterable[bytes] = application(inner, start_response, request.path)
        finally:
            _EXCHANGE.reset(token)
        return result
