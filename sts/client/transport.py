"""Posting a request and taking its answer, with the standard library only (SOAP 1.1 §6 and SOAP 1.2 part 2 §7:
the HTTP binding).

The request is POSTed to the URL given and nowhere else (redirects are not followed, and plain HTTP never goes
through a proxy); TLS certificates are always
verified, and plain ``http://`` is only accepted to a loopback host because the request carries a password
(:func:`sts.client.options.check_url`). The answer is untrusted: its size is capped here, its parse in
:mod:`sts.client.response`.
"""

from __future__ import annotations

import http.client
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import IO

from sts.client.errors import ClientError
from sts.client.options import Connection, check_url
from sts.client.rst import BuiltRequest

MAX_RESPONSE_BYTES = 8 << 20


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    """Status, content type and body of the server's answer."""

    status: int
    reason: str
    content_type: str
    body: bytes


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Never follow redirects: a request carrying a password goes to the URL given, nowhere else."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        """Follow nothing: urllib then raises HTTPError for the 3xx answer, which post() returns as is."""
        return None


def post(connection: Connection, request: BuiltRequest) -> HttpAnswer:
    """POST the request; the TLS certificate is always verified (``cafile``, else the system trust store); the
    connection's TLS client certificate, if any, is presented in the handshake."""
    url, timeout = connection.url, connection.timeout
    check_url(url)
    if not timeout > 0:
        raise ClientError("the timeout must be positive")
    try:
        context = ssl.create_default_context(cafile=None if connection.cafile is None else str(connection.cafile))
    except (OSError, ssl.SSLError) as exc:
        raise ClientError(f"cannot load CA file {connection.cafile}: {exc}") from None
    if connection.tls_cert is not None and connection.tls_key is not None:
        try:
            context.load_cert_chain(str(connection.tls_cert), str(connection.tls_key))
        except (OSError, ssl.SSLError) as exc:
            raise ClientError(f"cannot load the TLS client certificate {connection.tls_cert}: {exc}") from None
    handlers: list[urllib.request.BaseHandler] = [urllib.request.HTTPSHandler(context=context), _NoRedirect()]
    if url.lower().startswith("http://"):
        # Plain HTTP goes to the loopback host only, and carries a password: never through $http_proxy, which
        # would read it in clear (https through a proxy is a CONNECT tunnel, TLS end to end: left to the env).
        handlers.append(urllib.request.ProxyHandler({}))
    opener = urllib.request.build_opener(*handlers)
    http_request = urllib.request.Request(  # noqa: S310 - the scheme is checked to be http(s) above
        url, data=request.body, headers=request.headers, method="POST"
    )
    try:
        with opener.open(http_request, timeout=timeout) as response:
            return HttpAnswer(
                response.status, response.reason, response.headers.get("Content-Type", ""), _read(response)
            )
    except urllib.error.HTTPError as exc:
        with exc:
            body = _read(exc) if exc.fp is not None else b""
            return HttpAnswer(exc.code, str(exc.reason), exc.headers.get("Content-Type", ""), body)
    except http.client.HTTPException as exc:
        # Not HTTP (BadStatusLine), a header line or header count over http.client's caps (LineTooLong), a body cut
        # short (IncompleteRead): urllib lets these through as they are; the answer is unusable, not a crash.
        raise ClientError(f"{url}: not a usable HTTP answer ({type(exc).__name__})") from None
    except urllib.error.URLError as exc:
        raise _unreachable(url, timeout, exc.reason) from None
    except TimeoutError:
        raise ClientError(f"{url}: timed out after {timeout:g} s") from None
    except ssl.SSLError as exc:
        raise ClientError(f"TLS error with {url}: {exc}") from None
    except OSError as exc:  # connection reset while reading, etc.
        raise ClientError(f"{url}: {exc.strerror or exc}") from None


def _unreachable(url: str, timeout: float, reason: object) -> ClientError:
    """Why urllib could not get an answer, in words."""
    if isinstance(reason, ssl.SSLCertVerificationError):
        return ClientError(f"TLS certificate of {url} not trusted: {reason.verify_message}")
    if isinstance(reason, ssl.SSLError):
        return ClientError(f"TLS error with {url}: {reason}")
    if isinstance(reason, TimeoutError):
        return ClientError(f"{url}: timed out after {timeout:g} s")
    return ClientError(f"cannot reach {url}: {reason}")


def _read(stream: IO[bytes]) -> bytes:
    try:
        data = stream.read(MAX_RESPONSE_BYTES + 1)
    except http.client.HTTPException as exc:  # IncompleteRead: a chunked body cut short or malformed
        raise ClientError(f"the response body is not usable HTTP ({type(exc).__name__})") from None
    if len(data) > MAX_RESPONSE_BYTES:
        raise ClientError(f"the response is larger than {MAX_RESPONSE_BYTES} bytes")
    # http.client's read(amt) returns what arrived when the server closes before Content-Length bytes: a body cut
    # short is not the answer (its remaining length is what was announced and never came).
    missing = getattr(stream, "length", None)
    if isinstance(missing, int) and missing > 0:
        raise ClientError(f"the response ended {missing} bytes short of its Content-Length")
    return data


__all__ = ["MAX_RESPONSE_BYTES", "HttpAnswer", "post"]
