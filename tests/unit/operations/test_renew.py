"""Renew, Validate and Cancel over the real stores with a frozen clock (issue 12, items 2-5)."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from lxml import etree

from sts import ns
from sts.auth.users import PRIMARY
from sts.auth.validators import AuthenticatedCaller
from sts.crypto.keygen import certificate_der, generate_rsa_key, self_signed_certificate
from sts.crypto.keywrap import ClientKey
from sts.errors import FailedAuthentication, STSError, UnableToRenew
from sts.operations.call import RequestInfo, TrustCall, TrustReply, TrustRequest
from sts.relying_parties.model import RelyingParty
from sts.soapenv import SoapVersion
from sts.stores.base import TokenRecord
from sts.stores.sqlite_stores import SqliteTokenStore
from sts.wstrust.actions import Operation
from sts.wstrust.tokentypes import NO_PROOF_KEY
from sts.wstrust.version import TrustVersion
from tests.unit.operations.harness import (
    AFTER,
    EMAIL,
    LIFETIME,
    MAX_AGE,
    ROLE,
    RP,
    SAML2,
    SKEW,
    WST,
    Env,
    Keys,
    assertion_id,
    assertion_of,
    claims_of,
    reference,
    renew_reply,
)

# --- the answer's version ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("issued_in", list(TrustVersion))
@pytest.mark.parametrize("renewed_in", list(TrustVersion))
def test_renew_answers_in_the_requests_version(env: Env, issued_in: TrustVersion, renewed_in: TrustVersion) -> None:
    """Whatever version the token was issued in: RSTR and KeyType in the Renew request's version, as its Action."""
    env.add_user("bob", "admin")
    token_id = assertion_id(env.issue_reply("bob", trust=issued_in))
    reply = env.call(
        "bob", Operation.RENEW, f"<wst:RenewTarget>{reference(token_id)}</wst:RenewTarget>", renewed_in
    )
    assert (reply.body.tag, reply.trust) == (renewed_in.qn("RequestSecurityTokenResponse"), renewed_in)
    assert reply.body.findtext(renewed_in.qn("KeyType")) == renewed_in.bearer
    assert env.renew("bob", assertion_id(reply))  # and the renewed token renews again, in 1.3


def test_a_renewal_in_the_issue_version_keeps_the_key_type_as_spelled(env: Env) -> None:
    """The February 2005 ``wsid:NoProofKey`` Bearer spelling (.NET's) is echoed again by a February 2005 renewal."""
    env.add_user("bob", "admin")
    feb = TrustVersion.FEB2005
    inner = (
        f"<wst:TokenType>{SAML2}</wst:TokenType>"
        f'<wsp:AppliesTo xmlns:wsp="{ns.WSP}"><wsa:EndpointReference xmlns:wsa="{ns.WSA}">'
        f"<wsa:Address>{RP}</wsa:Address></wsa:EndpointReference></wsp:AppliesTo>"
        f'<wst:KeyType>{NO_PROOF_KEY}</wst:KeyType><wst:Renewing Allow="true"/>'
    )
    token_id = assertion_id(env.call("bob", Operation.ISSUE, inner, feb))
    reply = env.call("bob", Operation.RENEW, f"<wst:RenewTarget>{reference(token_id)}</wst:RenewTarget>", feb)
    assert reply.body.findtext(feb.qn("KeyType")) == NO_PROOF_KEY


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
    request = TrustRequest(
        SoapVersion.SOAP11, (), rst, TrustVersion.TRUST13, Operation.RENEW, RequestInfo("c", "127.0.0.1", True)
    )
    call = TrustCall(request, AuthenticatedCaller(caller.principal, "password-text"))
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


def test_a_public_key_token_is_renewed_only_by_a_request_signed_with_its_key(env: Env) -> None:
    """Renew of a PublicKey token needs proof of the token's key (CXF SAMLTokenRenewer verifyProofOfPossession):
    the password alone, or a signature by another key, is UnableToRenew (I24)."""
    env.add_user("bob", "admin")
    client = self_signed_certificate(generate_rsa_key(2048), "client")
    env.users.add_certificate(PRIMARY, "bob", certificate_der(client))  # the unsigned Issue may bind it
    use_key = (
        f'<wst:UseKey><ds:KeyInfo xmlns:ds="{ns.DS}"><ds:X509Data><ds:X509Certificate>'
        f"{base64.b64encode(certificate_der(client)).decode()}</ds:X509Certificate></ds:X509Data></ds:KeyInfo>"
        "</wst:UseKey>"
    )
    token = assertion_id(env.issue_reply("bob", extra=f'<wst:Renewing Allow="true"/>{use_key}', key_type="PublicKey"))
    refused = env.refused("bob", token)  # unsigned: no proof
    assert isinstance(refused, UnableToRenew) and refused.reason == "no_proof_of_possession"
    env.proofs["bob"] = self_signed_certificate(generate_rsa_key(2048), "other")
    refused = env.refused("bob", token)  # signed by another key
    assert isinstance(refused, UnableToRenew) and refused.reason == "no_proof_of_possession"
    env.proofs["bob"] = client
    assert env.renew("bob", token)  # signed with the token's key: renewed, bound to the same key


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


# --- the renew race: one live token per chain, however the requests interleave -----------------------------------


def renew_target(token: str) -> str:
    return f"<wst:RenewTarget>{reference(token)}</wst:RenewTarget>"


