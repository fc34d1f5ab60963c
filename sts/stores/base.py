"""Store contracts: atomic by contract, shared by every worker, failing closed.

A store that cannot answer raises :class:`~sts.errors.ServiceUnavailable`; callers never treat an error as
"not seen" or "not locked". :func:`sts.stores.factory.build_stores` builds the implementations of one backend.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class ReplayCache(Protocol):
    """Remembers values (nonces, message ids) until they expire."""

    def check_and_add(self, namespace: str, value: bytes, expires_at: float, created: float | None = None) -> bool:
        """True when ``value`` was not seen in ``namespace`` (and records it), False for a replay; atomic.

        ``created``: when the value was made (a nonce's or a Timestamp's Created, an assertion's NotBefore). A cache
        that can lose what it has seen (a Redis restarted empty) refuses what was made before it started again."""
        ...


@dataclass(frozen=True, slots=True)
class LockState:
    """Consecutive failures so far and until when the key is locked (epoch seconds, 0 = not locked)."""

    failures: int
    locked_until: float


class ClientThrottle(Protocol):
    """Failed-authentication counts per client address in a sliding-by-reset window, shared by all workers."""

    def throttled(self, client: str, now: float) -> bool:
        """Whether the client reached the limit within the current window."""
        ...

    def record_failure(self, client: str, now: float) -> int:
        """Count one failure; returns the count in the current window (atomic)."""
        ...


class LockoutStore(Protocol):
    """Consecutive-failure counters with doubling lock periods, shared by all workers."""

    def state(self, key: str) -> LockState | None:
        """The current state, or None when the key has no failures on record."""
        ...

    def record_failure(self, key: str, now: float) -> LockState:
        """Count one failure; lock when the threshold is reached; atomic across processes."""
        ...

    def reset(self, key: str) -> None:
        """Forget the key's failures and lock level (after a success, or an operator unlock)."""
        ...


CredentialVersion = tuple[str, ...]
"""What a verified-credential cache entry is checked against: it differs whenever the user's password, state, roles
or claims may have changed since the entry was made (``()`` when no backend tracks changes)."""


class CredentialVersions(Protocol):
    """Change counters of user accounts, so that every node's verified-credential cache drops stale entries.

    Whatever changes an account (password, enabled, roles, claims, removal) calls :meth:`bump` after the change is
    stored; a change that reaches every user (a role deleted) calls :meth:`bump_all`.
    """

    def current(self, key: str) -> CredentialVersion:
        """The version of account ``key`` (``DOMAIN/canonical-name``) now."""
        ...

    def bump(self, key: str) -> None:
        """Account ``key`` changed: entries made before no longer match."""
        ...

    def bump_all(self) -> None:
        """Every account may have changed."""
        ...


class LocalCredentialVersions:
    """No shared counters (one host): a change reaches a worker's cache when the entry expires (its TTL)."""

    def current(self, key: str) -> CredentialVersion:
        """Always the same version."""
        return ()

    def bump(self, key: str) -> None:
        """Nothing to tell: entries expire by their TTL."""

    def bump_all(self) -> None:
        """Nothing to tell: entries expire by their TTL."""


@dataclass(frozen=True, slots=True)
class AccountState:
    """What authentication reads about an account before checking its password."""

    lock: LockState | None
    version: CredentialVersion


class AccountReader(Protocol):
    """The lockout state and credential version of an account, read together (one round trip where it can be)."""

    def read(self, key: str) -> AccountState:
        """The account's state now."""
        ...


class SeparateAccountReader:
    """:class:`AccountReader` over a lockout store and a version source, one call each."""

    def __init__(self, lockout: LockoutStore, versions: CredentialVersions) -> None:
        self._lockout = lockout
        self._versions = versions

    def read(self, key: str) -> AccountState:
        """The lock state, then the version."""
        return AccountState(self._lockout.state(key), self._versions.current(key))


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """What the token store keeps about an issued assertion (never the signed XML itself)."""

    token_id: str
    subject: str  # DOMAIN/name of the principal it was issued to
    relying_party: str  # the registered address of its relying party (its identity in the registry)
    token_type: str
    not_before: float
    not_on_or_after: float
    status: str  # issued (live) | renewed (retired by its successor) | cancelled
    renewable: bool
    renew_after_expiry: bool
    digest: str  # SHA-256 of the token as returned (encrypted form included), for matching it later
    # JSON: what a renewal needs (requested claims, key type, trust version) and ``chain``, the ID of the first
    # token of its renewal chain (Cancel ends the whole chain).
    data: str


class TokenStore(Protocol):
    """Issued tokens by assertion ID, shared by all workers; bounded by expiry.

    A renewal chain has at most one live (``issued``) token: :meth:`renew` retires the old token and records its
    successor in one atomic step, so one token is renewed at most once however many requests race for it.
    """

    def put(self, record: TokenRecord, keep_until: float) -> None:
        """Record an issued token."""
        ...

    def get(self, token_id: str) -> TokenRecord | None:
        """A token by its assertion ID."""
        ...

    def find_by_digest(self, digest: str) -> TokenRecord | None:
        """A token by the digest of the bytes it was returned as."""
        ...

    def renew(self, old_id: str, successor: TokenRecord, keep_until: float) -> bool:
        """Atomically move ``old_id`` from issued to renewed and record ``successor``; False (and nothing
        written) when ``old_id`` is no longer live: renewed, cancelled or gone."""
        ...

    def cancel(self, token_id: str) -> bool:
        """Cancel the token and every other token of its renewal chain (atomic); False for an unknown token."""
        ...
