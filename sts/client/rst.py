"""The WS-Trust requests the client sends: a SOAP 1.1/1.2 envelope with WS-Addressing headers, a
``wsse:Security`` header (Timestamp, UsernameToken with PasswordText or PasswordDigest) and an RST in the WS-Trust
1.3 or Feb 2005 namespace. Issue asks for a Bearer, SymmetricKey (optionally with client entropy for a PSHA1
computed key) or PublicKey (``wst:UseKey``) token; Validate, Renew and Cancel name their token inline or through a
``wsse:SecurityTokenReference``. Every value is set through lxml, never through a string template.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import os
import uuid
from dataclasses import dataclass, field

from lxml import etree

from sts import ns
from sts.client.errors import ClientError
from sts.client.options import Connection, IssueOptions, PublicKey, SigningCredential, SymmetricKey, TargetOptions
from sts.clock import format_instant
from sts.crypto.keygen import certificate_der
from sts.crypto.keywrap import X509V3
from sts.crypto.wss_sign import WssSigner, direct_reference
from sts.wss.username import compute_password_digest
from sts.wstrust.actions import Operation
from sts.wstrust.tokentypes import (
    DEFAULT_SPELLING,
    NO_PROOF_KEY,
    REFERENCE_TOKEN_TYPE,
    REFERENCE_VALUE_TYPE,
    KeyKind,
    SamlVersion,
)
from sts.wstrust.version import TrustVersion

WSA_ANONYMOUS = f"{ns.WSA}/anonymous"
TIMESTAMP_TTL = dt.timedelta(minutes=5)
NONCE_BYTES = 16


@dataclass(frozen=True, slots=True)
class BuiltRequest:
    """A serialized request and the HTTP headers that go with it."""

    body: bytes = field(repr=False)  # holds the password
    action: str
    headers: dict[str, str]


def key_kind(key: SymmetricKey | PublicKey | None) -> KeyKind:
    """The KeyType an Issue request's key asks for."""
    if isinstance(key, SymmetricKey):
        return KeyKind.SYMMETRIC
    return KeyKind.PUBLIC if isinstance(key, PublicKey) else KeyKind.BEARER


def key_type_uri(trust_ns: str, kind: KeyKind) -> str:
    """The KeyType URI (WS-Trust 1.3 §9.2); a Feb 2005 bearer token is asked for as ``wsid`` NoProofKey."""
    if kind is KeyKind.BEARER and trust_ns == ns.WST05:
        return NO_PROOF_KEY
    return f"{trust_ns}/{kind.value}"


def build_issue_request(
    options: IssueOptions, password: str, *, now: dt.datetime | None = None, nonce: bytes | None = None
) -> BuiltRequest:
    """The Issue envelope (WS-Trust 1.3 §4.1); ``now`` and ``nonce`` default to the clock and fresh random bytes."""
    connection = options.connection
    trust_ns = connection.trust_ns
    action = _version(trust_ns).request_action(Operation.ISSUE)
    extra = {"wsid": ns.WSID} if options.claims else {}
    try:
        envelope, body = _envelope(connection, action, extra)
        _security(envelope, connection, password, now, nonce)
        rst = etree.SubElement(body, ns.qn(trust_ns, "RequestSecurityToken"))
        if options.token_type is not None:
            _sub(rst, trust_ns, "TokenType", DEFAULT_SPELLING[options.token_type])
        _sub(rst, trust_ns, "RequestType", _version(trust_ns).request_type(Operation.ISSUE))
        _applies_to(rst, options.applies_to)
        _sub(rst, trust_ns, "KeyType", key_type_uri(trust_ns, key_kind(options.key)))
        _holder_of_key(rst, trust_ns, options.key)
        if options.claims:
            _claims(rst, trust_ns, options.claims_dialect, options.claims)
        if options.renewing is not None:
            renewing = etree.SubElement(rst, ns.qn(trust_ns, "Renewing"))
            renewing.set("Allow", "true" if options.renewing.allow else "false")
            renewing.set("OK", "true" if options.renewing.ok else "false")
        _delegation(rst, trust_ns, options)
    except ValueError:  # lxml refuses NUL and other characters XML cannot carry
        raise ClientError("a value contains characters that XML cannot carry") from None
    return _finish(envelope, connection.soap_ns, action, connection.signing)


