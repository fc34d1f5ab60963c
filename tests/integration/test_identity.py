"""Who a token names and what it says, over HTTP against a real gunicorn: ``/`` never aliases a user (NameID
collision), ``wst:SecondaryParameters`` supplies what the top level lacks (WS-Trust 1.3 §4.1), NameID from any
claim with a Format per relying party (SAML 1.1 and 2.0), and role claims from membership only."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests
from lxml import etree

from sts.auth.passwords import PasswordHasher
from sts.auth.sqlite_users import SqliteUserStore
from sts.auth.users import PRIMARY
from sts.errors import FailedAuthentication, RequestFailed
from sts.relying_parties.model import RelyingParty
from sts.relying_parties.registry import RelyingPartyRegistry
from sts.stores.sqlite import Database
from sts.stores.sqlite_relying_parties import SqliteRelyingPartyStore
from tests.support import (
    WST,
    Instance,
    Server,
    fault_qname,
    fault_string,
    make_instance,
    rst_envelope,
    start_server,
)

pytestmark = pytest.mark.integration

SAML1 = "urn:oasis:names:tc:SAML:1.0:assertion"
SAML2 = "urn:oasis:names:tc:SAML:2.0:assertion"
SAML11_PROFILE = "http://docs.oasis-open.org/wss/oasis-wss-saml-token-profile-1.1#SAMLV1.1"
WSID = "http://schemas.xmlsoap.org/ws/2005/05/identity"
WSO2 = "http://wso2.org/claims"
GIVENNAME = f"{WSO2}/givenname"
ROLE = f"{WSO2}/role"
IMMUTABLE_ID = f"{WSO2}/immutableid"
UPN = f"{WSO2}/upn"
O365_UPN = "http://schemas.xmlsoap.org/claims/UPN"
PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
UNSPECIFIED = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"
PASSWORD = "Identity-Pa55word-7"

RP_OPEN = "https://open.example.org/rp/"  # no claim ceiling: the request decides
RP_O365 = "urn:federation:MicrosoftOnline"  # NameID = immutable ID, persistent; UPN as an attribute
RP_ROLES = "https://roles.example.org/rp/"


@dataclass
class Env:
    instance: Instance
    server: Server


def _add_user(instance: Instance, name: str, *args: str) -> None:
    saved, os.sys.stdin = os.sys.stdin, io.StringIO(PASSWORD + "\n")  # type: ignore[attr-defined]
    try:
        assert instance.cli("user", "add", name, "--password-stdin", *args) == 0
    finally:
        os.sys.stdin = saved  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    instance = make_instance(tmp_path_factory.mktemp("identity") / "var")
    _add_user(instance, "SECONDARY/carol", "--role", "admin")
    _add_user(
        instance, "olga", "--role", "admin", "--claim", f"{IMMUTABLE_ID}=b2xnYS1pbW11dGFibGU=",
        "--claim", f"{UPN}=olga@corp.example", "--claim", f"{GIVENNAME}=Olga",
    )
    _add_user(instance, "nils", "--role", "admin", "--claim", f"{UPN}=nils@corp.example")  # no immutable ID
    db = Database(instance.base / "sts.db")
    users = SqliteUserStore(db, PasswordHasher())
    # What the CLI refuses today but a database written by an earlier release (or another store) may hold:
    # a PRIMARY user named "SECONDARY/carol", and a role value stored as a claim.
    db.conn.execute(
        "INSERT INTO users(domain, name, canonical, password_hash, enabled, created, updated)"
        " VALUES ('PRIMARY', 'SECONDARY/carol', 'secondary/carol', ?, 1, 0, 0)",
        (PasswordHasher().hash(PASSWORD),),
    )
    legacy_id = db.conn.execute("SELECT id FROM users WHERE name = 'SECONDARY/carol'").fetchone()[0]
    db.conn.execute("INSERT INTO user_roles(user_id, role) VALUES (?, 'admin')", (legacy_id,))
    users.add_user(PRIMARY, "rita", PASSWORD, roles=["admin"], claims={ROLE: ["superuser"]})
    rps = RelyingPartyRegistry(SqliteRelyingPartyStore(db))
    rps.add(RelyingParty(address=RP_OPEN, encrypt=False))
    rps.add(
        RelyingParty(
            address=RP_O365, encrypt=False, profile="adfs", nameid=IMMUTABLE_ID, nameid_format=PERSISTENT,
            claims=(UPN,), claim_mapping=((UPN, O365_UPN),),
        )
    )
    rps.add(RelyingParty(address=RP_ROLES, encrypt=False, claims=(ROLE,)))
    db.close()
    server = start_server(instance, workers=1, tls=True)
    try:
        yield Env(instance, server)
    finally:
        server.stop()


def post(env: Env, body: bytes) -> requests.Response:
    return env.server.post(body, action=f"{WST}/RST/Issue")


def request(user: str, applies_to: str, *, token_type: str | None = SAML2, extra_rst: str = "") -> bytes:
    body = rst_envelope(user, PASSWORD, applies_to=applies_to, token_type=token_type or SAML2, extra_rst=extra_rst)
    if token_type is None:
        body = body.replace(f"<wst:TokenType>{SAML2}</wst:TokenType>".encode(), b"", 1)
    return body


def assertion_of(response: requests.Response) -> etree._Element:
    assert response.status_code == 200, response.content[:2000]
    holder = etree.fromstring(response.content).find(f".//{{{WST}}}RequestedSecurityToken")
    assert holder is not None and len(holder) == 1
    return holder[0]


def rstr_text(response: requests.Response, local: str) -> str | None:
    return etree.fromstring(response.content).findtext(f".//{{{WST}}}RequestSecurityTokenResponse/{{{WST}}}{local}")


def name_id(assertion: etree._Element) -> tuple[str | None, str | None]:
    """SAML 2.0 ``Subject/NameID`` or SAML 1.1 ``NameIdentifier`` (every one in the assertion must agree)."""
    found = [*assertion.iter(f"{{{SAML2}}}NameID"), *assertion.iter(f"{{{SAML1}}}NameIdentifier")]
    assert found
    values = {(node.text, node.get("Format")) for node in found}
    assert len(values) == 1, values
    return values.pop()


def attributes(assertion: etree._Element) -> dict[str, list[str | None]]:
    saml2 = {a.get("Name") or "": [v.text for v in a] for a in assertion.iter(f"{{{SAML2}}}Attribute")}
    saml1 = {
        f"{a.get('AttributeNamespace')}/{a.get('AttributeName')}": [v.text for v in a]
        for a in assertion.iter(f"{{{SAML1}}}Attribute")
    }
    return {**saml2, **saml1}


def assert_fault(response: requests.Response, error: type[FailedAuthentication | RequestFailed]) -> None:
    assert response.status_code == 500, response.content[:1000]
    assert fault_qname(response.content) == error.fault_qname()
    assert fault_string(response.content) == error.fault_string
    assert b"Assertion" not in response.content


# --- 6. '/' separates the domain: PRIMARY/SECONDARY/carol is nobody ---------------------------------------------


def test_a_second_separator_never_reaches_a_user_or_a_nameid(env: Env) -> None:
    """Before: the PRIMARY user "SECONDARY/carol" got tokens whose NameID was SECONDARY/carol, the subject of the
    real SECONDARY/carol. Now the name is refused like a wrong password, and only the real user has that NameID."""
    response = post(env, request("PRIMARY/SECONDARY/carol", RP_OPEN))
    assert_fault(response, FailedAuthentication)
    assert name_id(assertion_of(post(env, request("SECONDARY/carol", RP_OPEN)))) == ("SECONDARY/carol", UNSPECIFIED)


# --- 7. wst:SecondaryParameters (WS-Trust 1.3 §4.1), as WCF sends the RP's RequestSecurityTokenTemplate -------------


def secondary(children: str) -> str:
    return f'<wst:SecondaryParameters xmlns:wsid="{WSID}">{children}</wst:SecondaryParameters>'


WCF_TEMPLATE_EXTRAS = (
    "<wst:KeyWrapAlgorithm>http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p</wst:KeyWrapAlgorithm>"
    "<wst:EncryptWith>http://www.w3.org/2001/04/xmlenc#aes256-cbc</wst:EncryptWith>"
    "<wst:SignWith>http://www.w3.org/2000/09/xmldsig#hmac-sha1</wst:SignWith>"
    "<wst:CanonicalizationAlgorithm>http://www.w3.org/2001/10/xml-exc-c14n#</wst:CanonicalizationAlgorithm>"
    "<wst:EncryptionAlgorithm>http://www.w3.org/2001/04/xmlenc#aes256-cbc</wst:EncryptionAlgorithm>"
)


def test_secondary_token_type_is_used_when_the_top_level_has_none(env: Env) -> None:
    template = secondary(f"<wst:TokenType>{SAML11_PROFILE}</wst:TokenType>{WCF_TEMPLATE_EXTRAS}")
    response = post(env, request("olga", RP_OPEN, token_type=None, extra_rst=template))
    assert etree.QName(assertion_of(response)).namespace == SAML1
    assert rstr_text(response, "TokenType") == SAML11_PROFILE


def test_top_level_token_type_wins(env: Env) -> None:
    template = secondary(f"<wst:TokenType>{SAML11_PROFILE}</wst:TokenType>")
    response = post(env, request("olga", RP_OPEN, token_type=SAML2, extra_rst=template))
    assert etree.QName(assertion_of(response)).namespace == SAML2
    assert rstr_text(response, "TokenType") == SAML2


def test_secondary_claims_are_used_when_the_top_level_has_none(env: Env) -> None:
    claims = f'<wst:Claims Dialect="{WSID}"><wsid:ClaimType Uri="{GIVENNAME}"/></wst:Claims>'
    response = post(env, request("olga", RP_OPEN, extra_rst=secondary(claims)))
    assert attributes(assertion_of(response)) == {GIVENNAME: ["Olga"]}


def test_secondary_key_type_and_size_are_used_when_the_top_level_has_none(env: Env) -> None:
    """The demo RP has a certificate: SymmetricKey from the template gives a holder-of-key token of KeySize."""
    template = secondary(f"<wst:KeyType>{WST}/SymmetricKey</wst:KeyType><wst:KeySize>192</wst:KeySize>")
    body = request("olga", "https://localhost:8443/demo-rp/", extra_rst=template)
    body = body.replace(f"<wst:KeyType>{WST}/Bearer</wst:KeyType>".encode(), b"", 1)
    response = post(env, body)
    assert response.status_code == 200, response.content[:1000]
    assert (rstr_text(response, "KeyType"), rstr_text(response, "KeySize")) == (f"{WST}/SymmetricKey", "192")


def test_an_unsupported_secondary_value_is_refused_as_at_top_level(env: Env) -> None:
    response = post(env, request("olga", RP_OPEN, token_type=None, extra_rst=secondary(
        "<wst:TokenType>urn:evil:token-type</wst:TokenType>"
    )))
    assert response.status_code == 500
    assert fault_qname(response.content) == (WST, "BadRequest")


# --- 8. NameID from any claim with a Format per RP (Office 365 / Azure AD: immutable ID, persistent) ---------------


@pytest.mark.parametrize("token_type", [SAML1, SAML2])
def test_nameid_from_a_claim_with_its_format(env: Env, token_type: str) -> None:
    assertion = assertion_of(post(env, request("olga", RP_O365, token_type=token_type)))
    assert etree.QName(assertion).namespace == token_type
    assert name_id(assertion) == ("b2xnYS1pbW11dGFibGU=", PERSISTENT)
    assert attributes(assertion) == {O365_UPN: ["olga@corp.example"]}  # the UPN as an attribute


def test_a_user_without_the_nameid_claim_gets_request_failed(env: Env) -> None:
    assert_fault(post(env, request("nils", RP_O365)), RequestFailed)


# --- 9. role claims come from membership only -------------------------------------------------------------------


def test_a_stored_role_value_is_never_issued(env: Env) -> None:
    """rita holds the role admin and has "superuser" stored under the role claim: only membership is released."""
    assert attributes(assertion_of(post(env, request("rita", RP_ROLES)))) == {ROLE: ["admin"]}
    asked = f'<wst:Claims Dialect="{WSO2}" xmlns:wsid="{WSID}"><wsid:ClaimType Uri="{ROLE}"/></wst:Claims>'
    assert attributes(assertion_of(post(env, request("rita", RP_OPEN, extra_rst=asked)))) == {ROLE: ["admin"]}

