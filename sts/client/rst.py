"""The WS-Trust requests the sample client sends: a SOAP 1.1/1.2 envelope with WS-Addressing headers, a
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
import secrets
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
KEY_TYPES: dict[str, str] = {"bearer": "Bearer", "symmetric": "SymmetricKey", "public": "PublicKey"}
LIFECYCLE_OPERATIONS = ("Validate", "Renew", "Cancel")
NO_PROOF_KEY = f"{ns.WSID}/NoProofKey"
WSA_ANONYMOUS = f"{ns.WSA}/anonymous"
X509V3 = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3"
SAML_PROFILE_11 = "http://docs.oasis-open.org/wss/oasis-wss-saml-token-profile-1.1"
# wsse:SecurityTokenReference to a SAML token by its ID (wstrust-protocol.md §5): (wsse11:TokenType, ValueType).
REFERENCE_TYPES: dict[str, tuple[str, str]] = {
    "saml20": (f"{SAML_PROFILE_11}#SAMLV2.0", f"{SAML_PROFILE_11}#SAMLID"),
    "saml11": (
        f"{SAML_PROFILE_11}#SAMLV1.1",
        "http://docs.oasis-open.org/wss/oasis-wss-saml-token-profile-1.0#SAMLAssertionID",
    ),
}
# What a lifecycle target may be: the token elements ``sts request --out`` stores.
TARGET_TOKENS = frozenset(
    {
        ns.qn(ns.SAML2, "Assertion"),
        ns.qn(ns.SAML1, "Assertion"),
        ns.qn(ns.SAML2, "EncryptedAssertion"),
        ns.qn(ns.XENC, "EncryptedData"),
    }
)
TIMESTAMP_TTL = dt.timedelta(minutes=5)
NONCE_BYTES = 16
CLIENT_ENTROPY_BYTES = 32


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
    key_type: str = "bearer"  # a key of KEY_TYPES
    key_size: int | None = None  # bits, SymmetricKey only
    entropy: bytes | None = field(default=None, repr=False)  # client entropy, SymmetricKey only
    use_key: bytes | None = None  # DER X.509 certificate, PublicKey only
    renewable: bool = False  # <wst:Renewing Allow="true" OK="false"/>
    renewable_after_expiry: bool = False  # <wst:Renewing Allow="true" OK="true"/>


@dataclass(frozen=True, slots=True)
class LifecycleOptions:
    """What ``sts validate|renew|cancel`` sends: the token inline (``token``) or referenced by ID (``token_id``)."""

    url: str
    username: str
    operation: str  # one of LIFECYCLE_OPERATIONS
    token: etree._Element | None = None
    token_id: str | None = None
    token_type: str = "saml20"  # noqa: S105 - a key of REFERENCE_TYPES (reference by ID), not a secret
    digest: bool = False
    soap: str = "1.1"
    trust: str = "1.3"


@dataclass(frozen=True, slots=True)
class BuiltRequest:
    """A serialized request and the HTTP headers that go with it."""

    body: bytes = field(repr=False)  # holds the password
    action: str
    headers: dict[str, str]


def client_entropy() -> bytes:
    """Fresh client entropy for a computed key (tests replace this function to force known bytes)."""
    return secrets.token_bytes(CLIENT_ENTROPY_BYTES)


def issue_action(trust: str) -> str:
    """The RST/Issue action of a trust version key (``1.3`` or ``2005``)."""
    return f"{TRUST_VERSIONS[trust]}/RST/Issue"


def lifecycle_action(trust: str, operation: str) -> str:
    """``{ns}/RST/Validate``, ``{ns}/RST/Renew`` or ``{ns}/RST/Cancel``."""
    return f"{TRUST_VERSIONS[trust]}/RST/{operation}"


def bearer_key_type(trust: str) -> str:
    """The Bearer key type URI: ``{wst}/Bearer`` for 1.3, ``wsid`` NoProofKey for Feb 2005."""
    return f"{ns.WST}/Bearer" if trust == "1.3" else NO_PROOF_KEY


def key_type_uri(trust: str, key_type: str) -> str:
    """The KeyType URI of a KEY_TYPES key; Feb 2005 bearer stays ``wsid`` NoProofKey."""
    if key_type == "bearer":
        return bearer_key_type(trust)
    return f"{TRUST_VERSIONS[trust]}/{KEY_TYPES[key_type]}"


def build_request(
    options: RequestOptions, password: str, *, now: dt.datetime | None = None, nonce: bytes | None = None
) -> BuiltRequest:
    """Build the Issue envelope (every value set through lxml, never through a string template)."""
    trust_ns = TRUST_VERSIONS[options.trust]
    action = issue_action(options.trust)
    extra = {"wsid": ns.WSID} if options.claims else {}
    try:
        envelope, body = _envelope(options.url, options.soap, options.trust, action, extra)
        _security(envelope, options.soap, options.username, password, options.digest, now, nonce)
        rst = etree.SubElement(body, ns.qn(trust_ns, "RequestSecurityToken"))
        if options.token_type is not None:
            _sub(rst, trust_ns, "TokenType", TOKEN_TYPES[options.token_type])
        _sub(rst, trust_ns, "RequestType", f"{trust_ns}/Issue")
        applies_to = etree.SubElement(rst, ns.qn(ns.WSP, "AppliesTo"))
        reference = etree.SubElement(applies_to, ns.qn(ns.WSA, "EndpointReference"))
        _sub(reference, ns.WSA, "Address", options.applies_to)
        _sub(rst, trust_ns, "KeyType", key_type_uri(options.trust, options.key_type))
        _holder_of_key(rst, trust_ns, options)
        if options.claims:
            claims = etree.SubElement(rst, ns.qn(trust_ns, "Claims"))
            claims.set("Dialect", options.claims_dialect)
            for uri in options.claims:
                claim = etree.SubElement(claims, ns.qn(ns.WSID, "ClaimType"))
                claim.set("Uri", uri)
                claim.set("Optional", "true")
        if options.renewable or options.renewable_after_expiry:
            renewing = etree.SubElement(rst, ns.qn(trust_ns, "Renewing"))
            renewing.set("Allow", "true")
            renewing.set("OK", "true" if options.renewable_after_expiry else "false")
    except ValueError:  # lxml refuses NUL and other characters XML cannot carry
        raise CommandError("a value contains characters that XML cannot carry") from None
    return _finish(envelope, options.soap, action)


def build_lifecycle_request(
    options: LifecycleOptions, password: str, *, now: dt.datetime | None = None, nonce: bytes | None = None
) -> BuiltRequest:
    """Build a Validate, Renew or Cancel envelope with its ``{Validate,Renew,Cancel}Target``."""
    if options.operation not in LIFECYCLE_OPERATIONS:
        raise ValueError(f"not a lifecycle operation: {options.operation}")
    if (options.token is None) == (options.token_id is None):
        raise CommandError("name the token either inline or by its ID")
    trust_ns = TRUST_VERSIONS[options.trust]
    action = lifecycle_action(options.trust, options.operation)
    extra = {"wsse11": ns.WSSE11} if options.token_id is not None else {}
    try:
        envelope, body = _envelope(options.url, options.soap, options.trust, action, extra)
        _security(envelope, options.soap, options.username, password, options.digest, now, nonce)
        rst = etree.SubElement(body, ns.qn(trust_ns, "RequestSecurityToken"))
        if options.operation == "Validate":
            _sub(rst, trust_ns, "TokenType", f"{trust_ns}/RSTR/Status")
        _sub(rst, trust_ns, "RequestType", f"{trust_ns}/{options.operation}")
        target = etree.SubElement(rst, ns.qn(trust_ns, f"{options.operation}Target"))
        if options.token is not None:
            if options.token.tag not in TARGET_TOKENS:
                raise CommandError("the token must be an Assertion, EncryptedAssertion or EncryptedData")
            token = copy.deepcopy(options.token)
            token.tail = None
            target.append(token)
        else:
            target.append(token_reference(options.token_id or "", options.token_type))
    except ValueError:
        raise CommandError("a value contains characters that XML cannot carry") from None
    return _finish(envelope, options.soap, action)


def token_reference(token_id: str, token_type: str) -> etree._Element:
    """``wsse:SecurityTokenReference`` to a SAML token by its ID (``saml20``: ``ID``, ``saml11``: ``AssertionID``)."""
    if not token_id.strip() or token_id != token_id.strip():
        raise CommandError("the token ID must not be empty or have surrounding white space")
    reference_type, value_type = REFERENCE_TYPES[token_type]
    reference = etree.Element(ns.qn(ns.WSSE, "SecurityTokenReference"), nsmap={"wsse": ns.WSSE, "wsse11": ns.WSSE11})
    reference.set(ns.qn(ns.WSSE11, "TokenType"), reference_type)
    try:
        _sub(reference, ns.WSSE, "KeyIdentifier", token_id).set("ValueType", value_type)
    except ValueError:  # lxml refuses NUL and other characters XML cannot carry
        raise CommandError("the token ID contains characters that XML cannot carry") from None
    return reference


def _holder_of_key(rst: etree._Element, trust_ns: str, options: RequestOptions) -> None:
    """KeySize, Entropy + ComputedKeyAlgorithm (SymmetricKey) or UseKey (PublicKey), after KeyType."""
    if options.key_type == "symmetric":
        if options.key_size is not None:
            _sub(rst, trust_ns, "KeySize", str(options.key_size))
        if options.entropy is not None:
            entropy = etree.SubElement(rst, ns.qn(trust_ns, "Entropy"))
            secret = _sub(entropy, trust_ns, "BinarySecret", base64.b64encode(options.entropy).decode("ascii"))
            secret.set("Type", f"{trust_ns}/Nonce")
            _sub(rst, trust_ns, "ComputedKeyAlgorithm", f"{trust_ns}/CK/PSHA1")
    elif options.key_type == "public" and options.use_key is not None:
        use_key = etree.SubElement(rst, ns.qn(trust_ns, "UseKey"))
        token = _sub(use_key, ns.WSSE, "BinarySecurityToken", base64.b64encode(options.use_key).decode("ascii"))
        token.set("ValueType", X509V3)
        token.set("EncodingType", ns.BASE64_BINARY)


def _envelope(
    url: str, soap: str, trust: str, action: str, extra_ns: dict[str, str]
) -> tuple[etree._Element, etree._Element]:
    """Envelope with the WS-Addressing headers, and its (empty) Body."""
    soap_ns = SOAP_VERSIONS[soap]
    nsmap: dict[str, str] = {
        "soap": soap_ns,
        "wsa": ns.WSA,
        "wsse": ns.WSSE,
        "wsu": ns.WSU,
        "wst": TRUST_VERSIONS[trust],
        "wsp": ns.WSP,
    } | extra_ns
    envelope = etree.Element(ns.qn(soap_ns, "Envelope"), nsmap=nsmap)
    header = etree.SubElement(envelope, ns.qn(soap_ns, "Header"))
    must_understand = ns.qn(soap_ns, "mustUnderstand")
    _sub(header, ns.WSA, "Action", action).set(must_understand, "1")
    _sub(header, ns.WSA, "MessageID", uuid.uuid4().urn)
    _sub(header, ns.WSA, "To", url).set(must_understand, "1")
    _sub(etree.SubElement(header, ns.qn(ns.WSA, "ReplyTo")), ns.WSA, "Address", WSA_ANONYMOUS)
    return envelope, etree.SubElement(envelope, ns.qn(soap_ns, "Body"))


def _security(
    envelope: etree._Element,
    soap: str,
    username: str,
    password: str,
    digest: bool,
    now: dt.datetime | None,
    nonce: bytes | None,
) -> None:
    """The ``wsse:Security`` header: Timestamp (5 min) and UsernameToken (PasswordText or PasswordDigest)."""
    soap_ns = SOAP_VERSIONS[soap]
    now = now or dt.datetime.now(dt.UTC)
    nonce = nonce if nonce is not None else os.urandom(NONCE_BYTES)
    created = format_instant(now)
    header = envelope[0]  # the Header made by _envelope
    security = etree.SubElement(header, ns.qn(ns.WSSE, "Security"))
    security.set(ns.qn(soap_ns, "mustUnderstand"), "1")
    timestamp = etree.SubElement(security, ns.qn(ns.WSU, "Timestamp"))
    timestamp.set(ns.qn(ns.WSU, "Id"), f"TS-{uuid.uuid4()}")
    _sub(timestamp, ns.WSU, "Created", created)
    _sub(timestamp, ns.WSU, "Expires", format_instant(now + TIMESTAMP_TTL))
    token = etree.SubElement(security, ns.qn(ns.WSSE, "UsernameToken"))
    token.set(ns.qn(ns.WSU, "Id"), f"UT-{uuid.uuid4()}")
    _sub(token, ns.WSSE, "Username", username)
    if digest:
        password_el = _sub(token, ns.WSSE, "Password", compute_password_digest(nonce, created, password))
        password_el.set("Type", ns.PASSWORD_DIGEST)
    else:
        _sub(token, ns.WSSE, "Password", password).set("Type", ns.PASSWORD_TEXT)
    _sub(token, ns.WSSE, "Nonce", base64.b64encode(nonce).decode("ascii")).set("EncodingType", ns.BASE64_BINARY)
    _sub(token, ns.WSU, "Created", created)


def _finish(envelope: etree._Element, soap: str, action: str) -> BuiltRequest:
    data = etree.tostring(envelope, encoding="utf-8", xml_declaration=True)
    if soap == "1.1":
        headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{action}"'}
    else:
        headers = {"Content-Type": f'application/soap+xml; charset=utf-8; action="{action}"'}
    return BuiltRequest(data, action, headers)


def _sub(parent: etree._Element, namespace: str, local: str, text: str) -> etree._Element:
    child = etree.SubElement(parent, ns.qn(namespace, local))
    child.text = text
    return child


__all__ = [
    "CLIENT_ENTROPY_BYTES",
    "KEY_TYPES",
    "LIFECYCLE_OPERATIONS",
    "REFERENCE_TYPES",
    "SOAP_VERSIONS",
    "TARGET_TOKENS",
    "TOKEN_TYPES",
    "TRUST_VERSIONS",
    "BuiltRequest",
    "LifecycleOptions",
    "RequestOptions",
    "bearer_key_type",
    "build_lifecycle_request",
    "build_request",
    "client_entropy",
    "issue_action",
    "key_type_uri",
    "lifecycle_action",
    "token_reference",
]
