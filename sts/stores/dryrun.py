"""Stores for a dry run (``sts explain``): they read the shared state as the server would, and write none of it.

No nonce is recorded (and none is checked: a saved request's nonce was recorded when it was first sent, so the
check would only ever say "replayed"), no failed attempt is counted towards a lockout or a client's throttle, no
success clears a failure count, and no token is recorded, renewed or cancelled.
"""

from __future__ import annotations

import dataclasses

from sts.stores.base import ClientThrottle, LockoutStore, LockState, TokenRecord, TokenStore
from sts.stores.factory import Stores


class _NoReplayRecord:
    """Every value counts as first seen, and nothing is recorded."""

    def check_and_add(self, namespace: str, value: bytes, expires_at: float, created: float | None = None) -> bool:
        """True, without recording ``value``."""
        return True


class _ReadOnlyLockout:
    """The real lock state; failures and resets are computed, never written."""

    def __init__(self, real: LockoutStore) -> None:
        self._real = real

    def state(self, key: str) -> LockState | None:
        """The stored state."""
        return self._real.state(key)

    def record_failure(self, key: str, now: float) -> LockState:
        """The state one more failure would leave (lock periods aside), not written."""
        state = self._real.state(key)
        return LockState((state.failures if state else 0) + 1, state.locked_until if state else 0.0)

    def reset(self, key: str) -> None:
        """Nothing: a dry run clears no failure count."""


class _ReadOnlyThrottle:
    """Whether the client is throttled now; failures are not counted."""

    def __init__(self, real: ClientThrottle) -> None:
        self._real = real

    def throttled(self, client: str, now: float) -> bool:
        """The stored verdict."""
        return self._real.throttled(client, now)

    def record_failure(self, client: str, now: float) -> int:
        """Nothing counted."""
        return 0


class _ReadOnlyTokens:
    """Tokens are looked up in the real store; issuing, renewing and cancelling write nothing."""

    def __init__(self, real: TokenStore) -> None:
        self._real = real

    def put(self, record: TokenRecord, keep_until: float) -> None:
        """Nothing recorded."""

    def get(self, token_id: str) -> TokenRecord | None:
        """The stored record."""
        return self._real.get(token_id)

    def find_by_digest(self, digest: str) -> TokenRecord | None:
        """The stored record."""
        return self._real.find_by_digest(digest)

    def renew(self, old_id: str, successor: TokenRecord, keep_until: float) -> bool:
        """Whether the renewal would retire a live token; nothing written."""
        old = self._real.get(old_id)
        return old is not None and old.status == "issued"

    def cancel(self, token_id: str) -> bool:
        """Whether the token is known; nothing cancelled."""
        return self._real.get(token_id) is not None


def dry_run(stores: Stores) -> Stores:
    """The same stores, with every write of the request path made a no-op (the user stores are read-only
    already, apart from a password hash upgraded on a successful login, which a dry run may still do)."""
    return dataclasses.replace(
        stores,
        replay=_NoReplayRecord(),
        lockout=_ReadOnlyLockout(stores.lockout),
        throttle=_ReadOnlyThrottle(stores.throttle),
        tokens=None if stores.tokens is None else _ReadOnlyTokens(stores.tokens),
    )