def build_target_request(
    operation: Operation,
    options: TargetOptions,
    password: str,
    *,
    now: dt.datetime | None = None,
    nonce: bytes | None = None,
) -> BuiltRequest:
    """A Validate, Renew or Cancel envelope with its ``{Validate,Renew,Cancel}Target`` (WS-Trust 1.3 §5-§7)."""
    if operation is Operation.ISSUE:
        raise ValueError("Issue names no target token")
    connection = options.connection
    trust_ns = connection.trust_ns
    action = _version(trust_ns).request_action(operation)
    extra = {"wsse11": ns.WSSE11} if options.token_id is not None else {}
    try:
        envelope, body = _envelope(connection, action, extra)
        _security(envelope, connection, password, now, nonce)
        rst = etree.SubElement(body, ns.qn(trust_ns, "RequestSecurityToken"))
        if operation is Operation.VALIDATE:
            # WS-Trust 1.3 §7: RSTR/Status asks for a status only; a token type for a new token as well.
            wanted = options.transform_to
            status = f"{trust_ns}/RSTR/Status"
            _sub(rst, trust_ns, "TokenType", status if wanted is None else DEFAULT_SPELLING[wanted])
        _sub(rst, trust_ns, "RequestType", _version(trust_ns).request_type(operation))
        target = etree.SubElement(rst, ns.qn(trust_ns, f"{operation.value}Target"))
        if options.token is not None:
            token = copy.deepcopy(options.token)
            token.tail = None
            target.append(token)
        else:
            target.append(token_reference(options.token_id or "", options.id_version))
        if operation is Operation.VALIDATE and options.applies_to is not None:
            _applies_to(rst, options.applies_to)
    except ValueError:
        raise ClientError("a value contains characters that XML cannot carry") from None
    return _finish(envelope, connection.soap_ns, action, connection.signing)


def _applies_to(rst: etree._Element, address: str) -> None:
    """``wsp:AppliesTo`` with a ``wsa:EndpointReference`` to ``address`` (WS-Trust 1.3 §4.1)."""
    applies_to = etree.SubElement(rst, ns.qn(ns.WSP, "AppliesTo"))
    _sub(etree.SubElement(applies_to, ns.qn(ns.WSA, "EndpointReference")), ns.WSA, "Address", address)


def _delegation(rst: etree._Element, trust_ns: str, options: IssueOptions) -> None:
    """``wst:OnBehalfOf`` (WS-Trust 1.3 §9.1) or ``wst14:ActAs`` (WS-Trust 1.4 §3.2) holding the token verbatim:
    its own signature must survive, so it is copied, never rebuilt."""
    if options.on_behalf_of is not None:
        holder, token = etree.SubElement(rst, ns.qn(trust_ns, "OnBehalfOf")), options.on_behalf_of
    elif options.act_as is not None:
        holder, token = etree.SubElement(rst, ns.qn(ns.WST14, "ActAs")), options.act_as
    else:
        return
    copied = copy.deepcopy(token)
    copied.tail = None
    holder.append(copied)


def token_reference(token_id: str, version: SamlVersion) -> etree._Element:
    """``wsse:SecurityTokenReference`` to a SAML token by its ID (WSS SAML Token Profile 1.1: ``KeyIdentifier``
    with ValueType SAMLID for SAML 2.0, SAMLAssertionID for SAML 1.1)."""
    reference = etree.Element(ns.qn(ns.WSSE, "SecurityTokenReference"), nsmap={"wsse": ns.WSSE, "wsse11": ns.WSSE11})
    reference.set(ns.qn(ns.WSSE11, "TokenType"), REFERENCE_TOKEN_TYPE[version])
    _sub(reference, ns.WSSE, "KeyIdentifier", token_id).set("ValueType", REFERENCE_VALUE_TYPE[version])
    return reference


