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
    IDP,
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
STAFF_ONLY = "https://staff-only.example.test/"  # delegation of holders of the role staff only
BOUND = "https://bound.example.test/"  # delegated tokens must be addressed to the front-end
LONG_LIVED = "https://long-lived.example.test/"  # its tokens live 12 h, the longest [tokens] max_lifetime allows
PPT = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
PREVIOUS_SESSION = "urn:oasis:names:tc:SAML:2.0:ac:classes:PreviousSession"


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
    rules = ((STAFF_ONLY, "--delegation-subjects=role:staff"), (BOUND, f"--delegation-audience={FRONTEND}"))
    for address, rule in rules:
        assert instance.cli("rp", "add", address, "--no-encrypt") == 0
        assert instance.cli("rp", "update", address, "--allow-delegation", "svc-front", rule) == 0
    assert instance.cli("rp", "add", LONG_LIVED, "--no-encrypt", "--lifetime", "43200") == 0
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


def authn_context(assertion: etree._Element) -> str:
    return assertion.findtext(f".//{{{ns.SAML2}}}AuthnContextClassRef") or ""


def test_on_behalf_of_names_the_user_and_records_no_chain(bed: Server, tmp_path: Path) -> None:
    t1 = user_token(bed)
    assert authn_context(verified(bed, t1, tmp_path)) == PPT  # alice's own login: a password over TLS
    t2 = issue(bed, "svc-front", BACKEND, on_behalf_of=t1).token
    signed = verified(bed, t2, tmp_path)
    assert name_id(signed) == "alice"
    assert delegates(signed) == []
    assert signed.findtext(f".//{{{ns.SAML2}}}Audience") == BACKEND
    assert authn_context(signed) == PREVIOUS_SESSION  # alice authenticated earlier, not to this request


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


def test_a_token_of_the_longest_lifetime_this_sts_issues_can_be_delegated(bed: Server, tmp_path: Path) -> None:
    """12 h, NotBefore backdated by the clock skew: longer than the trusted-issuer default of 8 h."""
    t1 = user_token(bed, applies_to=LONG_LIVED)
    t2 = issue(bed, "svc-front", BACKEND, on_behalf_of=t1).token
    assert name_id(verified(bed, t2, tmp_path)) == "alice"


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
    signed = verified(bed, t2, tmp_path)
    assert name_id(signed) == "carol"
    assert authn_context(signed) == PPT  # carol's password, checked now, over TLS


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


def test_subject_outside_the_rule(bed: Server) -> None:
    """A role rule refuses a subject without the role."""
    assert fault_of(issue, bed, "svc-front", STAFF_ONLY, act_as=user_token(bed, "carol")) == REQUEST_FAILED
    issue(bed, "svc-front", STAFF_ONLY, act_as=user_token(bed, "alice"))  # alice holds staff


def test_chain_deeper_than_allowed(bed: Server) -> None:
    t2 = issue(bed, "svc-front", MIDDLE, act_as=user_token(bed)).token
    t3 = issue(bed, "svc-middle", BACKEND, act_as=t2).token  # depth 2 of 2
    assert fault_of(issue, bed, "svc-front", BACKEND, act_as=t3) == REQUEST_FAILED


def test_on_behalf_of_a_token_with_a_chain_would_hide_it(bed: Server) -> None:
    t2 = issue(bed, "svc-front", MIDDLE, act_as=user_token(bed)).token
    assert fault_of(issue, bed, "svc-middle", BACKEND, on_behalf_of=t2) == REQUEST_FAILED


def test_tampered_token(bed: Server) -> None:
    t1 = user_token(bed)
    name = t1.find(f"{{{ns.SAML2}}}Subject/{{{ns.SAML2}}}NameID")
    assert name is not None
    name.text = "carol"
    assert fault_of(issue, bed, "svc-front", BACKEND, act_as=t1) == INVALID_TOKEN


@pytest.mark.parametrize("variant", ["V01", "V02", "V03", "V04", "V05", "V06", "V07", "V08"])
def test_wrapped_tokens(bed: Server, variant: str) -> None:
    """XSW1-8 of the user's token: an assertion-rooted wrapping is wst:InvalidSecurityToken; a Response wrapper is
    no token this STS knows (wst:BadRequest); a duplicated ID anywhere in the message is wsse:InvalidSecurity."""
    from tests.xsw import XSW

    wrapped = XSW[variant](user_token(bed))
    fault = fault_of(issue, bed, "svc-front", BACKEND, act_as=wrapped)
    duplicate_id = (ns.WSSE, "InvalidSecurity")
    expected = {"V03": BAD_REQUEST, "V05": BAD_REQUEST, "V07": duplicate_id, "V08": duplicate_id}
    assert fault == expected.get(variant, INVALID_TOKEN)


