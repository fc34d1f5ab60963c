"""Tests for sts.auth.credential_cache: the per-worker cache of verified PasswordText credentials."""

from __future__ import annotations

import os

import pytest

from sts.auth.credential_cache import VerifiedCredentialCache
from sts.auth.users import Principal

ALICE = Principal("PRIMARY", "alice", frozenset({"admin"}))
BOB = Principal("PRIMARY", "bob", frozenset())


class FakeClock:
    """A monotonic-clock stand-in: a callable returning seconds, moved by hand."""

    def __init__(self, start: float = 1000.0) -> None:
        self.value = start

    def __call__(self) -> float:
        return self.value


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_ttl_zero_disables(clock: FakeClock) -> None:
    cache = VerifiedCredentialCache(0, clock=clock)
    cache.put("PRIMARY", "alice", "pw", ALICE)
    assert cache.get("PRIMARY", "alice", "pw") is None


def test_negative_ttl_disables(clock: FakeClock) -> None:
    cache = VerifiedCredentialCache(-5, clock=clock)
    cache.put("PRIMARY", "alice", "pw", ALICE)
    assert cache.get("PRIMARY", "alice", "pw") is None


def test_hit_within_ttl_miss_after(clock: FakeClock) -> None:
    cache = VerifiedCredentialCache(60, clock=clock)
    cache.put("PRIMARY", "alice", "pw", ALICE)
    assert cache.get("PRIMARY", "alice", "pw") == ALICE
    clock.value += 59.9
    assert cache.get("PRIMARY", "alice", "pw") == ALICE
    clock.value += 0.1  # exactly ttl: expired
    assert cache.get("PRIMARY", "alice", "pw") is None
    clock.value -= 30  # an expired entry was dropped, it does not come back
    assert cache.get("PRIMARY", "alice", "pw") is None


def test_different_password_misses(clock: FakeClock) -> None:
    cache = VerifiedCredentialCache(60, clock=clock)
    cache.put("PRIMARY", "alice", "pw", ALICE)
    assert cache.get("PRIMARY", "alice", "pw2") is None
    assert cache.get("PRIMARY", "alice", "PW") is None
    assert cache.get("PRIMARY", "alice", "pw ") is None


def test_different_user_or_domain_misses(clock: FakeClock) -> None:
    cache = VerifiedCredentialCache(60, clock=clock)
    cache.put("PRIMARY", "alice", "pw", ALICE)
    assert cache.get("PRIMARY", "bob", "pw") is None
    assert cache.get("SECONDARY", "alice", "pw") is None


def test_fields_cannot_be_shifted_across_the_separator(clock: FakeClock) -> None:
    cache = VerifiedCredentialCache(60, clock=clock)
    cache.put("PRIMARY", "ab", "c", BOB)
    assert cache.get("PRIMARY", "a", "bc") is None


def test_eviction_at_max_entries_drops_oldest(clock: FakeClock) -> None:
    cache = VerifiedCredentialCache(60, max_entries=3, clock=clock)
    for index in range(3):
        cache.put("PRIMARY", f"user{index}", "pw", ALICE)
    cache.put("PRIMARY", "user3", "pw", ALICE)
    assert cache.get("PRIMARY", "user0", "pw") is None
    assert [cache.get("PRIMARY", f"user{i}", "pw") for i in (1, 2, 3)] == [ALICE, ALICE, ALICE]
    assert len(cache._entries) == 3


def test_eviction_prefers_expired_entries(clock: FakeClock) -> None:
    cache = VerifiedCredentialCache(60, max_entries=3, clock=clock)
    cache.put("PRIMARY", "fresh0", "pw", ALICE)
    clock.value -= 100  # put an entry that is already expired by "now" (insertion order: second)
    cache.put("PRIMARY", "stale", "pw", ALICE)
    clock.value += 100
    cache.put("PRIMARY", "fresh2", "pw", ALICE)
    cache.put("PRIMARY", "fresh3", "pw", ALICE)
    assert cache.get("PRIMARY", "fresh0", "pw") == ALICE  # the oldest survives: the stale one went
    assert cache.get("PRIMARY", "fresh2", "pw") == ALICE
    assert cache.get("PRIMARY", "fresh3", "pw") == ALICE


def test_cache_stays_bounded(clock: FakeClock) -> None:
    cache = VerifiedCredentialCache(60, max_entries=5, clock=clock)
    for index in range(50):
        cache.put("PRIMARY", f"user{index}", "pw", ALICE)
    assert len(cache._entries) == 5
    assert cache.get("PRIMARY", "user49", "pw") == ALICE


def test_no_plaintext_in_memory(clock: FakeClock) -> None:
    cache = VerifiedCredentialCache(60, clock=clock)
    cache.put("PRIMARY", "alice", "CANARY-PW-7f3a", ALICE)
    for key in cache._entries:
        assert b"CANARY" not in key
        assert b"alice" not in key


def test_other_pid_starts_empty(clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = VerifiedCredentialCache(60, clock=clock)
    cache.put("PRIMARY", "alice", "pw", ALICE)
    assert cache.get("PRIMARY", "alice", "pw") == ALICE
    parent_pid = os.getpid()
    monkeypatch.setattr(os, "getpid", lambda: parent_pid + 1)
    assert cache.get("PRIMARY", "alice", "pw") is None
    cache.put("PRIMARY", "bob", "pw", BOB)
    assert cache.get("PRIMARY", "bob", "pw") == BOB


def test_other_pid_uses_a_fresh_key(clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = VerifiedCredentialCache(60, clock=clock)
    cache.put("PRIMARY", "alice", "pw", ALICE)
    parent_key = cache._key
    parent_pid = os.getpid()
    monkeypatch.setattr(os, "getpid", lambda: parent_pid + 1)
    cache.put("PRIMARY", "alice", "pw", ALICE)
    assert cache._key != parent_key
    assert len(cache._key) == 32
