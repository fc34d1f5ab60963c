"""The WS-Trust Issue request ``sts request`` sends: a SOAP 1.1/1.2 envelope with WS-Addressing headers, a
``wsse:Security`` header (Timestamp, UsernameToken with PasswordText or PasswordDigest) and an RST for a Bearer
token in the WS-Trust 1.3 or Feb 2005 namespace. Every value is set through lxml, never through a string template.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import uuid
from dataclasses import dataclass, field

from lxml import etree

from sts import ns
from sts.cli.common import CommandError
from sts.clock import format_instant
from sts.wss.username import compute_password_digest

TOKEN_TYPES: dict[str, str] = {
    "saml20": "urn:oasis:names:tc:SAML:2.0:assertion",
    "saml11": "urn:oasis:names:tc:SAML:1.0:assertion",
}
TRUST_VERSIONS: dict[str, str] = {"1.3": ns.WST, "2005": ns.WST05}
SOAP_VERSIONS: dict[str, str] = {"1.1": ns.S11, "1.2": ns.S12}
NO_PROOF_KEY = f"{ns.WSID}/NoProofKey"
WSA_ANONYMOUS = f"{ns.WSA}/anonymous"
TIMESTAMP_TTL = dt.timedelta(minutes=5)
NONCE_BYTES = 16


@dataclass(frozen=True, slots=True)
class RequestOptions:
    """What ``sts request`` asks for."""

    url: str
    username: str
    applies_to: str
    token_type: str | None = None  # a key of TOKEN_TYPES; None: no TokenType, the RP's default applies
    claims: tuple[str, ...] = ()
    claims_dialect: str = ns.WSO2_CLAIMS
    digest: bool = False
    soap: str = "1.1"
    trust: str = "1.3"


@dataclass(frozen=True, slots=True)
class BuiltRequest:
    """A serialized request and the HTTP headers that go with it."""

    body: bytes = field(repr=False)  # holds the password
    action: str
    headers: dict[str, str]


def issue_action(trust: str) -> str:
    """The RST/Issue action of a trust version key (``1.3`` or ``2005``)."""
    return f"{TRUST_VERSIONS[trust]}/RST/Issue"


def bearer_key_type(trust: str) -> str:
    """The Bearer key type URI: ``{wst}/Bearer`` for 1.3, ``wsid`` NoProofKey for Feb 2005."""
    return f"{ns.WST}/Bearer" if trust == "1.3" else NO_PROOF_KEY


def build_request(
    options: RequestOptions, password: str, *, now: dt.datetime | None = None, nonce: bytes | None = None
) -> BuiltRequest:
    """Build the SOAP envelope (every value set through lxml, never through a string template)."""
    soap_ns = SOAP_VERSIONS[options.soap]
    trust_ns = TRUST_VERSIONS[options.trust]
    action = issue_action(options.trust)
    now = now or dt.datetime.now(dt.UTC)
    nonce = nonce if nonce is not None else os.urandom(NONCE_BYTES)
    created = format_instant(now)
    nsmap: dict[str, str] = {
        "soap": soap_ns,
        "wsa": ns.WSA,
        "wsse": ns.WSSE,
        "wsu": ns.WSU,
        "wst": trust_ns,
        "wsp": ns.WSP,
    }
    if options.claims:
        nsmap["wsid"] = ns.WSID
    try:
        envelope = etree.Element(ns.qn(soap_ns, "Envelope"), nsmap=nsmap)
        header = etree.SubElement(envelope, ns.qn(soap_ns, "Header"))
        must_understand = ns.qn(soap_ns, "mustUnderstand")
        _sub(header, ns.WSA, "Action", action).set(must_understand, "1")
        _sub(header, ns.WSA, "MessageID", uuid.uuid4().urn)
        _sub(header, ns.WSA, "To", options.url).set(must_understand, "1")
        _sub(etree.SubElement(header, ns.qn(ns.WSA, "ReplyTo")), ns.WSA, "Address", WSA_ANONYMOUS)
        security = etree.SubElement(header, ns.qn(ns.WSSE, "Security"))
        security.set(must_understand, "1")
        timestamp = etree.SubElement(security, ns.qn(ns.WSU, "Timestamp"))
        timestamp.set(ns.qn(ns.WSU, "Id"), f"TS-{uuid.uuid4()}")
        _sub(timestamp, ns.WSU, "Created", created)
        _sub(timestamp, ns.WSU, "Expires", format_instant(now + TIMESTAMP_TTL))
        token = etree.SubElement(security, ns.qn(ns.WSSE, "UsernameToken"))
        token.set(ns.qn(ns.WSU, "Id"), f"UT-{uuid.uuid4()}")
        _sub(token, ns.WSSE, "Username", options.username)
        if options.digest:
            password_el = _sub(token, ns.WSSE, "Password", compute_password_digest(nonce, created, password))
            password_el.set("Type", ns.PASSWORD_DIGEST)
        else:
            _sub(token, ns.WSSE, "Password", password).set("Type", ns.PASSWORD_TEXT)
        _sub(token, ns.WSSE, "Nonce", base64.b64encode(nonce).decode("ascii")).set("EncodingType", ns.BASE64_BINARY)
        _sub(token, ns.WSU, "Created", created)
        body = etree.SubElement(envelope, ns.qn(soap_ns, "Body"))
        rst = etree.SubElement(body, ns.qn(trust_ns, "RequestSecurityToken"))
        if options.token_type is not None:
            _sub(rst, trust_ns, "TokenType", TOKEN_TYPES[options.token_type])
        _sub(rst, trust_ns, "RequestType", f"{trust_ns}/Issue")
        applies_to = etree.SubElement(rst, ns.qn(ns.WSP, "AppliesTo"))
        reference = etree.SubElement(applies_to, ns.qn(ns.WSA, "EndpointReference"))
        _sub(reference, ns.WSA, "Address", options.applies_to)
        _sub(rst, trust_ns, "KeyType", bearer_key_type(options.trust))
        if options.claims:
            claims = etree.SubElement(rst, ns.qn(trust_ns, "Claims"))
            claims.set("Dialect", options.claims_dialect)
            for uri in options.claims:
                claim = etree.SubElement(claims, ns.qn(ns.WSID, "ClaimType"))
                claim.set("Uri", uri)
                claim.set("Optional", "true")
    except ValueError:  # lxml refuses NUL and other characters XML cannot carry
        raise CommandError("a value contains characters that XML cannot carry") from None
    data = etree.tostring(envelope, encoding="utf-8", xml_declaration=True)
    if options.soap == "1.1":
        headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{action}"'}
    else:
        headers = {"Content-Type": f'application/soap+xml; charset=utf-8; action="{action}"'}
    return BuiltRequest(data, action, headers)


def _sub(parent: etree._Element, namespace: str, local: str, text: str) -> etree._Element:
    child = etree.SubElement(parent, ns.qn(namespace, local))
    child.text = text
    return child


__all__ = [
    "SOAP_VERSIONS",
    "TOKEN_TYPES",
    "TRUST_VERSIONS",
    "BuiltRequest",
    "RequestOptions",
    "bearer_key_type",
    "build_request",
    "issue_action",
]