def test_expired_and_not_yet_valid_tokens(bed: Server, idp: IdentityProvider) -> None:
    expired = idp.assertion("alice", not_before=-1200, not_after=-600)
    future = idp.assertion("alice", not_before=900, not_after=1800)
    assert fault_of(issue, bed, "svc-front", BACKEND, act_as=expired) == INVALID_TOKEN
    assert fault_of(issue, bed, "svc-front", BACKEND, act_as=future) == INVALID_TOKEN


def test_untrusted_issuer_and_wrong_key(bed: Server, idp: IdentityProvider) -> None:
    stranger = IdentityProvider.create("stranger")
    assert fault_of(issue, bed, "svc-front", BACKEND, act_as=stranger.assertion("alice", issuer="https://x.test")) == (
        INVALID_TOKEN
    )
    # names the trusted issuer, but signed with another key (its certificate in KeyInfo is never used)
    assert fault_of(issue, bed, "svc-front", BACKEND, act_as=stranger.assertion("alice")) == INVALID_TOKEN


def test_one_time_use_token_presented_twice(bed: Server, idp: IdentityProvider) -> None:
    once = idp.assertion("alice", one_time_use=True)
    issue(bed, "svc-front", BACKEND, act_as=once)
    assert fault_of(issue, bed, "svc-front", BACKEND, act_as=once) == INVALID_TOKEN


def test_cancelled_token(bed: Server) -> None:
    from sts.client.operations import cancel_token
    from sts.client.options import Connection, TargetOptions

    t1 = user_token(bed)
    connection = Connection(url=bed.url, username="alice", cafile=_instance(bed).ca_file)
    cancel_token(TargetOptions(connection, token=t1), PASSWORD)
    assert fault_of(issue, bed, "svc-front", BACKEND, act_as=t1) == INVALID_TOKEN


def test_delegation_audience(bed: Server) -> None:
    assert fault_of(issue, bed, "svc-front", BOUND, act_as=user_token(bed, applies_to=MIDDLE)) == INVALID_TOKEN
    issue(bed, "svc-front", BOUND, act_as=user_token(bed, applies_to=FRONTEND))


def test_every_audience_restriction_must_name_a_delegation_audience(bed: Server, idp: IdentityProvider) -> None:
    """SAML 2.0 core §2.5.1.4: two AudienceRestrictions are both to be met (the assertion is for a party in each),
    the audiences of one are alternatives."""
    both = idp.assertion("alice", restrictions=((FRONTEND,), (MIDDLE,)))
    assert fault_of(issue, bed, "svc-front", BOUND, act_as=both) == INVALID_TOKEN
    refusal = [e for e in audit_records(bed.log) if e.get("audit_event") == "delegation"][-1]
    assert refusal["reason"] == "token_audience_mismatch"
    issue(bed, "svc-front", BOUND, act_as=idp.assertion("alice", restrictions=((MIDDLE, FRONTEND),)))
    issue(bed, "svc-front", BOUND, act_as=idp.assertion("alice", restrictions=((FRONTEND,), (MIDDLE, FRONTEND))))


def test_username_token_with_a_wrong_password_counts_towards_that_users_lockout(bed: Server) -> None:
    before = _failures(bed, "PRIMARY/carol")
    ut = username_token("carol", "not the password")
    assert fault_of(issue, bed, "svc-front", BACKEND, on_behalf_of=ut) == INVALID_TOKEN
    assert _failures(bed, "PRIMARY/carol") == before + 1


def _failures(server: Server, key: str) -> int:
    import contextlib
    import sqlite3

    with contextlib.closing(sqlite3.connect(_instance(server).base / "sts.db")) as db:
        row = db.execute("SELECT count FROM counters WHERE ns = 'lockout' AND key = ?", (key,)).fetchone()
    return int(row[0]) if row else 0


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        (f'<wsse:BinarySecurityToken xmlns:wsse="{ns.WSSE}">AAAA</wsse:BinarySecurityToken>', BAD_REQUEST),
        ('<foo:Bar xmlns:foo="urn:x"/>', BAD_REQUEST),
        (f'<wsa:EndpointReference xmlns:wsa="{ns.WSA}"><wsa:Address>https://x/</wsa:Address>'
         "</wsa:EndpointReference>", BAD_REQUEST),
    ],
    ids=["binary_security_token", "foreign", "endpoint_reference"],
)
def test_unknown_token_types(bed: Server, token: str, expected: tuple[str, str]) -> None:
    assert fault_of(issue, bed, "svc-front", BACKEND, on_behalf_of=etree.fromstring(token)) == expected


