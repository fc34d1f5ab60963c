"""Renew, Validate and Cancel over the real stores with a frozen clock (issue 12, items 2-5).

Every operation runs against a real SQLite database, user store, relying-party registry, signer and token store;
only the clock is frozen and the caller is handed in already authenticated (the authenticator has its own tests).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from lxml import etree

from sts import ns
from sts.auth.passwords import HashPolicy, PasswordHasher
from sts.auth.subjects import SubjectAuthorizer
from sts.auth.users import PRIMARY, SqliteUserStore
from sts.auth.validators import AuthenticatedCaller, AuthPolicy
from sts.clock import FrozenClock
from sts.config.directory import RelyingPartyDirectory
from sts.config.relying_parties import RelyingParty, RelyingPartyStore
from sts.config.settings import ALL_DOMAINS
from sts.crypto.keygen import certificate_der, certificate_pem, generate_rsa_key, self_signed_certificate
from sts.crypto.keywrap import TrustedClientKeys
from sts.crypto.signer import AssertionSigner
from sts.errors import FailedAuthentication, STSError, UnableToRenew
from sts.issuance import IssueOperation
from sts.lifecycle.operations import CancelOperation, ValidateOperation
from sts.lifecycle.renew import RenewalPolicy, RenewOperation
from sts.lifecycle.targets import TargetResolver
from sts.minting import IssuerIdentity, TokenMinter
from sts.service import RequestInfo, TrustCall, TrustReply
from sts.stores.sqlite import Database, initialize
from sts.stores.sqlite_stores import SqliteTokenStore
from sts.wstrust.actions import Operation

WST = ns.WST
SAML2 = ns.SAML2
RP = "https://rp.example.com/app/"
ROLE = "http://wso2.org/claims/role"
EMAIL = "http://wso2.org/claims/emailaddress"
LIFETIME, SKEW, AFTER, MAX_AGE = 300, 60, 1800, 86400
SAMLID = "http://docs.oasis-open.org/wss/oasis-wss-saml-token-profile-1.1#SAMLID"


@dataclass
class Keys:
    signer: AssertionSigner


@pytest.fixture(scope="module")
def keys() -> Keys:
    key = generate_rsa_key(2048)
    return Keys(AssertionSigner(key, self_signed_certificate(key, "sts")))


class Env:
    """One STS over a fresh database: issue, renew, validate and cancel as users of it."""

    def __init__(self, base: Path, keys: Keys, *, default_rp: str = "", lifecycle_roles: frozenset[str] | None = None):
        initialize(base / "sts.db")
        self.db = Database(base / "sts.db")
        self.users = SqliteUserStore(self.db, PasswordHasher(HashPolicy(memory_kib=1024, time_cost=1)))
        for role in ("admin", "staff", "renewer"):
            self.users.add_role(role)
        self.rps = RelyingPartyStore(self.db)
        # Frozen at the real time the Env is built: certificates made during a test (valid from five minutes ago)
        # must be valid at the frozen time, however long after collection the test runs.
        self.clock = FrozenClock(dt.datetime.now(dt.UTC).replace(microsecond=0))
        self.store = SqliteTokenStore(self.db)
        (base / "truststore").mkdir()
        self.clients = base / "clients"
        self.clients.mkdir()
        directory = RelyingPartyDirectory(self.rps, base / "truststore", default_rp, recheck_seconds=0)
        identity = IssuerIdentity("https://sts.example/", LIFETIME, 43200, SKEW)
        minter = TokenMinter(identity, directory, keys.signer, self.clock, self.store, AFTER)
        policy = AuthPolicy(allowed_roles=frozenset({"admin", "staff"}), allowed_domains=frozenset({ALL_DOMAINS}))
        resolver = TargetResolver(self.store, ())
        client_keys = TrustedClientKeys(self.clients)
        self.issue_op = IssueOperation(directory, minter, self.clock, client_keys)
        self.renew_op = RenewOperation(
            resolver,
            directory,
            minter,
            SubjectAuthorizer(self.users, policy),
            self.clock,
            RenewalPolicy(SKEW, AFTER, MAX_AGE, lifecycle_roles),
            client_keys,
        )
        self.validate_op = ValidateOperation(resolver, self.clock, SKEW)
        self.cancel_op = CancelOperation(resolver, self.store)

    def add_rp(self, address: str = RP, **kwargs: object) -> None:
        kwargs.setdefault("claims", (ROLE, EMAIL))
        self.rps.add(RelyingParty(address=address, encrypt=False, **kwargs))  # type: ignore[arg-type]

    def add_user(self, name: str, *roles: str, email: str = "") -> None:
        claims = {EMAIL: [email or f"{name}@example.com"]}
        self.users.add_user(PRIMARY, name, "Pass-word-1", roles=roles, claims=claims)

    def call(self, user: str, operation: Operation, inner: str) -> TrustReply:
        stored = self.users.find(PRIMARY, user)
        assert stored is not None
        rst = etree.fromstring(
            f'<wst:RequestSecurityToken xmlns:wst="{WST}"><wst:RequestType>{WST}/{operation.value}'
            f"</wst:RequestType>{inner}</wst:RequestSecurityToken>"
        )
        info = RequestInfo("cid", "127.0.0.1", True)
        caller = AuthenticatedCaller(stored.principal, "password-text")
        handler = {
            Operation.ISSUE: self.issue_op,
            Operation.RENEW: self.renew_op,
            Operation.VALIDATE: self.validate_op,
            Operation.CANCEL: self.cancel_op,
        }[operation]
        return handler(TrustCall(ns.S11, (), rst, WST, operation, info, caller))

    def issue_reply(
        self, user: str, applies_to: str = RP, extra: str = '<wst:Renewing Allow="true"/>', key_type: str = "Bearer"
    ) -> TrustReply:
        inner = (
            f"<wst:TokenType>{SAML2}</wst:TokenType>"
            f'<wsp:AppliesTo xmlns:wsp="{ns.WSP}"><wsa:EndpointReference xmlns:wsa="{ns.WSA}">'
            f"<wsa:Address>{applies_to}</wsa:Address></wsa:EndpointReference></wsp:AppliesTo>"
            f"<wst:KeyType>{WST}/{key_type}</wst:KeyType>{extra}"
        )
        return self.call(user, Operation.ISSUE, inner)

    def issue(self, user: str, applies_to: str = RP, extra: str = '<wst:Renewing Allow="true"/>') -> str:
        return assertion_id(self.issue_reply(user, applies_to, extra))

    def renew(self, user: str, token_id: str) -> str:
        return assertion_id(renew_reply(self, user, token_id))

    def status(self, user: str, token_id: str) -> str:
        reply = self.call(user, Operation.VALIDATE, f"<wst:ValidateTarget>{reference(token_id)}</wst:ValidateTarget>")
        code = reply.body.findtext(f".//{{{WST}}}Status/{{{WST}}}Code")
        assert code is not None
        return code.rsplit("/", 1)[-1]

    def cancel(self, user: str, token_id: str) -> None:
        self.call(user, Operation.CANCEL, f"<wst:CancelTarget>{reference(token_id)}</wst:CancelTarget>")

    def refused(self, user: str, token_id: str) -> STSError:
        with pytest.raises(STSError) as caught:
            self.renew(user, token_id)
        return caught.value


def reference(token_id: str) -> str:
    return (
        f'<wsse:SecurityTokenReference xmlns:wsse="{ns.WSSE}"><wsse:KeyIdentifier ValueType="{SAMLID}">'
        f"{token_id}</wsse:KeyIdentifier></wsse:SecurityTokenReference>"
    )


def assertion_of(reply: TrustReply) -> etree._Element:
    assertion = reply.body.find(f".//{{{SAML2}}}Assertion")
    assert assertion is not None
    return assertion


def assertion_id(reply: TrustReply) -> str:
    return str(assertion_of(reply).get("ID"))


def claims_of(reply: TrustReply) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for attribute in assertion_of(reply).iter(f"{{{SAML2}}}Attribute"):
        values[str(attribute.get("Name"))] = [v.text or "" for v in attribute.iter(f"{{{SAML2}}}AttributeValue")]
    return values


def renew_reply(env: Env, user: str, token_id: str) -> TrustReply:
    return env.call(user, Operation.RENEW, f"<wst:RenewTarget>{reference(token_id)}</wst:RenewTarget>")


@pytest.fixture
def env(tmp_path: Path, keys: Keys) -> Iterator[Env]:
    environment = Env(tmp_path, keys)
    environment.add_rp()
    yield environment
    environment.db.close()


# --- item 4: the injected clock and the skew -------------------------------------------------------------------


def test_renew_reads_the_injected_clock_not_the_wall_clock(env: Env) -> None:
    """The frozen clock is years ahead of the wall clock: a token expired by it is expired, whatever time.time()."""
    env.add_user("bob", "admin")
    token = env.issue("bob")
    env.clock.advance(LIFETIME + SKEW + 1)
    refused = env.refused("bob", token)
    assert isinstance(refused, UnableToRenew) and refused.reason == "expired"


def test_renew_after_expiry_is_allowed_within_the_skew(env: Env) -> None:
    env.add_user("bob", "admin")
    token = env.issue("bob")
    env.clock.advance(LIFETIME + SKEW - 1)  # expired by NotOnOrAfter, still valid within the skew (as Validate)
    assert env.status("bob", token) == "valid"
    renewed = env.renew("bob", token)
    assert env.status("bob", renewed) == "valid"


def test_renew_at_expiry_plus_skew_is_refused(env: Env) -> None:
    env.add_user("bob", "admin")
    token = env.issue("bob")
    env.clock.advance(LIFETIME + SKEW)
    assert env.status("bob", token) == "invalid"
    refused = env.refused("bob", token)
    assert isinstance(refused, UnableToRenew) and refused.reason == "expired"


@pytest.mark.parametrize(("offset", "allowed"), [(AFTER - 1, True), (AFTER, False)])
def test_renew_ok_window_after_expiry_counts_from_expiry_plus_skew(env: Env, offset: int, allowed: bool) -> None:
    env.add_user("bob", "admin")
    token = env.issue("bob", extra='<wst:Renewing Allow="true" OK="true"/>')
    env.clock.advance(LIFETIME + SKEW + offset)
    if allowed:
        env.renew("bob", token)
    else:
        refused = env.refused("bob", token)
        assert isinstance(refused, UnableToRenew) and refused.reason == "expired"


def test_renew_of_a_token_not_yet_valid_by_the_clock_is_refused(env: Env) -> None:
    env.add_user("bob", "admin")
    token = env.issue("bob")
    env.clock.advance(-(2 * SKEW + 1))  # before NotBefore - skew (NotBefore is already issue time - skew)
    refused = env.refused("bob", token)
    assert isinstance(refused, UnableToRenew) and refused.reason == "not_yet_valid"


def test_max_renewal_age_refuses_a_live_token(tmp_path: Path, keys: Keys) -> None:
    environment = Env(tmp_path, keys)
    environment.add_rp(lifetime=43200)
    environment.add_user("bob", "admin")
    token = environment.issue("bob")
    for _ in range(2):  # renewed at 43 000 s and 86 000 s after the chain started
        environment.clock.advance(43000)
        token = environment.renew("bob", token)
    environment.clock.advance(MAX_AGE - 86000 + 1)  # the last token is still inside its own window
    assert environment.status("bob", token) == "valid"
    refused = environment.refused("bob", token)
    assert isinstance(refused, UnableToRenew) and refused.reason == "max_renewal_age"
    environment.db.close()


# --- item 4: one live token per chain ----------------------------------------------------------------------------


def test_a_renewed_token_cannot_be_renewed_again_and_validates_invalid(env: Env) -> None:
    env.add_user("bob", "admin")
    token = env.issue("bob")
    renewed = env.renew("bob", token)
    assert env.status("bob", token) == "invalid"
    assert env.status("bob", renewed) == "valid"
    refused = env.refused("bob", token)
    assert isinstance(refused, UnableToRenew) and refused.reason == "renewed"
    assert env.renew("bob", renewed)  # the live token of the chain renews


def test_cancelling_any_token_of_a_chain_ends_the_chain(env: Env) -> None:
    env.add_user("bob", "admin")
    first = env.issue("bob")
    second = env.renew("bob", first)
    third = env.renew("bob", second)
    env.cancel("bob", first)  # an old, already renewed token of the chain
    assert [env.status("bob", t) for t in (first, second, third)] == ["invalid"] * 3
    refused = env.refused("bob", third)
    assert isinstance(refused, UnableToRenew) and refused.reason == "cancelled"


def test_cancel_leaves_other_chains_alone(env: Env) -> None:
    env.add_user("bob", "admin")
    one, other = env.issue("bob"), env.issue("bob")
    env.cancel("bob", env.renew("bob", one))
    assert env.status("bob", other) == "valid"
    assert env.renew("bob", other)


def test_a_failed_renewal_leaves_the_old_token_live(env: Env) -> None:
    env.add_user("bob", "admin")
    required = (
        f'<wst:Claims Dialect="http://schemas.xmlsoap.org/ws/2005/05/identity"><i:ClaimType xmlns:i="{ns.WSID}"'
        f' Uri="{EMAIL}" Optional="false"/></wst:Claims>'
    )
    token = env.issue("bob", extra=f'<wst:Renewing Allow="true"/>{required}')
    env.users.set_claims(PRIMARY, "bob", {EMAIL: []})
    with pytest.raises(STSError) as caught:  # a required claim the user no longer has: as a fresh Issue
        env.renew("bob", token)
    assert caught.value.fault_qname() == (WST, "RequestFailed")
    assert env.status("bob", token) == "valid"  # nothing was retired
    env.users.set_claims(PRIMARY, "bob", {EMAIL: ["bob@example.com"]})
    assert env.renew("bob", token)


# --- item 2: decided again from the current user store and RP settings ------------------------------------------


def test_a_revoked_role_disappears_from_the_renewed_token(env: Env) -> None:
    env.add_user("bob", "admin", "staff")
    token = env.issue("bob")
    env.users.revoke(PRIMARY, "bob", "admin")
    assert claims_of(renew_reply(env, "bob", token))[ROLE] == ["staff"]


def test_a_subject_who_lost_every_allowed_role_gets_the_issue_fault(env: Env) -> None:
    env.add_user("carol", "admin", "renewer")
    token = env.issue("carol")
    env.users.revoke(PRIMARY, "carol", "admin")  # still a renewer, no longer allowed to receive tokens
    refused = env.refused("carol", token)
    assert isinstance(refused, FailedAuthentication) and refused.reason == "role_denied"
    assert refused.fault_qname() == (ns.WSSE, "FailedAuthentication")
    assert env.status("carol", token) == "valid"  # refused renewals retire nothing


@pytest.mark.parametrize(("change", "reason"), [("disable", "user_disabled"), ("remove", "unknown_user")])
def test_a_disabled_or_removed_subject_cannot_renew(env: Env, change: str, reason: str) -> None:
    env.add_user("dave", "admin")
    token = env.issue("dave")
    caller = env.users.find(PRIMARY, "dave")  # the caller as the credential cache may still hold it
    assert caller is not None
    if change == "disable":
        env.users.set_enabled(PRIMARY, "dave", False)
    else:
        env.users.remove_user(PRIMARY, "dave")
    rst = etree.fromstring(
        f'<wst:RequestSecurityToken xmlns:wst="{WST}"><wst:RequestType>{WST}/Renew</wst:RequestType>'
        f"<wst:RenewTarget>{reference(token)}</wst:RenewTarget></wst:RequestSecurityToken>"
    )
    call = TrustCall(
        ns.S11, (), rst, WST, Operation.RENEW, RequestInfo("c", "127.0.0.1", True),
        AuthenticatedCaller(caller.principal, "password-text"),
    )
    with pytest.raises(FailedAuthentication) as caught:
        env.renew_op(call)
    assert caught.value.reason == reason


def test_changed_claim_values_are_issued_on_renewal(env: Env) -> None:
    env.add_user("bob", "admin", email="bob@old.example")
    token = env.issue("bob")
    env.users.set_claims(PRIMARY, "bob", {EMAIL: ["bob@new.example"]})
    assert claims_of(renew_reply(env, "bob", token))[EMAIL] == ["bob@new.example"]


def test_a_narrowed_claim_ceiling_applies_on_renewal(env: Env) -> None:
    env.add_user("bob", "admin")
    token = env.issue("bob")
    env.rps.update(RelyingParty(address=RP, encrypt=False, claims=(EMAIL,)))
    assert set(claims_of(renew_reply(env, "bob", token))) == {EMAIL}


def test_a_changed_claim_mapping_applies_on_renewal(env: Env) -> None:
    env.add_user("bob", "admin")
    token = env.issue("bob")
    env.rps.update(RelyingParty(address=RP, encrypt=False, claims=(EMAIL,), claim_mapping=((EMAIL, "urn:mail"),)))
    assert claims_of(renew_reply(env, "bob", token)) == {"urn:mail": ["bob@example.com"]}


def test_lifecycle_roles_are_checked_against_the_current_store(tmp_path: Path, keys: Keys) -> None:
    environment = Env(tmp_path, keys, lifecycle_roles=frozenset({"renewer"}))
    environment.add_rp()
    environment.add_user("erin", "admin", "renewer")
    token = environment.issue("erin")
    environment.users.revoke(PRIMARY, "erin", "renewer")
    refused = environment.refused("erin", token)
    assert isinstance(refused, FailedAuthentication) and refused.reason == "role_denied"
    environment.db.close()


def test_a_record_without_the_requested_claims_is_refused(env: Env) -> None:
    env.add_user("bob", "admin")
    token = env.issue("bob")
    record = env.store.get(token)
    assert record is not None
    data = json.loads(record.data)
    del data["requested_claims"]  # a record written before renewals were decided again
    env.db.conn.execute("UPDATE tokens SET data = ? WHERE id = ?", (json.dumps(data), token))
    refused = env.refused("bob", token)
    assert isinstance(refused, UnableToRenew) and refused.reason == "legacy_record"


def test_a_public_key_token_whose_client_key_was_unregistered_is_refused(env: Env) -> None:
    env.add_user("bob", "admin")
    client = self_signed_certificate(generate_rsa_key(2048), "client")
    path = env.clients / "client.crt.pem"
    path.write_bytes(certificate_pem(client))
    use_key = (
        f'<wst:UseKey><ds:KeyInfo xmlns:ds="{ns.DS}"><ds:X509Data><ds:X509Certificate>'
        f"{base64.b64encode(certificate_der(client)).decode()}</ds:X509Certificate></ds:X509Data></ds:KeyInfo>"
        "</wst:UseKey>"
    )
    token = assertion_id(env.issue_reply("bob", extra=f'<wst:Renewing Allow="true"/>{use_key}', key_type="PublicKey"))
    token = env.renew("bob", token)  # still registered: renewed, bound to the same key
    path.unlink()
    refused = env.refused("bob", token)
    assert isinstance(refused, UnableToRenew) and refused.reason == "use_key_rejected"


# --- item 3: the relying party by its registration ----------------------------------------------------------------


def audience_of(reply: TrustReply) -> str:
    return str(assertion_of(reply).findtext(f".//{{{SAML2}}}Audience"))


def test_a_regex_relying_party_renews_for_itself_not_the_default(tmp_path: Path, keys: Keys) -> None:
    environment = Env(tmp_path, keys, default_rp=RP)
    environment.add_rp()
    environment.add_rp(r"https://rx\.example\.com/[a-z]+/", match="regex", identifier="urn:rx")
    environment.add_user("bob", "admin")
    issued = environment.issue_reply("bob", "https://rx.example.com/abc/")
    assert audience_of(issued) == "urn:rx"
    assert audience_of(renew_reply(environment, "bob", assertion_id(issued))) == "urn:rx"
    environment.db.close()


def test_a_removed_relying_party_is_never_replaced_by_a_prefix_or_the_default(tmp_path: Path, keys: Keys) -> None:
    environment = Env(tmp_path, keys, default_rp=RP)
    environment.add_rp()
    environment.add_rp("https://rp.example.com/", match="prefix")
    environment.add_rp("https://rp.example.com/app/one")
    environment.add_user("bob", "admin")
    token = environment.issue("bob", "https://rp.example.com/app/one")
    environment.rps.remove("https://rp.example.com/app/one")
    refused = environment.refused("bob", token)
    assert isinstance(refused, UnableToRenew) and refused.reason == "rp_gone"
    assert environment.status("bob", token) == "valid"  # the refusal retired nothing
    environment.db.close()


# --- item 5: the AppliesTo echo names the scope the token was issued for ---------------------------------------


def echoed(reply: TrustReply) -> str | None:
    return reply.body.findtext(f".//{{{ns.WSP}}}AppliesTo/{{{ns.WSA}}}EndpointReference/{{{ns.WSA}}}Address")


def test_applies_to_echo_after_the_default_fallback_names_the_default_scope(tmp_path: Path, keys: Keys) -> None:
    environment = Env(tmp_path, keys, default_rp=RP)
    environment.add_rp(identifier="urn:default-rp")
    environment.add_rp("https://other.example.com/", match="prefix")
    environment.add_user("bob", "admin")
    fallback = environment.issue_reply("bob", "https://unknown.example.com/x")
    assert echoed(fallback) == audience_of(fallback) == "urn:default-rp"
    matched = environment.issue_reply("bob", "https://other.example.com/deep/path")
    assert echoed(matched) == "https://other.example.com/deep/path"  # a match echoes what was asked for
    environment.db.close()
