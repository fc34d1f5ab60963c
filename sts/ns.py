"""Namespace URIs and QName helpers (each URI exactly as its spec's namespace table gives it).

Elements are always matched by Clark name ``{namespace}local``, never by prefix (Namespaces in XML 1.0: prefixes are
only shorthand), so default namespaces and re-declared or shadowed prefixes are all understood.
"""

from typing import Final

S11: Final = "http://schemas.xmlsoap.org/soap/envelope/"
S12: Final = "http://www.w3.org/2003/05/soap-envelope"
WST: Final = "http://docs.oasis-open.org/ws-sx/ws-trust/200512"
WST14: Final = "http://docs.oasis-open.org/ws-sx/ws-trust/200802"
WST05: Final = "http://schemas.xmlsoap.org/ws/2005/02/trust"
WSP: Final = "http://schemas.xmlsoap.org/ws/2004/09/policy"
WSP15: Final = "http://www.w3.org/ns/ws-policy"
WSA: Final = "http://www.w3.org/2005/08/addressing"
WSA04: Final = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
WSSE: Final = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSSE11: Final = "http://docs.oasis-open.org/wss/oasis-wss-wssecurity-secext-1.1.xsd"
WSU: Final = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
WSID: Final = "http://schemas.xmlsoap.org/ws/2005/05/identity"
WSO2_CLAIMS: Final = "http://wso2.org/claims"
DS: Final = "http://www.w3.org/2000/09/xmldsig#"
XENC: Final = "http://www.w3.org/2001/04/xmlenc#"
XENC11: Final = "http://www.w3.org/2009/xmlenc11#"
SAML1: Final = "urn:oasis:names:tc:SAML:1.0:assertion"
SAML2: Final = "urn:oasis:names:tc:SAML:2.0:assertion"
# SAML V2.0 Condition for Delegation Restriction (OASIS sstc-saml-delegation, 2009).
SAML_DELEGATION: Final = "urn:oasis:names:tc:SAML:2.0:conditions:delegation"
XSI: Final = "http://www.w3.org/2001/XMLSchema-instance"
XS: Final = "http://www.w3.org/2001/XMLSchema"
WSDL: Final = "http://schemas.xmlsoap.org/wsdl/"
SP: Final = "http://docs.oasis-open.org/ws-sx/ws-securitypolicy/200702"
XML: Final = "http://www.w3.org/XML/1998/namespace"
# This STS's own fault detail (the correlation id of a fault: its audit record's key).
STS_FAULT: Final = "urn:python-sts:fault"

# UsernameToken Profile 1.1 and SOAP Message Security URIs.
PASSWORD_TEXT: Final = (
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordText"
)
PASSWORD_DIGEST: Final = (
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest"
)
BASE64_BINARY: Final = (
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary"
)

# Prefixes used when the STS writes XML: letters and digits only, because Microsoft's WS-Trust client code finds
# elements with a regular expression on ``<(\w+:)?Name`` rather than with an XML parser.
PREFIXES: Final[dict[str, str]] = {
    "s11": S11,
    "s12": S12,
    "wst": WST,
    "wsp": WSP,
    "wsa": WSA,
    "wsse": WSSE,
    "wsse11": WSSE11,
    "wsu": WSU,
    "ds": DS,
    "xenc": XENC,
    "xenc11": XENC11,
    "saml": SAML1,
    "saml2": SAML2,
}


def qn(namespace: str, local: str) -> str:
    """Return the Clark-notation name ``{namespace}local``."""
    return f"{{{namespace}}}{local}"
