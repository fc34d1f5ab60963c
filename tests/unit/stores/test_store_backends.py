"""Every durable store's contract on both backends, built by build_stores: SQLite and a real PostgreSQL.

The SQLite-only modules next to this one test SQLite's particulars (its file, WAL, fork); here the same answers are
demanded of PostgreSQL, including the races that several nodes turn into: one nonce, one renewal, one lock.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from sts.auth.passwords import HashPolicy, PasswordHasher
from sts.auth.users import (
    DIGEST_UNSUPPORTED,
    PRIMARY,
    UNKNOWN_USER,
    WRONG_PASSWORD,
    DigestSecret,
    Principal,
    Refusal,
    UserStoreError,
)
from sts.clock import FrozenClock
from sts.config.settings import LockoutSettings, SecuritySettings
from sts.crypto import keygen
from sts.relying_parties import registration
from sts.relying_parties.certificates import inline_pem
from sts.relying_parties.directory import RelyingPartyDirectory
from sts.relying_parties.model import RelyingParty
from sts.relying_parties.registry import RelyingPartyRegistry
from sts.stores.base import LockState, TokenRecord
from sts.stores.certificate_index import CertificateStoreError, sha256_hex
from sts.stores.factory import Stores, build_stores
from tests.unit.stores.backends import BACKENDS, settings_with, store_settings
from tests.x509_support import make_cert, rsa_key

FAST = PasswordHasher(HashPolicy(memory_kib=1024, time_cost=1))
NOW = datetime(2041, 3, 4, 5, 6, 7, tzinfo=UTC)
T = NOW.timestamp()


@pytest.fixture(params=BACKENDS)
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stores]:
    backend: str = request.param
    url = request.getfixturevalue("postgres_database") if backend == "postgresql" else ""
    settings = settings_with(
        tmp_path,
        store_settings(tmp_path, backend, url),
        lockout=LockoutSettings(max_failures=3, duration=60, max_duration=200),
        security=SecuritySettings(client_failure_limit=2, client_failure_window=60, client_failure_exempt=()),
    )
    built = build_stores(settings, FrozenClock(NOW), FAST)
    yield built
    built.close()


def in_threads(work: Callable[[int], object], count: int) -> list[object]:
    """``work(i)`` for ``count`` threads released at once."""
    barrier = threading.Barrier(count)

    def run(i: int) -> object:
        barrier.wait(timeout=30)
        return work(i)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


# --- replay -------------------------------------------------------------------------------------------------------


def test_replay_first_use_then_replay_then_expired_entry_is_new(stores: Stores) -> None:
    assert stores.replay.check_and_add("nonce", b"n-1", T + 60) is True
    assert stores.replay.check_and_add("nonce", b"n-1", T + 60) is False
    assert stores.replay.check_and_add("other", b"n-1", T + 60) is True
    assert stores.replay.check_and_add("nonce", b"old", T - 1) is True
    assert stores.replay.check_and_add("nonce", b"old", T + 60) is True  # the first entry had expired


def test_replay_one_nonce_from_many_threads_is_accepted_once(stores: Stores) -> None:
    results = in_threads(lambda _: stores.replay.check_and_add("nonce", b"raced", T + 60), 12)
    assert results.count(True) == 1 and results.count(False) == 11


# --- lockout and throttle -----------------------------------------------------------------------------------------


def test_lockout_locks_at_the_threshold_doubles_and_resets(stores: Stores) -> None:
    lockout = stores.lockout
    assert lockout.state("PRIMARY/ann") is None
    assert [lockout.record_failure("PRIMARY/ann", T) for _ in range(2)] == [LockState(1, 0.0), LockState(2, 0.0)]
    assert lockout.record_failure("PRIMARY/ann", T) == LockState(0, T + 60)
    assert lockout.record_failure("PRIMARY/ann", T + 1) == LockState(0, T + 60)  # locked: nothing grows
    for _ in range(3):
        state = lockout.record_failure("PRIMARY/ann", T + 61)
    assert state == LockState(0, T + 61 + 120)  # the second lock lasts twice as long
    for _ in range(3):
        state = lockout.record_failure("PRIMARY/ann", T + 300)
    assert state == LockState(0, T + 300 + 200)  # capped at max_duration
    lockout.reset("PRIMARY/ann")
    assert lockout.state("PRIMARY/ann") is None


def test_lockout_failures_from_many_threads_lock_once(stores: Stores) -> None:
    states = in_threads(lambda _: stores.lockout.record_failure("PRIMARY/bob", T), 9)
    assert sum(1 for s in states if isinstance(s, LockState) and s.locked_until) >= 7  # the lock holds for the rest
    assert stores.lockout.state("PRIMARY/bob") == LockState(0, T + 60)  # one lock of the first level, not three


def test_throttle_counts_per_client_within_the_window(stores: Stores) -> None:
    throttle = stores.throttle
    assert throttle.record_failure("10.0.0.1", T) == 1
    assert not throttle.throttled("10.0.0.1", T)
    assert throttle.record_failure("10.0.0.1", T + 1) == 2
    assert throttle.throttled("10.0.0.1", T + 1) and not throttle.throttled("10.0.0.2", T + 1)
    assert not throttle.throttled("10.0.0.1", T + 61)
    assert throttle.record_failure("10.0.0.1", T + 61) == 1  # a new window


# --- tokens -------------------------------------------------------------------------------------------------------


def record(token_id: str, chain: str = "", status: str = "issued") -> TokenRecord:
    data = json.dumps({"chain": chain or token_id})
    return TokenRecord(token_id, "PRIMARY/ann", "https://rp.example/", "saml2", T, T + 300, status, True, False,
                       f"digest-{token_id}", data)


def statuses(stores: Stores, *ids: str) -> list[str | None]:
    assert stores.tokens is not None
    return [None if (r := stores.tokens.get(i)) is None else r.status for i in ids]


def test_tokens_put_get_find_renew_cancel(stores: Stores) -> None:
    tokens = stores.tokens
    assert tokens is not None
    tokens.put(record("t1"), T + 600)
    assert tokens.get("t1") == record("t1") and tokens.find_by_digest("digest-t1") == record("t1")
    assert tokens.get("nope") is None
    assert tokens.renew("t1", record("t2", chain="t1"), T + 600) is True
    assert statuses(stores, "t1", "t2") == ["renewed", "issued"]
    assert tokens.renew("t1", record("t3", chain="t1"), T + 600) is False  # renewed once only
    assert statuses(stores, "t3") == [None]
    tokens.put(record("other"), T + 600)
    assert tokens.cancel("t1") is True  # any member cancels the whole chain
    assert statuses(stores, "t1", "t2", "other") == ["cancelled", "cancelled", "issued"]
    assert tokens.renew("t2", record("t4", chain="t1"), T + 600) is False
    assert tokens.cancel("unknown") is False


def test_concurrent_renewals_of_one_token_have_one_winner(stores: Stores) -> None:
    assert stores.tokens is not None
    tokens = stores.tokens
    tokens.put(record("root"), T + 600)
    results = in_threads(lambda i: tokens.renew("root", record(f"next-{i}", chain="root"), T + 600), 10)
    assert results.count(True) == 1
    winner = results.index(True)
    assert statuses(stores, "root", f"next-{winner}") == ["renewed", "issued"]
    assert [s for i, s in enumerate(statuses(stores, *(f"next-{i}" for i in range(10)))) if i != winner] == [None] * 9


# --- relying parties ----------------------------------------------------------------------------------------------


def test_relying_party_rows_and_version(stores: Stores) -> None:
    rps = stores.relying_parties
    assert rps.version() == 0 and rps.all() == []
    assert rps.insert("https://a.example/", '{"a": 1}') is True
    assert rps.insert("https://a.example/", '{"a": 2}') is False
    assert rps.version() == 1
    assert rps.replace("https://a.example/", "https://b.example/", '{"b": 1}') is True
    assert rps.replace("https://zz.example/", "https://c.example/", "{}") is False
    assert rps.insert("https://c.example/", "{}") is True
    assert rps.replace("https://b.example/", "https://c.example/", "{}") is False  # taken: nothing changes
    assert rps.get("https://b.example/") == '{"b": 1}'
    assert rps.update("https://b.example/", '{"b": 2}') is True and rps.update("https://x.example/", "{}") is False
    assert rps.delete("https://c.example/") is True and rps.delete("https://c.example/") is False
    assert rps.all() == ['{"b": 2}'] and rps.version() == 5


def test_relying_party_registry_round_trip(stores: Stores) -> None:
    registry = RelyingPartyRegistry(stores.relying_parties)
    registry.add(RelyingParty(address="https://app.example/", encrypt=False, claims=("urn:c",)))
    [found] = registry.all()
    assert found.address == "https://app.example/" and found.claims == ("urn:c",)


# --- the built-in user store --------------------------------------------------------------------------------------


def test_users_provisioned_and_authenticated(stores: Stores) -> None:
    users = stores.builtin
    users.add_role("Admin")
    users.add_user(PRIMARY, "Ann", "pw-ann-1", roles=["admin"], claims={"urn:mail": ["a@x", "b@x"]}, digest=True)
    users.add_user("PARTNER", "ann", "pw-ann-2")
    expected = Principal(PRIMARY, "Ann", frozenset({"Admin"}), {"urn:mail": ("a@x", "b@x")})
    assert stores.users.authenticate(PRIMARY, "ANN", "pw-ann-1") == expected
    wrong = stores.users.authenticate(PRIMARY, "ann", "nope")
    assert isinstance(wrong, Refusal) and wrong.reason == WRONG_PASSWORD
    assert stores.users.digest_secret(PRIMARY, "ann") == DigestSecret(expected, "pw-ann-1")
    refused = stores.users.digest_secret("PARTNER", "ann")
    assert isinstance(refused, Refusal) and refused.reason == DIGEST_UNSUPPORTED
    assert users.list_users() == [("PARTNER", "ann", True, False), (PRIMARY, "Ann", True, True)]
    assert users.list_roles() == [("Admin", 1)]


def test_users_with_claims_lists_the_holders_of_any_of_the_uris(stores: Stores) -> None:
    """What ``sts check-config`` reads to find role claims an earlier release stored (and issued)."""
    users = stores.builtin
    users.add_user("PARTNER", "zed", "pw-zed-1", claims={"urn:role": ["x"], "urn:other": ["y"]})
    users.add_user(PRIMARY, "Bea", "pw-bea-1", claims={"urn:ms-role": ["x"]})
    users.add_user(PRIMARY, "al", "pw-al-1", claims={"urn:role": ["x", "y"], "urn:ms-role": ["z"]})
    users.add_user(PRIMARY, "cy", "pw-cy-1", claims={"urn:other": ["x"]})
    wanted = ["urn:role", "urn:ms-role"]
    assert users.users_with_claims(wanted) == [("PARTNER", "zed"), (PRIMARY, "al"), (PRIMARY, "Bea")]
    assert users.users_with_claims([]) == []


def test_user_provisioning_refusals_leave_nothing_behind(stores: Stores) -> None:
    users = stores.builtin
    users.add_user(PRIMARY, "carl", "pw-carl-1")
    with pytest.raises(UserStoreError, match="already exists"):
        users.add_user(PRIMARY, "CARL", "pw-carl-2")
    with pytest.raises(UserStoreError, match="unknown role"):
        users.add_user(PRIMARY, "dora", "pw-dora-1", roles=["missing"])
    users.add_role("x")
    with pytest.raises(UserStoreError, match="already exists"):
        users.add_role("X")
    with pytest.raises(UserStoreError, match="no user"):
        users.set_enabled(PRIMARY, "nobody", False)
    assert [u[1] for u in users.list_users()] == ["carl"]


def test_user_changes_take_effect(stores: Stores) -> None:
    users = stores.builtin
    users.add_role("staff")
    users.add_user(PRIMARY, "eve", "pw-eve-1", claims={"urn:a": ["1"]})
    users.grant(PRIMARY, "eve", "STAFF")
    users.set_claims(PRIMARY, "eve", {"urn:a": [], "urn:b": ["2", "3"]})
    users.set_password(PRIMARY, "eve", "pw-eve-2", digest=True)
    principal = stores.users.authenticate(PRIMARY, "eve", "pw-eve-2")
    assert principal == Principal(PRIMARY, "eve", frozenset({"staff"}), {"urn:b": ("2", "3")})
    users.revoke(PRIMARY, "eve", "staff")
    with pytest.raises(UserStoreError, match="does not hold"):
        users.revoke(PRIMARY, "eve", "staff")
    users.set_enabled(PRIMARY, "eve", False)
    assert stores.users.lookup(PRIMARY, "eve") == Principal(PRIMARY, "eve", frozenset(), {"urn:b": ("2", "3")}, False)
    users.remove_role("staff")
    users.remove_user(PRIMARY, "eve")
    gone = stores.users.authenticate(PRIMARY, "eve", "pw-eve-2")
    assert isinstance(gone, Refusal) and gone.reason == UNKNOWN_USER
    with pytest.raises(UserStoreError, match="no user"):
        users.remove_user(PRIMARY, "eve")


def test_an_outdated_hash_is_replaced_at_login(stores: Stores) -> None:
    stores.builtin.add_user(PRIMARY, "fay", "pw-fay-1")
    stronger = PasswordHasher(HashPolicy(memory_kib=2048, time_cost=1))
    user = stores.builtin.find(PRIMARY, "fay")
    assert user is not None and stronger.verify("pw-fay-1", user.password_hash) == (True, True)
    stores.builtin.update_password_hash(user.user_id, stronger.hash("pw-fay-1"))
    again = stores.builtin.find(PRIMARY, "fay")
    assert again is not None and again.password_hash != user.password_hash
    assert stronger.verify("pw-fay-1", again.password_hash) == (True, False)


# --- registered client certificates ------------------------------------------------------------------------------


def test_certificates_are_found_by_every_reference_and_leave_with_their_user(stores: Stores) -> None:
    cert = make_cert("svc-a", rsa_key())
    der = cert.public_bytes(Encoding.DER)
    stores.builtin.add_user(PRIMARY, "svc-a", "Correct-Horse-1")
    fingerprint = stores.builtin.add_certificate(PRIMARY, "svc-a", der)
    assert fingerprint == sha256_hex(der)
    with pytest.raises(CertificateStoreError, match="already registered"):
        stores.builtin.add_certificate(PRIMARY, "svc-a", der)
    assert stores.builtin.certificates(PRIMARY, "svc-a") == [der]
    registry = stores.certificates
    assert registry is not None
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    for found in (
        registry.find(der=der),
        registry.find(sha1=hashlib.sha1(der).digest()),  # noqa: S324 - the thumbprint a reference names
        registry.find(ski=ski),
        registry.find(issuer_serial=(cert.issuer, cert.serial_number)),
    ):
        assert found is not None and (found.domain, found.name) == (PRIMARY, "svc-a")
        assert found.certificate == cert
    assert registry.of_name(PRIMARY, "svc-a") == [der]
    assert registry.find(sha1=b"\0" * 20) is None
    with pytest.raises(UserStoreError, match="no certificate with that fingerprint"):
        stores.builtin.remove_certificate(PRIMARY, "svc-a", "00" * 32)
    stores.builtin.remove_user(PRIMARY, "svc-a")
    assert registry.find(der=der) is None  # removing the user removed its certificate


# --- relying-party certificates kept in the database (a store several nodes share) -----------------------------


def test_relying_party_certificates_registered_in_the_database(stores: Stores, tmp_path: Path) -> None:
    registry = RelyingPartyRegistry(stores.relying_parties)
    here, elsewhere = tmp_path / "truststore", tmp_path / "other-node-truststore"
    first = keygen.self_signed_certificate(rsa_key(), "first")
    second = keygen.self_signed_certificate(rsa_key(), "second")
    a, b = "https://a.example/app", "https://b.example/app"

    added = registration.register(registry, here, RelyingParty(address=a), first, "strict", in_database=True)
    assert added.certificate is None and not here.exists()  # no file anywhere
    assert (registry.get(a).cert_file, registry.get(a).cert_pem) == ("", inline_pem(first))
    shown = registration.describe(registry, elsewhere, a, "strict", datetime.now(UTC))
    assert (shown.in_database, shown.certificate_file, shown.certificate, shown.problems) == (True, None, first, ())
    assert RelyingPartyDirectory(registry, elsewhere).resolve(a).certificate == first  # another node: no file

    kept = registration.update(registry, here, a, lambda _rp: {"lifetime": 600}, None, "strict", in_database=True)
    assert (kept.rp.cert_pem, kept.rp.lifetime) == (inline_pem(first), 600)
    renewed = registration.update(registry, here, a, lambda _rp: {}, second, "strict", in_database=True)
    assert registry.get(a).cert_pem == inline_pem(second) and renewed.certificate is None
    assert RelyingPartyDirectory(registry, elsewhere).resolve(a).certificate == second

    # A relying party registered before, its certificate a file of this host's truststore: a new certificate goes
    # into the database and the file is dropped.
    legacy = registration.register(registry, here, RelyingParty(address=b), first, "strict")
    assert legacy.certificate is not None and legacy.certificate.is_file()
    moved = registration.update(registry, here, b, lambda _rp: {}, second, "strict", in_database=True)
    assert (registry.get(b).cert_file, registry.get(b).cert_pem) == ("", inline_pem(second))
    assert (moved.certificate, list(here.iterdir())) == (None, [])

    removed = registration.unregister(registry, here, a)
    assert (removed.rp.address, removed.deleted) == (a, None)
    assert [rp.address for rp in registry.all()] == [b]
