"""Tests for sts.soap.spyne_app.SpyneAdapter: the request reaches the endpoint through Spyne, not the environ."""

from __future__ import annotations

import gc
from io import BytesIO
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest

from sts.soap.endpoint import SoapRequest, SoapResponse
from sts.soap.spyne_app import SecurityTokenServiceSoap, SpyneAdapter
from sts.soapenv import SoapVersion


class Endpoint:
    """Stands in for SoapEndpoint: records the requests and answers a fixed response."""

    def __init__(self, response: SoapResponse) -> None:
        self.response = response
        self.requests: list[SoapRequest] = []

    def handle(self, request: SoapRequest) -> SoapResponse:
        self.requests.append(request)
        return self.response


class Started:
    def __init__(self) -> None:
        self.status = ""
        self.headers: dict[str, str] = {}

    def __call__(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        self.status, self.headers = status, dict(headers)


def _environ(body: bytes) -> dict[str, Any]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/services/wso2carbon-sts",
        "CONTENT_TYPE": "text/xml; charset=utf-8",
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_TRANSFER_ENCODING": "chunked",
        "wsgi.input": BytesIO(body),
    }
    setup_testing_defaults(environ)
    return environ


@pytest.mark.parametrize("version", list(SoapVersion))
@pytest.mark.parametrize(
    ("status", "line"), [(200, "200 OK"), (400, "400 Bad Request"), (500, "500 Internal Server Error")]
)
def test_the_endpoint_answers_through_spyne(version: SoapVersion, status: int, line: str) -> None:
    endpoint = Endpoint(SoapResponse(status, f"{version.media_type}; charset=utf-8", b"<answer/>"))
    adapter = SpyneAdapter(endpoint)  # type: ignore[arg-type]
    request = SoapRequest(b"<request/>", version, "urn:action", "192.0.2.7", True)
    environ = _environ(b"<request/>")
    before = dict(environ)
    started = Started()
    body = b"".join(adapter(environ, started, request))
    assert endpoint.requests == [request] and endpoint.requests[0] is request
    assert (started.status, body) == (line, b"<answer/>")
    assert started.headers["Content-Type"] == f"{version.media_type}; charset=utf-8"
    assert started.headers["Content-Length"] == "9"
    assert environ == before  # the caller's environ is neither changed nor used to carry the request
    assert environ["wsgi.input"].read() == b"<request/>"


def test_one_adapter_serves_requests_one_after_another() -> None:
    endpoint = Endpoint(SoapResponse(200, "text/xml; charset=utf-8", b"<ok/>"))
    adapter = SpyneAdapter(endpoint)  # type: ignore[arg-type]
    requests = [SoapRequest(f"<r{i}/>".encode(), SoapVersion.SOAP11, "", "192.0.2.7", True) for i in range(3)]
    for request in requests:
        assert b"".join(adapter(_environ(request.body), Started(), request)) == b"<ok/>"
    assert endpoint.requests == requests


def test_spyne_event_listeners_still_fire() -> None:
    """The quieter event managers still run what is registered: the service's (which the method descriptor
    lists) for the method events, in the order Spyne fires them."""
    endpoint = Endpoint(SoapResponse(200, "text/xml; charset=utf-8", b"<ok/>"))
    adapter = SpyneAdapter(endpoint)  # type: ignore[arg-type]
    fired: list[tuple[str, str]] = []
    events = ("method_call", "method_return_object")
    handlers = {event: (lambda ctx, event=event: fired.append((event, ctx.method_name))) for event in events}
    manager = SecurityTokenServiceSoap.event_manager
    for event, handler in handlers.items():
        manager.add_listener(event, handler)
    try:
        request = SoapRequest(b"<r/>", SoapVersion.SOAP11, "", "192.0.2.7", True)
        assert b"".join(adapter(_environ(request.body), Started(), request)) == b"<ok/>"
    finally:
        for event, handler in handlers.items():
            manager.del_listener(event, handler)
    assert fired == [(event, "RequestSecurityToken") for event in events]


def test_a_request_leaves_nothing_for_the_cyclic_garbage_collector() -> None:
    """Spyne's method context is freed by reference counting as the request ends (no cycle is left behind)."""
    endpoint = Endpoint(SoapResponse(200, "text/xml; charset=utf-8", b"<ok/>"))
    adapter = SpyneAdapter(endpoint)  # type: ignore[arg-type]
    request = SoapRequest(b"<r/>", SoapVersion.SOAP12, "", "192.0.2.7", True)
    b"".join(adapter(_environ(request.body), Started(), request))  # the first request builds Spyne's caches
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        gc.collect()
        for _ in range(3):
            assert b"".join(adapter(_environ(request.body), Started(), request)) == b"<ok/>"
        assert gc.collect() == 0
    finally:
        if was_enabled:
            gc.enable()
