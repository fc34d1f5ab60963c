"""How the subject authenticated, as an issued assertion states it.

A plan carries one SAML 2.0 authentication context class (SAML 2.0 Authentication Context §3.4); a SAML 1.1
assertion states the matching authentication method identifier of SAML 1.1 core §7.1. Renewals keep the class
their first token was issued with (it is in the renewal record).
"""

from __future__ import annotations

_CLASSES = "urn:oasis:names:tc:SAML:2.0:ac:classes:"
# §3.4.19: a password over a protected transport (a UsernameToken over TLS).
PASSWORD_PROTECTED_TRANSPORT = _CLASSES + "PasswordProtectedTransport"  # noqa: S105 - a URI
PASSWORD = _CLASSES + "Password"  # noqa: S105 - a URI; §3.4.18: a password, transport unprotected
# §3.4.25: a digital signature made with a key certified by an X.509 PKI (an X.509-signed request).
X509 = _CLASSES + "X509"
TLS_CLIENT = _CLASSES + "TLSClient"  # §3.4.22: a client certificate in the TLS handshake
PREVIOUS_SESSION = _CLASSES + "PreviousSession"  # §3.4.21: authenticated earlier, to whoever issued a token

# SAML 1.1 core §7.1 identifiers for the classes above.
SAML11_PASSWORD = "urn:oasis:names:tc:SAML:1.0:am:password"  # noqa: S105 - a URI
SAML11_X509_PKI = "urn:oasis:names:tc:SAML:1.0:am:X509-PKI"
SAML11_TLS_CLIENT = "urn:ietf:rfc:2246"
SAML11_UNSPECIFIED = "urn:oasis:names:tc:SAML:1.0:am:unspecified"
_SAML11 = {
    PASSWORD_PROTECTED_TRANSPORT: SAML11_PASSWORD,
    PASSWORD: SAML11_PASSWORD,
    X509: SAML11_X509_PKI,
    TLS_CLIENT: SAML11_TLS_CLIENT,
}


def password_context(secure_transport: bool) -> str:
    """A password login's class: PasswordProtectedTransport over TLS, Password over plain HTTP (allowed only by
    configuration)."""
    return PASSWORD_PROTECTED_TRANSPORT if secure_transport else PASSWORD


def saml11_method(authn_context: str) -> str:
    """The SAML 1.1 ``AuthenticationMethod`` for a SAML 2.0 class; ``unspecified`` for a class without one (a
    previous session)."""
    return _SAML11.get(authn_context, SAML11_UNSPECIFIED)
