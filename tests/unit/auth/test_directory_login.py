"""UsernameTokenAuthenticator with directory user stores (the real slapd): the local gates come first.

Lockout and per-client throttling refuse before the directory is asked (a right password after the lock never
reaches a bind, so spraying through the STS cannot lock accounts in AD); the verified-credential cache spares the
directory; PasswordDigest cannot be checked against a directory; a directory that does not answer fails closed
and is no password failure; ``unqualified_login = "chain"`` tries PRIMARY, then each store in order.
Binds are counted in slapd's own log.
"""

from __future__ import annotations

import base64
import logging
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from lxml import etree

from sts import errors, ns
from sts.auth.credential_cache import VerifiedCredentialCache
from sts.auth.directory_store import DirectoryUserStore
from sts.auth.passwords import HashPolicy, PasswordHasher
from sts.auth.router import UserStoreRouter
from sts.auth.sqlite_users import SqliteUserStore
from sts.auth.validators import AuthenticatedCaller, AuthPolicy, CallerInfo, UsernameTokenAuthenticator
from sts.clock import FrozenClock
from sts.config.settings import SecuritySettings, Settings
from sts.crypto.secretbox import SecretBox
from sts.soapenv import SoapVersion
from sts.stores.factory import user_store_router
from sts.stores.sqlite import Database, initialize
from sts.stores.sqlite_stores import SqliteClientThrottle, SqliteLockoutStore, SqliteReplayCache
from sts.wss.username import compute_password_digest
from tests.servers.directory_data import dn_key
from tests.servers.slapd import SlapdServer, free_port
from tests.unit.auth.directory_support import SlapdLog, active_directory_table, openldap_table, store_settings

pytestmark = pytest.mark.integration

FAST = HashPolicy(memory_kib=1024, time_cost=1)
POLICY = AuthPolicy(allowed_roles=frozenset({"sts-users"}), allowed_domains=frozenset({"ALL-USER-STORE-DOMAINS"}))
INFO = CallerInfo(correlation_id="corr-1", client_address="192.0.2.10", secure_transport=True)
MAX_FAILURES = 3
PRIMARY_ALICE_PASSWORD = "primary-alice-Pa55!"


@dataclass
class Env:
    slapd: SlapdServer
    db: Database
    builtin: SqliteUserStore
    ldap: DirectoryUserStore
    corp: DirectoryUserStore
    hasher: PasswordHasher
    lockout: SqliteLockoutStore
    replay: SqliteReplayCache
    clock: FrozenClock

    def authenticator(
        self, router: UserStoreRouter | None = None, *, cache_ttl: float = 0, policy: AuthPolicy = POLICY,
        throttle: SqliteClientThrottle | None = None,
    ) -> UsernameTokenAuthenticator:
        router = router or UserStoreRouter({"LDAP": self.ldap, "CORP": self.corp}, fallback=self.builtin)
        return UsernameTokenAuthenticator(router, self.hasher, self.lockout, self.replay,
                                          VerifiedCredentialCache(cache_ttl), policy, self.clock, throttle)

    def headers(self, username: str, password: str, digest: bool = False) -> tuple[etree._Element, ...]:
        now = self.clock.now()
        created, expires = (t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in (now, now + timedelta(minutes=5)))
        nonce = secrets.token_bytes(16)
        header = etree.fromstring(
            f'<s:Header xmlns:s="{ns.S11}" xmlns:wsse="{ns.WSSE}" xmlns:wsu="{ns.WSU}"><wsse:Security>'
            f"<wsu:Timestamp><wsu:Created>{created}</wsu:Created><wsu:Expires>{expires}</wsu:Expires>"
            f"</wsu:Timestamp><wsse:UsernameToken><wsse:Username/>"
            f'<wsse:Password Type="{ns.PASSWORD_DIGEST if digest else ns.PASSWORD_TEXT}"/>'
            f'<wsse:Nonce EncodingType="{ns.BASE64_BINARY}"/><wsu:Created>{created}</wsu:Created>'
            "</wsse:UsernameToken></wsse:Security></s:Header>"
        )
        token = header[0][1]
        token[0].text = username
        token[1].text = compute_password_digest(nonce, created, password) if digest else password
        token[2].text = base64.b64encode(nonce).decode()
        return tuple(header)

    def login(self, auth: UsernameTokenAuthenticator, username: str, password: str,
              digest: bool = False) -> AuthenticatedCaller:
        return auth.authenticate(self.headers(username, password, digest), SoapVersion.SOAP11, INFO)

    def refused(self, auth: UsernameTokenAuthenticator, username: str, password: str, reason: str,
                error: type[errors.STSError] = errors.FailedAuthentication, digest: bool = False) -> None:
        with pytest.raises(errors.STSError) as caught:
            self.login(auth, username, password, digest)
        assert (type(caught.value), caught.value.reason) == (error, reason)


