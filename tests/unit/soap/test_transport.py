"""Tests for sts.soap.transport: the plain-WSGI front door (security-catalogue rows T01, T02, T04-T07)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from typing import Any

import pytest

from sts.netaddr import AddressSet
from sts.soap.endpoint import SoapRequest
from sts.soap.envelope import SoapVersion
from sts.soap.transport import HEALTH_PATH, WSO2_PATH, Transport, TransportPolicy

CAP = 1024
WSDL = b"<wsdl:definitions xmlns:wsdl='http://schemas.xmlsoap.org/wsdl/'/>"
BODY = b"<soap:Envelope/>"
PROXY = "10.0.0.5"


class RecordingStream:
    """A wsgi.input that serves ``data`` (or endless bytes) and records every read."""

    def __init__(self, data: bytes = b"", endless: bool = False) -> None:
        self._data = data
        self._endless = endless
        self.reads: list[int] = []
        self.bytes_read = 0

    def read(self, size: int = -1) -> bytes:
        self.reads.append(size)
        if self._endless:
            chunk = b"A" * (size if size >= 0 else 1 << 20)
        else:
            chunk = self._data[:size] if size >= 0 else self._data
            self._data = self._data[len(chunk) :]
        self.bytes_read += len(chunk)
        return chunk


class Captured:
    """start_response + the dispatcher's record of what reached it."""

    def __init__(self) -> None:
        self.status = ""
        self.headers: dict[str, str] = {}
        self.requests: list[SoapRequest] = []

    def start_response(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        self.status = status
        self.headers = dict(headers)

    def dispatch(self, environ: dict[str, Any], start_response: Any, request: SoapRequest) -> Iterable[bytes]:
        self.requests.append(request)
        start_response("200 OK", [("Content-Type", "text/xml")])
        return [b"dispatched"]


def _transport(captured: Captured, cap: int = CAP, proxies: frozenset[str] = frozenset()) -> Transport:
    policy = TransportPolicy(max_body_bytes=cap, trusted_proxies=AddressSet.parse(proxies))
    return Transport(policy, WSDL, captured.dispatch)


def _environ(
    method: str = "POST",
    path: str = WSO2_PATH,
    body: bytes | None = BODY,
    content_type: str | None = "text/xml; charset=utf-8",
    query: str = "",
    stream: Any = None,
    **extra: str,
) -> dict[str, Any]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "REMOTE_ADDR": "192.0.2.10",
        "wsgi.url_scheme": "https",
        "wsgi.input": stream if stream is not None else io.BytesIO(body or b""),
    }
    if content_type is not None:
        environ["CONTENT_TYPE"] = content_type
    if body is not None and stream is None:
        environ["CONTENT_LENGTH"] = str(len(body))
    environ.update(extra)
    return environ


def _call(environ: dict[str, Any], cap: int = CAP, proxies: frozenset[str] = frozenset()) -> tuple[Captured, bytes]:
    captured = Captured()
    body = b"".join(_transport(captured, cap, proxies)(environ, captured.start_response))
    return captured, body


# --- health check and WSDL -----------------------------------------------------------------------------------------


def test_healthz_answers_json() -> None:
    captured, body = _call(_environ("GET", HEALTH_PATH, body=None, content_type=None))
    assert captured.status == "200 OK"
    assert captured.headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"status": "ok"}
    assert captured.headers["Content-Length"] == str(len(body))
    assert captured.requests == []


def test_healthz_refuses_post() -> None:
    captured, _body = _call(_environ("POST", HEALTH_PATH))
    assert captured.status.startswith("405")
    assert captured.requests == []


@pytest.mark.parametrize("query", ["wsdl", "WSDL", "wsdl="])
def test_get_wsdl_serves_the_given_bytes(query: str) -> None:
    captured, body = _call(_environ("GET", body=None, content_type=None, query=query))
    assert captured.status == "200 OK"
    assert body == WSDL
    assert captured.headers["Content-Type"] == "text/xml; charset=utf-8"
    assert captured.requests == []


@pytest.mark.parametrize(
    "path", ["/", "/services", "/services/wso2carbon-sts/", "/services/other", "/healthz/x", "/SERVICES/wso2carbon-sts"]
)
def test_unknown_path_404(path: str) -> None:
    captured, _body = _call(_environ(path=path))
    assert captured.status.startswith("404")
    assert captured.requests == []


def test_wsdl_on_unknown_path_404() -> None:
    captured, _body = _call(_environ("GET", "/nope", body=None, content_type=None, query="wsdl"))
    assert captured.status.startswith("404")


