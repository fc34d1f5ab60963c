"""Validate with token transformation (WS-Trust 1.3 §7) in-process: the STS's own token exchanged for a token of
another type for another relying party, the deny-by-default policy, and every refusal with its exact fault."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree

from sts import ns
from sts.auth.router import UserStoreRouter
from sts.auth.subjects import SubjectAuthorizer
from sts.auth.users import PRIMARY
from sts.crypto.signer import AssertionSigner
from sts.errors import InvalidRequest, InvalidScope, InvalidTrustToken, RequestFailed, STSError
from sts.operations.call import TrustReply
from sts.operations.minting import TokenMinter
from sts.operations.records import TokenLedger
from sts.operations.targets import TargetResolver
from sts.operations.transformation import TokenTransformer
from sts.operations.validate import ValidateOperation
from sts.relying_parties.delegation import DelegationMode
from sts.stores.sqlite_stores import SqliteReplayCache
from sts.tokens.authn import PREVIOUS_SESSION
from sts.tokens.trust import SELF, IssuerTrust, IssuerTrustList
from sts.wstrust.actions import Operation
from tests.unit.operations.harness import AFTER, EMAIL, RP, SKEW, Env, Keys, assertion_of, reference
from tests.unit.operations.test_operations import audit_events

WST = ns.WST
SAML1 = ns.SAML1
TARGET = "https://rp-b.example.com/"  # exchanges this STS's tokens
CLOSED = "https://closed.example.com/"  # no transformation policy
IDP_ONLY = "https://idp-only.example.com/"  # exchanges only a trusted issuer's tokens
SAML11_TYPE = "http://docs.oasis-open.org/wss/oasis-wss-saml-token-profile-1.1#SAMLV1.1"


@pytest.fixture
def env(tmp_path: Path, sts_key: tuple[rsa.RSAPrivateKey, x509.Certificate]) -> Iterator[Env]:
    key, cert = sts_key
    environment = Env(tmp_path, Keys(AssertionSigner(key, cert)))
    environment.add_rp()
    environment.add_rp(TARGET, transform_from=("self",))
    environment.add_rp(CLOSED)
    environment.add_rp(IDP_ONLY, transform_from=("issuer:https://idp.example.test",))
    trust = IssuerTrustList((IssuerTrust("https://sts.example/", (cert,), SELF),), SKEW)
    transformer = TokenTransformer(
        environment.directory,
        TokenMinter(environment.provider, environment.directory, TokenLedger(environment.store, SKEW, AFTER)),
        trust,
        SubjectAuthorizer(UserStoreRouter.single(environment.users), environment.policy),
        environment.store,
        SqliteReplayCache(environment.db, environment.clock),
        environment.clock,
    )
    resolver = TargetResolver(environment.store, lambda: (cert,))
    environment.validate_op = ValidateOperation(resolver, environment.clock, SKEW, transformer)
    environment.add_user("bob", "admin")
    environment.add_user("carol", "admin")
    yield environment
    environment.db.close()


def user_token(env: Env, user: str = "bob") -> etree._Element:
    return assertion_of(env.issue_reply(user, RP))


def applies_to(address: str) -> str:
    return (
        f'<wsp:AppliesTo xmlns:wsp="{ns.WSP}"><wsa:EndpointReference xmlns:wsa="{ns.WSA}">'
        f"<wsa:Address>{address}</wsa:Address></wsa:EndpointReference></wsp:AppliesTo>"
    )


def exchange(
    env: Env, token: etree._Element | str, address: str = TARGET, *, user: str = "bob", token_type: str = SAML11_TYPE
) -> TrustReply:
    target = token if isinstance(token, str) else etree.tostring(token).decode()
    inner = (
        f"<wst:TokenType>{token_type}</wst:TokenType><wst:ValidateTarget>{target}</wst:ValidateTarget>"
        f"{applies_to(address)}"
    )
    return env.call(user, Operation.VALIDATE, inner)


def status(reply: TrustReply) -> str:
    return reply.body.findtext(f"{{{WST}}}Status/{{{WST}}}Code") or ""


def refusal(env: Env, token: etree._Element | str, address: str = TARGET, **kwargs: str) -> STSError:
    with pytest.raises(STSError) as caught:
        exchange(env, token, address, **kwargs)
    return caught.value


def token_count(env: Env) -> int:
    return int(env.db.conn.execute("SELECT count(*) FROM tokens").fetchone()[0])


def test_a_valid_token_is_exchanged_for_a_token_of_the_asked_type(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    source = user_token(env)
    env.users.set_claims(PRIMARY, "bob", {EMAIL: ["bob@new.example.com"]})  # claims are read now, not copied
    with caplog.at_level(logging.INFO, logger="sts.audit"):
        reply = exchange(env, source)
    body = reply.body
    assert [etree.QName(child).localname for child in body][:3] == ["TokenType", "Status", "RequestedSecurityToken"]
    assert body.findtext(f"{{{WST}}}TokenType") == SAML11_TYPE
    assert status(reply) == f"{WST}/status/valid"
    token = body.find(f"{{{WST}}}RequestedSecurityToken/{{{SAML1}}}Assertion")
    assert token is not None and token.get("AssertionID") != source.get("ID")
    assert token.findtext(f".//{{{SAML1}}}NameIdentifier") == "bob"
    assert token.findtext(f".//{{{SAML1}}}Audience") == TARGET
    values = [value.text for value in token.iter(f"{{{SAML1}}}AttributeValue")]
    assert "bob@new.example.com" in values and "bob@example.com" not in values
    record = env.store.get(str(token.get("AssertionID")))
    assert record is not None and record.subject == "PRIMARY/bob" and record.relying_party == TARGET
    assert not record.renewable  # a renewal would outlive the validated token
    source_expiry = source.find(f"{{{ns.SAML2}}}Conditions")
    assert source_expiry is not None
    assert record.not_on_or_after <= dt.datetime.fromisoformat(str(source_expiry.get("NotOnOrAfter"))).timestamp()
    [event] = [e for e in audit_events(caplog) if e["audit_event"] == "validate"]
    assert (event["outcome"], event["reason"], event["token_id"]) == ("valid", "transformed", token.get("AssertionID"))
    assert event["applies_to"] == TARGET


def test_saml20_any_spelling(env: Env) -> None:
    for spelling in (ns.SAML2, "http://docs.oasis-open.org/wss/oasis-wss-saml-token-profile-1.1#SAMLV2.0"):
        reply = exchange(env, user_token(env), token_type=spelling)
        assert reply.body.findtext(f"{{{WST}}}TokenType") == spelling
        token = reply.body.find(f"{{{WST}}}RequestedSecurityToken/{{{ns.SAML2}}}Assertion")
        assert token is not None
        assert token.findtext(f".//{{{ns.SAML2}}}AuthnContextClassRef") == PREVIOUS_SESSION


def test_no_policy_no_transformation(env: Env) -> None:
    error = refusal(env, user_token(env), CLOSED)
    assert (type(error), error.reason) == (RequestFailed, "transform_not_allowed")


def test_source_not_allowed(env: Env) -> None:
    error = refusal(env, user_token(env), IDP_ONLY)
    assert (type(error), error.reason) == (RequestFailed, "transform_source_not_allowed")


def test_invalid_tokens_get_the_status_only(env: Env) -> None:
    tampered = user_token(env)
    name = tampered.find(f"{{{ns.SAML2}}}Subject/{{{ns.SAML2}}}NameID")
    assert name is not None
    name.text = "carol"
    cancelled = user_token(env)
    env.cancel("bob", str(cancelled.get("ID")))
    expired = user_token(env)
    before = token_count(env)
    for token in (tampered, cancelled):
        reply = exchange(env, token)
        assert status(reply) == f"{WST}/status/invalid"
        assert reply.body.find(f"{{{WST}}}RequestedSecurityToken") is None
    env.clock.advance(3600)
    reply = exchange(env, expired)
    assert status(reply) == f"{WST}/status/invalid"
    assert reply.body.find(f"{{{WST}}}RequestedSecurityToken") is None
    assert token_count(env) == before


def test_a_disabled_subject_gets_nothing(env: Env) -> None:
    token = user_token(env)
    env.users.set_enabled(PRIMARY, "bob", False)
    error = refusal(env, token)
    assert (type(error), error.reason) == (RequestFailed, "subject_user_disabled")


def test_another_caller_needs_the_rps_on_behalf_of_rule(env: Env) -> None:
    """The new token names bob only, as an OnBehalfOf token would: carol needs the RP's OnBehalfOf rule."""
    token = user_token(env)
    error = refusal(env, token, user="carol")
    assert (type(error), error.reason) == (RequestFailed, "caller_not_allowed")
    current = env.rps.get(TARGET)
    env.rps.update(replace(current, delegation_callers=("user:PRIMARY/carol",), delegation_mode=DelegationMode.ACT_AS))
    error = refusal(env, token, user="carol")  # an ActAs-only rule does not allow impersonation
    assert (type(error), error.reason) == (RequestFailed, "caller_not_allowed")
    env.rps.update(replace(current, delegation_callers=("user:PRIMARY/carol",)))
    reply = exchange(env, token, user="carol")
    assert reply.body.findtext(f".//{{{SAML1}}}NameIdentifier") == "bob"