@pytest.fixture
def env(slapd: SlapdServer, tmp_path: Path) -> Iterator[Env]:
    path = tmp_path / "sts.db"
    initialize(path)
    db = Database(path)
    hasher = PasswordHasher(FAST)
    builtin = SqliteUserStore(db, hasher, SecretBox(os.urandom(32)))
    builtin.add_role("sts-users")
    builtin.add_user("PRIMARY", "alice", PRIMARY_ALICE_PASSWORD, roles=["sts-users"])
    ldap_store = DirectoryUserStore(store_settings(openldap_table(slapd)))
    corp = DirectoryUserStore(store_settings(active_directory_table(slapd)))
    clock = FrozenClock(datetime.now(UTC).replace(microsecond=0))
    lockout = SqliteLockoutStore(db, max_failures=MAX_FAILURES, duration=300, max_duration=3600)
    yield Env(slapd, db, builtin, ldap_store, corp, hasher, lockout, SqliteReplayCache(db, clock), clock)
    ldap_store.close()
    corp.close()
    db.close()


@pytest.fixture(autouse=True)
def _audit(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="sts.audit")


def audit_reasons(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.reason for record in caplog.records if record.name == "sts.audit"]  # type: ignore[attr-defined]


def test_directory_user_gets_in_with_a_qualified_name(env: Env) -> None:
    caller = env.login(env.authenticator(), "LDAP/alice", env.slapd.openldap.users["alice"].password)
    assert caller.method == "password-text"
    assert caller.principal.qualified_name == "LDAP/alice"
    assert caller.principal.roles == {"LDAP/staff", "LDAP/sts-users"}  # allowed "sts-users" admits LDAP/sts-users


def test_allowed_roles_qualified_by_domain(env: Env) -> None:
    only_corp = AuthPolicy(allowed_roles=frozenset({"CORP/sts-users"}), allowed_domains=POLICY.allowed_domains)
    auth = env.authenticator(policy=only_corp)
    assert env.login(auth, "CORP/bob", env.slapd.active_directory.users["bob"].password).principal.name == "bob"
    env.refused(auth, "LDAP/bob", env.slapd.openldap.users["bob"].password, "role_denied")
    env.refused(env.authenticator(), "LDAP/carol", env.slapd.openldap.users["carol"].password, "role_denied")