@pytest.mark.parametrize(
    "path",
    [WSO2_PATH, WSO2_PATH + ".wso2carbon-stsHttpsSoap11Endpoint", WSO2_PATH + ".wso2carbon-stsHttpsSoap12Endpoint"],
)
def test_endpoint_paths_dispatch(path: str) -> None:
    captured, body = _call(_environ(path=path))
    assert body == b"dispatched"
    assert len(captured.requests) == 1
    assert captured.requests[0].body == BODY


# --- T05: methods ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "OPTIONS", "PATCH", "HEAD"])
def test_t05_non_post_405_with_allow(method: str) -> None:
    captured, _body = _call(_environ(method))
    assert captured.status == "405 Method Not Allowed"
    assert captured.headers["Allow"] == "POST"
    assert captured.requests == []


def test_t05_get_with_other_query_405() -> None:
    captured, _body = _call(_environ("GET", body=None, content_type=None, query="xsd=1"))
    assert captured.status.startswith("405")


# --- T04 / T06: media type and encoding ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        None,
        "",
        'multipart/related; type="application/xop+xml"; boundary=x',
        "application/xml",
        "text/plain",
        "text/xml-ish",
    ],
    ids=["json", "missing", "empty", "multipart", "application-xml", "text-plain", "lookalike"],
)
def test_t04_wrong_media_type_415(content_type: str | None) -> None:
    stream = RecordingStream(BODY)
    captured, _body = _call(_environ(content_type=content_type, stream=stream, CONTENT_LENGTH=str(len(BODY))))
    assert captured.status == "415 Unsupported Media Type"
    assert captured.requests == []
    assert stream.bytes_read == 0


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "GZIP"])
def test_t06_compressed_body_415(encoding: str) -> None:
    captured, _body = _call(_environ(HTTP_CONTENT_ENCODING=encoding))
    assert captured.status == "415 Unsupported Media Type"
    assert captured.requests == []


def test_t06_identity_encoding_accepted() -> None:
    captured, _body = _call(_environ(HTTP_CONTENT_ENCODING="identity"))
    assert len(captured.requests) == 1


@pytest.mark.parametrize(
    ("content_type", "version"),
    [
        ("text/xml", SoapVersion.SOAP11),
        ("Text/XML; charset=UTF-8", SoapVersion.SOAP11),
        ("application/soap+xml", SoapVersion.SOAP12),
        ("application/soap+xml;charset=utf-8", SoapVersion.SOAP12),
    ],
)
def test_media_type_selects_soap_version(content_type: str, version: SoapVersion) -> None:
    captured, _body = _call(_environ(content_type=content_type))
    assert captured.requests[0].version is version


@pytest.mark.parametrize(
    ("content_type", "charset"),
    [
        ("text/xml", None),
        ("text/xml; charset=UTF-16", "UTF-16"),
        ('application/soap+xml; charset="utf-8"; action="urn:a"', "utf-8"),
        ("text/xml; charset=iso-8859-1", "iso-8859-1"),
    ],
)
def test_t11_charset_parameter_reaches_the_parser(content_type: str, charset: str | None) -> None:
    """Handed on as sent: the parser decides whether it names UTF-8/UTF-16 and agrees with the bytes."""
    captured, _body = _call(_environ(content_type=content_type))
    assert captured.requests[0].charset == charset


# --- T01 / T02: body cap ------------------------------------------------------------------------------------------


def test_t01_declared_length_over_cap_413_without_reading() -> None:
    stream = RecordingStream(b"A" * (10 * 1024 * 1024))
    captured, _body = _call(_environ(stream=stream, CONTENT_LENGTH=str(10 * 1024 * 1024)))
    assert captured.status == "413 Content Too Large"
    assert captured.headers.get("Connection") == "close"
    assert stream.reads == []
    assert captured.requests == []


def test_t01_declared_length_cap_plus_one_413() -> None:
    stream = RecordingStream(b"A" * (CAP + 1))
    captured, _body = _call(_environ(stream=stream, CONTENT_LENGTH=str(CAP + 1)))
    assert captured.status.startswith("413")
    assert stream.reads == []


def test_t01_body_exactly_at_cap_accepted() -> None:
    data = b"A" * CAP
    captured, _body = _call(_environ(body=data))
    assert captured.requests[0].body == data


def test_t02_chunked_body_over_cap_413_reading_at_most_cap_plus_one() -> None:
    stream = RecordingStream(endless=True)
    environ = _environ(stream=stream, HTTP_TRANSFER_ENCODING="chunked")
    assert "CONTENT_LENGTH" not in environ
    captured, _body = _call(environ)
    assert captured.status == "413 Content Too Large"
    assert stream.bytes_read <= CAP + 1
    assert stream.bytes_read == CAP + 1
    assert captured.requests == []