def test_nothing_issued_on_refusal(bed: Server) -> None:
    """A refused delegation writes a delegation failure audit event and no issue event."""
    before = len([e for e in audit_records(bed.log) if e.get("audit_event") == "issue"])
    assert fault_of(issue, bed, "mallory", BACKEND, act_as=user_token(bed)) == REQUEST_FAILED
    events = audit_records(bed.log)
    assert len([e for e in events if e.get("audit_event") == "issue"]) == before + 1  # the user's own token only
    refusal = [e for e in events if e.get("audit_event") == "delegation"][-1]
    assert (refusal["user"], refusal["reason"]) == ("mallory", "caller_not_allowed")


# --- issued-token callers -----------------------------------------------------------------------------------


def issued_url(server: Server) -> str:
    return server.url + "/IssuedTokenOverTransport"


def test_an_issued_token_caller_gets_a_token(bed: Server, idp: IdentityProvider, tmp_path: Path) -> None:
    sts_name = _sts_name(bed)
    token = issue(bed, "", BACKEND, token=idp.assertion("alice", audience=sts_name), url=issued_url(bed)).token
    signed = verified(bed, token, tmp_path)
    assert name_id(signed) == "alice"
    assert authn_context(signed) == PREVIOUS_SESSION  # alice authenticated to the identity provider


def _sts_name(server: Server) -> str:
    import tomllib

    config = tomllib.loads(_instance(server).config.read_text())
    return str(config["issuer"]["name"])


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("untrusted_issuer", (ns.WSSE, "FailedAuthentication")),
        ("expired", (ns.WSSE, "FailedAuthentication")),
        ("wrong_audience", (ns.WSSE, "FailedAuthentication")),
        ("unknown_user", (ns.WSSE, "FailedAuthentication")),
        ("wrong_key", (ns.WSSE, "FailedCheck")),
    ],
)
def test_issued_token_caller_refusals(bed: Server, idp: IdentityProvider, case: str, expected: tuple[str, str]) -> None:
    sts_name = _sts_name(bed)
    stranger = IdentityProvider.create("stranger")
    tokens = {
        "untrusted_issuer": lambda: stranger.assertion("alice", issuer="https://x.test", audience=sts_name),
        "expired": lambda: idp.assertion("alice", audience=sts_name, not_before=-1200, not_after=-600),
        "wrong_audience": lambda: idp.assertion("alice", audience=FRONTEND),
        "unknown_user": lambda: idp.assertion("nobody", audience=sts_name),
        "wrong_key": lambda: stranger.assertion("alice", audience=sts_name),
    }
    assert fault_of(issue, bed, "", BACKEND, token=tokens[case](), url=issued_url(bed)) == expected


def test_an_issued_token_caller_meets_every_audience_restriction(bed: Server, idp: IdentityProvider) -> None:
    """Addressed to this STS and, by a second AudienceRestriction, to the front-end: for neither alone (SAML 2.0
    core §2.5.1.4); one restriction naming both is addressed to either."""
    sts_name = _sts_name(bed)
    both = idp.assertion("alice", restrictions=((sts_name,), (FRONTEND,)))
    assert fault_of(issue, bed, "", BACKEND, token=both, url=issued_url(bed)) == (ns.WSSE, "FailedAuthentication")
    refusal = [e for e in audit_records(bed.log) if e.get("audit_event") == "authentication"][-1]
    assert (refusal["outcome"], refusal["reason"]) == ("failure", f"audience_not_this_sts issuer={IDP}")
    either = idp.assertion("alice", restrictions=((FRONTEND, sts_name),))
    assert issue(bed, "", BACKEND, token=either, url=issued_url(bed)).token is not None


def test_issued_token_caller_replayed_one_time_assertion(bed: Server, idp: IdentityProvider) -> None:
    once = idp.assertion("alice", audience=_sts_name(bed), one_time_use=True)
    issue(bed, "", BACKEND, token=once, url=issued_url(bed))
    assert fault_of(issue, bed, "", BACKEND, token=once, url=issued_url(bed)) == (ns.WSSE, "InvalidSecurity")


