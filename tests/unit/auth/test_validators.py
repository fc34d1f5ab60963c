"""Tests for sts.auth.validators.UsernameTokenAuthenticator over real SQLite stores.

Rows W12, W16, W19-W21, W23, W29, A01-A03, A07, A10, O02 and O04 of the security catalogue; each failure is
checked for its exact fault class and for the ``reason`` of the audit record on ``sts.audit``.
"""

from __future__ import annotations

import base64
import logging
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from lxml import etree

from sts import errors, ns
from sts.auth.credential_cache import VerifiedCredentialCache
from sts.auth.passwords import HashPolicy, PasswordHasher
from sts.auth.router import UserStoreRouter
from sts.auth.sqlite_users import SqliteUserStore
from sts.auth.validators import AuthenticatedCaller, AuthPolicy, CallerInfo, UsernameTokenAuthenticator
from sts.clock import FrozenClock
from sts.crypto.secretbox import SecretBox
from sts.soapenv import SoapVersion
from sts.stores.base import LockState
from sts.stores.sqlite import Database, initialize
from sts.stores.sqlite_stores import SqliteLockoutStore, SqliteReplayCache
from sts.wss.timestamp import FreshnessPolicy
from sts.wss.username import compute_password_digest

PASSWORDS = {
    "alice": "alice-Pa55word!",
    "bob": "bob-Pa55word!",
    "carol": "carol-Pa55word!",
    "dave": "dave-Pa55word!",
    "SECONDARY/erin": "erin-Pa55word!",
}
FAST = HashPolicy(memory_kib=1024, time_cost=1)
WEAK = HashPolicy(memory_kib=512, time_cost=1)
POLICY = AuthPolicy(allowed_roles=frozenset({"admin"}), allowed_domains=frozenset({"ALL-USER-STORE-DOMAINS"}))
SECURE = CallerInfo(correlation_id="corr-1", client_address="192.0.2.10", secure_transport=True)
PLAIN_HTTP = replace(SECURE, secure_transport=False)
MAX_FAILURES, LOCK_SECONDS = 3, 300
ALICE_KEY = "PRIMARY/alice"
_AUTO = object()