def test_t02_large_cap_chunked_read_bounded() -> None:
    cap = 200_000  # more than one internal read chunk
    stream = RecordingStream(endless=True)
    captured, _body = _call(_environ(stream=stream, HTTP_TRANSFER_ENCODING="chunked"), cap=cap)
    assert captured.status.startswith("413")
    assert stream.bytes_read == cap + 1


def test_t02_chunked_body_under_cap_read_fully() -> None:
    stream = RecordingStream(BODY)
    captured, _body = _call(_environ(stream=stream, HTTP_TRANSFER_ENCODING="chunked"))
    assert captured.requests[0].body == BODY


def test_t02_lying_content_length_still_capped() -> None:
    # declares 10 bytes but the stream keeps giving: whatever the answer, never more than cap + 1 bytes read
    stream = RecordingStream(endless=True)
    _call(_environ(stream=stream, CONTENT_LENGTH="10"))
    assert stream.bytes_read <= CAP + 1


def test_t03_never_reads_past_content_length() -> None:
    stream = RecordingStream(BODY + b"X" * 100)
    captured, _body = _call(_environ(stream=stream, CONTENT_LENGTH=str(len(BODY))))
    assert stream.bytes_read <= len(BODY)
    assert captured.requests[0].body == BODY


def test_invalid_content_length_400() -> None:
    stream = RecordingStream(BODY)
    captured, _body = _call(_environ(stream=stream, CONTENT_LENGTH="abc"))
    assert captured.status == "400 Bad Request"
    assert captured.requests == []


# --- SOAP action ---------------------------------------------------------------------------------------------------


ISSUE = "http://docs.oasis-open.org/ws-sx/ws-trust/200512/RST/Issue"


@pytest.mark.parametrize("header", [f'"{ISSUE}"', ISSUE, f' "{ISSUE}" '])
def test_soapaction_quotes_stripped(header: str) -> None:
    captured, _body = _call(_environ(HTTP_SOAPACTION=header))
    assert captured.requests[0].http_action == ISSUE


def test_empty_soapaction() -> None:
    captured, _body = _call(_environ(HTTP_SOAPACTION='""'))
    assert captured.requests[0].http_action == ""


@pytest.mark.parametrize(
    "content_type",
    [f'application/soap+xml; charset=utf-8; action="{ISSUE}"', f"application/soap+xml;action={ISSUE}"],
)
def test_soap12_action_parameter_read(content_type: str) -> None:
    captured, _body = _call(_environ(content_type=content_type))
    request = captured.requests[0]
    assert request.version is SoapVersion.SOAP12
    assert request.http_action == ISSUE


# --- T07: secure transport -------------------------------------------------------------------------------------------


def _secure(proxies: frozenset[str] = frozenset(), **extra: str) -> bool:
    captured, _body = _call(_environ(**extra), proxies=proxies)
    return captured.requests[0].secure_transport


def test_t07_https_socket_is_secure() -> None:
    assert _secure(**{"wsgi.url_scheme": "https"}) is True


def test_t07_http_socket_is_not_secure() -> None:
    assert _secure(**{"wsgi.url_scheme": "http"}) is False


def test_t07_forwarded_https_from_trusted_proxy_is_secure() -> None:
    extra = {"wsgi.url_scheme": "http", "REMOTE_ADDR": PROXY, "HTTP_X_FORWARDED_PROTO": "https"}
    assert _secure(frozenset({PROXY}), **extra) is True


def test_t07_forwarded_https_from_untrusted_peer_is_not_secure() -> None:
    extra = {"wsgi.url_scheme": "http", "REMOTE_ADDR": "192.0.2.66", "HTTP_X_FORWARDED_PROTO": "https"}
    assert _secure(frozenset({PROXY}), **extra) is False
    assert _secure(frozenset(), **extra) is False


def test_t07_forwarded_http_from_trusted_proxy_is_not_secure() -> None:
    extra = {"wsgi.url_scheme": "https", "REMOTE_ADDR": PROXY, "HTTP_X_FORWARDED_PROTO": "http"}
    assert _secure(frozenset({PROXY}), **extra) is False


def test_t07_trusted_proxy_without_header_over_http_is_not_secure() -> None:
    extra = {"wsgi.url_scheme": "http", "REMOTE_ADDR": PROXY}
    assert _secure(frozenset({PROXY}), **extra) is False


@pytest.mark.parametrize("proxies", [frozenset(), frozenset({PROXY})], ids=["no-proxies", "other-proxy"])
@pytest.mark.parametrize("forwarded", ["http", "https"])
def test_t07_forwarded_header_from_untrusted_peer_ignored_on_tls(proxies: frozenset[str], forwarded: str) -> None:
    extra = {"wsgi.url_scheme": "https", "REMOTE_ADDR": "192.0.2.66", "HTTP_X_FORWARDED_PROTO": forwarded}
    assert _secure(proxies, **extra) is True


