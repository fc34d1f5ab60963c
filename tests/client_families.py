"""Request envelopes shaped like the main WS-Trust client families (wstrust-protocol.md §3, §15, §17 R13-R23, R40-R44).

Each builder returns a :class:`ClientRequest`: the serialized envelope plus the HTTP headers that client family
sends, and what a test needs to judge the answer (SOAP, trust and WS-Addressing namespaces, the MessageID).
Everything is built with lxml so that the namespace tricks real clients play (default namespaces, one prefix
bound to two namespaces, namespace-qualified attributes) are exactly what goes on the wire.

Nothing here uses the STS's own code: the shapes come from the protocol reference, not from the implementation.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from lxml import etree

S11 = "http://schemas.xmlsoap.org/soap/envelope/"
S12 = "http://www.w3.org/2003/05/soap-envelope"
WST = "http://docs.oasis-open.org/ws-sx/ws-trust/200512"
WST05 = "http://schemas.xmlsoap.org/ws/2005/02/trust"
WSP = "http://schemas.xmlsoap.org/ws/2004/09/policy"
WSP15 = "http://www.w3.org/ns/ws-policy"
WSA = "http://www.w3.org/2005/08/addressing"
WSA04 = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
WSID = "http://schemas.xmlsoap.org/ws/2005/05/identity"
PW_TEXT = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordText"
PW_DIGEST = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest"
B64 = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary"
PROFILE = "http://docs.oasis-open.org/wss/oasis-wss-saml-token-profile-1.1"
SAML11_PROFILE = f"{PROFILE}#SAMLV1.1"
SAML20_PROFILE = f"{PROFILE}#SAMLV2.0"
SAML11_URN = "urn:oasis:names:tc:SAML:1.0:assertion"
SAML20_URN = "urn:oasis:names:tc:SAML:2.0:assertion"
NO_PROOF_KEY = f"{WSID}/NoProofKey"
WSO2_CLAIMS = "http://wso2.org/claims"
ANONYMOUS = {WSA: f"{WSA}/anonymous", WSA04: f"{WSA04}/role/anonymous"}
DEFAULT_URL = "https://localhost:9443/services/wso2carbon-sts"


@dataclass(frozen=True)
class ClientRequest:
    """One request as a client family sends it."""

    body: bytes = field(repr=False)  # holds the password
    headers: dict[str, str]
    soap_ns: str
    trust_ns: str
    wsa_ns: str | None = None  # WS-Addressing namespace of the headers, None: no WS-Addressing
    message_id: str | None = None

    @property
    def soap12(self) -> bool:
        return self.soap_ns == S12

    @property
    def action(self) -> str:
        return f"{self.trust_ns}/RST/Issue"


# --- small helpers -----------------------------------------------------------------------------------------------


def q(namespace: str, local: str) -> str:
    return f"{{{namespace}}}{local}"


def sub(parent: etree._Element, namespace: str, local: str, text: str | None = None, **nsmap: str) -> etree._Element:
    """A child element; ``nsmap`` declares prefixes on it (``_default`` for the default namespace)."""
    declared = {(None if k == "_default" else k): v for k, v in nsmap.items()}
    child = etree.SubElement(parent, q(namespace, local), nsmap=declared or None)  # type: ignore[arg-type]
    if text is not None:
        child.text = text
    return child


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def instant_z(moment: dt.datetime) -> str:
    """Whole seconds with ``Z`` (Microsoft's client code)."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def instant_millis(moment: dt.datetime) -> str:
    """Milliseconds with ``Z`` (WSS4J, R16)."""
    moment = moment.astimezone(dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def instant_offset(moment: dt.datetime) -> str:
    """Whole seconds with ``+00:00`` (a common Python SOAP library, R16)."""
    return moment.astimezone(dt.UTC).replace(microsecond=0).isoformat()


def password_digest(nonce: bytes, created_text: str, password: str) -> str:
    """``Base64(SHA-1(nonce + created + password))`` over the Created text exactly as sent (§15)."""
    return base64.b64encode(hashlib.sha1(nonce + created_text.encode() + password.encode()).digest()).decode()


def message_id() -> str:
    return uuid.uuid4().urn


def serialize(envelope: etree._Element, *, pretty: bool = False) -> bytes:
    return etree.tostring(envelope, encoding="utf-8", xml_declaration=True, pretty_print=pretty)


def soap11_headers(action: str) -> dict[str, str]:
    return {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{action}"'}


def soap12_headers(action: str) -> dict[str, str]:
    return {"Content-Type": f'application/soap+xml; charset=utf-8; action="{action}"'}


def _addressing(
    header: etree._Element,
    env_ns: str,
    wsa_ns: str,
    action: str,
    url: str,
    *,
    must_understand: str | None = "1",
) -> str:
    """Action, MessageID, ReplyTo anonymous, To; ``mustUnderstand`` on Action and To. Returns the MessageID."""
    mid = message_id()
    action_el = sub(header, wsa_ns, "Action", action)
    sub(header, wsa_ns, "MessageID", mid)
    reply_to = sub(header, wsa_ns, "ReplyTo")
    sub(reply_to, wsa_ns, "Address", ANONYMOUS[wsa_ns])
    to = sub(header, wsa_ns, "To", url)
    if must_understand is not None:
        action_el.set(q(env_ns, "mustUnderstand"), must_understand)
        to.set(q(env_ns, "mustUnderstand"), must_understand)
    return mid


def _applies_to(rst: etree._Element, address: str) -> etree._Element:
    applies = sub(rst, WSP, "AppliesTo", wsp=WSP)
    epr = sub(applies, WSA, "EndpointReference", wsa=WSA)
    sub(epr, WSA, "Address", address)
    return applies


# --- the generic request used by the interop matrix -------------------------------------------------------------


def generic_rst(
    username: str,
    password: str,
    applies_to: str,
    *,
    soap12: bool,
    trust_ns: str = WST,
    token_type: str | None = SAML20_URN,
    key_type: str | None = None,
    wsa_ns: str | None = WSA,
    url: str = DEFAULT_URL,
    claims: Sequence[str] = (),
) -> ClientRequest:
    """A plain, spec-shaped Issue request: PasswordText with Nonce and Created, Timestamp, optional WS-Addressing.

    SOAP 1.2 carries the action in the ``Content-Type`` ``action`` parameter, SOAP 1.1 in ``SOAPAction``.
    """
    env_ns = S12 if soap12 else S11
    action = f"{trust_ns}/RST/Issue"
    now = utc_now()
    nonce = os.urandom(16)
    envelope = etree.Element(q(env_ns, "Envelope"), nsmap={"s": env_ns, "wsse": WSSE, "wsu": WSU})
    header = sub(envelope, env_ns, "Header")
    mid = _addressing(header, env_ns, wsa_ns, action, url) if wsa_ns is not None else None
    security = sub(header, WSSE, "Security")
    security.set(q(env_ns, "mustUnderstand"), "1")
    timestamp = sub(security, WSU, "Timestamp")
    timestamp.set(q(WSU, "Id"), "TS-1")
    sub(timestamp, WSU, "Created", instant_z(now))
    sub(timestamp, WSU, "Expires", instant_z(now + dt.timedelta(minutes=5)))
    token = sub(security, WSSE, "UsernameToken")
    token.set(q(WSU, "Id"), "UT-1")
    sub(token, WSSE, "Username", username)
    sub(token, WSSE, "Password", password).set("Type", PW_TEXT)
    sub(token, WSSE, "Nonce", base64.b64encode(nonce).decode()).set("EncodingType", B64)
    sub(token, WSU, "Created", instant_z(now))
    body = sub(envelope, env_ns, "Body")
    rst = sub(body, trust_ns, "RequestSecurityToken", wst=trust_ns)
    if token_type is not None:
        sub(rst, trust_ns, "TokenType", token_type)
    sub(rst, trust_ns, "RequestType", f"{trust_ns}/Issue")
    _applies_to(rst, applies_to)
    sub(rst, trust_ns, "KeyType", key_type or f"{trust_ns}/Bearer")
    if claims:
        claims_el = sub(rst, trust_ns, "Claims", wsid=WSID)
        claims_el.set("Dialect", WSO2_CLAIMS)
        for uri in claims:
            sub(claims_el, WSID, "ClaimType").set("Uri", uri)
    headers = soap12_headers(action) if soap12 else soap11_headers(action)
    return ClientRequest(serialize(envelope), headers, env_ns, trust_ns, wsa_ns, mid)


# --- Microsoft WS-Trust client code / WCF (R13, R14, R22, R23) --------------------------------------------------


def wcf_ms_client(
    username: str, password: str, applies_to: str, *, feb2005: bool = False, url: str = DEFAULT_URL
) -> ClientRequest:
    """SOAP 1.2 with no ``action`` parameter but a ``SOAPAction`` header; WS-Addressing 1.0 with mustUnderstand on
    Action, To and Security; Timestamp ``_0`` valid 10 minutes in whole seconds; a UsernameToken with ``wsu:Id``,
    a Password without ``Type`` and no Nonce/Created; an RST with only AppliesTo, KeyType and RequestType.

    ``feb2005``: the same client against a ``/trust/2005`` endpoint: ``{wst05}`` and KeyType ``wsid:NoProofKey``.
    """
    trust_ns = WST05 if feb2005 else WST
    action = f"{trust_ns}/RST/Issue"
    created = utc_now().replace(microsecond=0)
    envelope = etree.Element(q(S12, "Envelope"), nsmap={"s": S12, "a": WSA, "u": WSU})
    header = sub(envelope, S12, "Header")
    mid = _addressing(header, S12, WSA, action, url)
    security = sub(header, WSSE, "Security", o=WSSE)
    security.set(q(S12, "mustUnderstand"), "1")
    timestamp = sub(security, WSU, "Timestamp")
    timestamp.set(q(WSU, "Id"), "_0")
    sub(timestamp, WSU, "Created", instant_z(created))
    sub(timestamp, WSU, "Expires", instant_z(created + dt.timedelta(minutes=10)))
    token = sub(security, WSSE, "UsernameToken")
    token.set(q(WSU, "Id"), f"uuid-{uuid.uuid4()}-1")
    sub(token, WSSE, "Username", username)
    sub(token, WSSE, "Password", password)  # no Type (R13)
    body = sub(envelope, S12, "Body")
    rst = sub(body, trust_ns, "RequestSecurityToken", trust=trust_ns)
    applies = sub(rst, WSP, "AppliesTo", wsp=WSP)
    epr = sub(applies, WSA, "EndpointReference", wsa=WSA)
    sub(epr, WSA, "Address", applies_to)
    sub(rst, trust_ns, "KeyType", NO_PROOF_KEY if feb2005 else f"{WST}/Bearer")
    sub(rst, trust_ns, "RequestType", f"{trust_ns}/Issue")
    headers = {"Content-Type": "application/soap+xml; charset=utf-8", "SOAPAction": f'"{action}"'}
    return ClientRequest(serialize(envelope), headers, S12, trust_ns, WSA, mid)


# --- Apache CXF / WSS4J (R16, R21) --------------------------------------------------------------------------------


def java_wss4j(
    username: str, password: str, applies_to: str, *, token_type: str = SAML20_PROFILE, url: str = DEFAULT_URL
) -> ClientRequest:
    """SOAP 1.1 with a quoted ``SOAPAction``; WS-Addressing 1.0; Timestamp ``TS-1`` with millisecond Created;
    PasswordText with Nonce and millisecond Created; TokenType in the token-profile spelling, KeyType Bearer and
    AppliesTo in the W3C WS-Policy namespace.
    """
    action = f"{WST}/RST/Issue"
    now = utc_now()
    nonce = os.urandom(16)
    envelope = etree.Element(q(S11, "Envelope"), nsmap={"soap": S11})
    header = sub(envelope, S11, "Header")
    security = sub(header, WSSE, "Security", wsse=WSSE, wsu=WSU)
    security.set(q(S11, "mustUnderstand"), "1")
    timestamp = sub(security, WSU, "Timestamp")
    timestamp.set(q(WSU, "Id"), "TS-1")
    sub(timestamp, WSU, "Created", instant_millis(now))
    sub(timestamp, WSU, "Expires", instant_millis(now + dt.timedelta(minutes=5)))
    token = sub(security, WSSE, "UsernameToken")
    token.set(q(WSU, "Id"), "UsernameToken-2")
    sub(token, WSSE, "Username", username)
    sub(token, WSSE, "Password", password).set("Type", PW_TEXT)
    sub(token, WSSE, "Nonce", base64.b64encode(nonce).decode()).set("EncodingType", B64)
    sub(token, WSU, "Created", instant_millis(now))
    mid = message_id()
    sub(header, WSA, "Action", action, wsa=WSA)
    sub(header, WSA, "MessageID", mid, wsa=WSA)
    sub(header, WSA, "To", url, wsa=WSA)
    reply_to = sub(header, WSA, "ReplyTo", wsa=WSA)
    sub(reply_to, WSA, "Address", ANONYMOUS[WSA])
    body = sub(envelope, S11, "Body")
    rst = sub(body, WST, "RequestSecurityToken", wst=WST)
    sub(rst, WST, "RequestType", f"{WST}/Issue")
    applies = sub(rst, WSP15, "AppliesTo", wsp=WSP15)  # W3C WS-Policy 1.5 (R21)
    epr = sub(applies, WSA, "EndpointReference", wsa=WSA)
    sub(epr, WSA, "Address", applies_to)
    sub(rst, WST, "TokenType", token_type)
    sub(rst, WST, "KeyType", f"{WST}/Bearer")
    return ClientRequest(serialize(envelope), soap11_headers(action), S11, WST, WSA, mid)


# --- WSO2 sample client / Rahas (R17, R21, R40-R45) ---------------------------------------------------------------


def _wrapped(value: str, indent: str = "            ") -> str:
    """A URI or dateTime the way WSO2's pretty-printed sample requests carry it (R17)."""
    return f"\n{indent}{value}\n{indent[:-4]}"


def wso2_rahas(
    username: str,
    password: str,
    applies_to: str,
    *,
    token_type: str | None = SAML11_PROFILE,
    claims: Sequence[str] = (f"{WSO2_CLAIMS}/givenname", f"{WSO2_CLAIMS}/emailaddress"),
    url: str = DEFAULT_URL,
) -> ClientRequest:
    """Feb 2005 trust; WS-Addressing Submission (2004/08) with the ``role/anonymous`` ReplyTo; SOAP 1.2 with
    ``mustUnderstand="true"``; pretty-printed, with newlines around URI and dateTime values (never around the
    password); TokenType ``#SAMLV1.1``; KeyType ``{wst05}/Bearer``; claims whose dialect is the namespace-qualified
    ``wst:Dialect`` attribute, its prefix ``wsp`` bound to the trust namespace on ``Claims`` itself (R40).
    """
    action = f"{WST05}/RST/Issue"
    now = utc_now().replace(microsecond=0)
    nonce = os.urandom(16)
    envelope = etree.Element(q(S12, "Envelope"), nsmap={"soapenv": S12})
    header = sub(envelope, S12, "Header")
    security = sub(header, WSSE, "Security", wsse=WSSE, wsu=WSU)
    security.set(q(S12, "mustUnderstand"), "true")
    timestamp = sub(security, WSU, "Timestamp")
    timestamp.set(q(WSU, "Id"), f"Timestamp-{uuid.uuid4().int % 10**6}")
    sub(timestamp, WSU, "Created", _wrapped(instant_millis(now), "                "))
    sub(timestamp, WSU, "Expires", _wrapped(instant_millis(now + dt.timedelta(minutes=5)), "                "))
    token = sub(security, WSSE, "UsernameToken")
    token.set(q(WSU, "Id"), f"UsernameToken-{uuid.uuid4().int % 10**6}")
    sub(token, WSSE, "Username", username)
    sub(token, WSSE, "Password", password).set("Type", PW_TEXT)  # never wrapped: R17 keeps the password as sent
    sub(token, WSSE, "Nonce", base64.b64encode(nonce).decode()).set("EncodingType", B64)
    sub(token, WSU, "Created", _wrapped(instant_millis(now), "                "))
    mid = f"urn:uuid:{uuid.uuid4()}"
    sub(header, WSA04, "To", url, wsa=WSA04)
    reply_to = sub(header, WSA04, "ReplyTo", wsa=WSA04)
    sub(reply_to, WSA04, "Address", ANONYMOUS[WSA04])
    sub(header, WSA04, "MessageID", mid, wsa=WSA04)
    action_el = sub(header, WSA04, "Action", action, wsa=WSA04)
    action_el.set(q(S12, "mustUnderstand"), "true")
    body = sub(envelope, S12, "Body")
    rst = sub(body, WST05, "RequestSecurityToken", wst=WST05)
    sub(rst, WST05, "RequestType", _wrapped(f"{WST05}/Issue"))
    lifetime = sub(rst, WST05, "Lifetime")
    sub(lifetime, WSU, "Created", _wrapped(instant_millis(now), "                "), wsu=WSU)
    sub(lifetime, WSU, "Expires", _wrapped(instant_millis(now + dt.timedelta(minutes=5)), "                "), wsu=WSU)
    applies = sub(rst, WSP, "AppliesTo", wsp=WSP)
    epr = sub(applies, WSA04, "EndpointReference", wsa=WSA04)
    sub(epr, WSA04, "Address", _wrapped(applies_to, "                    "))
    if token_type is not None:
        sub(rst, WST05, "TokenType", _wrapped(token_type))
    sub(rst, WST05, "KeyType", _wrapped(f"{WST05}/Bearer"))
    if claims:
        claims_el = sub(rst, WST05, "Claims", wsp=WST05, wsid=WSID)  # "wsp" is the TRUST namespace here (R40)
        claims_el.set(q(WST05, "Dialect"), WSO2_CLAIMS)
        for uri in claims:
            sub(claims_el, WSID, "ClaimType").set("Uri", uri)
    return ClientRequest(serialize(envelope, pretty=True), soap12_headers(action), S12, WST05, WSA04, mid)


# --- a Python SOAP client library (R16, R19, R20) -----------------------------------------------------------------


def python_zeep_like(
    username: str, password: str, applies_to: str, *, token_type: str = SAML20_URN, url: str = DEFAULT_URL
) -> ClientRequest:
    """SOAP 1.1; a PasswordDigest UsernameToken with a ``+00:00`` Created; a Timestamp whose ``wsu:Id`` is not an
    NCName (``Timestamp-2026-11-26T18:23:04Z``); the prefix ``ns0`` bound to different namespaces in nested
    elements; the RST in a default namespace.
    """
    action = f"{WST}/RST/Issue"
    now = utc_now().replace(microsecond=0)
    created = instant_offset(now)
    nonce = os.urandom(16)
    envelope = etree.Element(q(S11, "Envelope"), nsmap={"soap-env": S11})
    header = sub(envelope, S11, "Header")
    security = sub(header, WSSE, "Security", ns0=WSSE)  # ns0 = wsse
    timestamp = sub(security, WSU, "Timestamp", ns0=WSU)  # ns0 = wsu inside the Timestamp
    timestamp.set(q(WSU, "Id"), f"Timestamp-{instant_z(now)}")  # colons: not an NCName (R19)
    sub(timestamp, WSU, "Created", instant_offset(now))
    sub(timestamp, WSU, "Expires", instant_offset(now + dt.timedelta(minutes=5)))
    token = sub(security, WSSE, "UsernameToken")  # ns0 = wsse again
    sub(token, WSSE, "Username", username)
    sub(token, WSSE, "Password", password_digest(nonce, created, password)).set("Type", PW_DIGEST)
    sub(token, WSSE, "Nonce", base64.b64encode(nonce).decode()).set("EncodingType", B64)
    sub(token, WSU, "Created", created, ns0=WSU)
    body = sub(envelope, S11, "Body")
    rst = sub(body, WST, "RequestSecurityToken", _default=WST)
    sub(rst, WST, "TokenType", token_type)
    sub(rst, WST, "RequestType", f"{WST}/Issue")
    applies = sub(rst, WSP, "AppliesTo", ns0=WSP)  # ns0 = wsp
    epr = sub(applies, WSA, "EndpointReference", ns0=WSA)  # ns0 = wsa inside it
    sub(epr, WSA, "Address", applies_to)
    sub(rst, WST, "KeyType", f"{WST}/Bearer")
    return ClientRequest(serialize(envelope), soap11_headers(action), S11, WST, None, None)


# --- a Node.js SOAP client (catalogue S12, §14) -------------------------------------------------------------------


def node_like(
    username: str, password: str, applies_to: str, *, token_type: str = SAML20_URN, url: str = DEFAULT_URL
) -> ClientRequest:
    """SOAP 1.1; ``<Security xmlns="…secext-1.0.xsd">`` in a default namespace; WS-Addressing 1.0 Action and To
    without mustUnderstand and a ``wsa:messageID`` with a lowercase ``m`` (an unknown header, to be ignored).
    """
    action = f"{WST}/RST/Issue"
    now = utc_now().replace(microsecond=0)
    nonce = os.urandom(16)
    envelope = etree.Element(q(S11, "Envelope"), nsmap={"soap": S11, "wsa": WSA, "wsu": WSU})
    header = sub(envelope, S11, "Header")
    sub(header, WSA, "Action", action)
    sub(header, WSA, "messageID", message_id())  # odd casing: not WS-Addressing's MessageID
    sub(header, WSA, "To", url)
    security = sub(header, WSSE, "Security", _default=WSSE)
    security.set(q(S11, "mustUnderstand"), "1")
    timestamp = sub(security, WSU, "Timestamp")
    timestamp.set(q(WSU, "Id"), "Timestamp-1")
    sub(timestamp, WSU, "Created", instant_z(now))
    sub(timestamp, WSU, "Expires", instant_z(now + dt.timedelta(minutes=5)))
    token = sub(security, WSSE, "UsernameToken")
    sub(token, WSSE, "Username", username)
    sub(token, WSSE, "Password", password).set("Type", PW_TEXT)
    sub(token, WSSE, "Nonce", base64.b64encode(nonce).decode()).set("EncodingType", B64)
    sub(token, WSU, "Created", instant_z(now))
    body = sub(envelope, S11, "Body")
    rst = sub(body, WST, "RequestSecurityToken", wst=WST)
    sub(rst, WST, "RequestType", f"{WST}/Issue")
    sub(rst, WST, "TokenType", token_type)
    _applies_to(rst, applies_to)
    sub(rst, WST, "KeyType", f"{WST}/Bearer")
    return ClientRequest(serialize(envelope), soap11_headers(action), S11, WST, WSA, None)
