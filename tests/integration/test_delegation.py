"""Delegation over HTTP against the real gunicorn: user → STS → token for the front-end → the front-end asks, with
OnBehalfOf or ActAs, for a token for the back-end → the back-end verifies it with independent libraries (signxml
pinned to the STS certificate, the xmlsec1 command line); the deny-by-default policy and every refusal of
WS-Trust 1.3 §9.1 / 1.4 delegation, each with its exact fault and nothing issued."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from lxml import etree

from sts import ns
from tests.integration.delegation_support import (
    BACKEND,
    FRONTEND,
    MIDDLE,
    PASSWORD,
    IdentityProvider,
    fault_of,
    issue,
    setup_bed,
)
from tests.support import Instance, Server, audit_records, make_instance, start_server
from tests.token_checks import verify_with_both

WST = (ns.WST, "")
REQUEST_FAILED = (ns.WST, "RequestFailed")
INVALID_TOKEN = (ns.WST, "InvalidSecurityToken")
BAD_REQUEST = (ns.WST, "BadRequest")
INVALID_REQUEST = (ns.WST, "InvalidRequest")
DEL = ns.SAML_DELEGATION


@pytest.fixture(scope="module")
def idp() -> IdentityProvider:
    return IdentityProvider.create()


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory, idp: IdentityProvider) -> Iterator[Server]:
    instance = make_instance(tmp_path_factory.mktemp("delegation") / "var")
    setup_bed(instance, idp)
    policy = (
        "rp", "update", BACKEND, "--allow-delegation", "svc-front", "--allow-delegation", "role:frontends",
        "--allow-delegation", "svc-middle", "--delegation-subjects", "any", "--max-delegation-depth", "2",
    )
    assert instance.cli(*policy) == 0
    assert instance.cli("rp", "update", MIDDLE, "--allow-delegation", "svc-front", "--delegation-mode", "actas") == 0
    server = start_server(instance, workers=2, tls=True)
    yield server
    server.stop()


def _instance(server: Server) -> Instance:
    return server.instance


def user_token(server: Server, user: str = "alice", applies_to: str = FRONTEND) -> etree._Element:
    return issue(server, user, applies_to).token


def verified(server: Server, token: etree._Element, tmp_path: Path) -> etree._Element:
    """The back-end's check: signxml pinned to the STS certificate and xmlsec1, on the token as received."""
    return verify_with_both(etree.tostring(token), _instance(server).signing_cert, saml11=False)


def name_id(assertion: etree._Element) -> str:
    return assertion.findtext(f"{{{ns.SAML2}}}Subject/{{{ns.SAML2}}}NameID") or ""


def delegates(assertion: etree._Element) -> list[str]:
    path = f"{{{ns.SAML2}}}Conditions/{{{ns.SAML2}}}Condition/{{{DEL}}}Delegate/{{{ns.SAML2}}}NameID"
    return [name.text or "" for name in assertion.findall(path)]


# --- the chain ---------------------------------------------------------------------------------------------------


def test_on_behalf_of_names_the_user_and_records_no_chain(bed: Server, tmp_path: Path) -> None:
    t1 = user_token(bed)
    t2 = issue(bed, "svc-front", BACKEND, on_behalf_of=t1).token
    signed = verified(bed, t2, tmp_path)
    assert name_id(signed) == "alice"
    assert delegates(signed) == []
    assert signed.findtext(f".//{{{ns.SAML2}}}Audience") == BACKEND


def test_act_as_names_the_user_and_records_the_caller(bed: Server, tmp_path: Path) -> None:
    t1 = user_token(bed)
    t2 = issue(bed, "svc-front", BACKEND, act_as=t1).token
    signed = verified(bed, t2, tmp_path)
    assert name_id(signed) == "alice"
    assert delegates(signed) == ["PRIMARY/svc-front"]
    condition = signed.find(f"{{{ns.SAML2}}}Conditions/{{{ns.SAML2}}}Condition")
    assert condition is not None and condition.get(f"{{{ns.XSI}}}type") == "del:DelegationRestrictionType"
    delegate = condition.find(f"{{{DEL}}}Delegate")
    assert delegate is not None and delegate.get("ConfirmationMethod") == "urn:oasis:names:tc:SAML:2.0:cm:bearer"


def test_a_chain_of_two_services_within_the_depth(bed: Server, tmp_path: Path) -> None:
    t1 = user_token(bed)
    t2 = issue(bed, "svc-front", MIDDLE, act_as=t1).token
    t3 = issue(bed, "svc-middle", BACKEND, act_as=t2).token
    signed = verified(bed, t3, tmp_path)
    assert name_id(signed) == "alice"
    assert delegates(signed) == ["PRIMARY/svc-front", "PRIMARY/svc-middle"]


def test_the_delegated_token_does_not_outlive_the_one_handed_in(bed: Server) -> None:
    t1 = issue(bed, "alice", FRONTEND)
    t2 = issue(bed, "svc-front", BACKEND, act_as=t1.token)
    assert t2.expires <= t1.expires


def test_the_audit_names_caller_subject_and_chain(bed: Server) -> None:
    t1 = user_token(bed)
    t2 = issue(bed, "svc-front", BACKEND, act_as=t1)
    events = [e for e in audit_records(bed.log) if e.get("token_id") == t2.token_id and e["audit_event"] == "issue"]
    assert len(events) == 1
    event = events[0]
    assert (event["user"], event["subject"], event["chain"]) == ("svc-front", "PRIMARY/alice", "PRIMARY/svc-front")
    assert event["source_token"] == t1.get("ID")


def test_a_username_token_on_behalf_of_is_checked_like_a_login(bed: Server, tmp_path: Path) -> None:
    ut = username_token("carol", PASSWORD)
    t2 = issue(bed, "svc-front", BACKEND, on_behalf_of=ut).token
    assert name_id(verified(bed, t2, tmp_path)) == "carol"


def username_token(user: str, password: str) -> etree._Element:
    token = etree.Element(f"{{{ns.WSSE}}}UsernameToken", nsmap={"wsse": ns.WSSE})
    etree.SubElement(token, f"{{{ns.WSSE}}}Username").text = user
    etree.SubElement(token, f"{{{ns.WSSE}}}Password", Type=ns.PASSWORD_TEXT).text = password
    return token


def test_a_trusted_issuers_assertion_can_be_delegated(bed: Server, idp: IdentityProvider, tmp_path: Path) -> None:
    t2 = issue(bed, "svc-front", BACKEND, act_as=idp.assertion("alice")).token
    signed = verified(bed, t2, tmp_path)
    assert name_id(signed) == "alice" and delegates(signed) == ["PRIMARY/svc-front"]


# --- deny by default, and each refusal -----------------------------------------------------------------------


def test_no_delegation_rule_no_delegation(bed: Server) -> None:
    assert fault_of(issue, bed, "svc-front", FRONTEND, act_as=user_token(bed)) == REQUEST_FAILED


def test_caller_not_listed(bed: Server) -> None:
    assert fault_of(issue, bed, "mallory", BACKEND, act_as=user_token(bed)) == REQUEST_FAILED


def test_mode_not_allowed(bed: Server) -> None:
    assert fault_of(issue, bed, "svc-front", MIDDLE, on_behalf_of=user_token(bed)) == REQUEST_FAILED