def test_client_address_passed_on() -> None:
    captured, _body = _call(_environ(REMOTE_ADDR="198.51.100.7"))
    assert captured.requests[0].client_address == "198.51.100.7"


# --- client address behind trusted proxies -------------------------------------------------------------------------


def test_client_address_is_the_peer_without_trusted_proxies() -> None:
    captured, _ = _call(_environ(HTTP_X_FORWARDED_FOR="203.0.113.7"))
    assert captured.requests[0].client_address == "192.0.2.10"


def test_client_address_from_forwarded_for_behind_a_trusted_proxy() -> None:
    proxies = frozenset({"192.0.2.10", "10.0.0.2"})
    captured, _ = _call(_environ(HTTP_X_FORWARDED_FOR="198.51.100.1, 203.0.113.7, 10.0.0.2"), proxies=proxies)
    assert captured.requests[0].client_address == "203.0.113.7"  # the right-most hop not a proxy of ours


def _client(forwarded_for: str | None, proxies: frozenset[str], remote: str = "127.0.0.1") -> str:
    extra = {"REMOTE_ADDR": remote} if forwarded_for is None else {
        "REMOTE_ADDR": remote, "HTTP_X_FORWARDED_FOR": forwarded_for
    }
    captured, _ = _call(_environ(**extra), proxies=proxies)
    return captured.requests[0].client_address


def test_client_address_behind_a_trusted_network() -> None:
    """A CIDR entry used to collapse every client into the proxy's own address (issue 12, item 13)."""
    proxies = frozenset({"127.0.0.0/8"})
    assert _client("198.51.100.1", proxies) == "198.51.100.1"
    assert _client("198.51.100.2", proxies, remote="127.0.0.2") == "198.51.100.2"


def test_client_address_skips_every_trusted_hop_of_a_chain() -> None:
    proxies = frozenset({"127.0.0.0/8", "10.0.0.0/24"})
    # "10.9.9.9, 127.0.0.7" on the left were written by the client; 203.0.113.7 is what our first proxy saw.
    assert _client("10.9.9.9, 127.0.0.7, 203.0.113.7, 10.0.0.3", proxies) == "203.0.113.7"


def test_client_address_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored() -> None:
    assert _client("203.0.113.9", frozenset({"10.0.0.0/24"}), remote="198.51.100.4") == "198.51.100.4"


def test_client_address_is_canonical() -> None:
    proxies = frozenset({"10.0.0.5"})
    assert _client("2001:DB8:0:0::1", proxies, remote="10.0.0.5") == "2001:db8::1"
    assert _client("[2001:db8::2]:4711", proxies, remote="10.0.0.5") == "2001:db8::2"
    assert _client("198.51.100.8:51234", proxies, remote="10.0.0.5") == "198.51.100.8"
    assert _client(None, frozenset(), remote="::ffff:198.51.100.9") == "198.51.100.9"


def test_client_address_of_a_hop_that_is_no_address() -> None:
    """A proxy that writes "unknown" does not make the proxy's own address (or an exempt one) the client's."""
    assert _client("198.51.100.1, unknown", frozenset({"127.0.0.1"})) == "unknown"


def test_client_address_all_hops_trusted_is_the_peer() -> None:
    assert _client("127.0.0.9", frozenset({"127.0.0.0/8"}), remote="127.0.0.1") == "127.0.0.1"


@pytest.mark.parametrize(
    ("header", "value"),
    [("HTTP_X_FORWARDED_PROTO", "https"), ("HTTP_X_FORWARDED_SSL", "on"), ("HTTP_X_FORWARDED_PROTOCOL", "ssl")],
)
def test_t07_each_forwarded_scheme_header_from_a_trusted_network(header: str, value: str) -> None:
    extra = {"wsgi.url_scheme": "http", "REMOTE_ADDR": "10.0.0.77", header: value}
    assert _secure(frozenset({"10.0.0.0/24"}), **extra) is True
    assert _secure(frozenset({"10.0.1.0/24"}), **extra) is False


def test_t07_contradicting_forwarded_scheme_headers_are_not_secure() -> None:
    extra = {"wsgi.url_scheme": "http", "REMOTE_ADDR": PROXY, "HTTP_X_FORWARDED_SSL": "on",
             "HTTP_X_FORWARDED_PROTO": "http"}
    assert _secure(frozenset({PROXY}), **extra) is False


def test_t07_repeated_forwarded_proto_is_not_secure() -> None:
    """gunicorn joins repeated headers with commas: "https,http" is no statement of HTTPS."""
    extra = {"wsgi.url_scheme": "http", "REMOTE_ADDR": PROXY, "HTTP_X_FORWARDED_PROTO": "https,http"}
    assert _secure(frozenset({PROXY}), **extra) is False