def _holder_of_key(rst: etree._Element, trust_ns: str, key: SymmetricKey | PublicKey | None) -> None:
    """KeySize, Entropy + ComputedKeyAlgorithm (SymmetricKey) or UseKey (PublicKey), after KeyType."""
    if isinstance(key, SymmetricKey):
        if key.bits is not None:
            _sub(rst, trust_ns, "KeySize", str(key.bits))
        if key.entropy is not None:
            entropy = etree.SubElement(rst, ns.qn(trust_ns, "Entropy"))
            secret = _sub(entropy, trust_ns, "BinarySecret", base64.b64encode(key.entropy).decode("ascii"))
            secret.set("Type", f"{trust_ns}/Nonce")
            _sub(rst, trust_ns, "ComputedKeyAlgorithm", f"{trust_ns}/CK/PSHA1")
    elif isinstance(key, PublicKey):
        use_key = etree.SubElement(rst, ns.qn(trust_ns, "UseKey"))
        der = certificate_der(key.certificate)
        token = _sub(use_key, ns.WSSE, "BinarySecurityToken", base64.b64encode(der).decode("ascii"))
        token.set("ValueType", X509V3)
        token.set("EncodingType", ns.BASE64_BINARY)


def _claims(rst: etree._Element, trust_ns: str, dialect: str, uris: tuple[str, ...]) -> None:
    """``wst:Claims`` (WS-Trust 1.3 §4.1) with one optional ``wsid:ClaimType`` per URI, as the Identity Selector
    Interoperability Profile writes claims."""
    claims = etree.SubElement(rst, ns.qn(trust_ns, "Claims"))
    claims.set("Dialect", dialect)
    for uri in uris:
        claim = etree.SubElement(claims, ns.qn(ns.WSID, "ClaimType"))
        claim.set("Uri", uri)
        claim.set("Optional", "true")


def _envelope(connection: Connection, action: str, extra_ns: dict[str, str]) -> tuple[etree._Element, etree._Element]:
    """Envelope with the WS-Addressing headers (WS-Addressing 1.0 SOAP Binding), and its (empty) Body."""
    soap_ns = connection.soap_ns
    nsmap: dict[str, str] = {
        "soap": soap_ns,
        "wsa": ns.WSA,
        "wsse": ns.WSSE,
        "wsu": ns.WSU,
        "wst": connection.trust_ns,
        "wsp": ns.WSP,
    } | extra_ns
    envelope = etree.Element(ns.qn(soap_ns, "Envelope"), nsmap=nsmap)
    header = etree.SubElement(envelope, ns.qn(soap_ns, "Header"))
    must_understand = ns.qn(soap_ns, "mustUnderstand")
    _sub(header, ns.WSA, "Action", action).set(must_understand, "1")
    _sub(header, ns.WSA, "MessageID", uuid.uuid4().urn)
    _sub(header, ns.WSA, "To", connection.url).set(must_understand, "1")
    _sub(etree.SubElement(header, ns.qn(ns.WSA, "ReplyTo")), ns.WSA, "Address", WSA_ANONYMOUS)
    return envelope, etree.SubElement(envelope, ns.qn(soap_ns, "Body"))