class RivalFirst(SqliteTokenStore):
    """Another worker's view of the same database, where a rival renewal commits just before this one does."""

    def __init__(self, env: Env, token: str) -> None:
        super().__init__(env.db)
        self._rival: Callable[[], object] | None = lambda: env.renew("bob", token)
        self.rival_token = ""

    def renew(self, old_id: str, successor: TokenRecord, keep_until: float) -> bool:
        if self._rival is not None:  # the rival read the same live token and now wins the write
            rival, self._rival = self._rival, None
            self.rival_token = str(rival())
        return super().renew(old_id, successor, keep_until)


def test_a_renewal_that_loses_the_race_hands_out_nothing(env: Env) -> None:
    env.add_user("bob", "admin")
    token = env.issue("bob")
    racing = RivalFirst(env, token)
    with pytest.raises(UnableToRenew) as caught:
        env.renew_operation(racing)(env.call_for("bob", Operation.RENEW, renew_target(token)))
    assert caught.value.reason == "renewed_meanwhile"
    assert caught.value.fault_qname() == (WST, "UnableToRenew")
    (count,) = env.db.conn.execute("SELECT count(*) FROM tokens").fetchone()
    assert count == 2  # the token and the rival's successor; the loser's token was never recorded
    assert env.status("bob", racing.rival_token) == "valid"
    assert env.status("bob", token) == "invalid"


def test_concurrent_renewals_of_one_token_exactly_one_succeeds(env: Env) -> None:
    env.add_user("bob", "admin")
    token = env.issue("bob")
    barrier = threading.Barrier(8)

    def attempt(_: int) -> str:
        operation = env.renew_operation(SqliteTokenStore(env.db))  # one worker each, same database
        call = env.call_for("bob", Operation.RENEW, renew_target(token))
        barrier.wait(timeout=30)
        try:
            return assertion_id(operation(call))
        except UnableToRenew as refused:
            return refused.reason

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(attempt, range(8)))
    renewed = [o for o in outcomes if o.startswith("_")]
    assert len(renewed) == 1, outcomes
    assert set(outcomes) - set(renewed) <= {"renewed", "renewed_meanwhile"}
    assert env.status("bob", renewed[0]) == "valid"


# --- records written before renewal records were versioned --------------------------------------------------------


def _as_version_1(env: Env, token: str) -> None:
    """Rewrite a token's record in the format the previous version wrote (no ``v``; UseKey kept as XML)."""
    record = env.store.get(token)
    assert record is not None
    data = json.loads(record.data)
    assert data.pop("v") == 2
    stored = data.pop("client_key")
    data["use_key"] = None
    if stored is not None:
        data["use_key"] = etree.tostring(ClientKey.decoded(stored[0], base64.b64decode(stored[1])).key_info()).decode()
    env.db.conn.execute("UPDATE tokens SET data = ? WHERE id = ?", (json.dumps(data), token))


def _key_info(reply: TrustReply) -> bytes:
    info = assertion_of(reply).find(f".//{{{SAML2}}}SubjectConfirmationData/{{{ns.DS}}}KeyInfo")
    assert info is not None
    return etree.tostring(info, method="c14n", exclusive=True)


@pytest.mark.parametrize("form", ["certificate", "bare key"])
def test_a_public_key_token_recorded_by_the_previous_version_renews_bound_to_the_same_key(
    env: Env, form: str
) -> None:
    env.add_user("bob", "admin")
    client = generate_rsa_key(2048)
    client_cert = self_signed_certificate(client, "client")
    env.users.add_certificate(PRIMARY, "bob", certificate_der(client_cert))
    if form == "certificate":
        der = certificate_der(client_cert)
        key = f"<ds:X509Data><ds:X509Certificate>{base64.b64encode(der).decode()}</ds:X509Certificate></ds:X509Data>"
    else:
        numbers = client.public_key().public_numbers()
        modulus = base64.b64encode(numbers.n.to_bytes(256, "big")).decode()
        key = f"<ds:KeyValue><ds:RSAKeyValue><ds:Modulus>{modulus}</ds:Modulus><ds:Exponent>AQAB</ds:Exponent>"
        key += "</ds:RSAKeyValue></ds:KeyValue>"
    use_key = f'<wst:UseKey><ds:KeyInfo xmlns:ds="{ns.DS}">{key}</ds:KeyInfo></wst:UseKey>'
    issued = env.issue_reply("bob", extra=f'<wst:Renewing Allow="true"/>{use_key}', key_type="PublicKey")
    token = assertion_id(issued)
    env.proofs["bob"] = client_cert  # the renewal is signed with the token's key
    _as_version_1(env, token)
    renewed = renew_reply(env, "bob", token)
    assert _key_info(renewed) == _key_info(issued)
    record = env.store.get(assertion_id(renewed))
    assert record is not None and json.loads(record.data)["v"] == 2  # the successor is written in today's format
    assert renew_reply(env, "bob", assertion_id(renewed))


def test_a_bearer_token_recorded_by_the_previous_version_renews(env: Env) -> None:
    env.add_user("bob", "admin")
    token = env.issue("bob")
    _as_version_1(env, token)
    assert env.status("bob", env.renew("bob", token)) == "valid"


def test_a_record_of_an_unknown_version_is_refused(env: Env) -> None:
    env.add_user("bob", "admin")
    token = env.issue("bob")
    record = env.store.get(token)
    assert record is not None
    newer = json.dumps({**json.loads(record.data), "v": 3})
    env.db.conn.execute("UPDATE tokens SET data = ? WHERE id = ?", (newer, token))
    refused = env.refused("bob", token)
    assert isinstance(refused, UnableToRenew) and refused.reason == "legacy_record"
    assert env.status("bob", token) == "valid"  # refused renewals retire nothing
