"""Canned WS-Trust answers, served by a tiny ``http.server`` on 127.0.0.1, for the client's unit tests.

The client's own behaviour (what it sends, how it reads faults, RSTRs, proof keys and odd answers) is tested here
against answers the real STS cannot be made to give; tests/integration/test_client_library.py drives the same
library against the real server.
"""

from __future__ import annotations

import base64
import email.message
import http.server
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest
from lxml import etree

from sts import ns
from sts.xmlutil import ParserLimits, parse_untrusted

TRUST = {"1.3": ns.WST, "2005": ns.WST05}
SOAP = {"1.1": ns.S11, "1.2": ns.S12}
PROFILE_11 = "http://docs.oasis-open.org/wss/oasis-wss-saml-token-profile-1.1"
SAMLID = f"{PROFILE_11}#SAMLID"
VALID_REASON = "The Trust service successfully validated the input"
INVALID_REASON = "The Trust service did not successfully validate the input"
# A known answer of the computed key (WS-Trust 1.3 §4.4.4; P_SHA1 of RFC 2246 §5):
# client entropy 0x00..0x1f, issuer entropy 0x20..0x3f.
CLIENT_ENTROPY = bytes(range(0x00, 0x20))
ISSUER_ENTROPY = bytes(range(0x20, 0x40))
PSHA1_KEY = bytes.fromhex("df59132c2af6d230e4337732076a14561694be12838cc00203d63c816653d75b")


def parse(body: bytes) -> etree._Element:
    """A request or answer, through the hardened parser."""
    return parse_untrusted(body, ParserLimits())


@dataclass
class Recorded:
    """One request the fake STS received."""

    path: str
    headers: email.message.Message  # case-insensitive, as HTTP header names are
    body: bytes


@dataclass
class FakeSts:
    """What to answer (status, content type, body, extra headers) and the requests received."""

    url: str = ""
    status: int = 200
    content_type: str = "text/xml; charset=utf-8"
    body: bytes = b""
    extra_headers: dict[str, str] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)

    @property
    def sent(self) -> etree._Element:
        """The one request received, parsed."""
        (request,) = self.requests
        return parse(request.body)

    def rst(self, soap: str = "1.1") -> etree._Element:
        """The RST of the one request received."""
        body = self.sent.find(f"{{{SOAP[soap]}}}Body")
        assert body is not None and len(body) == 1
        return body[0]


