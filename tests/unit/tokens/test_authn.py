"""How the subject authenticated: the SAML 2.0 class of each kind of caller and its SAML 1.1 method."""

from __future__ import annotations

import pytest

from sts import ns
from sts.auth.transport_certs import TLS_CLIENT_METHOD
from sts.auth.validators import X509_SIGNATURE
from sts.operations.issue import caller_authn_context
from sts.operations.issued_callers import ISSUED_TOKEN
from sts.tokens import authn
from sts.tokens.saml11 import build_saml11
from tests.unit.tokens.test_assertions import content

CLASSES = "urn:oasis:names:tc:SAML:2.0:ac:classes:"


@pytest.mark.parametrize(
    ("method", "secure", "expected"),
    [
        ("password-text", True, CLASSES + "PasswordProtectedTransport"),
        ("password-digest", True, CLASSES + "PasswordProtectedTransport"),
        ("password-text", False, CLASSES + "Password"),
        (X509_SIGNATURE, True, CLASSES + "X509"),
        (TLS_CLIENT_METHOD, True, CLASSES + "TLSClient"),
        (ISSUED_TOKEN, True, CLASSES + "PreviousSession"),
        (ISSUED_TOKEN, False, CLASSES + "PreviousSession"),
    ],
)
def test_each_caller_kind_has_its_class(method: str, secure: bool, expected: str) -> None:
    assert caller_authn_context(method, secure) == expected


@pytest.mark.parametrize(
    ("context", "method"),
    [
        (authn.PASSWORD_PROTECTED_TRANSPORT, "urn:oasis:names:tc:SAML:1.0:am:password"),
        (authn.PASSWORD, "urn:oasis:names:tc:SAML:1.0:am:password"),
        (authn.X509, "urn:oasis:names:tc:SAML:1.0:am:X509-PKI"),
        (authn.TLS_CLIENT, "urn:ietf:rfc:2246"),
        (authn.PREVIOUS_SESSION, "urn:oasis:names:tc:SAML:1.0:am:unspecified"),
    ],
)
def test_saml11_states_the_matching_method(context: str, method: str) -> None:
    statement = build_saml11(content(), context).find(f"{{{ns.SAML1}}}AuthenticationStatement")
    assert statement is not None and statement.get("AuthenticationMethod") == method


def test_one_skeleton_serves_every_method() -> None:
    """The cached skeleton holds no method: two tokens of one shape state their own."""
    first = build_saml11(content(), authn.X509)
    second = build_saml11(content(), authn.PASSWORD)
    path = f"{{{ns.SAML1}}}AuthenticationStatement"
    assert [assertion.find(path).get("AuthenticationMethod") for assertion in (first, second)] == [  # type: ignore[union-attr]
        authn.SAML11_X509_PKI,
        authn.SAML11_PASSWORD,
    ]
