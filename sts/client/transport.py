"""Sending the request and reading the answer, with the standard library only.

The request is POSTed to the URL given and nowhere else (redirects are not followed); TLS certificates are always
verified, and plain ``http://`` is only accepted to a loopback host because the request carries a password.
The answer is untrusted: its size and parse are capped, and text from it is escaped before it reaches a terminal.
"""

from __future__ import annotations

import ipaddress
import ssl
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from lxml import etree

from sts import ns
from sts.cli.common import CommandError
from sts.cli.rst_builder import BuiltRequest
from sts.errors import MalformedMessage
from sts.xmlutil import ParserLimits, element_children, parse_untrusted, text_of

DEFAULT_TIMEOUT = 30.0
MAX_RESPONSE_BYTES = 8 << 20
# Responses and token files are untrusted input too; tokens are bigger than requests, hence larger caps.
RESPONSE_LIMITS = ParserLimits(max_text_bytes=1 << 20, max_elements=20000, max_depth=64)


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
        """Follow nothing: urllib then raises HTTPError for the 3xx answer, which send() returns as is."""
        return None


def check_url(url: str) -> None:
    """Accept https URLs, and plain http only to a loopback host (the password would travel in clear)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise CommandError(f"not an http(s) URL: {url!r}")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise CommandError("refusing to send a password over plain http to a non-loopback host: use https")


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def send(url: str, request: BuiltRequest, *, cafile: Path | None, timeout: float) -> HttpAnswer:
    """POST the request; the TLS certificate is always verified (``cafile``, else the system trust store)."""
    check_url(url)
    try:
        context = ssl.create_default_context(cafile=str(cafile) if cafile is not None else None)
    except (OSError, ssl.SSLError) as exc:
        raise CommandError(f"cannot load CA file {cafile}: {exc}") from None
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context), _NoRedirect())
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
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, ssl.SSLCertVerificationError):
            raise CommandError(f"TLS certificate of {url} not trusted: {reason.verify_message}") from None
        if isinstance(reason, ssl.SSLError):
            raise CommandError(f"TLS error with {url}: {reason}") from None
        if isinstance(reason, TimeoutError):
            raise CommandError(f"{url}: timed out after {timeout:g} s") from None
        raise CommandError(f"cannot reach {url}: {reason}") from None
    except TimeoutError:
        raise CommandError(f"{url}: timed out after {timeout:g} s") from None
    except ssl.SSLError as exc:
        raise CommandError(f"TLS error with {url}: {exc}") from None
    except OSError as exc:  # connection reset while reading, etc.
        raise CommandError(f"{url}: {exc.strerror or exc}") from None


def _read(stream: IO[bytes]) -> bytes:
    data = stream.read(MAX_RESPONSE_BYTES + 1)
    if len(data) > MAX_RESPONSE_BYTES:
        raise CommandError(f"the response is larger than {MAX_RESPONSE_BYTES} bytes")
    return data


# --- reading the answer --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fault:
    """A SOAP fault: the code as written (``prefix:local``), its namespace and the fault string."""

    code: str
    namespace: str
    reason: str

    def describe(self) -> str:
        """``code (namespace): reason``, safe for a terminal."""
        return f"{clean(self.code)} ({clean(self.namespace) or 'no namespace'}): {clean(self.reason)}"


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """The token of an RSTR and what the RSTR says about it."""

    token: etree._Element
    token_type: str
    created: str
    expires: str

    @property
    def encrypted(self) -> bool:
        """Whether the token is an EncryptedAssertion or bare EncryptedData."""
        return self.token.tag in (ns.qn(ns.SAML2, "EncryptedAssertion"), ns.qn(ns.XENC, "EncryptedData"))

    def describe(self, out: Path | None = None) -> str:
        """Token type, lifetime, whether encrypted and (``out``) where it was written: lines safe for a terminal."""
        token_type = self.token_type or etree.QName(self.token).localname
        lines = [f"token type: {clean(token_type)}"]
        if self.created or self.expires:
            lines.append(f"lifetime:   {clean(self.created or '?')} .. {clean(self.expires or '?')}")
        kind = etree.QName(self.token).localname
        lines.append(f"encrypted:  {'yes (' + kind + ')' if self.encrypted else 'no'}")
        if out is not None:
            lines.append(f"written to: {out}")
        return "\n".join(lines)


def find_fault(root: etree._Element) -> Fault | None:
    """The SOAP 1.1 or 1.2 fault in an envelope, or None."""
    for soap_ns in (ns.S11, ns.S12):
        fault = root.find(f"{ns.qn(soap_ns, 'Body')}/{ns.qn(soap_ns, 'Fault')}")
        if fault is None:
            continue
        if soap_ns == ns.S11:
            code = fault.find("faultcode")
            reason = fault.find("faultstring")
        else:
            code = fault.find(f"{ns.qn(ns.S12, 'Code')}/{ns.qn(ns.S12, 'Value')}")
            subcode = fault.find(ns.qn(ns.S12, "Code"))
            while subcode is not None:  # the innermost Subcode is the most specific
                subcode = subcode.find(ns.qn(ns.S12, "Subcode"))
                value = subcode.find(ns.qn(ns.S12, "Value")) if subcode is not None else None
                if value is not None:
                    code = value
            reason = fault.find(f"{ns.qn(ns.S12, 'Reason')}/{ns.qn(ns.S12, 'Text')}")
        code_text = text_of(code).strip() if code is not None else ""
        prefix, sep, _local = code_text.partition(":")
        namespace = ""
        if code is not None:
            namespace = code.nsmap.get(prefix if sep else None) or ""
        return Fault(code_text or "?", namespace, text_of(reason).strip() if reason is not None else "")
    return None


def find_issued_token(root: etree._Element) -> IssuedToken | None:
    """The first token in a ``RequestedSecurityToken`` of either trust version, with its RSTR's details."""
    for trust_ns in (ns.WST, ns.WST05):
        for holder in root.iter(ns.qn(trust_ns, "RequestedSecurityToken")):
            children = element_children(holder)
            if not children:
                continue
            rstr = holder.getparent()
            token_type = created = expires = ""
            if rstr is not None:
                token_type = _child_text(rstr, trust_ns, "TokenType")
                lifetime = rstr.find(ns.qn(trust_ns, "Lifetime"))
                if lifetime is not None:
                    created = _child_text(lifetime, ns.WSU, "Created")
                    expires = _child_text(lifetime, ns.WSU, "Expires")
            return IssuedToken(children[0], token_type, created, expires)
    return None


def _child_text(parent: etree._Element, namespace: str, local: str) -> str:
    child = parent.find(ns.qn(namespace, local))
    return text_of(child).strip() if child is not None else ""


def clean(text: str) -> str:
    """Untrusted text made safe for a terminal: control and format characters are escaped."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" if ord(c) < 256 else f"\\u{ord(c):04x}" for c in text)


def parse_answer(answer: HttpAnswer) -> etree._Element | None:
    """The parsed answer; None for a non-XML error page, an error for a 200 that is not XML."""
    try:
        return parse_untrusted(answer.body, RESPONSE_LIMITS)
    except MalformedMessage:
        if answer.status == 200:
            raise CommandError("the response is not well-formed XML (or exceeds the parser limits)") from None
        return None



__all__ = [
    "DEFAULT_TIMEOUT",
    "MAX_RESPONSE_BYTES",
    "RESPONSE_LIMITS",
    "Fault",
    "HttpAnswer",
    "IssuedToken",
    "check_url",
    "clean",
    "find_fault",
    "find_issued_token",
    "parse_answer",
    "send",
]
