"""``[lifecycle] token_store = false`` in-process: this STS's own token handed back for OnBehalfOf or for a
transformation names its subject by its NameID alone, accepted only when that NameID is the user name (the relying
party the token was issued to takes it from ``username``); a claim-valued NameID is refused, with its exact fault."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree

from sts import ns
from sts.auth.router import UserStoreRouter
from sts.auth.subjects import SubjectAuthorizer
from sts.crypto.signer import AssertionSigner
from sts.errors import InvalidTrustToken, RequestFailed, STSError
from sts.operations.call import TrustReply
from sts.operations.delegation import DelegationResolver
from sts.operations.issue import IssueOperation
from sts.operations.minting import TokenMinter
from sts.operations.targets import TargetResolver
from sts.operations.transformation import TokenTransformer
from sts.operations.validate import ValidateOperation
from sts.stores.sqlite_stores import SqliteReplayCache
from sts.tokens.trust import SELF, IssuerTrust, IssuerTrustList
from sts.wstrust.actions import Operation
from tests.unit.operations.harness import EMAIL, SKEW, Env, Keys, assertion_of
from tests.unit.operations.test_operations import audit_events

SAML2 = ns.SAML2
SAML2_TYPE = "http://docs.oasis-open.org/wss/oasis-wss-saml-token-profile-1.1#SAMLV2.0"
BY_EMAIL = "https://by-email.example.com/"  # NameID: the e-mail claim
BY_CLAIM = "https://by-claim.example.com/"  # NameID: a claim URI
BY_NAME = "https://by-name.example.com/"  # NameID: the user name
BACK = "https://back.example.com/"  # delegation by svc, and transformation of this STS's tokens


@pytest.fixture
def env(tmp_path: Path, sts_key: tuple[rsa.RSAPrivateKey, x509.Certificate]) -> Iterator[Env]:
    """Issue and Validate wired as ``sts.app`` wires them without a token store: no ledger, no store."""
    key, cert = sts_key
    environment = Env(tmp_path, Keys(AssertionSigner(key, cert)))
    trust = IssuerTrustList((IssuerTrust("https://sts.example/", (cert,), SELF),), SKEW)
    subjects = SubjectAuthorizer(UserStoreRouter.single(environment.users), environment.policy)
    replay = SqliteReplayCache(environment.db, environment.clock)
    minter = TokenMinter(environment.provider, environment.directory, None)
    # No UsernameToken is handed in here: the authenticator is never asked.
    delegation = DelegationResolver(
        trust, subjects, None, None, replay, environment.clock, environment.directory  # type: ignore[arg-type]
    )
    environment.issue_op = IssueOperation(
        environment.directory, minter, environment.clock, environment.client_keys, environment._registered,
        False, delegation,
    )
    transformer = TokenTransformer(environment.directory, minter, trust, subjects, None, replay, environment.clock)
    environment.validate_op = ValidateOperation(
        TargetResolver(None, lambda: (cert,)), environment.clock, SKEW, transformer
    )
    environment.add_rp(BY_EMAIL, nameid="email")
    environment.add_rp(BY_CLAIM, nameid=EMAIL)
    environment.add_rp(BY_NAME, nameid="username")
    environment.add_rp(BACK, delegation_callers=("user:PRIMARY/svc",), transform_from=("self",))
    environment.add_user("alice", "admin", email="bob")  # a claim value that is another user's name
    environment.add_user("bob", "admin")
    environment.add_user("svc", "admin")
    yield environment
    environment.db.close()


def applies_to(address: str) -> str:
    return (
        f'<wsp:AppliesTo xmlns:wsp="{ns.WSP}"><wsa:EndpointReference xmlns:wsa="{ns.WSA}">'
        f"<wsa:Address>{address}</wsa:Address></wsa:EndpointReference></wsp:AppliesTo>"
    )


def alice_token(env: Env, address: str) -> etree._Element:
    return assertion_of(env.issue_reply("alice", address, extra=""))


def on_behalf_of(env: Env, token: etree._Element) -> TrustReply:
    inner = (
        f"<wst:TokenType>{SAML2_TYPE}</wst:TokenType>{applies_to(BACK)}<wst:KeyType>{ns.WST}/Bearer</wst:KeyType>"
        f"<wst:OnBehalfOf>{etree.tostring(token).decode()}</wst:OnBehalfOf>"
    )
    return env.call("svc", Operation.ISSUE, inner)


def exchange(env: Env, user: str, token: etree._Element) -> TrustReply:
    inner = (
        f"<wst:TokenType>{SAML2_TYPE}</wst:TokenType><wst:ValidateTarget>{etree.tostring(token).decode()}"
        f"</wst:ValidateTarget>{applies_to(BACK)}"
    )
    return env.call(user, Operation.VALIDATE, inner)


def name_id(reply: TrustReply) -> str | None:
    return assertion_of(reply).findtext(f"{{{SAML2}}}Subject/{{{SAML2}}}NameID")


@pytest.mark.parametrize("source", [BY_EMAIL, BY_CLAIM])
def test_a_claim_valued_nameid_is_no_delegated_subject(
    env: Env, source: str, caplog: pytest.LogCaptureFixture
) -> None:
    """alice's NameID there is "bob": without a record of her token, it would delegate bob."""
    token = alice_token(env, source)
    assert token.findtext(f".//{{{SAML2}}}NameID") == "bob"
    with caplog.at_level(logging.INFO, logger="sts.audit"), pytest.raises(STSError) as caught:
        on_behalf_of(env, token)
    assert (type(caught.value), caught.value.reason) == (InvalidTrustToken, "nameid_not_user_name")
    [event] = [e for e in audit_events(caplog) if e["audit_event"] == "delegation"]
    assert (event["outcome"], event["reason"]) == ("failure", "nameid_not_user_name")


@pytest.mark.parametrize("source", [BY_EMAIL, BY_CLAIM])
def test_a_claim_valued_nameid_is_not_exchanged(env: Env, source: str, caplog: pytest.LogCaptureFixture) -> None:
    """bob presents alice's token, whose NameID is "bob", as his own: refused, nothing issued."""
    token = alice_token(env, source)
    with caplog.at_level(logging.INFO, logger="sts.audit"), pytest.raises(STSError) as caught:
        exchange(env, "bob", token)
    assert (type(caught.value), caught.value.reason) == (RequestFailed, "nameid_not_user_name")
    [event] = [e for e in audit_events(caplog) if (e["audit_event"], e["outcome"]) == ("validate", "failure")]
    assert event["reason"] == "nameid_not_user_name"


def test_a_token_whose_relying_party_is_gone_is_refused(env: Env) -> None:
    """Nothing says any more what its NameID is: fail closed."""
    token = alice_token(env, BY_NAME)
    env.rps.remove(BY_NAME)
    with pytest.raises(STSError) as caught:
        on_behalf_of(env, token)
    assert caught.value.reason == "nameid_not_user_name"


def test_a_user_name_nameid_still_names_the_subject(env: Env) -> None:
    token = alice_token(env, BY_NAME)
    assert name_id(on_behalf_of(env, token)) == "alice"
    assert name_id(exchange(env, "alice", token)) == "alice"
    with pytest.raises(STSError) as caught:  # and bob cannot pass her token off as his
        exchange(env, "bob", token)
    assert caught.value.reason == "caller_not_allowed"
