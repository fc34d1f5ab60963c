"""Issue 12, items 2-5, over HTTP against gunicorn with 2 workers: Renew decides again like a fresh Issue, keeps
the token's relying party, retires the old token atomically, and the AppliesTo echo names the issued scope.

The server runs with its own instance: Issue is open to ``admin`` and ``staff``, the lifecycle bindings also to
``renewer``; a default relying party is configured; the verified-credential cache is off so a fresh Issue sees a
role change at once (Renew reads the user store itself, cache or not). Relying parties do not encrypt, so the
tests read the assertions directly.
"""

from __future__ import annotations

import io
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from lxml import etree

from tests.support import WSSE, WST, Instance, Server, fault_qname, make_instance, rst_envelope, start_server

pytestmark = pytest.mark.integration

SAML2 = "urn:oasis:names:tc:SAML:2.0:assertion"
WSP = "http://schemas.xmlsoap.org/ws/2004/09/policy"
WSA = "http://www.w3.org/2005/08/addressing"
ROLE = "http://wso2.org/claims/role"
EMAIL = "http://wso2.org/claims/emailaddress"
CLAIMS_RP = "https://localhost:8443/renew-claims/"
DEFAULT_RP = "https://localhost:8443/renew-default/"
DEFAULT_AUDIENCE = "urn:renew:default"
REGEX_RP = r"https://localhost:8443/rx/[a-z]+/"
PREFIX_RP = "https://localhost:8443/apps/"
EXACT_RP = "https://localhost:8443/apps/one/"
PASSWORD = "Renew-Pass-1"
RECHECK = 1.1  # a worker re-reads the relying-party registry at most once a second
SAMLID = "http://docs.oasis-open.org/wss/oasis-wss-saml-token-profile-1.1#SAMLID"


def add_user(instance: Instance, name: str, *roles: str, email: str = "") -> None:
    saved, sys.stdin = sys.stdin, io.StringIO(PASSWORD + "\n")
    try:
        args = ["user", "add", name, "--password-stdin", "--claim", f"{EMAIL}={email or name + '@example.com'}"]
        for role in roles:
            args += ["--role", role]
        assert instance.cli(*args) == 0
    finally:
        sys.stdin = saved


@pytest.fixture(scope="module")
def renew_instance(tmp_path_factory: pytest.TempPathFactory) -> Instance:
    instance = make_instance(tmp_path_factory.mktemp("renew") / "var")
    for role in ("staff", "renewer"):
        assert instance.cli("role", "add", role) == 0
    rp = ["rp", "add", "--no-encrypt"]
    assert instance.cli(*rp, CLAIMS_RP, "--claim", ROLE, "--claim", EMAIL) == 0
    assert instance.cli(*rp, DEFAULT_RP, "--identifier", DEFAULT_AUDIENCE, "--claim", EMAIL) == 0
    assert instance.cli(*rp, REGEX_RP, "--match", "regex", "--identifier", "urn:renew:rx", "--claim", EMAIL) == 0
    assert instance.cli(*rp, PREFIX_RP, "--match", "prefix", "--claim", ROLE) == 0
    assert instance.cli(*rp, EXACT_RP, "--claim", EMAIL) == 0
    return instance


@pytest.fixture(scope="module")
def renew_server(renew_instance: Instance) -> Iterator[Server]:
    env = {
        "STS_SECURITY_ALLOWED_ROLES": "admin,staff",
        "STS_LIFECYCLE_ALLOWED_ROLES": "admin,staff,renewer",
        "STS_SECURITY_CREDENTIAL_CACHE_TTL": "0",
        "STS_TOKENS_DEFAULT_RELYING_PARTY": DEFAULT_RP,
    }
    server = start_server(renew_instance, workers=2, env=env)
    yield server
    server.stop()


def issue(server: Server, user: str, applies_to: str, renewable: bool = True) -> requests.Response:
    extra = '<wst:Renewing Allow="true"/>' if renewable else ""
    return server.post(rst_envelope(user, PASSWORD, applies_to=applies_to, extra_rst=extra), action=f"{WST}/RST/Issue")


