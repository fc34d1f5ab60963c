"""X.509 security tokens and references to them (WSS X.509 Token Profile 1.1 §3; WSS 1.1 §7; WS-I BSP 1.1).

:func:`read_binary_token` reads an X.509 ``wsse:BinarySecurityToken``; :func:`read_token_reference` reads the
``wsse:SecurityTokenReference`` of a signature's KeyInfo into a :class:`TokenReference`: the certificate the
message carries (direct reference to the BST in our Security header, or an ``X509v3`` KeyIdentifier), or a name
to look up (ThumbprintSHA1, SubjectKeyIdentifier, IssuerSerial). Nothing here decides trust: a certificate in the
message only *names* a candidate, which the caller must find among the registered or CA-issued certificates.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
from dataclasses import dataclass

from cryptography import x509
from lxml import etree

from sts import ns
from sts.errors import InvalidSecurityToken, SecurityTokenUnavailable, UnsupportedSecurityToken
from sts.wss.timestamp import XML_WHITESPACE
from sts.xmlutil import element_children, text_of

X509TP = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#"
X509V3 = X509TP + "X509v3"
SKI = X509TP + "X509SubjectKeyIdentifier"
THUMBPRINT = "http://docs.oasis-open.org/wss/oasis-wss-soap-message-security-1.1#ThumbprintSHA1"
UNSUPPORTED_VALUE_TYPES = frozenset({X509TP + "X509PKIPathv1", X509TP + "PKCS7"})
MAX_CERT_BYTES = 16 * 1024

BINARY_SECURITY_TOKEN = ns.qn(ns.WSSE, "BinarySecurityToken")
_STR = ns.qn(ns.WSSE, "SecurityTokenReference")
_REFERENCE = ns.qn(ns.WSSE, "Reference")
_KEY_IDENTIFIER = ns.qn(ns.WSSE, "KeyIdentifier")
_X509_DATA = ns.qn(ns.DS, "X509Data")
_ISSUER_SERIAL = ns.qn(ns.DS, "X509IssuerSerial")
_ISSUER_NAME = ns.qn(ns.DS, "X509IssuerName")
_SERIAL = ns.qn(ns.DS, "X509SerialNumber")
_CERTIFICATE = ns.qn(ns.DS, "X509Certificate")


@dataclass(frozen=True, slots=True)
class TokenReference:
    """What a SecurityTokenReference names: exactly one of its fields is set.

    ``certificate``: carried in the message (``token_id`` is the BST's ``wsu:Id`` for a direct reference);
    ``thumbprint``: SHA-1 of the DER; ``ski``: SubjectKeyIdentifier octets; ``issuer_serial``: issuer Name and
    serial number; ``embedded``: a certificate sent beside IssuerSerial, which must equal the one found.
    """

    certificate: x509.Certificate | None = None
    token_id: str | None = None
    thumbprint: bytes | None = None
    ski: bytes | None = None
    issuer_serial: tuple[x509.Name, int] | None = None
    embedded: x509.Certificate | None = None


def read_binary_token(token: etree._Element) -> x509.Certificate:
    """An X.509 v3 BinarySecurityToken's certificate (X.509 Token Profile 1.1 §3.1; BSP R3029, R3031).

    PKIPath and PKCS#7 tokens raise :class:`UnsupportedSecurityToken`; any other ValueType, an EncodingType other
    than Base64Binary, or content that is not one DER certificate of at most 16 KiB raise
    :class:`InvalidSecurityToken`.
    """
    value_type = str(token.get("ValueType", "")).strip(XML_WHITESPACE)
    if value_type in UNSUPPORTED_VALUE_TYPES:
        raise UnsupportedSecurityToken("certificate paths are not supported", reason="bst_path_unsupported")
    if value_type != X509V3:
        raise InvalidSecurityToken("BinarySecurityToken is not X509v3", reason="bst_value_type")
    encoding = token.get("EncodingType")
    if encoding is not None and encoding.strip(XML_WHITESPACE) != ns.BASE64_BINARY:
        raise InvalidSecurityToken("BinarySecurityToken encoding must be Base64Binary", reason="bst_encoding")
    if element_children(token):
        raise InvalidSecurityToken("BinarySecurityToken has element content", reason="bst_structure")
    return _certificate(text_of(token))


def read_token_reference(reference: etree._Element, security: etree._Element) -> TokenReference:
    """Read a signature's ``wsse:SecurityTokenReference`` (WSS 1.1 §7; BSP R3061, R3057, R3066, R5402).

    A direct reference must point (``URI="#id"``) at the X.509 BinarySecurityToken in ``security``, our one
    Security header; pointing anywhere else raises :class:`SecurityTokenUnavailable`.
    """
    children = element_children(reference)
    if len(children) != 1:
        raise InvalidSecurityToken("SecurityTokenReference must hold one reference", reason="str_structure")
    child = children[0]
    if child.tag == _REFERENCE:
        return _direct(child, security)
    if child.tag == _KEY_IDENTIFIER:
        return _key_identifier(child)
    if child.tag == _X509_DATA:
        return _x509_data(child)
    raise UnsupportedSecurityToken("unsupported SecurityTokenReference form", reason="str_unsupported")


def _direct(child: etree._Element, security: etree._Element) -> TokenReference:
    uri = str(child.get("URI", ""))
    if not uri.startswith("#") or len(uri) < 2:
        raise SecurityTokenUnavailable("reference outside the message", reason="str_external")
    value_type = child.get("ValueType")
    if value_type is not None and value_type.strip(XML_WHITESPACE) != X509V3:
        raise UnsupportedSecurityToken("reference to a token that is not X509v3", reason="str_value_type")
    wanted = uri[1:]
    for token in element_children(security):
        if token.tag == BINARY_SECURITY_TOKEN and token.get(ns.qn(ns.WSU, "Id")) == wanted:
            return TokenReference(certificate=read_binary_token(token), token_id=wanted)
    raise SecurityTokenUnavailable("referenced token not in the Security header", reason="str_dangling")


def _key_identifier(child: etree._Element) -> TokenReference:
    value_type = str(child.get("ValueType", "")).strip(XML_WHITESPACE)
    encoding = child.get("EncodingType")
    if encoding is not None and encoding.strip(XML_WHITESPACE) != ns.BASE64_BINARY:
        raise InvalidSecurityToken("KeyIdentifier encoding must be Base64Binary", reason="ki_encoding")
    if value_type == X509V3:
        return TokenReference(certificate=_certificate(text_of(child)))
    value = _base64(text_of(child), 64)
    if value_type == THUMBPRINT:
        if len(value) != 20:
            raise InvalidSecurityToken("ThumbprintSHA1 must be 20 bytes", reason="ki_thumbprint")
        return TokenReference(thumbprint=value)
    if value_type == SKI:
        return TokenReference(ski=value)
    raise UnsupportedSecurityToken("unsupported KeyIdentifier ValueType", reason="ki_value_type")


def _x509_data(child: etree._Element) -> TokenReference:
    parts = element_children(child)
    serials = [p for p in parts if p.tag == _ISSUER_SERIAL]
    certs = [p for p in parts if p.tag == _CERTIFICATE]
    if len(serials) != 1 or len(certs) > 1 or len(parts) != len(serials) + len(certs):
        raise UnsupportedSecurityToken("X509Data must name one IssuerSerial", reason="x509data_form")
    names = element_children(serials[0])
    if [n.tag for n in names] != [_ISSUER_NAME, _SERIAL]:
        raise InvalidSecurityToken("malformed X509IssuerSerial", reason="issuer_serial")
    try:
        issuer = _issuer_name(text_of(names[0]).strip(XML_WHITESPACE))
        serial = int(text_of(names[1]).strip(XML_WHITESPACE), 10)
    except ValueError:
        raise InvalidSecurityToken("malformed X509IssuerSerial", reason="issuer_serial") from None
    embedded = _certificate(text_of(certs[0])) if certs else None
    return TokenReference(issuer_serial=(issuer, serial), embedded=embedded)


# .NET writes S= for stateOrProvinceName and E= for emailAddress (WSS4J's Merlin normalises them likewise).
_ALIASES = {"S": x509.NameOID.STATE_OR_PROVINCE_NAME, "E": x509.NameOID.EMAIL_ADDRESS}
# .NET (X500DistinguishedName.Name) and Java (X500Principal.toString) write ", " between RDNs; RFC 4514 has none.
_SEPARATOR_SPACE = re.compile(r"(?<!\\)\s*([,+])\s*")


def _issuer_name(text: str) -> x509.Name:
    """An X509IssuerName as a Name (RFC 4514 with .NET's aliases; spaces around unescaped separators ignored)."""
    try:
        return x509.Name.from_rfc4514_string(text, _ALIASES)
    except ValueError:
        return x509.Name.from_rfc4514_string(_SEPARATOR_SPACE.sub(r"\1", text), _ALIASES)


def _base64(text: str, limit: int) -> bytes:
    compact = "".join(text.split())
    if len(compact) > limit * 4 // 3 + 4:
        raise InvalidSecurityToken("token value too large", reason="token_too_large")
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidSecurityToken("token value is not Base64", reason="token_base64") from None


def _certificate(text: str) -> x509.Certificate:
    der = _base64(text, MAX_CERT_BYTES)
    try:
        return _parsed(der)
    except ValueError:
        raise InvalidSecurityToken("not a DER certificate", reason="bad_certificate") from None


@functools.lru_cache(maxsize=1024)
def _parsed(der: bytes) -> x509.Certificate:
    """A DER certificate parsed once per worker: a client sends the same one with every request, and the parsed
    object keeps the extensions the certificate checks read. Bounded (1,024 of at most 16 KiB); a DER that does not
    parse raises each time (lru_cache keeps no exception).

    The issuer and subject names are decoded here too: cryptography parses them only when first read, so a name
    that does not decode (a UTF8String that is no UTF-8) would otherwise raise ValueError later, in the trust
    decision, instead of being this token's error (WSS 1.1 §12 InvalidSecurityToken)."""
    cert = x509.load_der_x509_certificate(der)
    _ = cert.issuer, cert.subject
    return cert
