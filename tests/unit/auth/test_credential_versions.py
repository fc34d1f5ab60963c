"""The verified-credential cache checks each entry against the account's credential version (sts.stores.base):
an entry made under another version is dropped, and the local backend keeps today's behaviour (one version)."""

from __future__ import annotations

from sts.auth.credential_cache import VerifiedCredentialCache
from sts.auth.users import Principal
from sts.stores.base import AccountState, LocalCredentialVersions, LockState, SeparateAccountReader

ALICE = Principal("PRIMARY", "alice", frozenset({"admin"}))


def test_an_entry_matches_only_its_version_and_a_mismatch_drops_it() -> None:
    cache = VerifiedCredentialCache(ttl=60)
    cache.put("PRIMARY", "alice", "pw", ALICE, ("epoch", "1", "0"))
    assert cache.get("PRIMARY", "alice", "pw", ("epoch", "1", "0")) == ALICE
    assert cache.get("PRIMARY", "alice", "pw", ("epoch", "2", "0")) is None
    # Dropped, not merely hidden: the old version no longer finds it either.
    assert cache.get("PRIMARY", "alice", "pw", ("epoch", "1", "0")) is None


def test_local_versions_never_change_so_entries_live_their_ttl() -> None:
    versions = LocalCredentialVersions()
    cache = VerifiedCredentialCache(ttl=60)
    cache.put("PRIMARY", "alice", "pw", ALICE, versions.current("PRIMARY/alice"))
    versions.bump("PRIMARY/alice")
    versions.bump_all()
    assert cache.get("PRIMARY", "alice", "pw", versions.current("PRIMARY/alice")) == ALICE


class _Lockout:
    def state(self, key: str) -> LockState | None:
        return LockState(2, 0.0) if key == "PRIMARY/alice" else None

    def record_failure(self, key: str, now: float) -> LockState:
        raise AssertionError("not called")

    def reset(self, key: str) -> None:
        raise AssertionError("not called")


def test_separate_reader_combines_lock_state_and_version() -> None:
    reader = SeparateAccountReader(_Lockout(), LocalCredentialVersions())
    assert reader.read("PRIMARY/alice") == AccountState(LockState(2, 0.0), ())
    assert reader.read("PRIMARY/bob") == AccountState(None, ())