def reference(token_id: str) -> str:
    return (
        f'<wsse:SecurityTokenReference xmlns:wsse="{WSSE}"><wsse:KeyIdentifier ValueType="{SAMLID}">{token_id}'
        "</wsse:KeyIdentifier></wsse:SecurityTokenReference>"
    )


def lifecycle(server: Server, user: str, operation: str, token_id: str) -> requests.Response:
    kind = f"{WST}/RSTR/Status" if operation == "Validate" else SAML2
    body = rst_envelope(
        user,
        PASSWORD,
        token_type=kind,
        request_type=f"{WST}/{operation}",
        extra_rst=f"<wst:{operation}Target>{reference(token_id)}</wst:{operation}Target>",
    )
    return server.post(body, action=f"{WST}/RST/{operation}")


def assertion(response: requests.Response) -> etree._Element:
    assert response.status_code == 200, response.content[:1500]
    found = etree.fromstring(response.content).find(f".//{{{WST}}}RequestedSecurityToken/{{{SAML2}}}Assertion")
    assert found is not None, response.content[:1500]
    return found


def token_id(response: requests.Response) -> str:
    return str(assertion(response).get("ID"))


def claims(response: requests.Response) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for attribute in assertion(response).iter(f"{{{SAML2}}}Attribute"):
        values[str(attribute.get("Name"))] = sorted(v.text or "" for v in attribute.iter(f"{{{SAML2}}}AttributeValue"))
    return values


def audience(response: requests.Response) -> str:
    return str(assertion(response).findtext(f".//{{{SAML2}}}Audience"))


def status(server: Server, user: str, token: str) -> str:
    response = lifecycle(server, user, "Validate", token)
    assert response.status_code == 200, response.content[:1500]
    code = etree.fromstring(response.content).findtext(f".//{{{WST}}}Status/{{{WST}}}Code")
    return (code or "").rsplit("/", 1)[-1]


# --- item 2 -------------------------------------------------------------------------------------------------------


def test_a_revoked_role_is_not_re_minted_by_renew(renew_server: Server, renew_instance: Instance) -> None:
    add_user(renew_instance, "bob", "admin", "staff")
    issued = issue(renew_server, "bob", CLAIMS_RP)
    assert claims(issued)[ROLE] == ["admin", "staff"]
    assert renew_instance.cli("user", "revoke", "bob", "admin") == 0
    renewed = lifecycle(renew_server, "bob", "Renew", token_id(issued))
    assert claims(renewed)[ROLE] == ["staff"]


def test_a_subject_who_lost_the_issue_role_gets_the_issue_fault(renew_server: Server, renew_instance: Instance) -> None:
    add_user(renew_instance, "carol", "admin", "renewer")
    issued = issue(renew_server, "carol", CLAIMS_RP)
    assert renew_instance.cli("user", "revoke", "carol", "admin") == 0  # still a renewer
    fresh = issue(renew_server, "carol", CLAIMS_RP)
    assert fault_qname(fresh.content) == (WSSE, "FailedAuthentication")
    renewed = lifecycle(renew_server, "carol", "Renew", token_id(issued))
    assert fault_qname(renewed.content) == (WSSE, "FailedAuthentication")
    assert renewed.content.count(b"RequestSecurityTokenResponse") == 0


def test_changed_claims_and_a_narrowed_relying_party_apply_on_renewal(
    renew_server: Server, renew_instance: Instance
) -> None:
    add_user(renew_instance, "dana", "staff", email="dana@old.example")
    issued = issue(renew_server, "dana", CLAIMS_RP)
    assert claims(issued) == {ROLE: ["staff"], EMAIL: ["dana@old.example"]}
    assert renew_instance.cli("user", "set-claim", "dana", f"{EMAIL}=dana@new.example") == 0
    renewed = lifecycle(renew_server, "dana", "Renew", token_id(issued))
    assert claims(renewed) == {ROLE: ["staff"], EMAIL: ["dana@new.example"]}
    assert renew_instance.cli("rp", "update", CLAIMS_RP, "--claim", EMAIL, "--claim-map", f"{EMAIL}=urn:mail") == 0
    time.sleep(RECHECK)
    again = lifecycle(renew_server, "dana", "Renew", token_id(renewed))
    assert claims(again) == {"urn:mail": ["dana@new.example"]}
    assert renew_instance.cli("rp", "update", CLAIMS_RP, "--claim", ROLE, "--claim", EMAIL, "--clear-claim-maps") == 0
    time.sleep(RECHECK)