def test_a_one_time_assertion_is_used_once_across_login_and_delegation(bed: Server, idp: IdentityProvider) -> None:
    """SAML 2.0 core §2.5.1.5 OneTimeUse: the STS uses the assertion once in all; one that authenticated a caller
    cannot then be handed in as ActAs/OnBehalfOf, nor one handed in then authenticate a caller."""
    sts_name = _sts_name(bed)
    logged_in = idp.assertion("alice", audience=sts_name, one_time_use=True)
    issue(bed, "", BACKEND, token=logged_in, url=issued_url(bed))
    assert fault_of(issue, bed, "svc-front", BACKEND, act_as=logged_in) == INVALID_TOKEN
    refusal = [e for e in audit_records(bed.log) if e.get("audit_event") == "delegation"][-1]
    assert refusal["reason"] == "token_reused"
    delegated = idp.assertion("alice", audience=sts_name, one_time_use=True)
    issue(bed, "svc-front", BACKEND, on_behalf_of=delegated)
    assert fault_of(issue, bed, "", BACKEND, token=delegated, url=issued_url(bed)) == (ns.WSSE, "InvalidSecurity")


def test_a_subject_confirmation_past_its_not_on_or_after_confirms_no_one(bed: Server, idp: IdentityProvider) -> None:
    """SAML 2.0 core §2.4.1.2 / profiles §4.1.4.2: the bearer confirmation's SubjectConfirmationData NotOnOrAfter
    bounds when the assertion may be presented, however long its Conditions last (delegation.md §4.3 step 4)."""
    sts_name = _sts_name(bed)
    stale = idp.assertion("alice", audience=sts_name, not_after=3600, confirmation_not_after=-600)
    assert fault_of(issue, bed, "", BACKEND, token=stale, url=issued_url(bed)) == (ns.WSSE, "FailedAuthentication")
    refusal = [e for e in audit_records(bed.log) if e.get("audit_event") == "authentication"][-1]
    assert (refusal["outcome"], refusal["reason"]) == ("failure", "confirmation_expired")
    assert fault_of(issue, bed, "svc-front", BACKEND, act_as=stale) == INVALID_TOKEN
    refusal = [e for e in audit_records(bed.log) if e.get("audit_event") == "delegation"][-1]
    assert refusal["reason"] == "confirmation_expired"
    within_skew = idp.assertion("alice", audience=sts_name, not_after=3600, confirmation_not_after=-10)
    assert issue(bed, "", BACKEND, token=within_skew, url=issued_url(bed)).token is not None


def test_passwords_are_not_accepted_on_the_issued_token_endpoint(bed: Server) -> None:
    assert fault_of(issue, bed, "alice", BACKEND, url=issued_url(bed)) == (ns.WSSE, "UnsupportedSecurityToken")


def test_the_issued_token_endpoint_is_published(bed: Server) -> None:
    import requests

    wsdl = requests.get(bed.url + "?wsdl", verify=bed.verify, timeout=10).content
    root = etree.fromstring(wsdl)
    ports = {p.get("name") for p in root.iter("{http://schemas.xmlsoap.org/wsdl/}port")}
    assert "IssuedTokenOverTransportHttpsSoap11Endpoint" in ports
    policies = [p for p in root.iter("{http://schemas.xmlsoap.org/ws/2004/09/policy}Policy")
                if p.get(f"{{{ns.WSU}}}Id") == "IssuedTokenOverTransport"]
    assert len(policies) == 1
    mex = requests.get(bed.url.replace("/services/wso2carbon-sts", "/mex"), verify=bed.verify, timeout=10).content
    assert b"IssuedTokenOverTransportHttpsSoap12Endpoint" in mex


# --- the sample client's command line ----------------------------------------------------------------------------


def test_sts_request_act_as_and_token_options(bed: Server, idp: IdentityProvider, tmp_path: Path) -> None:
    import io
    import sys

    from sts.cli import main as sts_main

    instance = _instance(bed)
    user_file = tmp_path / "t1.xml"
    user_file.write_bytes(etree.tostring(user_token(bed)))
    out = tmp_path / "t2.xml"
    saved, sys.stdin = sys.stdin, io.StringIO(PASSWORD + "\n")
    try:
        code = sts_main([
            "request", bed.url, "--username", "svc-front", "--password-stdin", "--cafile", str(instance.ca_file),
            "--applies-to", BACKEND, "--act-as", str(user_file), "--out", str(out),
        ])
    finally:
        sys.stdin = saved
    assert code == 0
    signed = verified(bed, etree.fromstring(out.read_bytes()), tmp_path)
    assert name_id(signed) == "alice" and delegates(signed) == ["PRIMARY/svc-front"]
    idp_file = tmp_path / "idp.xml"
    idp_file.write_bytes(etree.tostring(idp.assertion("alice", audience=_sts_name(bed))))
    out2 = tmp_path / "t3.xml"
    code = sts_main([
        "request", issued_url(bed), "--token", str(idp_file), "--cafile", str(instance.ca_file),
        "--applies-to", BACKEND, "--out", str(out2),
    ])
    assert code == 0
    assert name_id(verified(bed, etree.fromstring(out2.read_bytes()), tmp_path)) == "alice"