def test_a_reference_is_not_enough(env: Env) -> None:
    token = user_token(env)
    error = refusal(env, reference(str(token.get("ID"))))
    assert (type(error), error.reason) == (InvalidRequest, "transform_needs_assertion")


def test_unknown_applies_to(env: Env) -> None:
    error = refusal(env, user_token(env), "https://nobody.example.com/")
    assert (type(error), error.reason) == (InvalidScope, "unknown_applies_to")


def test_unknown_token_type(env: Env) -> None:
    error = refusal(env, user_token(env), token_type="urn:evil:token-type")
    assert (type(error), error.reason) == (InvalidRequest, "validate_token_type")


def test_another_caller_needs_a_token_for_the_delegation_audience(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    """``--delegation-audience`` binds a transformation by another caller as it binds OnBehalfOf: carol, allowed
    to act for bob, cannot exchange bob's token for another relying party; bob's own exchange is no delegation."""
    front = "https://front.example.com/"
    env.add_rp(front)
    current = env.rps.get(TARGET)
    env.rps.update(replace(current, delegation_callers=("user:PRIMARY/carol",), delegation_audiences=(front,)))
    elsewhere = user_token(env)  # bob's token for RP, not for the front-end
    with caplog.at_level(logging.INFO, logger="sts.audit"):
        error = refusal(env, elsewhere, user="carol")
    assert (type(error), error.reason) == (InvalidTrustToken, "token_audience_mismatch")
    [event] = [e for e in audit_events(caplog) if e["audit_event"] == "validate"]
    assert (event["outcome"], event["reason"], event["user"]) == ("failure", "token_audience_mismatch", "carol")
    assert exchange(env, elsewhere).body.findtext(f".//{{{SAML1}}}NameIdentifier") == "bob"
    reply = exchange(env, assertion_of(env.issue_reply("bob", front)), user="carol")
    assert reply.body.findtext(f".//{{{SAML1}}}NameIdentifier") == "bob"