def test_lockout_is_checked_before_the_directory_is_asked(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    auth = env.authenticator(cache_ttl=60)
    user = env.slapd.openldap.users["alice"]
    env.login(auth, "LDAP/alice", user.password)  # cached from now on
    log = SlapdLog(env.slapd)
    for _ in range(MAX_FAILURES):
        env.refused(auth, "LDAP/alice", "wrong-password", "wrong_password")
    assert log.binds(user.dn) == MAX_FAILURES  # each failure was the directory's verdict
    state = env.lockout.state("LDAP/alice")
    assert state is not None and state.locked_until > env.clock.now().timestamp()
    after_lock = SlapdLog(env.slapd)
    for typed in ("LDAP/alice", "ldap/ALICE"):
        env.refused(auth, typed, user.password, "account_locked")  # the right password, and cached
    assert after_lock.lines() == []  # neither a search nor a bind
    assert audit_reasons(caplog)[-2:] == ["account_locked", "account_locked"]


def test_wrong_directory_passwords_count_and_a_success_resets(env: Env) -> None:
    auth = env.authenticator()
    user = env.slapd.active_directory.users["alice"]
    env.refused(auth, "CORP/alice@corp.example", "nope", "wrong_password")
    env.refused(auth, "CORP/alice", "nope", "wrong_password")
    state = env.lockout.state("CORP/alice")
    assert state is not None and state.failures == 2  # on the account, whichever spelling was typed
    assert env.lockout.state("CORP/alice@corp.example") is None
    env.login(auth, "CORP/alice@corp.example", user.password)  # a success by either spelling resets it
    assert env.lockout.state("CORP/alice") is None


def test_no_spelling_of_a_name_gets_a_fresh_run_of_guesses(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    """A UPN and the account name reach one AD account: guesses by both count on it, and once it is locked the
    directory sees no bind by either (README "Lockout and throttling come first")."""
    auth = env.authenticator()
    user = env.slapd.active_directory.users["alice"]
    for attempt in range(MAX_FAILURES):
        env.refused(auth, "CORP/alice@corp.example" if attempt % 2 else "CORP/ALICE", "nope", "wrong_password")
    state = env.lockout.state("CORP/alice")
    assert state is not None and state.locked_until > env.clock.now().timestamp()
    log = SlapdLog(env.slapd)
    for typed in ("CORP/alice@corp.example", "CORP/alice"):
        env.refused(auth, typed, user.password, "account_locked")  # the right password
    assert log.binds(user.dn) == 0
    assert audit_reasons(caplog)[-2:] == ["account_locked", "account_locked"]


def test_every_refusal_costs_the_directory_what_a_wrong_password_costs(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    """README: every failure is the same fault and costs a directory one bind, so the time of the answer does not
    tell an unknown name from an account that is locked, disabled or given a wrong password; no group search for
    any of them. The audit keeps the real reason (tests/unit/auth/test_directory_refusal_cost.py: which binds)."""
    auth = env.authenticator()
    tree = env.slapd.active_directory
    for _ in range(MAX_FAILURES):
        env.refused(auth, "CORP/alice", "guess", "wrong_password")  # the STS locks CORP/alice
    for typed, password, reason in [
        ("CORP/nobody", "guess", "unknown_user"),
        ("CORP/alice@corp.example", tree.users["alice"].password, "account_locked"),  # another spelling, right
        ("CORP/dana", "guess", "user_disabled"),
        ("CORP/bob", "guess", "wrong_password"),
    ]:
        log = SlapdLog(env.slapd)
        env.refused(auth, typed, password, reason)
        binds = [dn for dn in log.bound() if dn_key(dn) != dn_key(tree.service_dn)]
        assert len(binds) == 1, (typed, binds)
        assert log.searches(tree.group_search_base) == [], typed
        assert audit_reasons(caplog)[-1] == reason


@pytest.mark.parametrize(("cached_as", "account", "chained"), [
    ("CORP/alice@corp.example", "CORP/alice", False),  # a UPN
    ("CORP/ａｌｉｃｅ", "CORP/alice", False),  # fullwidth: Active Directory ignores width, our folding does not
    ("jsmith", "CORP/jsmith", True),  # an unqualified login chained to CORP
])
def test_a_login_cached_under_another_spelling_is_refused_once_the_account_is_locked(
    env: Env, cached_as: str, account: str, chained: bool
) -> None:
    """The cache is keyed by the name as typed, the lock by the account the directory found: a cache hit must
    meet the account's lock too, or the right password by that spelling gets in and the guesses by it are free."""
    auth = env.authenticator(chain_router(env) if chained else None, cache_ttl=60)
    password = env.slapd.active_directory.users[account.partition("/")[2]].password
    assert env.login(auth, cached_as, password).principal.qualified_name == account  # cached under cached_as
    for _ in range(MAX_FAILURES):
        env.refused(auth, account, "guess", "wrong_password")
    log = SlapdLog(env.slapd)
    env.refused(auth, cached_as, password, "account_locked")
    assert log.lines() == []  # refused by the lock, not by the directory
    state = env.lockout.state(account)
    assert state is not None and state.locked_until > env.clock.now().timestamp()  # and still locked


@pytest.mark.parametrize(("name", "reason"), [("dana", "user_disabled"), ("eve", "account_expired"),
                                              ("max", "must_change_password")])
def test_account_state_refusals_do_not_count_towards_lockout(
    env: Env, name: str, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    auth = env.authenticator()
    for _ in range(MAX_FAILURES + 1):
        env.refused(auth, f"CORP/{name}", "whatever", reason)
    assert env.lockout.state(f"CORP/{name}") is None
    # Audited under the account the directory found, as typed in upper case too.
    env.refused(auth, f"CORP/{name.upper()}", "whatever", reason)
    record = [r for r in caplog.records if r.name == "sts.audit"][-1]
    assert (record.user, getattr(record, "account", "")) == (name.upper(), f"CORP/{name}")  # type: ignore[attr-defined]


def test_client_throttle_is_checked_before_the_directory(env: Env) -> None:
    throttle = SqliteClientThrottle(env.db, limit=2, window=60)
    auth = env.authenticator(throttle=throttle)
    for name in ("bob", "carol"):
        env.refused(auth, f"LDAP/{name}", "spray-1", "wrong_password")
    log = SlapdLog(env.slapd)
    env.refused(auth, "LDAP/dave", env.slapd.openldap.users["dave"].password, "client_throttled")
    assert log.lines() == []


def test_the_credential_cache_spares_the_directory(env: Env) -> None:
    auth = env.authenticator(cache_ttl=60)
    user = env.slapd.openldap.users["jürgen"]
    first = env.login(auth, "LDAP/jürgen", user.password)
    log = SlapdLog(env.slapd)
    second = env.login(auth, "LDAP/jürgen", user.password)
    assert second.principal == first.principal
    assert log.lines() == []
    env.refused(auth, "LDAP/jürgen", user.password + "x", "wrong_password")  # another password is not cached
    assert log.binds(user.dn) == 1


def test_password_digest_against_a_directory(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    auth = env.authenticator()
    log = SlapdLog(env.slapd)
    env.refused(auth, "LDAP/alice", env.slapd.openldap.users["alice"].password,
                "digest_not_supported_by_directory_store", digest=True)
    assert log.lines() == []
    assert audit_reasons(caplog)[-1] == "digest_not_supported_by_directory_store"
    assert env.lockout.state("LDAP/alice") is None


def test_empty_password_never_reaches_the_directory(env: Env) -> None:
    log = SlapdLog(env.slapd)
    env.refused(env.authenticator(), "LDAP/alice", "", "empty_password")  # refused by the token parser already
    assert log.binds(env.slapd.openldap.users["alice"].dn) == 0


def test_a_directory_that_is_down_fails_closed_without_counting(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    auth = env.authenticator()
    with env.slapd.stopped():
        env.refused(auth, "LDAP/alice", "any-password", "directory_down", errors.ServiceUnavailable)
    assert audit_reasons(caplog)[-1] == "directory_down"
    assert env.lockout.state("LDAP/alice") is None
    assert env.login(auth, "LDAP/alice", env.slapd.openldap.users["alice"].password).principal.name == "alice"


# --- chained unqualified logins -----------------------------------------------------------------------------------


def chain_router(env: Env, primary: DirectoryUserStore | None = None) -> UserStoreRouter:
    stores: dict[str, object] = {"LDAP": env.ldap, "CORP": env.corp}
    if primary is not None:
        stores["PRIMARY"] = primary
    return UserStoreRouter(stores, fallback=env.builtin, chain=["PRIMARY", "LDAP", "CORP"])  # type: ignore[arg-type]


def test_chain_finds_an_unqualified_name_in_a_later_store(env: Env) -> None:
    auth = env.authenticator(chain_router(env))
    caller = env.login(auth, "jsmith", env.slapd.active_directory.users["jsmith"].password)  # CORP only
    assert caller.principal.qualified_name == "CORP/jsmith"
    bob = env.login(auth, "bob", env.slapd.openldap.users["bob"].password)  # LDAP before CORP
    assert bob.principal.qualified_name == "LDAP/bob"
    alice = env.login(auth, "alice", env.slapd.active_directory.users["alice"].password)  # wrong in PRIMARY, LDAP
    assert alice.principal.qualified_name == "CORP/alice"
    assert env.login(auth, "alice", PRIMARY_ALICE_PASSWORD).principal.qualified_name == "PRIMARY/alice"
    assert env.login(auth, "LDAP/alice", env.slapd.openldap.users["alice"].password)  # qualified: no chain


def test_chain_with_a_wrong_password_everywhere_is_one_wrong_password(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    auth = env.authenticator(chain_router(env))
    log = SlapdLog(env.slapd)
    env.refused(auth, "alice", "wrong-everywhere", "wrong_password")
    assert audit_reasons(caplog)[-1:] == ["wrong_password"]
    state = env.lockout.state("PRIMARY/alice")
    assert state is not None and state.failures == 1  # counted once, not once per store
    # ... but every directory saw the password (why README warns about chaining)
    assert log.binds(env.slapd.openldap.users["alice"].dn) == 1
    assert log.binds(env.slapd.active_directory.users["alice"].dn) == 1


def test_chain_unknown_everywhere(env: Env) -> None:
    env.refused(env.authenticator(chain_router(env)), "nobody", "pw", "unknown_user")
    assert env.lockout.state("PRIMARY/nobody") is None


def test_chain_past_a_primary_directory_that_is_down(env: Env) -> None:
    down = DirectoryUserStore(store_settings(openldap_table(
        env.slapd, domain_name="PRIMARY", connection_url=f"ldaps://127.0.0.1:{free_port()}"
    )))
    try:
        auth = env.authenticator(chain_router(env, primary=down))
        caller = env.login(auth, "jsmith", env.slapd.active_directory.users["jsmith"].password)
        assert caller.principal.qualified_name == "CORP/jsmith"
        # nobody accepted and PRIMARY could not answer: fail closed, not "unknown user"
        env.refused(auth, "nobody", "pw", "directory_down", errors.ServiceUnavailable)
        env.refused(auth, "PRIMARY/jsmith", "pw", "directory_down", errors.ServiceUnavailable)
    finally:
        down.close()


def test_chain_skips_domains_that_are_not_allowed(env: Env) -> None:
    policy = AuthPolicy(allowed_roles=POLICY.allowed_roles, allowed_domains=frozenset({"PRIMARY", "LDAP"}))
    auth = env.authenticator(chain_router(env), policy=policy)
    log = SlapdLog(env.slapd)
    env.refused(auth, "jsmith", env.slapd.active_directory.users["jsmith"].password, "unknown_user")
    assert log.binds(env.slapd.active_directory.users["jsmith"].dn) == 0
    assert env.login(auth, "bob", env.slapd.openldap.users["bob"].password).principal.qualified_name == "LDAP/bob"


def test_chain_is_not_used_for_digests(env: Env) -> None:
    """A PasswordDigest is checked against PRIMARY only (a directory cannot check one)."""
    env.builtin.add_user("PRIMARY", "digester", "digest-Pa55!", roles=["sts-users"], digest=True)
    auth = env.authenticator(chain_router(env))
    assert env.login(auth, "digester", "digest-Pa55!", digest=True).method == "password-digest"


def test_user_store_router_from_settings(env: Env, tmp_path: Path) -> None:
    stores = (store_settings(openldap_table(env.slapd)), store_settings(active_directory_table(env.slapd)))
    chained = Settings(config_path=tmp_path / "sts.toml", security=SecuritySettings(unqualified_login="chain"),
                       user_stores=stores)
    router = user_store_router(chained, env.builtin)
    try:
        assert router.chain == ("PRIMARY", "LDAP", "CORP")
        assert set(router.directories) == {"LDAP", "CORP"}
        assert router.store_for("OTHER") is env.builtin
        caller = env.login(env.authenticator(router), "jsmith", env.slapd.active_directory.users["jsmith"].password)
        assert caller.principal.qualified_name == "CORP/jsmith"
    finally:
        router.close()
    primary_only = user_store_router(Settings(config_path=tmp_path / "sts.toml", user_stores=stores), env.builtin)
    try:
        assert primary_only.chain == ()
        env.refused(env.authenticator(primary_only), "jsmith",
                    env.slapd.active_directory.users["jsmith"].password, "unknown_user")
    finally:
        primary_only.close()


# --- down-level logon names: TEST\alice with netbios_name = "TEST" on CORP ----------------------------------------


def down_level_router(env: Env) -> UserStoreRouter:
    return UserStoreRouter({"LDAP": env.ldap, "CORP": env.corp}, fallback=env.builtin, down_level={"test": "CORP"})


def test_a_down_level_name_is_the_accounts_own_cache_entry(env: Env) -> None:
    """TEST\\alice and CORP/alice are one cache entry: the second spelling costs the directory nothing, and is no
    second entry that could outlive the first."""
    auth = env.authenticator(down_level_router(env), cache_ttl=60)
    user = env.slapd.active_directory.users["alice"]
    first = env.login(auth, "TEST\\alice", user.password)
    assert first.principal.qualified_name == "CORP/alice"
    log = SlapdLog(env.slapd)
    assert env.login(auth, "CORP/alice", user.password).principal == first.principal
    assert env.login(auth, "test\\ALICE", user.password).principal == first.principal
    assert log.lines() == []


def test_guesses_by_a_down_level_name_lock_the_account_for_every_spelling(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    auth = env.authenticator(down_level_router(env), cache_ttl=60)
    user = env.slapd.active_directory.users["alice"]
    env.login(auth, "CORP/alice@corp.example", user.password)  # cached under the UPN
    env.login(auth, "CORP/alice", user.password)  # and under the account name (TEST\alice's entry too)
    for typed in ("TEST\\alice", "CORP/alice@corp.example", "TEST\\Alice"):
        env.refused(auth, typed, "guess", "wrong_password")
    state = env.lockout.state("CORP/alice")
    assert state is not None and state.locked_until > env.clock.now().timestamp()
    log = SlapdLog(env.slapd)
    for typed in ("TEST\\alice", "CORP/alice", "CORP/alice@corp.example", "TEST\\alice@corp.example"):
        env.refused(auth, typed, user.password, "account_locked")  # the right password, cached, still refused
    assert log.binds(user.dn) == 0
    assert audit_reasons(caplog)[-4:] == ["account_locked"] * 4


def test_a_delegated_username_token_in_down_level_form(env: Env) -> None:
    """OnBehalfOf / ActAs UsernameTokens go through the same parser as a caller's."""
    auth = env.authenticator(down_level_router(env))
    token = env.headers("TEST\\bob", env.slapd.active_directory.users["bob"].password)[0][1]
    assert auth.authenticate_delegated(token, INFO).qualified_name == "CORP/bob"


def test_the_router_from_settings_knows_the_netbios_names(env: Env, tmp_path: Path) -> None:
    stores = (store_settings(openldap_table(env.slapd)),
              store_settings(active_directory_table(env.slapd, netbios_name="test")))
    router = user_store_router(Settings(config_path=tmp_path / "sts.toml", user_stores=stores), env.builtin)
    try:
        assert router.parse("TEST\\jsmith") == ("CORP", "jsmith", True)
        jsmith = env.slapd.active_directory.users["jsmith"]
        assert env.login(env.authenticator(router), "TEST\\jsmith", jsmith.password).principal.name == "jsmith"
        env.refused(env.authenticator(router), "LDAP\\bob", env.slapd.openldap.users["bob"].password, "unknown_user")
    finally:
        router.close()
