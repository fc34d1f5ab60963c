"""``create_app(settings)``: the one composition root (architecture.md §6).

Everything a request needs is built here once, in the gunicorn master (``preload_app``): settings, keys, the
WSDL, the service and its operations. Per-process resources (SQLite connections, xmlsec key managers) are
opened lazily per PID by their owners, never shared across ``fork()``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sts.config.settings import Settings
from sts.crypto.keystore import KeyStore, load_keystore
from sts.service import SecurityTokenService
from sts.soap.endpoint import SoapEndpoint, SoapRequest
from sts.soap.envelope import SoapVersion
from sts.soap.spyne_app import call_spyne, make_spyne_wsgi
from sts.soap.transport import WSO2_PATH, Transport, TransportPolicy
from sts.soap.wsdl_render import load_policy, render_wsdl
from sts.xmlutil import ParserLimits


def public_url(settings: Settings) -> str:
    """The endpoint URL clients use: configured, else derived from the bind address."""
    if settings.server.public_url:
        return settings.server.public_url.rstrip("/")
    host, _, port = settings.server.bind.rpartition(":")
    scheme = "https" if settings.server.tls_cert else "http"
    host = "localhost" if host in ("0.0.0.0", "::", "[::]", "") else host  # noqa: S104 - a comparison
    return f"{scheme}://{host}:{port}{WSO2_PATH}"


def parser_limits(settings: Settings) -> ParserLimits:
    """The structural XML caps from ``[limits]``."""
    limits = settings.limits
    return ParserLimits(
        max_depth=limits.max_depth,
        max_elements=limits.max_elements,
        max_attributes=limits.max_attributes,
        max_namespaces=limits.max_namespaces,
        max_text_bytes=limits.max_text_bytes,
    )


def build_service(settings: Settings, keystore: KeyStore) -> SecurityTokenService:
    """The framework-free service with the operations enabled by the configuration."""
    del settings, keystore  # operations are registered by the issuance and lifecycle modules
    return SecurityTokenService({}, authenticate=None)


def create_app(settings: Settings, keystore: KeyStore | None = None) -> Transport:
    """Build the WSGI application."""
    keystore = keystore or load_keystore(settings)
    service = build_service(settings, keystore)
    endpoint = SoapEndpoint(service, parser_limits(settings), settings.server.soap12_sender_status)
    url = public_url(settings)
    wsdl = render_wsdl(
        load_policy(settings.security.scenario), url, url + ".wso2carbon-stsHttpsSoap12Endpoint"
    )
    spyne_apps = {version: make_spyne_wsgi(version is SoapVersion.SOAP12) for version in SoapVersion}

    def dispatch(environ: dict[str, Any], start_response: Any, request: SoapRequest) -> Iterable[bytes]:
        return call_spyne(spyne_apps[request.version], environ, start_response, endpoint, request)

    policy = TransportPolicy(settings.limits.max_body_bytes, frozenset(settings.server.trusted_proxies))
    return Transport(policy, wsdl, dispatch)
