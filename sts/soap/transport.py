"""The plain-WSGI front door (no Spyne here): method, path, media type, body cap, WSDL, health, readiness, metrics.

HTTP-level refusals happen before any XML is looked at (RFC 9110 §15.5.6, §15.5.14, §15.5.16): 405 for other
methods, 415 for a media type that is not SOAP (SOAP 1.1 ``text/xml``, SOAP 1.2 ``application/soap+xml``) or a
compressed body, 413 for a body over the cap, read at most cap+1 bytes, chunked bodies included (gunicorn has no
body limit of its own: https://github.com/benoitc/gunicorn/issues/1659).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import unquote
from wsgiref.types import StartResponse, WSGIEnvironment

from sts.netaddr import AddressSet, forwarded_client
from sts.readiness import ReadinessReport
from sts.soap.endpoint import SoapRequest
from sts.soapenv import SoapVersion

WSO2_PATH = "/services/wso2carbon-sts"
WSO2_SOAP11_PATH = WSO2_PATH + ".wso2carbon-stsHttpsSoap11Endpoint"
WSO2_SOAP12_SUFFIX = ".wso2carbon-stsHttpsSoap12Endpoint"  # Axis2's per-binding alias, advertised by WSO2's WSDL
WSO2_SOAP12_PATH = WSO2_PATH + WSO2_SOAP12_SUFFIX
# AD FS-style aliases: some clients infer the trust version from these suffixes or hard-code /adfs/.
ADFS_TRUST13_PATH = "/adfs/services/trust/13/usernamemixed"
ADFS_FEB2005_PATH = "/adfs/services/trust/2005/usernamemixed"
ENDPOINT_PATHS = frozenset({WSO2_PATH, WSO2_SOAP11_PATH, WSO2_SOAP12_PATH, ADFS_TRUST13_PATH, ADFS_FEB2005_PATH})
UT_SCENARIO = "UTOverTransport"
ISSUED_TOKEN_SCENARIO = "IssuedTokenOverTransport"  # noqa: S105 - a trusted issuer's SAML assertion instead of a password
ADFS_CERTIFICATE_MIXED_PATH = "/adfs/services/trust/13/certificatemixed"
CERTIFICATE_TRANSPORT = "certificatetransport"
ADFS_CERTIFICATE_TRANSPORT_PATH = "/adfs/services/trust/13/certificatetransport"
_ADFS_PATHS = {"certificatemixed": ADFS_CERTIFICATE_MIXED_PATH, CERTIFICATE_TRANSPORT: ADFS_CERTIFICATE_TRANSPORT_PATH}
# A PEM certificate passed by a proxy fits gunicorn's header field limit (8190 bytes).
MAX_CERT_HEADER_BYTES = 8192


def scenario_paths(scenarios: Iterable[str]) -> dict[str, str]:
    """Endpoint path → the security scenario served there (one policy per endpoint).

    UTOverTransport keeps the historical paths; every other scenario is served on
    ``/services/wso2carbon-sts/<name>``, and certificatemixed and certificatetransport also on their AD FS paths.
    """
    routes: dict[str, str] = {}
    for name in scenarios:
        if name == UT_SCENARIO:
            routes.update(dict.fromkeys(ENDPOINT_PATHS, name))
            continue
        routes[f"{WSO2_PATH}/{name}"] = name
        if name in _ADFS_PATHS:
            routes[_ADFS_PATHS[name]] = name
    return routes
HEALTH_PATH = "/healthz"
READY_PATH = "/readyz"
MEX_PATHS = frozenset({"/mex", WSO2_PATH + "/mex", "/adfs/services/trust/mex"})
METADATA_PATHS = frozenset({"/FederationMetadata/2007-06/FederationMetadata.xml", "/metadata"})
_READ_CHUNK = 65536
# What a TLS-terminating proxy says about the client's hop (the values gunicorn's secure_scheme_headers know).
_FORWARDED_SCHEME = {
    "HTTP_X_FORWARDED_PROTO": "https",
    "HTTP_X_FORWARDED_SSL": "on",
    "HTTP_X_FORWARDED_PROTOCOL": "ssl",
}



class SoapDispatch(Protocol):
    """Answers a SOAP request the front door accepted (:class:`~sts.soap.spyne_app.SpyneAdapter`)."""

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse, request: SoapRequest
    ) -> Iterable[bytes]:
        """The WSGI response to ``request``."""
        ...


@dataclass(frozen=True, slots=True)
class OpsEndpoints:
    """The operator endpoints beside the SOAP ones: readiness (``/readyz``) and the metrics exposition at
    ``metrics_path`` for clients in ``metrics_allow`` (``metrics`` is None when they are off or served on a
    listener of their own by ``serve_metrics``, which gunicorn's master calls with ``[metrics] bind``)."""

    readiness: Callable[[], ReadinessReport] | None = None
    metrics: Callable[[], tuple[bytes, str]] | None = None
    metrics_path: str = "/metrics"
    metrics_allow: AddressSet = AddressSet()
    serve_metrics: Callable[[str], None] | None = None
    connection_refused: Callable[[str], None] | None = None


class _HttpRefusal(Exception):
    def __init__(self, status: str, headers: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(status)
        self.status = status
        self.headers = headers


@dataclass(frozen=True, slots=True)
class TransportPolicy:
    """The transport settings the front door applies."""

    max_body_bytes: int
    trusted_proxies: AddressSet = AddressSet()
    client_cert_header: str = ""  # e.g. X-SSL-Client-Cert: believed only from trusted_proxies


class Transport:
    """WSGI callable: routes to the WSDL, mex, federation metadata, health, readiness, metrics or the SOAP
    dispatcher."""

    def __init__(
        self,
        policy: TransportPolicy,
        wsdl: bytes,
        dispatch: SoapDispatch,
        mex: bytes = b"",
        close: Callable[[], None] = lambda: None,
        routes: Mapping[str, str] | None = None,
        metadata: Callable[[], bytes] | None = None,
        ops: OpsEndpoints | None = None,
    ) -> None:
        self.ops = ops or OpsEndpoints()
        self._routes = dict(routes) if routes is not None else scenario_paths([UT_SCENARIO])
        self._policy = policy
        self._metadata = metadata
        self._wsdl = wsdl
        self._mex = mex
        self._dispatch = dispatch
        self._close = close

    def close(self) -> None:
        """Release what the application holds (its database connections) once it serves no more requests."""
        self._close()

    def connection_refused(self, reason: str) -> None:
        """Account for a connection the HTTP server closed without handing a request to this application (the
        worker's event loop calls it: malformed or oversized framing, a read deadline, eviction)."""
        if self.ops.connection_refused is not None:
            self.ops.connection_refused(reason)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """Serve one HTTP request (PEP 3333)."""
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        try:
            if path == HEALTH_PATH:
                return self._health(method, start_response)
            if path == READY_PATH and self.ops.readiness is not None:
                return self._ready(method, start_response, self.ops.readiness)
            if path == self.ops.metrics_path and self.ops.metrics is not None:
                return self._metrics(environ, method, start_response, self.ops.metrics)
            if path in MEX_PATHS and self._mex:
                if method != "GET":
                    raise _HttpRefusal("405 Method Not Allowed", (("Allow", "GET"),))
                return _respond(start_response, "200 OK", "text/xml; charset=utf-8", self._mex)
            if path in METADATA_PATHS and self._metadata is not None:
                if method not in ("GET", "HEAD"):
                    raise _HttpRefusal("405 Method Not Allowed", (("Allow", "GET"),))
                return _respond(start_response, "200 OK", "application/samlmetadata+xml", self._metadata())
            scenario = self._routes.get(path)
            is_wsdl = method == "GET" and environ.get("QUERY_STRING", "").lower() in ("wsdl", "wsdl=")
            if is_wsdl and (scenario is not None or path == WSO2_PATH):
                return _respond(start_response, "200 OK", "text/xml; charset=utf-8", self._wsdl)
            if scenario is None:
                raise _HttpRefusal("404 Not Found")
            if method != "POST":
                raise _HttpRefusal("405 Method Not Allowed", (("Allow", "POST"),))
            version, action, charset = _media_type(environ)
            body = _read_body(environ, self._policy.max_body_bytes)
        except _HttpRefusal as refusal:
            return _respond(start_response, refusal.status, "text/plain; charset=utf-8",
                            refusal.status.encode() + b"\n", refusal.headers)
        request = SoapRequest(
            body=body,
            version=version,
            http_action=action,
            charset=charset,
            client_address=self._client_address(environ),
            secure_transport=self._is_secure(environ),
            scenario=scenario,
            path=path,
            client_certificate=self._client_certificate(environ) if scenario == CERTIFICATE_TRANSPORT else None,
        )
        return self._dispatch(environ, start_response, request)

    def _health(self, method: str, start_response: StartResponse) -> Iterable[bytes]:
        if method not in ("GET", "HEAD"):
            raise _HttpRefusal("405 Method Not Allowed", (("Allow", "GET"),))
        return _respond(start_response, "200 OK", "application/json", json.dumps({"status": "ok"}).encode())

    @staticmethod
    def _ready(
        method: str, start_response: StartResponse, readiness: Callable[[], ReadinessReport]
    ) -> Iterable[bytes]:
        """200 when every dependency answered within the readiness timeout, else 503 (RFC 9110 §15.6.4)."""
        if method not in ("GET", "HEAD"):
            raise _HttpRefusal("405 Method Not Allowed", (("Allow", "GET"),))
        report = readiness()
        body = json.dumps({"status": "ready" if report.ready else "not ready", "checks": report.checks}).encode()
        status = "200 OK" if report.ready else "503 Service Unavailable"
        return _respond(start_response, status, "application/json", body, (("Cache-Control", "no-store"),))

    def _metrics(
        self,
        environ: WSGIEnvironment,
        method: str,
        start_response: StartResponse,
        render: Callable[[], tuple[bytes, str]],
    ) -> Iterable[bytes]:
        """The Prometheus exposition, to the ``[metrics] allow`` networks only."""
        if self._client_address(environ) not in self.ops.metrics_allow:
            raise _HttpRefusal("403 Forbidden")
        if method not in ("GET", "HEAD"):
            raise _HttpRefusal("405 Method Not Allowed", (("Allow", "GET"),))
        body, content_type = render()
        return _respond(start_response, "200 OK", content_type, body, (("Cache-Control", "no-store"),))

    def _client_address(self, environ: WSGIEnvironment) -> str:
        """The peer, or behind trusted proxies the right-most X-Forwarded-For hop that is not one of them."""
        forwarded = environ.get("HTTP_X_FORWARDED_FOR")
        return forwarded_client(
            str(environ.get("REMOTE_ADDR", "")), None if forwarded is None else str(forwarded),
            self._policy.trusted_proxies,
        )

    def _client_certificate(self, environ: WSGIEnvironment) -> bytes | None:
        """The TLS client certificate: DER from our own TLS socket (gunicorn verified it against ``ca_certs``), else
        the PEM a trusted proxy put in ``client_cert_header`` (URL-encoded, as nginx's ``$ssl_client_escaped_cert``).

        The header counts only when the peer is one of ``trusted_proxies``: from anyone else it is ignored, as if
        absent. A certificate of our own socket wins over any header.
        """
        sock = environ.get("gunicorn.socket")
        getpeercert = getattr(sock, "getpeercert", None)
        if callable(getpeercert):
            try:
                der = getpeercert(binary_form=True)
            except ValueError:  # not connected any more
                der = None
            if isinstance(der, bytes) and der:
                return der
        header = self._policy.client_cert_header
        if not header or str(environ.get("REMOTE_ADDR", "")) not in self._policy.trusted_proxies:
            return None
        value = str(environ.get("HTTP_" + header.upper().replace("-", "_"), "")).strip()
        if not value or len(value) > MAX_CERT_HEADER_BYTES:
            return None
        return unquote(value).encode("ascii", "replace")

    def _is_secure(self, environ: WSGIEnvironment) -> bool:
        """TLS on our socket, or a trusted TLS-terminating proxy saying so (PasswordText is only safe over TLS).

        The shipped gunicorn settings believe no forwarding header (``secure_scheme_headers`` is empty), so
        ``wsgi.url_scheme`` is the socket's own scheme; the proxy headers are read here, and only when the peer is
        in ``trusted_proxies``. When a trusted proxy sends any of them, every one it sends must say HTTPS.
        """
        if str(environ.get("REMOTE_ADDR", "")) in self._policy.trusted_proxies:
            stated = [
                str(environ[key]).strip().lower() == secure
                for key, secure in _FORWARDED_SCHEME.items()
                if key in environ
            ]
            if stated:
                return all(stated)
        return environ.get("wsgi.url_scheme") == "https"


def _media_type(environ: WSGIEnvironment) -> tuple[SoapVersion, str, str | None]:
    """SOAP version from the media type; the action from SOAPAction or the SOAP 1.2 ``action`` parameter.

    The ``charset`` parameter is handed on as it is: the parser checks it against the document
    (XML 1.0 §4.3.3 and appendix F).
    """
    if str(environ.get("HTTP_CONTENT_ENCODING", "identity")).strip().lower() not in ("", "identity"):
        raise _HttpRefusal("415 Unsupported Media Type")
    media, params = _parse_content_type(str(environ.get("CONTENT_TYPE", "")))
    version = SoapVersion.from_media_type(media)
    if version is None:
        raise _HttpRefusal("415 Unsupported Media Type")
    action = params.get("action", "")
    if not action:
        action = _unquote(str(environ.get("HTTP_SOAPACTION", "")))
    return version, " ".join(action.split()), params.get("charset")


def _parse_content_type(value: str) -> tuple[str, dict[str, str]]:
    media, *rest = value.split(";")
    params: dict[str, str] = {}
    for item in rest:
        key, _, val = item.partition("=")
        params[key.strip().lower()] = _unquote(val)
    return media.strip().lower(), params


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    return value.strip()


def _read_body(environ: WSGIEnvironment, cap: int) -> bytes:
    """Read the body, never more than ``cap + 1`` bytes; refuse with 413 past the cap."""
    declared = environ.get("CONTENT_LENGTH") or ""
    limit = cap + 1  # without a length (chunked): read until EOF, never more than cap + 1 bytes
    if declared:
        try:
            length = int(declared)
        except ValueError:
            raise _HttpRefusal("400 Bad Request") from None
        if length < 0:
            raise _HttpRefusal("400 Bad Request")
        if length > cap:
            raise _HttpRefusal("413 Content Too Large", (("Connection", "close"),))
        limit = length  # PEP 3333: never read past CONTENT_LENGTH
    stream = environ["wsgi.input"]
    chunks: list[bytes] = []
    total = 0
    while total < limit:
        chunk = stream.read(min(_READ_CHUNK, limit - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
        if total > cap:
            raise _HttpRefusal("413 Content Too Large", (("Connection", "close"),))
    return b"".join(chunks)


def _respond(
    start_response: StartResponse,
    status: str,
    content_type: str,
    body: bytes,
    headers: tuple[tuple[str, str], ...] = (),
) -> list[bytes]:
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body))), *headers])
    return [body]