def _security(
    envelope: etree._Element,
    connection: Connection,
    password: str,
    now: dt.datetime | None,
    nonce: bytes | None,
) -> None:
    """The ``wsse:Security`` header: Timestamp (5 min, WSS 1.1 §10) and UsernameToken (PasswordText or
    PasswordDigest, UsernameToken Profile 1.1 §3.1), or the connection's SAML assertion (WSS SAML Token Profile
    1.1 §3.3, bearer over TLS)."""
    now = now or dt.datetime.now(dt.UTC)
    nonce = nonce if nonce is not None else os.urandom(NONCE_BYTES)
    created = format_instant(now)
    header = envelope[0]  # the Header made by _envelope
    security = etree.SubElement(header, ns.qn(ns.WSSE, "Security"))
    security.set(ns.qn(connection.soap_ns, "mustUnderstand"), "1")
    timestamp = etree.SubElement(security, ns.qn(ns.WSU, "Timestamp"))
    timestamp.set(ns.qn(ns.WSU, "Id"), f"TS-{uuid.uuid4()}")
    _sub(timestamp, ns.WSU, "Created", created)
    _sub(timestamp, ns.WSU, "Expires", format_instant(now + TIMESTAMP_TTL))
    if connection.signing is not None:
        # X.509 Token Profile 1.1 §3.1: the certificate as a BinarySecurityToken; the signature comes in _finish.
        der = certificate_der(connection.signing.certificate)
        bst = _sub(security, ns.WSSE, "BinarySecurityToken", base64.b64encode(der).decode("ascii"))
        bst.set("ValueType", X509V3)
        bst.set("EncodingType", ns.BASE64_BINARY)
        bst.set(ns.qn(ns.WSU, "Id"), f"X509-{uuid.uuid4()}")
        return
    if connection.token is not None:  # issued-token authentication: the assertion, verbatim, instead of a password
        assertion = copy.deepcopy(connection.token)
        assertion.tail = None
        security.append(assertion)
        return
    token = etree.SubElement(security, ns.qn(ns.WSSE, "UsernameToken"))
    token.set(ns.qn(ns.WSU, "Id"), f"UT-{uuid.uuid4()}")
    _sub(token, ns.WSSE, "Username", connection.username)
    if connection.digest:
        password_el = _sub(token, ns.WSSE, "Password", compute_password_digest(nonce, created, password))
        password_el.set("Type", ns.PASSWORD_DIGEST)
    else:
        _sub(token, ns.WSSE, "Password", password).set("Type", ns.PASSWORD_TEXT)
    _sub(token, ns.WSSE, "Nonce", base64.b64encode(nonce).decode("ascii")).set("EncodingType", ns.BASE64_BINARY)
    _sub(token, ns.WSU, "Created", created)


def _sign(envelope: etree._Element, signing: SigningCredential) -> None:
    """Sign the Timestamp and the Body (and ``wsa:To``) with the client's key, KeyInfo referencing its
    BinarySecurityToken (WSS 1.1 §8; X.509 Token Profile 1.1 §3.2)."""
    header, body = envelope[0], envelope[-1]
    security = header.find(ns.qn(ns.WSSE, "Security"))
    timestamp = None if security is None else security.find(ns.qn(ns.WSU, "Timestamp"))
    token = None if security is None else security.find(ns.qn(ns.WSSE, "BinarySecurityToken"))
    if security is None or timestamp is None or token is None:
        raise ValueError("signing needs the Security header made by _security")
    body.set(ns.qn(ns.WSU, "Id"), f"id-{uuid.uuid4()}")
    targets = [timestamp, body]
    to = header.find(ns.qn(ns.WSA, "To"))
    if signing.sign_to and to is not None:
        to.set(ns.qn(ns.WSU, "Id"), f"to-{uuid.uuid4()}")
        targets.append(to)
    WssSigner(signing.key).sign(security, targets, direct_reference(token.get(ns.qn(ns.WSU, "Id"), "")))


def _finish(
    envelope: etree._Element, soap_ns: str, action: str, signing: SigningCredential | None = None
) -> BuiltRequest:
    """Sign when the connection signs, then serialize, with the action where each SOAP version's HTTP binding puts
    it (SOAPAction; the media type)."""
    if signing is not None:
        _sign(envelope, signing)
    data = etree.tostring(envelope, encoding="utf-8", xml_declaration=True)
    if soap_ns == ns.S11:
        headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{action}"'}
    else:
        headers = {"Content-Type": f'application/soap+xml; charset=utf-8; action="{action}"'}
    return BuiltRequest(data, action, headers)


def _sub(parent: etree._Element, namespace: str, local: str, text: str) -> etree._Element:
    child = etree.SubElement(parent, ns.qn(namespace, local))
    child.text = text
    return child


__all__ = [
    "NONCE_BYTES",
    "TIMESTAMP_TTL",
    "BuiltRequest",
    "build_issue_request",
    "build_target_request",
    "key_kind",
    "key_type_uri",
    "token_reference",
]


def _version(trust_ns: str) -> TrustVersion:
    """The WS-Trust version of a namespace the options already checked (see :class:`~sts.client.options.Connection`)."""
    version = TrustVersion.of_namespace(trust_ns)
    if version is None:
        raise ValueError(f"not a WS-Trust namespace: {trust_ns}")
    return version
