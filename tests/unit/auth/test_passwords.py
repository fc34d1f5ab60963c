"""Tests for sts.auth.passwords: argon2id hashing through libpass, rehash detection, malformed hashes (A07, M8)."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from passlib.hash import bcrypt, pbkdf2_sha256

from sts.auth.passwords import HashPolicy, PasswordHasher

CHEAP = HashPolicy(memory_kib=1024, time_cost=1)


@pytest.fixture(scope="module")
def hasher() -> PasswordHasher:
    return PasswordHasher(CHEAP)


@pytest.fixture(scope="module")
def stored(hasher: PasswordHasher) -> str:
    return hasher.hash("s3cret \u00e9\u2603")


def test_hash_is_argon2id_with_the_policy_parameters(stored: str) -> None:
    assert stored.startswith("$argon2id$v=19$m=1024,t=1,p=1$")


def test_default_policy_is_the_owasp_floor() -> None:
    policy = HashPolicy()
    assert (policy.memory_kib, policy.time_cost, policy.parallelism) == (19456, 2, 1)
    assert PasswordHasher().hash("x").startswith("$argon2id$v=19$m=19456,t=2,p=1$")


def test_hashes_are_salted(hasher: PasswordHasher) -> None:
    assert hasher.hash("same") != hasher.hash("same")


def test_verify_right_password(hasher: PasswordHasher, stored: str) -> None:
    assert hasher.verify("s3cret \u00e9\u2603", stored) == (True, False)


@pytest.mark.parametrize("wrong", ["s3cret", "S3cret \u00e9\u2603", "s3cret \u00e9\u2603 ", "", "s3cret e\u0301\u2603"])
def test_verify_wrong_password(hasher: PasswordHasher, stored: str, wrong: str) -> None:
    assert hasher.verify(wrong, stored) == (False, False)


def test_needs_update_for_weaker_argon2_parameters(hasher: PasswordHasher) -> None:
    weak = hasher.hash("pw")
    strong = PasswordHasher()  # production policy
    assert strong.verify("pw", weak) == (True, True)
    assert strong.verify("wrong", weak) == (False, False)  # never "needs update" on a failed check


def test_no_update_needed_at_current_parameters(hasher: PasswordHasher) -> None:
    assert hasher.verify("pw", hasher.hash("pw")) == (True, False)


@pytest.mark.parametrize(
    "legacy",
    [pbkdf2_sha256.using(rounds=1000).hash("pw"), bcrypt.using(rounds=4).hash("pw")],
    ids=["pbkdf2_sha256", "bcrypt"],
)
def test_legacy_schemes_verify_and_need_update(hasher: PasswordHasher, legacy: str) -> None:
    assert hasher.verify("pw", legacy) == (True, True)
    assert hasher.verify("nope", legacy) == (False, False)


@pytest.mark.parametrize(
    "malformed",
    [
        "",
        "garbage",
        "$argon2id$v=19$m=1024,t=1,p=1$broken",
        "$argon2id$v=19$m=1024,t=1,p=1$5rx3rlXKOYdwbo1Rao1xrg$",
        "$2b$12$abc",
        "$1$salt$md5cryptnotallowed",
        "pw",
    ],
)
def test_malformed_hash_never_matches(hasher: PasswordHasher, malformed: str) -> None:
    assert hasher.verify("pw", malformed) == (False, False)
    assert hasher.verify(malformed, malformed) == (False, False)


def test_truncated_hash_never_matches(hasher: PasswordHasher, stored: str) -> None:
    assert hasher.verify("s3cret \u00e9\u2603", stored[:-4]) == (False, False)


def test_long_password_over_72_bytes_is_not_truncated(hasher: PasswordHasher) -> None:
    """bcrypt truncates at 72 bytes; argon2 must not (and libpass must not raise as passlib 1.7.4 did, M8)."""
    base = "a" * 72
    stored = hasher.hash(base + "X")
    assert hasher.verify(base + "X", stored) == (True, False)
    assert hasher.verify(base + "Y", stored) == (False, False)


def test_dummy_verify_runs_and_reuses_its_hash(hasher: PasswordHasher) -> None:
    fresh = PasswordHasher(CHEAP)
    assert fresh._dummy_hash is None
    fresh.dummy_verify()
    first = fresh._dummy_hash
    assert first is not None and first.startswith("$argon2id$v=19$m=1024,t=1,p=1$")
    fresh.dummy_verify()
    assert fresh._dummy_hash == first


def test_unknown_users_arriving_together_on_a_fresh_worker_make_one_dummy_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    """The dummy hash is made by the first dummy verification of a process; failed logins of unknown users arriving
    together on request threads each saw none yet and each made one (argon2id at the production cost: 19 MiB and
    ~30 ms apiece, the interpreter lock released meanwhile), so every one of them cost two hashes, not one. Eight
    at once, five times: one hash each time, and every verification against it."""
    for _ in range(5):
        fresh = PasswordHasher()
        made: list[str] = []
        original = fresh.hash

        def counting(password: str, hash_: Callable[[str], str] = original, into: list[str] = made) -> str:
            into.append(password)
            return hash_(password)

        monkeypatch.setattr(fresh, "hash", counting)
        start = threading.Barrier(8, timeout=30)
        failures: list[BaseException] = []

        def unknown_user(
            target: PasswordHasher = fresh, ready: threading.Barrier = start, raised: list[BaseException] = failures
        ) -> None:
            ready.wait()
            try:
                target.dummy_verify()
            except BaseException as exc:  # reported below
                raised.append(exc)

        threads = [threading.Thread(target=unknown_user) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert failures == []
        assert len(made) == 1
