"""Issue, Validate and Cancel in-process, in both WS-Trust versions, with their faults and audit events."""

from __future__ import annotations

import logging

import pytest
from lxml import etree

from sts import ns
from sts.errors import InvalidRequest, TrustFailedAuthentication, UnableToRenew
from sts.wstrust.actions import Operation
from sts.wstrust.version import TrustVersion
from tests.unit.operations.harness import RP, SAML2, Env, assertion_id, reference

NO_PROOF_KEY = "http://schemas.xmlsoap.org/ws/2005/05/identity/NoProofKey"


def audit_events(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    fields = ("audit_event", "outcome", "operation", "user", "applies_to", "token_type", "token_id", "reason")
    return [
        {name: getattr(record, name, "") for name in fields}
        for record in caplog.records
        if record.name == "sts.audit"
    ]


@pytest.mark.parametrize("trust", list(TrustVersion))
def test_issue_answers_in_the_requests_version(env: Env, trust: TrustVersion, caplog: pytest.LogCaptureFixture) -> None:
    env.add_user("bob", "admin")
    with caplog.at_level(logging.INFO, logger="sts.audit"):
        reply = env.issue_reply("bob", trust=trust)
    assert (reply.operation, reply.trust) == (Operation.ISSUE, trust)
    wrapper = "RequestSecurityTokenResponse" + ("Collection" if trust is TrustVersion.TRUST13 else "")
    assert reply.body.tag == trust.qn(wrapper)
    assert reply.body.findtext(f".//{trust.qn('KeyType')}") == trust.bearer
    token = assertion_id(reply)
    [event] = audit_events(caplog)
    assert event == {
        "audit_event": "issue",
        "outcome": "success",
        "operation": "Issue",
        "user": "bob",
        "applies_to": RP,
        "token_type": SAML2,
        "token_id": token,
        "reason": "Bearer",
    }
    assert isinstance(caplog.records[0].duration_ms, float)  # type: ignore[attr-defined]


def test_feb_2005_bearer_may_be_spelled_no_proof_key_and_is_echoed_so(env: Env) -> None:
    env.add_user("bob", "admin")
    trust = TrustVersion.FEB2005
    inner = (
        f'<wsp:AppliesTo xmlns:wsp="{ns.WSP}"><wsa:EndpointReference xmlns:wsa="{ns.WSA}">'
        f"<wsa:Address>{RP}</wsa:Address></wsa:EndpointReference></wsp:AppliesTo>"
        f"<wst:KeyType>{NO_PROOF_KEY}</wst:KeyType>"
    )
    reply = env.call("bob", Operation.ISSUE, inner, trust)
    assert reply.body.findtext(trust.qn("KeyType")) == NO_PROOF_KEY


def test_the_computed_key_algorithm_must_be_the_requests_version(env: Env) -> None:
    env.add_user("bob", "admin")
    entropy = "<wst:Entropy><wst:BinarySecret>AAAAAAAAAAAAAAAAAAAAAA==</wst:BinarySecret></wst:Entropy>"
    other = f"<wst:ComputedKeyAlgorithm>{TrustVersion.FEB2005.psha1}</wst:ComputedKeyAlgorithm>"
    with pytest.raises(InvalidRequest) as caught:
        env.issue_reply("bob", extra=entropy + other, key_type="SymmetricKey")
    assert caught.value.reason == "bad_computed_key"


@pytest.mark.parametrize("trust", list(TrustVersion))
def test_validate_answers_a_status_in_the_requests_version(env: Env, trust: TrustVersion) -> None:
    env.add_user("bob", "admin")
    token = env.issue("bob")
    for target, valid in ((token, True), ("_unknown", False)):
        inner = f"<wst:TokenType>{trust.status_token_type}</wst:TokenType>"
        inner += f"<wst:ValidateTarget>{reference(target)}</wst:ValidateTarget>"
        reply = env.call("bob", Operation.VALIDATE, inner, trust)
        assert reply.body.tag == trust.qn("RequestSecurityTokenResponse")
        assert reply.body.findtext(f"{trust.qn('Status')}/{trust.qn('Code')}") == trust.status_code(valid)


def test_validate_offers_no_token_transformation(env: Env) -> None:
    env.add_user("bob", "admin")
    token = env.issue("bob")
    inner = f"<wst:TokenType>{SAML2}</wst:TokenType><wst:ValidateTarget>{reference(token)}</wst:ValidateTarget>"
    with pytest.raises(InvalidRequest) as caught:
        env.call("bob", Operation.VALIDATE, inner)
    assert caught.value.reason == "validate_token_type"


def test_cancel_answers_requested_token_cancelled_and_audits(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    env.add_user("bob", "admin")
    token = env.issue("bob")
    with caplog.at_level(logging.INFO, logger="sts.audit"):
        reply = env.call("bob", Operation.CANCEL, f"<wst:CancelTarget>{reference(token)}</wst:CancelTarget>")
    assert [etree.QName(child).localname for child in reply.body] == ["RequestedTokenCancelled"]
    [event] = audit_events(caplog)
    assert (event["audit_event"], event["outcome"], event["token_id"], event["reason"]) == (
        "cancel",
        "success",
        token,
        "cancelled",
    )
    assert env.status("bob", token) == "invalid"


@pytest.mark.parametrize(
    ("operation", "unknown"), [(Operation.CANCEL, InvalidRequest), (Operation.RENEW, UnableToRenew)]
)
def test_only_the_tokens_owner_may_cancel_or_renew_it(
    env: Env, operation: Operation, unknown: type[Exception], caplog: pytest.LogCaptureFixture
) -> None:
    env.add_user("bob", "admin")
    env.add_user("mallory", "admin")
    token = env.issue("bob")
    target = f"<wst:{operation.value}Target>{reference(token)}</wst:{operation.value}Target>"
    with caplog.at_level(logging.INFO, logger="sts.audit"), pytest.raises(TrustFailedAuthentication) as caught:
        env.call("mallory", operation, target)
    assert caught.value.reason == "not_token_owner"
    assert caught.value.fault_qname() == (ns.WST, "FailedAuthentication")
    [event] = audit_events(caplog)
    assert (event["outcome"], event["user"], event["token_id"]) == ("failure", "mallory", token)
    assert env.status("bob", token) == "valid"
    missing = f"<wst:{operation.value}Target>{reference('_unknown')}</wst:{operation.value}Target>"
    with pytest.raises(unknown) as refused:
        env.call("bob", operation, missing)
    assert refused.value.reason == "unknown_token"  # type: ignore[attr-defined]