def _format(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Env:
    """One authenticator over a fresh database, with handles on every collaborator."""

    db: Database
    users: SqliteUserStore
    router: UserStoreRouter
    hasher: PasswordHasher
    lockout: SqliteLockoutStore
    replay: SqliteReplayCache
    cache: VerifiedCredentialCache
    box: SecretBox
    clock: FrozenClock
    auth: UsernameTokenAuthenticator

    def with_policy(self, policy: AuthPolicy) -> UsernameTokenAuthenticator:
        return UsernameTokenAuthenticator(
            self.router, self.hasher, self.lockout, self.replay, self.cache, policy, self.clock
        )

    def headers(
        self,
        username: str,
        password: str | None = None,
        *,
        digest: bool = False,
        nonce: bytes | None | object = _AUTO,
        created: datetime | None | object = _AUTO,
        timestamp: tuple[datetime, datetime | None] | None | object = _AUTO,
    ) -> tuple[etree._Element, ...]:
        """SOAP 1.1 headers with one ``wsse:Security``: a Timestamp (fresh unless given; None: none at all) and a
        UsernameToken (text or digest)."""
        now = self.clock.now()
        if timestamp is _AUTO:
            timestamp = (now, now + timedelta(minutes=5))
        nonce_bytes = secrets.token_bytes(16) if nonce is _AUTO else nonce
        created_at = now if created is _AUTO else created
        secret = PASSWORDS[username] if password is None else password
        nsmap = {"soap": ns.S11, "wsse": ns.WSSE, "wsu": ns.WSU}
        envelope = etree.Element(etree.QName(ns.S11, "Envelope"), nsmap=nsmap)
        header = etree.SubElement(envelope, etree.QName(ns.S11, "Header"))
        etree.SubElement(envelope, etree.QName(ns.S11, "Body"))
        security = etree.SubElement(header, etree.QName(ns.WSSE, "Security"))
        security.set(etree.QName(ns.S11, "mustUnderstand"), "1")
        if isinstance(timestamp, tuple):
            ts = etree.SubElement(security, etree.QName(ns.WSU, "Timestamp"))
            ts.set(etree.QName(ns.WSU, "Id"), "TS-1")
            etree.SubElement(ts, etree.QName(ns.WSU, "Created")).text = _format(timestamp[0])
            if timestamp[1] is not None:
                etree.SubElement(ts, etree.QName(ns.WSU, "Expires")).text = _format(timestamp[1])
        token = etree.SubElement(security, etree.QName(ns.WSSE, "UsernameToken"))
        token.set(etree.QName(ns.WSU, "Id"), "UT-1")
        etree.SubElement(token, etree.QName(ns.WSSE, "Username")).text = username
        password_el = etree.SubElement(token, etree.QName(ns.WSSE, "Password"))
        created_text = None if created_at is None else _format(created_at)  # type: ignore[arg-type]
        if digest:
            assert isinstance(nonce_bytes, bytes) and created_text is not None
            password_el.set("Type", ns.PASSWORD_DIGEST)
            password_el.text = compute_password_digest(nonce_bytes, created_text, secret)
        else:
            password_el.set("Type", ns.PASSWORD_TEXT)
            password_el.text = secret
        if nonce_bytes is not None:
            nonce_el = etree.SubElement(token, etree.QName(ns.WSSE, "Nonce"))
            nonce_el.set("EncodingType", ns.BASE64_BINARY)
            nonce_el.text = base64.b64encode(nonce_bytes).decode("ascii")  # type: ignore[arg-type]
        if created_text is not None:
            etree.SubElement(token, etree.QName(ns.WSU, "Created")).text = created_text
        return tuple(header)

    def login(
        self, username: str, password: str | None = None, *, info: CallerInfo = SECURE,
        auth: UsernameTokenAuthenticator | None = None, **kwargs: object,
    ) -> AuthenticatedCaller:
        headers = self.headers(username, password, **kwargs)  # type: ignore[arg-type]
        return (auth or self.auth).authenticate(headers, SoapVersion.SOAP11, info)


def _build_env(tmp_path: Path, user_policy: HashPolicy = FAST) -> Env:
    path = tmp_path / "sts.db"
    initialize(path)
    db = Database(path)
    box = SecretBox(os.urandom(32))
    creator = SqliteUserStore(db, PasswordHasher(user_policy), box)
    creator.add_role("admin")
    creator.add_user("PRIMARY", "alice", PASSWORDS["alice"], roles=["admin"],
                     claims={"http://wso2.org/claims/emailaddress": ["alice@example.com"]})
    creator.add_user("PRIMARY", "bob", PASSWORDS["bob"])
    creator.add_user("PRIMARY", "carol", PASSWORDS["carol"], roles=["admin"])
    creator.set_enabled("PRIMARY", "carol", False)
    creator.add_user("PRIMARY", "dave", PASSWORDS["dave"], roles=["admin"], digest=True)
    creator.add_user("SECONDARY", "erin", PASSWORDS["SECONDARY/erin"], roles=["admin"])
    hasher = PasswordHasher(FAST)
    users = SqliteUserStore(db, hasher, box)
    lockout = SqliteLockoutStore(db, max_failures=MAX_FAILURES, duration=LOCK_SECONDS, max_duration=3600)
    clock = FrozenClock(datetime.now(UTC).replace(microsecond=0))
    replay = SqliteReplayCache(db, clock)
    cache = VerifiedCredentialCache(60)
    router = UserStoreRouter.single(users)
    auth = UsernameTokenAuthenticator(router, hasher, lockout, replay, cache, POLICY, clock)
    return Env(db, users, router, hasher, lockout, replay, cache, box, clock, auth)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    environment = _build_env(tmp_path)
    yield environment
    environment.db.close()


@pytest.fixture(autouse=True)
def _audit(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="sts.audit")


def _audit_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == "sts.audit"]


def _last_audit(caplog: pytest.LogCaptureFixture) -> logging.LogRecord:
    records = _audit_records(caplog)
    assert records, "no audit record"
    return records[-1]


def _expect(
    caplog: pytest.LogCaptureFixture, exc_class: type[errors.STSError], reason: str,
    env: Env, username: str, password: str | None = None, **kwargs: object,
) -> errors.STSError:
    """Authenticate, expecting exactly ``exc_class`` with ``reason``, audited as a failure with that reason."""
    before = len(_audit_records(caplog))
    with pytest.raises(errors.STSError) as caught:
        env.login(username, password, **kwargs)  # type: ignore[arg-type]
    assert type(caught.value) is exc_class, caught.value
    assert caught.value.reason == reason
    records = _audit_records(caplog)
    assert len(records) == before + 1
    assert records[-1].outcome == "failure"  # type: ignore[attr-defined]
    assert records[-1].reason == reason  # type: ignore[attr-defined]
    return caught.value