@contextmanager
def serving(fake: FakeSts, tls: ssl.SSLContext | None = None) -> Iterator[FakeSts]:
    """Serve ``fake`` on 127.0.0.1 (over TLS with ``tls``) until the block ends."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            fake.requests.append(Recorded(self.path, self.headers, body))
            self.send_response(fake.status)
            self.send_header("Content-Type", fake.content_type)
            self.send_header("Content-Length", str(len(fake.body)))
            for name, value in fake.extra_headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(fake.body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    fake.url = f"{'https' if tls else 'http'}://127.0.0.1:{server.server_port}/services/wso2carbon-sts"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def fake_sts_fixture(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSts]:
    """The body of the ``fake_sts`` fixtures: no proxy in the way, a fresh fake STS."""
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    with serving(FakeSts()) as fake:
        yield fake


# --- answers --------------------------------------------------------------------------------------------------------


def envelope(trust: str, build: Callable[[etree._Element, str], object], collection: bool = False) -> bytes:
    """A SOAP 1.1 answer holding one RSTR (inside an RSTRC if ``collection``), filled by ``build(rstr, wst)``."""
    wst = TRUST[trust]
    env = etree.Element(f"{{{ns.S11}}}Envelope", nsmap={"s": ns.S11})
    parent = etree.SubElement(env, f"{{{ns.S11}}}Body")
    if collection:
        parent = etree.SubElement(parent, f"{{{wst}}}RequestSecurityTokenResponseCollection", nsmap={"wst": wst})
    rstr = etree.SubElement(parent, f"{{{wst}}}RequestSecurityTokenResponse", nsmap={"wst": wst})
    build(rstr, wst)
    return etree.tostring(env)


def status_answer(valid: bool, trust: str = "1.3") -> bytes:
    """A Validate answer (WS-Trust 1.3 §7)."""

    def build(rstr: etree._Element, wst: str) -> None:
        etree.SubElement(rstr, f"{{{wst}}}TokenType").text = f"{wst}/RSTR/Status"
        status = etree.SubElement(rstr, f"{{{wst}}}Status")
        etree.SubElement(status, f"{{{wst}}}Code").text = f"{wst}/status/{'valid' if valid else 'invalid'}"
        etree.SubElement(status, f"{{{wst}}}Reason").text = VALID_REASON if valid else INVALID_REASON

    return envelope(trust, build)


def saml2_assertion(assertion_id: str = "_abc123") -> etree._Element:
    """A minimal (unsigned) SAML 2.0 assertion."""
    assertion = etree.Element(f"{{{ns.SAML2}}}Assertion", nsmap={"saml2": ns.SAML2}, ID=assertion_id, Version="2.0")
    etree.SubElement(assertion, f"{{{ns.SAML2}}}Issuer").text = "https://sts.example.com/"
    return assertion


def token_answer(
    trust: str = "1.3",
    assertion_id: str = "_renewed",
    proof: Callable[[etree._Element, str], None] | None = None,
    collection: bool = False,
) -> bytes:
    """An Issue or Renew answer: token, attached reference, lifetime, and (``proof``) a proof token."""

    def build(rstr: etree._Element, wst: str) -> None:
        etree.SubElement(rstr, f"{{{wst}}}TokenType").text = "urn:oasis:names:tc:SAML:2.0:assertion"
        holder = etree.SubElement(rstr, f"{{{wst}}}RequestedSecurityToken")
        holder.append(saml2_assertion(assertion_id))
        attached = etree.SubElement(rstr, f"{{{wst}}}RequestedAttachedReference")
        reference = etree.SubElement(attached, f"{{{ns.WSSE}}}SecurityTokenReference", nsmap={"wsse": ns.WSSE})
        etree.SubElement(reference, f"{{{ns.WSSE}}}KeyIdentifier", ValueType=SAMLID).text = assertion_id
        lifetime = etree.SubElement(rstr, f"{{{wst}}}Lifetime", nsmap={"wsu": ns.WSU})
        etree.SubElement(lifetime, f"{{{ns.WSU}}}Created").text = "2026-01-01T12:00:00Z"
        etree.SubElement(lifetime, f"{{{ns.WSU}}}Expires").text = "2026-01-01T12:30:00Z"
        if proof is not None:
            proof(rstr, wst)

    return envelope(trust, build, collection)


def computed_key_proof(key_size: str | None = "256") -> Callable[[etree._Element, str], None]:
    """RequestedProofToken/ComputedKey PSHA1 with the vector's issuer entropy, and ``KeySize``."""

    def build(rstr: etree._Element, wst: str) -> None:
        proof = etree.SubElement(rstr, f"{{{wst}}}RequestedProofToken")
        etree.SubElement(proof, f"{{{wst}}}ComputedKey").text = f"{wst}/CK/PSHA1"
        entropy = etree.SubElement(rstr, f"{{{wst}}}Entropy")
        secret = etree.SubElement(entropy, f"{{{wst}}}BinarySecret", Type=f"{wst}/Nonce")
        secret.text = base64.b64encode(ISSUER_ENTROPY).decode()
        if key_size is not None:
            etree.SubElement(rstr, f"{{{wst}}}KeySize").text = key_size
        etree.SubElement(rstr, f"{{{wst}}}KeyType").text = f"{wst}/SymmetricKey"

    return build


def binary_secret_proof(key: bytes) -> Callable[[etree._Element, str], None]:
    """RequestedProofToken/BinarySecret holding ``key``."""

    def build(rstr: etree._Element, wst: str) -> None:
        proof = etree.SubElement(rstr, f"{{{wst}}}RequestedProofToken")
        secret = etree.SubElement(proof, f"{{{wst}}}BinarySecret", Type=f"{wst}/SymmetricKey")
        secret.text = base64.b64encode(key).decode()

    return build


def cancel_answer(trust: str = "1.3") -> bytes:
    """A Cancel answer (WS-Trust 1.3 §6)."""
    return envelope(trust, lambda rstr, wst: etree.SubElement(rstr, f"{{{wst}}}RequestedTokenCancelled"))


def soap11_fault(code: str = "InvalidRequest", reason: str = "The request was invalid or malformed") -> bytes:
    """A SOAP 1.1 fault with a ``wst:`` code."""
    return (
        f'<s:Envelope xmlns:s="{ns.S11}"><s:Body><s:Fault>'
        f'<faultcode xmlns:wst="{ns.WST}">wst:{code}</faultcode>'
        f"<faultstring>{reason}</faultstring>"
        "</s:Fault></s:Body></s:Envelope>"
    ).encode()


def soap12_fault() -> bytes:
    """A SOAP 1.2 fault whose innermost Subcode is ``wsse:FailedAuthentication``."""
    return (
        f'<e:Envelope xmlns:e="{ns.S12}"><e:Body><e:Fault><e:Code><e:Value>e:Sender</e:Value>'
        f'<e:Subcode><e:Value xmlns:wsse="{ns.WSSE}">wsse:FailedAuthentication</e:Value></e:Subcode></e:Code>'
        '<e:Reason><e:Text xml:lang="en">The security token could not be authenticated or authorized</e:Text>'
        "</e:Reason></e:Fault></e:Body></e:Envelope>"
    ).encode()