# --- item 3 -------------------------------------------------------------------------------------------------------


def test_a_regex_relying_party_renews_for_itself(renew_server: Server, renew_instance: Instance) -> None:
    add_user(renew_instance, "erin", "admin")
    issued = issue(renew_server, "erin", "https://localhost:8443/rx/abc/")
    assert audience(issued) == "urn:renew:rx"
    renewed = lifecycle(renew_server, "erin", "Renew", token_id(issued))
    assert audience(renewed) == "urn:renew:rx"  # not the default relying party's


def test_a_removed_relying_party_is_not_replaced_by_a_matching_prefix(
    renew_server: Server, renew_instance: Instance
) -> None:
    add_user(renew_instance, "fred", "admin")
    issued = issue(renew_server, "fred", EXACT_RP)
    assert audience(issued) == EXACT_RP
    assert renew_instance.cli("rp", "remove", EXACT_RP) == 0
    time.sleep(RECHECK)
    refused = lifecycle(renew_server, "fred", "Renew", token_id(issued))
    assert fault_qname(refused.content) == (WST, "UnableToRenew")


# --- item 4 -------------------------------------------------------------------------------------------------------


def test_twenty_concurrent_renewals_of_one_token_exactly_one_succeeds(
    renew_server: Server, renew_instance: Instance
) -> None:
    add_user(renew_instance, "gina", "admin")
    token = token_id(issue(renew_server, "gina", CLAIMS_RP))
    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(lambda _: lifecycle(renew_server, "gina", "Renew", token), range(20)))
    winners = [answer for answer in answers if answer.status_code == 200]
    assert len(winners) == 1, [answer.status_code for answer in answers]
    assert {fault_qname(answer.content) for answer in answers if answer.status_code != 200} == {(WST, "UnableToRenew")}
    assert status(renew_server, "gina", token_id(winners[0])) == "valid"
    assert status(renew_server, "gina", token) == "invalid"


def test_a_renewed_token_is_retired_and_cancel_ends_its_chain(renew_server: Server, renew_instance: Instance) -> None:
    add_user(renew_instance, "hugo", "admin")
    first = token_id(issue(renew_server, "hugo", CLAIMS_RP))
    second = token_id(lifecycle(renew_server, "hugo", "Renew", first))
    assert status(renew_server, "hugo", first) == "invalid"
    assert fault_qname(lifecycle(renew_server, "hugo", "Renew", first).content) == (WST, "UnableToRenew")
    assert status(renew_server, "hugo", second) == "valid"
    cancelled = lifecycle(renew_server, "hugo", "Cancel", first)  # the old token of the chain
    assert cancelled.status_code == 200 and b"RequestedTokenCancelled" in cancelled.content
    assert status(renew_server, "hugo", second) == "invalid"
    assert fault_qname(lifecycle(renew_server, "hugo", "Renew", second).content) == (WST, "UnableToRenew")


# --- item 5 -------------------------------------------------------------------------------------------------------


def test_applies_to_echo_after_the_default_fallback_names_the_issued_scope(
    renew_server: Server, renew_instance: Instance
) -> None:
    add_user(renew_instance, "ivy", "admin")
    response = issue(renew_server, "ivy", "https://localhost:8443/nowhere/", renewable=False)
    assert audience(response) == DEFAULT_AUDIENCE
    root = etree.fromstring(response.content)
    echoed = root.findtext(f".//{{{WSP}}}AppliesTo/{{{WSA}}}EndpointReference/{{{WSA}}}Address")
    assert echoed == DEFAULT_AUDIENCE