def _count_calls(monkeypatch: pytest.MonkeyPatch, hasher: PasswordHasher, method: str) -> list[int]:
    calls = [0]
    original = getattr(hasher, method)

    def counting(*args: object) -> object:
        calls[0] += 1
        return original(*args)

    monkeypatch.setattr(hasher, method, counting)
    return calls


# --- success ------------------------------------------------------------------------------------------------


def test_password_text_success(env: Env, caplog: pytest.LogCaptureFixture) -> None:  # W29
    caller = env.login("alice")
    assert caller.method == "password-text"
    assert caller.principal.domain == "PRIMARY"
    assert caller.principal.name == "alice"
    assert caller.principal.roles == frozenset({"admin"})
    assert caller.principal.claims["http://wso2.org/claims/emailaddress"] == ("alice@example.com",)
    record = _last_audit(caplog)
    assert (record.outcome, record.reason, record.user, record.domain) == (  # type: ignore[attr-defined]
        "success", "password-text", "alice", "PRIMARY"
    )
    assert record.correlation_id == "corr-1"  # type: ignore[attr-defined]
    assert record.client_address == "192.0.2.10"  # type: ignore[attr-defined]


def test_password_text_without_nonce_or_created(env: Env) -> None:
    assert env.login("alice", nonce=None, created=None).principal.name == "alice"


