"""Tests for sts.auth.router.UserStoreRouter: ``DOMAIN/name`` reaches the store owning DOMAIN, and only it.

Two real SQLite user stores in two database files stand for two user-store domains (a directory store would take
the second one's place); each sits behind a recorder of the calls it gets.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from lxml import etree

from sts import errors, ns
from sts.auth.credential_cache import VerifiedCredentialCache
from sts.auth.passwords import HashPolicy, PasswordHasher
from sts.auth.router import UserStoreRouter
from sts.auth.sqlite_users import SqliteUserStore
from sts.auth.subjects import SubjectAuthorizer
from sts.auth.users import PRIMARY, DigestSecret, LockCheck, Principal, Refusal, UserStore
from sts.auth.validators import AuthenticatedCaller, AuthPolicy, CallerInfo, UsernameTokenAuthenticator
from sts.clock import FrozenClock
from sts.crypto.secretbox import SecretBox
from sts.soap.faults import render_fault
from sts.soapenv import SoapVersion
from sts.stores.sqlite import Database, initialize
from sts.stores.sqlite_stores import SqliteLockoutStore, SqliteReplayCache

FAST = HashPolicy(memory_kib=1024, time_cost=1)
POLICY = AuthPolicy(allowed_roles=frozenset({"admin"}), allowed_domains=frozenset({"ALL-USER-STORE-DOMAINS"}))
INFO = CallerInfo(correlation_id="corr-1", client_address="192.0.2.10", secure_transport=True)
PRIMARY_PASSWORD, PARTNER_PASSWORD = "primary-Pa55word!", "partner-Pa55word!"


@dataclass
class Recording:
    """A user store that records which names it was asked about, then asks the real store."""

    store: UserStore
    calls: list[tuple[str, str, str]] = field(default_factory=list)

    def authenticate(
        self, domain: str, name: str, password: str, *, locked: LockCheck | None = None
    ) -> Principal | Refusal:
        self.calls.append(("authenticate", domain, name))
        return self.store.authenticate(domain, name, password, locked=locked)

    def digest_secret(self, domain: str, name: str) -> DigestSecret | Refusal:
        self.calls.append(("digest_secret", domain, name))
        return self.store.digest_secret(domain, name)

    def lookup(self, domain: str, name: str) -> Principal | None:
        self.calls.append(("lookup", domain, name))
        return self.store.lookup(domain, name)


@dataclass
class Env:
    hasher: PasswordHasher
    primary: Recording
    partner: Recording
    clock: FrozenClock
    lockout: SqliteLockoutStore
    replay: SqliteReplayCache

    def authenticator(self, router: UserStoreRouter) -> UsernameTokenAuthenticator:
        return UsernameTokenAuthenticator(
            router, self.hasher, self.lockout, self.replay, VerifiedCredentialCache(0), POLICY, self.clock
        )

    def login(self, router: UserStoreRouter, username: str, password: str) -> AuthenticatedCaller:
        return self.authenticator(router).authenticate(self.headers(username, password), SoapVersion.SOAP11, INFO)

    def headers(self, username: str, password: str) -> tuple[etree._Element, ...]:
        now = self.clock.now()
        stamp = (now.strftime("%Y-%m-%dT%H:%M:%SZ"), (now + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ"))
        header = etree.fromstring(
            f'<s:Header xmlns:s="{ns.S11}" xmlns:wsse="{ns.WSSE}" xmlns:wsu="{ns.WSU}"><wsse:Security>'
            f"<wsu:Timestamp><wsu:Created>{stamp[0]}</wsu:Created><wsu:Expires>{stamp[1]}</wsu:Expires>"
            f"</wsu:Timestamp><wsse:UsernameToken><wsse:Username/>"
            f'<wsse:Password Type="{ns.PASSWORD_TEXT}"/><wsu:Created>{stamp[0]}</wsu:Created>'
            "</wsse:UsernameToken></wsse:Security></s:Header>"
        )
        token = header[0][1]
        token[0].text, token[1].text = username, password
        return tuple(header)


def _store(path: Path, hasher: PasswordHasher, domain: str, password: str) -> SqliteUserStore:
    initialize(path)
    store = SqliteUserStore(Database(path), hasher, SecretBox(os.urandom(32)))
    store.add_role("admin")
    store.add_user(domain, "alice", password, roles=["admin"], digest=True)
    return store


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    hasher = PasswordHasher(FAST)
    primary = _store(tmp_path / "primary.db", hasher, PRIMARY, PRIMARY_PASSWORD)
    partner = _store(tmp_path / "partner.db", hasher, "PARTNER", PARTNER_PASSWORD)
    shared = primary.database
    lockout = SqliteLockoutStore(shared, max_failures=3, duration=300, max_duration=3600)
    clock = FrozenClock(datetime.now(UTC).replace(microsecond=0))
    yield Env(hasher, Recording(primary), Recording(partner), clock, lockout, SqliteReplayCache(shared, clock))
    primary.database.close()
    partner.database.close()


def test_a_second_store_is_consulted_for_its_domain_only(env: Env) -> None:
    router = UserStoreRouter({"PARTNER": env.partner}, fallback=env.primary)
    caller = env.login(router, "PARTNER/alice", PARTNER_PASSWORD)
    assert caller.principal.qualified_name == "PARTNER/alice"
    assert env.partner.calls == [("authenticate", "PARTNER", "alice")]
    assert env.primary.calls == []
    # The other domain's password is no password here: the partner store alone decides for PARTNER.
    with pytest.raises(errors.FailedAuthentication) as caught:
        env.login(router, "partner/ALICE", PRIMARY_PASSWORD)
    assert caught.value.reason == "wrong_password"
    assert env.primary.calls == []
    # The unqualified name is PRIMARY's, and PRIMARY's store alone answers it.
    assert env.login(router, "alice", PRIMARY_PASSWORD).principal.qualified_name == "PRIMARY/alice"
    assert env.primary.calls == [("authenticate", "PRIMARY", "alice")]
    assert len(env.partner.calls) == 2


def test_lookup_and_digest_secrets_are_routed_too(env: Env) -> None:
    router = UserStoreRouter({"partner": env.partner}, fallback=env.primary)  # domain keys are normalised
    assert router.store_for("PARTNER") is env.partner
    secret = router.digest_secret("PARTNER", "alice")
    assert isinstance(secret, DigestSecret) and secret.secret == PARTNER_PASSWORD
    principal = SubjectAuthorizer(router, POLICY).authorize("PARTNER/alice")
    assert principal.qualified_name == "PARTNER/alice"
    assert env.partner.calls == [("digest_secret", "PARTNER", "alice"), ("lookup", "PARTNER", "alice")]
    assert env.primary.calls == []


def test_an_unknown_domain_gets_the_same_generic_fault(env: Env, caplog: pytest.LogCaptureFixture,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    caplog.set_level(logging.INFO, logger="sts.audit")
    router = UserStoreRouter({PRIMARY: env.primary})  # no fallback: no store owns NOWHERE
    dummies = [0]
    original = env.hasher.dummy_verify

    def counting() -> None:
        dummies[0] += 1
        original()

    monkeypatch.setattr(env.hasher, "dummy_verify", counting)
    refusals = {}
    for username in ("NOWHERE/alice", "nobody"):
        with pytest.raises(errors.STSError) as caught:
            env.login(router, username, PRIMARY_PASSWORD)
        refusals[caught.value.reason] = caught.value
    assert set(refusals) == {"unknown_domain", "unknown_user"}
    assert {type(error) for error in refusals.values()} == {errors.FailedAuthentication}
    rendered = {
        render_fault(error, SoapVersion.SOAP11, correlation_id="c", trust_ns=ns.WST, headers=[]).body
        for error in refusals.values()
    }
    assert len(rendered) == 1  # the same bytes on the wire
    assert dummies[0] == 2  # each cost one password check, as every failure does (catalogue A02)
    assert [r.reason for r in caplog.records if r.name == "sts.audit"] == [  # type: ignore[attr-defined]
        "unknown_domain", "unknown_user"
    ]
    assert env.primary.calls == [("authenticate", PRIMARY, "nobody")]
    assert env.lockout.state("NOWHERE/alice") is None  # not a password failure


def test_an_unknown_domain_has_no_users(env: Env) -> None:
    router = UserStoreRouter({PRIMARY: env.primary})
    assert router.store_for("NOWHERE") is None
    assert router.lookup("NOWHERE", "alice") is None
    assert router.digest_secret("NOWHERE", "alice") == Refusal("unknown_domain", "no user store for the domain")
    with pytest.raises(errors.FailedAuthentication) as caught:
        SubjectAuthorizer(router, POLICY).authorize("NOWHERE/alice")
    assert caught.value.reason == "unknown_user"


def test_single_sends_every_domain_to_one_store(env: Env) -> None:
    router = UserStoreRouter.single(env.primary)
    for domain in (PRIMARY, "PARTNER", secrets.token_hex(4).upper()):
        assert router.store_for(domain) is env.primary


# --- chained unqualified logins (unqualified_login = "chain") ----------------------------------------------------


class Unavailable:
    """A store whose directory does not answer."""

    def authenticate(
        self, domain: str, name: str, password: str, *, locked: LockCheck | None = None
    ) -> Principal | Refusal:
        raise errors.ServiceUnavailable("user directory down", reason="directory_down")

    def digest_secret(self, domain: str, name: str) -> DigestSecret | Refusal:
        raise errors.ServiceUnavailable("user directory down", reason="directory_down")

    def lookup(self, domain: str, name: str) -> Principal | None:
        raise errors.ServiceUnavailable("user directory down", reason="directory_down")


def test_chain_tries_each_domain_in_order_until_one_accepts(env: Env) -> None:
    router = UserStoreRouter({"PARTNER": env.partner}, fallback=env.primary, chain=["primary", "partner"])
    assert router.chain == (PRIMARY, "PARTNER")
    found = router.authenticate_chain(router.chain, "alice", PARTNER_PASSWORD)
    assert isinstance(found, Principal) and found.qualified_name == "PARTNER/alice"
    assert env.primary.calls == [("authenticate", PRIMARY, "alice")]
    assert env.partner.calls == [("authenticate", "PARTNER", "alice")]
    found = router.authenticate_chain(router.chain, "alice", PRIMARY_PASSWORD)
    assert isinstance(found, Principal) and found.qualified_name == "PRIMARY/alice"
    assert len(env.partner.calls) == 1  # the first store accepted: the others are not asked


def test_chain_answers_one_wrong_password_before_an_unknown_user(env: Env) -> None:
    router = UserStoreRouter({"PARTNER": env.partner}, fallback=env.primary)
    assert router.authenticate_chain((PRIMARY, "PARTNER"), "alice", "wrong") == Refusal(
        "wrong_password", "wrong password", True, ("PRIMARY/alice", "PARTNER/alice")  # both accounts' lockout
    )
    verdict = router.authenticate_chain(("NOWHERE", PRIMARY, "PARTNER"), "alice", "wrong")
    assert isinstance(verdict, Refusal) and verdict.reason == "wrong_password"  # not the first refusal
    verdict = router.authenticate_chain((PRIMARY, "PARTNER"), "nobody", "wrong")
    assert isinstance(verdict, Refusal) and verdict.reason == "unknown_user"
    assert router.authenticate_chain((), "alice", "x") == Refusal("unknown_domain", "no user store for the domain")


def test_chain_asks_each_store_about_the_lock_of_the_account_it_found(env: Env) -> None:
    """The typed ``alice`` is PRIMARY's key; PARTNER's alice is another account with its own lock, which PARTNER's
    store checks before its password: a locked account is skipped like a refusal, and the next store may accept."""
    router = UserStoreRouter({"PARTNER": env.partner}, fallback=env.primary)
    asked: list[str] = []

    def locked(key: str) -> bool:
        asked.append(key)
        return key == "PARTNER/alice"

    verdict = router.authenticate_chain(("PARTNER", PRIMARY), "ALICE", PARTNER_PASSWORD, locked=locked)
    assert verdict == Refusal(  # PARTNER never checked
        "wrong_password", "wrong password", True, ("PRIMARY/alice",), "PRIMARY/alice"
    )
    assert asked == ["PARTNER/alice", "PRIMARY/alice"]


def test_a_chained_login_counts_on_the_account_it_reached(env: Env) -> None:
    """``alice`` chained to PARTNER and ``PARTNER/alice`` typed qualified are one account: three wrong passwords
    (max_failures) by either spelling lock it for both, and the right password is then refused without a check."""
    router = UserStoreRouter({"PARTNER": env.partner}, fallback=env.primary, chain=["partner"])
    for typed in ("alice", "PARTNER/alice", "alice"):
        with pytest.raises(errors.FailedAuthentication) as caught:
            env.login(router, typed, "wrong")
        assert caught.value.reason == "wrong_password"
    state = env.lockout.state("PARTNER/alice")
    assert state is not None and state.locked_until > env.clock.now().timestamp()
    assert env.lockout.state("PRIMARY/alice") is None
    for typed in ("PARTNER/alice", "alice"):
        with pytest.raises(errors.FailedAuthentication) as caught:
            env.login(router, typed, PARTNER_PASSWORD)
        assert caught.value.reason == "account_locked"


def test_chain_passes_a_store_that_cannot_answer(env: Env) -> None:
    router = UserStoreRouter({PRIMARY: Unavailable(), "PARTNER": env.partner})
    found = router.authenticate_chain((PRIMARY, "PARTNER"), "alice", PARTNER_PASSWORD)
    assert isinstance(found, Principal) and found.qualified_name == "PARTNER/alice"
    with pytest.raises(errors.ServiceUnavailable) as caught:  # nobody accepted: fail closed, not "wrong password"
        router.authenticate_chain((PRIMARY, "PARTNER"), "alice", "wrong")
    assert caught.value.reason == "directory_down"


def test_close_closes_the_directories(env: Env) -> None:
    closed: list[str] = []

    class Closing(Recording):
        def close(self) -> None:
            closed.append("partner")

    router = UserStoreRouter({"PARTNER": Closing(env.partner.store), "OTHER": env.primary}, fallback=env.primary)
    router.close()
    assert closed == ["partner"]


# --- down-level logon names (netbios_name of an Active Directory store) ------------------------------------------

NETBIOS = {"PTNR": "PARTNER"}  # PARTNER's NetBIOS name, as down_level_domains() maps netbios_name = "PTNR"


def _refused(env: Env, router: UserStoreRouter, typed: str, password: str) -> str:
    with pytest.raises(errors.FailedAuthentication) as caught:
        env.login(router, typed, password)
    return caught.value.reason


def _audited(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str, str]]:
    return [(r.domain, r.user, r.reason) for r in caplog.records if r.name == "sts.audit"]  # type: ignore[attr-defined]


def test_a_down_level_name_reaches_the_store_of_its_netbios_name(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sts.audit")
    router = UserStoreRouter({"PARTNER": env.partner}, fallback=env.primary, down_level=NETBIOS)
    caller = env.login(router, "ptnr\\Alice", PARTNER_PASSWORD)  # the NetBIOS name in any case, as in Windows
    assert caller.principal == env.login(router, "PARTNER/Alice", PARTNER_PASSWORD).principal
    assert caller.principal.qualified_name == "PARTNER/alice"
    assert env.partner.calls == [("authenticate", "PARTNER", "Alice")] * 2  # the store gets the account name
    assert env.primary.calls == []
    assert _audited(caplog) == [("PARTNER", "Alice", "password-text")] * 2  # one audit for both spellings


def test_a_backslash_name_of_no_netbios_name_stays_a_primary_name(env: Env) -> None:
    """What a backslash name was before down-level names: a bare name of PRIMARY, backslash included."""
    with_netbios = UserStoreRouter({"PARTNER": env.partner}, fallback=env.primary, down_level=NETBIOS)
    assert _refused(env, with_netbios, "OTHER\\alice", PARTNER_PASSWORD) == "unknown_user"
    without = UserStoreRouter({"PARTNER": env.partner}, fallback=env.primary)
    assert _refused(env, without, "PTNR\\alice", PARTNER_PASSWORD) == "unknown_user"
    assert env.primary.calls == [("authenticate", PRIMARY, "OTHER\\alice"), ("authenticate", PRIMARY, "PTNR\\alice")]
    assert env.partner.calls == []


def test_a_down_level_name_is_never_chained(env: Env) -> None:
    router = UserStoreRouter({"PARTNER": env.partner}, fallback=env.primary, chain=["primary", "partner"],
                             down_level=NETBIOS)
    assert _refused(env, router, "PTNR\\alice", PRIMARY_PASSWORD) == "wrong_password"
    assert env.partner.calls == [("authenticate", "PARTNER", "alice")]
    assert env.primary.calls == []  # qualified by its NetBIOS name: PRIMARY is not tried


def test_every_spelling_counts_on_one_account_and_meets_its_lock(env: Env) -> None:
    """PTNR\\alice, PARTNER/alice and ptnr\\ALICE are one account: three wrong passwords (max_failures) by any of
    them lock it, and the right password by each is then refused before the store checks it."""
    router = UserStoreRouter({"PARTNER": env.partner}, fallback=env.primary, down_level=NETBIOS)
    for typed in ("PTNR\\alice", "PARTNER/alice", "ptnr\\ALICE"):
        assert _refused(env, router, typed, "wrong") == "wrong_password"
    state = env.lockout.state("PARTNER/alice")
    assert state is not None and state.locked_until > env.clock.now().timestamp()  # the third failure locked it
    assert env.lockout.state("PRIMARY/PTNR\\alice") is None
    asked = len(env.partner.calls)
    for typed in ("PTNR\\alice", "PARTNER/alice", "ptnr\\Alice"):
        assert _refused(env, router, typed, PARTNER_PASSWORD) == "account_locked"
    assert len(env.partner.calls) == asked


def test_a_primary_user_named_like_a_down_level_name_keeps_its_qualified_name(env: Env) -> None:
    """Once PTNR is a NetBIOS name, the built-in user PTNR\\bob is reached as PRIMARY/PTNR\\bob (check-config warns);
    a subject (a name this STS wrote) is never read as a down-level name, or that user's token would be bob's."""
    env.primary.store.add_user(PRIMARY, "PTNR\\bob", PRIMARY_PASSWORD, roles=["admin"])  # type: ignore[attr-defined]
    router = UserStoreRouter({"PARTNER": env.partner}, fallback=env.primary, down_level=NETBIOS)
    assert env.login(router, "PRIMARY/PTNR\\bob", PRIMARY_PASSWORD).principal.qualified_name == "PRIMARY/PTNR\\bob"
    assert SubjectAuthorizer(router, POLICY).authorize("PTNR\\bob").qualified_name == "PRIMARY/PTNR\\bob"
    assert _refused(env, router, "PTNR\\bob", PRIMARY_PASSWORD) == "unknown_user"  # PARTNER has no bob


def test_a_malformed_down_level_name_is_a_bad_user_name(env: Env) -> None:
    router = UserStoreRouter({"PARTNER": env.partner}, fallback=env.primary, down_level=NETBIOS)
    assert _refused(env, router, "PTNR\\alice\\x", PARTNER_PASSWORD) == "bad_username"
    assert env.partner.calls == env.primary.calls == []


def test_a_netbios_name_belongs_to_a_directory_domain(env: Env) -> None:
    with pytest.raises(ValueError, match="directory domain"):
        UserStoreRouter({"PARTNER": env.partner}, fallback=env.primary, down_level={"TEST": PRIMARY})