def test_password_digest_success(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    caller = env.login("dave", digest=True)
    assert caller.method == "password-digest"
    assert caller.principal.qualified_name == "PRIMARY/dave"
    assert (_last_audit(caplog).outcome, _last_audit(caplog).reason) == (  # type: ignore[attr-defined]
        "success", "password-digest"
    )


def test_password_digest_wrong_password(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    _expect(caplog, errors.FailedAuthentication, "wrong_password", env, "dave", "not-daves", digest=True)
    assert env.lockout.state("PRIMARY/dave") == LockState(1, 0.0)


def test_second_domain_success(env: Env) -> None:
    caller = env.login("SECONDARY/erin")
    assert caller.principal.qualified_name == "SECONDARY/erin"


@pytest.mark.parametrize("username", ["alice", "PRIMARY/alice", "primary/ALICE", "  Alice  "])
def test_name_forms_are_the_same_user(env: Env, username: str) -> None:
    caller = env.login(username, PASSWORDS["alice"])
    assert caller.principal.qualified_name == "PRIMARY/alice"


def test_name_forms_share_one_cache_entry(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    verify = _count_calls(monkeypatch, env.hasher, "verify")
    forms = ("alice", "PRIMARY/alice", "primary/ALICE")
    names = {env.login(form, PASSWORDS["alice"]).principal.qualified_name for form in forms}
    assert names == {"PRIMARY/alice"}
    assert verify[0] == 1  # one real verification; the other spellings hit the same cache entry


def test_user_of_one_domain_is_not_found_in_another(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    _expect(caplog, errors.FailedAuthentication, "unknown_user", env, "erin", PASSWORDS["SECONDARY/erin"])
    _expect(caplog, errors.FailedAuthentication, "unknown_user", env, "SECONDARY/alice", PASSWORDS["alice"])


# --- authentication and authorization failures --------------------------------------------------------------


def test_wrong_password(env: Env, caplog: pytest.LogCaptureFixture) -> None:  # W29
    _expect(caplog, errors.FailedAuthentication, "wrong_password", env, "alice", PASSWORDS["alice"][:-1] + "?")
    assert _last_audit(caplog).user == "alice"  # type: ignore[attr-defined]
    assert env.lockout.state(ALICE_KEY) == LockState(1, 0.0)


def test_unknown_user(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    _expect(caplog, errors.FailedAuthentication, "unknown_user", env, "mallory", "whatever-password")


def test_disabled_user(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    _expect(caplog, errors.FailedAuthentication, "user_disabled", env, "carol")


def test_refusals_of_an_account_the_store_found_name_it_in_the_audit(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    """``account`` (the lockout key) groups one account's refusals whatever was typed: a disabled account, a locked
    one (typed in another case) and a wrong password name it; an unknown user names none."""
    _expect(caplog, errors.FailedAuthentication, "user_disabled", env, "CAROL", PASSWORDS["carol"])
    assert getattr(_last_audit(caplog), "account", "") == "PRIMARY/carol"
    for _ in range(MAX_FAILURES):
        _expect(caplog, errors.FailedAuthentication, "wrong_password", env, "alice", "wrong-password")
        assert getattr(_last_audit(caplog), "account", "") == ALICE_KEY
    _expect(caplog, errors.FailedAuthentication, "account_locked", env, "ALICE", PASSWORDS["alice"])
    assert (_last_audit(caplog).user, getattr(_last_audit(caplog), "account", "")) == ("ALICE", ALICE_KEY)  # type: ignore[attr-defined]
    _expect(caplog, errors.FailedAuthentication, "unknown_user", env, "mallory", "whatever-password")
    assert not hasattr(_last_audit(caplog), "account")


def test_user_without_role(env: Env, caplog: pytest.LogCaptureFixture) -> None:  # A10
    _expect(caplog, errors.FailedAuthentication, "role_denied", env, "bob")


def test_role_match_is_case_insensitive(env: Env) -> None:
    auth = env.with_policy(replace(POLICY, allowed_roles=frozenset({"ADMIN"})))
    assert env.login("alice", auth=auth).principal.name == "alice"


def test_domain_not_allowed(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    auth = env.with_policy(replace(POLICY, allowed_domains=frozenset({"PRIMARY"})))
    with pytest.raises(errors.STSError) as caught:
        env.login("SECONDARY/erin", auth=auth)
    assert type(caught.value) is errors.FailedAuthentication
    assert caught.value.reason == "domain_denied"
    assert _last_audit(caplog).reason == "domain_denied"  # type: ignore[attr-defined]
    assert _last_audit(caplog).domain == "SECONDARY"  # type: ignore[attr-defined]
    assert env.login("alice", auth=auth).principal.name == "alice"


def test_digest_for_user_not_enrolled(env: Env, caplog: pytest.LogCaptureFixture) -> None:  # W12
    for _ in range(MAX_FAILURES + 1):
        _expect(caplog, errors.FailedAuthentication, "digest_unsupported", env, "alice", digest=True)
    assert env.lockout.state(ALICE_KEY) is None  # not a password failure
    assert env.login("alice").principal.name == "alice"


def test_digest_without_secret_box(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    env.auth = UsernameTokenAuthenticator(
        UserStoreRouter.single(SqliteUserStore(env.db, env.hasher, None)), env.hasher, env.lockout, env.replay,
        env.cache, POLICY, env.clock,
    )
    _expect(caplog, errors.FailedAuthentication, "digest_unsupported", env, "dave", digest=True)


def test_digest_secret_sealed_under_another_key(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    env.auth = UsernameTokenAuthenticator(
        UserStoreRouter.single(SqliteUserStore(env.db, env.hasher, SecretBox(os.urandom(32)))), env.hasher,
        env.lockout, env.replay, env.cache, POLICY, env.clock,
    )
    _expect(caplog, errors.FailedAuthentication, "digest_secret_broken", env, "dave", digest=True)


# --- transport ------------------------------------------------------------------------------------------------


def test_password_text_over_plain_http_refused(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    _expect(caplog, errors.FailedAuthentication, "insecure_transport", env, "alice", info=PLAIN_HTTP)
    assert env.lockout.state(ALICE_KEY) is None


def test_password_text_over_plain_http_when_allowed(env: Env) -> None:
    auth = env.with_policy(replace(POLICY, allow_insecure_transport=True))
    assert env.login("alice", info=PLAIN_HTTP, auth=auth).method == "password-text"


def test_password_digest_over_plain_http_allowed(env: Env) -> None:
    assert env.login("dave", digest=True, info=PLAIN_HTTP).method == "password-digest"


# --- freshness (W19, W20, W23, O04) ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offset", "reason"), [(-301, "created_too_old"), (61, "created_in_future")], ids=["301s-old", "61s-future"]
)
def test_created_outside_window(env: Env, caplog: pytest.LogCaptureFixture, offset: int, reason: str) -> None:
    created = env.clock.now() + timedelta(seconds=offset)
    _expect(caplog, errors.MessageExpired, reason, env, "alice", created=created)
    _expect(caplog, errors.MessageExpired, reason, env, "dave", digest=True, created=created)


@pytest.mark.parametrize("offset", [-299, -300, 59, 60], ids=["299s-old", "300s-old", "59s-future", "60s-future"])
def test_created_inside_window(env: Env, offset: int) -> None:
    created = env.clock.now() + timedelta(seconds=offset)
    assert env.login("alice", created=created).principal.name == "alice"
    assert env.login("dave", digest=True, created=created).principal.name == "dave"


def test_timestamp_expired(env: Env, caplog: pytest.LogCaptureFixture) -> None:  # W23
    now = env.clock.now()
    _expect(caplog, errors.MessageExpired, "timestamp_expired", env, "alice",
            timestamp=(now - timedelta(seconds=10), now - timedelta(seconds=1)))


def test_timestamp_too_old_even_with_far_expires(env: Env, caplog: pytest.LogCaptureFixture) -> None:  # W23
    now = env.clock.now()
    _expect(caplog, errors.MessageExpired, "created_too_old", env, "alice",
            timestamp=(now - timedelta(minutes=10), now + timedelta(days=365)))


def test_timestamp_fresh_accepted(env: Env) -> None:
    now = env.clock.now()
    assert env.login("alice", timestamp=(now, now + timedelta(minutes=5))).principal.name == "alice"


def test_timestamp_missing_refused(env: Env, caplog: pytest.LogCaptureFixture) -> None:  # W23, SP 1.2 §7.3
    # The published policy says sp:IncludeTimestamp, so a message without one is refused, before any password check.
    for _ in range(MAX_FAILURES + 1):
        _expect(caplog, errors.InvalidSecurity, "no_timestamp", env, "alice", "wrong-password", timestamp=None)
    _expect(caplog, errors.InvalidSecurity, "no_timestamp", env, "dave", digest=True, timestamp=None)
    assert env.lockout.state(ALICE_KEY) is None


def test_timestamp_optional_only_where_the_policy_relaxes_it(env: Env) -> None:
    relaxed = env.with_policy(replace(POLICY, require_timestamp=False))
    assert env.login("alice", auth=relaxed, timestamp=None).principal.name == "alice"
    assert POLICY.require_timestamp is True  # secure by default


def test_expired_message_is_not_a_password_failure(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    for _ in range(MAX_FAILURES):
        _expect(caplog, errors.MessageExpired, "created_too_old", env, "alice", "wrong-password",
                created=env.clock.now() - timedelta(seconds=400))
    assert env.lockout.state(ALICE_KEY) is None


# --- replay (W16, W21) ----------------------------------------------------------------------------------------


def test_nonce_replayed(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    nonce = secrets.token_bytes(16)
    env.login("alice", nonce=nonce)
    _expect(caplog, errors.InvalidSecurity, "nonce_replayed", env, "alice", nonce=nonce)
    # The cache is keyed on the nonce alone: another user (another domain, too) cannot reuse it.
    _expect(caplog, errors.InvalidSecurity, "nonce_replayed", env, "SECONDARY/erin", nonce=nonce)
    _expect(caplog, errors.InvalidSecurity, "nonce_replayed", env, "dave", digest=True, nonce=nonce)


def test_digest_nonce_replayed(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    nonce = secrets.token_bytes(16)
    headers = env.headers("dave", digest=True, nonce=nonce)
    env.auth.authenticate(headers, SoapVersion.SOAP11, SECURE)
    with pytest.raises(errors.STSError) as caught:
        env.auth.authenticate(headers, SoapVersion.SOAP11, SECURE)  # the identical request
    assert type(caught.value) is errors.InvalidSecurity
    assert _last_audit(caplog).reason == "nonce_replayed"  # type: ignore[attr-defined]


def test_replay_still_rejected_later_in_the_window(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    nonce = secrets.token_bytes(16)
    created = env.clock.now()
    env.login("alice", nonce=nonce, created=created)
    env.clock.advance(300)
    _expect(caplog, errors.InvalidSecurity, "nonce_replayed", env, "alice", nonce=nonce, created=created)


@pytest.mark.parametrize("user", ["alice", "dave"])
def test_replay_at_the_last_accepted_instant_is_refused(env: Env, caplog: pytest.LogCaptureFixture, user: str) -> None:
    """A Created exactly ``ttl`` old is still fresh (inclusive, as WSS4J), so its nonce must still be on record then.
    With ``future_ttl`` 0 the entry was kept until created + ttl, and a cache entry counts as gone from its expiry
    on: the identical message (a PasswordDigest one too, W16) was accepted a second time at that instant."""
    auth = env.with_policy(replace(POLICY, freshness=FreshnessPolicy(ttl=300, future_ttl=0)))
    nonce, created = secrets.token_bytes(16), env.clock.now()
    kwargs = {"nonce": nonce, "created": created, "timestamp": (created, None), "digest": user == "dave"}
    env.login(user, auth=auth, **kwargs)  # type: ignore[arg-type]
    env.clock.advance(300)
    _expect(caplog, errors.InvalidSecurity, "nonce_replayed", env, user, auth=auth, **kwargs)
    env.clock.advance(0.001)
    _expect(caplog, errors.MessageExpired, "created_too_old", env, user, auth=auth, **kwargs)


def test_replay_after_window_is_expired(env: Env, caplog: pytest.LogCaptureFixture) -> None:  # W21
    nonce = secrets.token_bytes(16)
    created = env.clock.now()
    env.login("alice", nonce=nonce, created=created)
    env.clock.advance(301)
    _expect(caplog, errors.MessageExpired, "created_too_old", env, "alice", nonce=nonce, created=created)


def test_replay_is_not_a_password_failure(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    nonce = secrets.token_bytes(16)
    env.login("alice", nonce=nonce)
    for _ in range(MAX_FAILURES + 1):
        _expect(caplog, errors.InvalidSecurity, "nonce_replayed", env, "alice", nonce=nonce)
    assert env.lockout.state(ALICE_KEY) is None
    assert env.login("alice").principal.name == "alice"


def test_nonce_key_is_the_decoded_nonce(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    """The same bytes, spelled with line-wrapping whitespace in the Base64, are the same nonce."""
    nonce = secrets.token_bytes(32)
    env.login("alice", nonce=nonce)
    headers = env.headers("alice", nonce=nonce)
    nonce_el = headers[0].find(f"{{{ns.WSSE}}}UsernameToken/{{{ns.WSSE}}}Nonce")
    assert nonce_el is not None and nonce_el.text is not None
    nonce_el.text = nonce_el.text[:20] + "\n  " + nonce_el.text[20:]
    with pytest.raises(errors.InvalidSecurity):
        env.auth.authenticate(headers, SoapVersion.SOAP11, SECURE)
    assert _last_audit(caplog).reason == "nonce_replayed"  # type: ignore[attr-defined]


# --- lockout (A03) ----------------------------------------------------------------------------------------------


def test_lockout_after_max_failures(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    for _ in range(MAX_FAILURES):
        _expect(caplog, errors.FailedAuthentication, "wrong_password", env, "alice", "wrong-password")
    _expect(caplog, errors.FailedAuthentication, "account_locked", env, "alice")
    # The lock key is the canonical name: another spelling of the same user is locked too.
    _expect(caplog, errors.FailedAuthentication, "account_locked", env, "primary/ALICE", PASSWORDS["alice"])
    # Other users are not affected.
    assert env.login("dave", digest=True).principal.name == "dave"


def test_lock_expires_and_success_resets(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    for _ in range(MAX_FAILURES):
        _expect(caplog, errors.FailedAuthentication, "wrong_password", env, "alice", "wrong-password")
    env.clock.advance(LOCK_SECONDS - 1)
    _expect(caplog, errors.FailedAuthentication, "account_locked", env, "alice")
    env.clock.advance(2)
    assert env.login("alice").principal.name == "alice"
    assert env.lockout.state(ALICE_KEY) is None


def test_locked_attempts_do_not_extend_the_lock(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    for _ in range(MAX_FAILURES):
        _expect(caplog, errors.FailedAuthentication, "wrong_password", env, "alice", "wrong-password")
    state = env.lockout.state(ALICE_KEY)
    for _ in range(5):
        _expect(caplog, errors.FailedAuthentication, "account_locked", env, "alice", "wrong-password")
    assert env.lockout.state(ALICE_KEY) == state


def test_only_consecutive_failures_count(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    for _ in range(MAX_FAILURES - 1):
        _expect(caplog, errors.FailedAuthentication, "wrong_password", env, "alice", "wrong-password")
    env.login("alice")
    assert env.lockout.state(ALICE_KEY) is None
    for _ in range(MAX_FAILURES - 1):
        _expect(caplog, errors.FailedAuthentication, "wrong_password", env, "alice", "wrong-password")
    assert env.login("alice").principal.name == "alice"


def test_cached_success_also_resets_failures(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    env.login("alice")  # now in the credential cache
    for _ in range(MAX_FAILURES - 1):
        _expect(caplog, errors.FailedAuthentication, "wrong_password", env, "alice", "wrong-password")
    env.login("alice")  # a success: must reset the consecutive-failure count
    _expect(caplog, errors.FailedAuthentication, "wrong_password", env, "alice", "wrong-password")
    assert env.login("alice").principal.name == "alice"  # one failure after a success must not lock


def test_unknown_user_failures_do_not_lock_anyone(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    for _ in range(MAX_FAILURES + 1):
        _expect(caplog, errors.FailedAuthentication, "unknown_user", env, "mallory", "wrong-password")
    assert env.lockout.state("PRIMARY/mallory") is None


def test_lockout_store_down_fails_closed(env: Env, caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    broken = tmp_path / "broken.db"
    broken.write_bytes(b"not a database" * 500)
    lockout = SqliteLockoutStore(Database(broken), max_failures=MAX_FAILURES, duration=LOCK_SECONDS, max_duration=3600)
    env.auth = UsernameTokenAuthenticator(
        env.router, env.hasher, lockout, env.replay, env.cache, POLICY, env.clock
    )
    _expect(caplog, errors.ServiceUnavailable, "lockout_store_down", env, "alice")


def test_replay_store_down_fails_closed(env: Env, caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    broken = tmp_path / "broken.db"
    broken.write_bytes(b"not a database" * 500)
    env.auth = UsernameTokenAuthenticator(
        env.router, env.hasher, env.lockout, SqliteReplayCache(Database(broken)), env.cache, POLICY, env.clock
    )
    _expect(caplog, errors.ServiceUnavailable, "replay_store_down", env, "alice")


# --- A01: one fault for every reason ----------------------------------------------------------------------------


def test_enumeration_by_content_one_fault(env: Env, caplog: pytest.LogCaptureFixture) -> None:  # A01
    faults = {
        "unknown_user": _expect(caplog, errors.FailedAuthentication, "unknown_user", env, "mallory", "pw-123456"),
        "wrong_password": _expect(caplog, errors.FailedAuthentication, "wrong_password", env, "bob", "wrong-pw"),
        "user_disabled": _expect(caplog, errors.FailedAuthentication, "user_disabled", env, "carol"),
        "role_denied": _expect(caplog, errors.FailedAuthentication, "role_denied", env, "bob"),
        "digest_unsupported": _expect(
            caplog, errors.FailedAuthentication, "digest_unsupported", env, "alice", digest=True
        ),
        "insecure_transport": _expect(
            caplog, errors.FailedAuthentication, "insecure_transport", env, "alice", info=PLAIN_HTTP
        ),
    }
    for _ in range(MAX_FAILURES):
        env.lockout.record_failure(ALICE_KEY, env.clock.now().timestamp())
    faults["account_locked"] = _expect(caplog, errors.FailedAuthentication, "account_locked", env, "alice")
    assert {type(fault) for fault in faults.values()} == {errors.FailedAuthentication}
    assert {fault.fault_string for fault in faults.values()} == {errors.FailedAuthentication.fault_string}
    assert {fault.fault_qname() for fault in faults.values()} == {(ns.WSSE, "FailedAuthentication")}


# --- A02: every failure costs one password hash -----------------------------------------------------------------


def test_unknown_user_costs_a_dummy_verify(env: Env, caplog: pytest.LogCaptureFixture,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    dummy = _count_calls(monkeypatch, env.hasher, "dummy_verify")
    verify = _count_calls(monkeypatch, env.hasher, "verify")
    _expect(caplog, errors.FailedAuthentication, "unknown_user", env, "mallory", "pw-123456")
    assert (dummy[0], verify[0]) == (1, 0)


@pytest.mark.parametrize(
    ("username", "password", "kwargs", "reason"),
    [
        ("mallory", "pw-123456", {}, "unknown_user"),
        ("alice", "wrong-pw", {}, "wrong_password"),
        ("carol", None, {}, "user_disabled"),
        ("bob", None, {}, "role_denied"),
        ("alice", None, {"digest": True}, "digest_unsupported"),
        ("dave", "wrong-pw", {"digest": True}, "wrong_password"),
        ("alice", None, {"info": PLAIN_HTTP}, "insecure_transport"),
    ],
)
def test_every_failed_authentication_costs_one_hash(
    env: Env, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
    username: str, password: str | None, kwargs: dict[str, object], reason: str,
) -> None:  # A02
    dummy = _count_calls(monkeypatch, env.hasher, "dummy_verify")
    verify = _count_calls(monkeypatch, env.hasher, "verify")
    _expect(caplog, errors.FailedAuthentication, reason, env, username, password, **kwargs)
    assert dummy[0] + verify[0] == 1


def test_locked_account_costs_one_hash(env: Env, caplog: pytest.LogCaptureFixture,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    for _ in range(MAX_FAILURES):
        env.lockout.record_failure(ALICE_KEY, env.clock.now().timestamp())
    dummy = _count_calls(monkeypatch, env.hasher, "dummy_verify")
    verify = _count_calls(monkeypatch, env.hasher, "verify")
    _expect(caplog, errors.FailedAuthentication, "account_locked", env, "alice")
    assert (dummy[0], verify[0]) == (1, 0)


def test_success_costs_no_dummy_verify(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    dummy = _count_calls(monkeypatch, env.hasher, "dummy_verify")
    env.login("alice")
    assert dummy[0] == 0


# --- credential cache --------------------------------------------------------------------------------------------


def test_cached_success_skips_the_hash(env: Env, caplog: pytest.LogCaptureFixture,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    verify = _count_calls(monkeypatch, env.hasher, "verify")
    env.login("alice")
    assert verify[0] == 1
    caller = env.login("alice")
    assert verify[0] == 1
    assert caller.principal.qualified_name == "PRIMARY/alice"
    assert caller.method == "password-text"
    _expect(caplog, errors.FailedAuthentication, "wrong_password", env, "alice", "wrong-password")
    assert verify[0] == 2


def test_cache_disabled_always_hashes(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    env.auth = UsernameTokenAuthenticator(
        env.router, env.hasher, env.lockout, env.replay, VerifiedCredentialCache(0), POLICY, env.clock
    )
    verify = _count_calls(monkeypatch, env.hasher, "verify")
    env.login("alice")
    env.login("alice")
    assert verify[0] == 2


def test_cached_success_still_checks_the_lock(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    env.login("alice")
    for _ in range(MAX_FAILURES):
        env.lockout.record_failure(ALICE_KEY, env.clock.now().timestamp())
    _expect(caplog, errors.FailedAuthentication, "account_locked", env, "alice")


def test_cached_success_still_checks_the_nonce(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    nonce = secrets.token_bytes(16)
    env.login("alice", nonce=nonce)
    _expect(caplog, errors.InvalidSecurity, "nonce_replayed", env, "alice", nonce=nonce)


# --- rehash on login (A07) ---------------------------------------------------------------------------------------


def _stored_hash(env: Env, name: str) -> str:
    row = env.db.conn.execute("SELECT password_hash FROM users WHERE canonical = ?", (name,)).fetchone()
    return str(row[0])


def test_rehash_on_login(tmp_path: Path) -> None:
    env = _build_env(tmp_path, user_policy=WEAK)
    try:
        old = _stored_hash(env, "alice")
        assert "m=512," in old
        with pytest.raises(errors.FailedAuthentication):
            env.login("alice", "wrong-password")
        assert _stored_hash(env, "alice") == old  # a failed login never rewrites the hash
        env.login("alice")
        new = _stored_hash(env, "alice")
        assert new != old
        assert "m=1024," in new
        assert env.hasher.verify(PASSWORDS["alice"], new) == (True, False)
        env.cache = VerifiedCredentialCache(0)
        env.auth = env.with_policy(POLICY)
        assert env.login("alice").principal.name == "alice"  # the new hash verifies
        assert _stored_hash(env, "alice") == new  # and is not rewritten again
    finally:
        env.db.close()


def test_current_hash_not_rewritten(env: Env) -> None:
    old = _stored_hash(env, "alice")
    env.login("alice")
    assert _stored_hash(env, "alice") == old


def test_user_store_down_fails_closed(env: Env, caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    broken = tmp_path / "broken.db"
    broken.write_bytes(b"not a database" * 500)
    users = SqliteUserStore(Database(broken), env.hasher, env.box)
    env.auth = UsernameTokenAuthenticator(
        UserStoreRouter.single(users), env.hasher, env.lockout, env.replay, VerifiedCredentialCache(0), POLICY,
        env.clock,
    )
    with pytest.raises(errors.ServiceUnavailable):
        env.login("alice")
    assert _last_audit(caplog).outcome == "failure"  # type: ignore[attr-defined]


# --- password spraying (catalogue A04) ----------------------------------------------------------------------


def test_spraying_client_is_throttled_without_a_password_check(
    env: Env, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sts.stores.sqlite_stores import SqliteClientThrottle

    throttle = SqliteClientThrottle(env.db, limit=3, window=60)
    env.auth = UsernameTokenAuthenticator(
        env.router, env.hasher, env.lockout, env.replay, env.cache, POLICY, env.clock, throttle
    )
    for name in ("nobody1", "nobody2", "nobody3"):
        _expect(caplog, errors.FailedAuthentication, "unknown_user", env, name, "Spray-Password-1")
    verifies = _count_calls(monkeypatch, env.hasher, "verify")
    dummies = _count_calls(monkeypatch, env.hasher, "dummy_verify")
    _expect(caplog, errors.FailedAuthentication, "client_throttled", env, "alice")  # even the right password
    assert verifies == [0] and dummies == [0]
    env.clock.advance(61)
    env.login("alice")  # a new window
