"""Per-worker cache of recently verified PasswordText credentials (a performance measure, bounded in time).

A repeat caller then costs microseconds instead of ~30 ms of argon2id. Entries are keyed by an HMAC of
domain, user and password under a per-process random key (nothing usable leaks from memory), live at most
``ttl`` seconds (so a password change, lock or role change takes effect within the TTL) and the cache holds at
most ``max_entries``. One lock guards the entries: a worker serves requests on several threads.

Each entry also remembers the account's :data:`~sts.stores.base.CredentialVersion` it was verified under (read
*before* the user store was asked, so a change racing the check leaves a stale version, never a fresh one): with a
shared cache backend a change on any node bumps the version and the entry stops matching at once, not after the TTL.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
import time
from collections.abc import Callable

from sts.auth.users import Principal
from sts.stores.base import CredentialVersion


class VerifiedCredentialCache:
    """``(domain, user, password)`` → Principal for ``ttl`` seconds; ``ttl == 0`` disables it."""

    def __init__(self, ttl: float, max_entries: int = 10000, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._max = max_entries
        self._clock = clock
        self._pid = -1
        self._key = b""
        self._entries: dict[bytes, tuple[float, CredentialVersion, Principal]] = {}
        self._lock = threading.Lock()

    def _digest(self, domain: str, user: str, password: str) -> bytes:
        """The entry key; called with the lock held."""
        if self._pid != os.getpid():  # a fresh key (and an empty cache) in every forked worker
            self._pid, self._key, self._entries = os.getpid(), secrets.token_bytes(32), {}
        message = "\0".join((domain, user, password)).encode("utf-8")
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def get(self, domain: str, user: str, password: str, version: CredentialVersion = ()) -> Principal | None:
        """The cached principal, if verified less than ``ttl`` seconds ago under the same account ``version``."""
        if self._ttl <= 0:
            return None
        with self._lock:
            key = self._digest(domain, user, password)
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry[0] <= self._clock() or entry[1] != version:
                del self._entries[key]
                return None
            return entry[2]

    def put(
        self, domain: str, user: str, password: str, principal: Principal, version: CredentialVersion = ()
    ) -> None:
        """Remember a successful verification made under account ``version``."""
        if self._ttl <= 0:
            return
        with self._lock:
            key = self._digest(domain, user, password)
            if len(self._entries) >= self._max:
                self._evict()
            self._entries[key] = (self._clock() + self._ttl, version, principal)

    def _evict(self) -> None:
        now = self._clock()
        for key in [k for k, v in self._entries.items() if v[0] <= now]:
            del self._entries[key]
        while len(self._entries) >= self._max:
            del self._entries[next(iter(self._entries))]  # oldest insertion first


class VerifiedPrincipalCache:
    """``(domain, user)`` → the Principal looked up for a certificate caller, under the rules of
    :class:`VerifiedCredentialCache`: at most ``ttl`` seconds, dropped when the account ``version`` moves.

    A certificate caller proves possession of a trusted key on every request (the signature and the certificate
    checks are never cached); what this saves is the user-store lookup that follows, exactly what the credential
    cache saves a repeat PasswordText caller. A disable or role change takes effect within the TTL, or at once
    with shared versions.
    """

    def __init__(self, ttl: float, max_entries: int = 10000, clock: Callable[[], float] = time.monotonic) -> None:
        self._entries = VerifiedCredentialCache(ttl, max_entries, clock)

    def get(self, domain: str, user: str, version: CredentialVersion = ()) -> Principal | None:
        """The cached principal, if looked up less than ``ttl`` seconds ago under the same account ``version``."""
        return self._entries.get(domain, user, "", version)

    def put(self, domain: str, user: str, principal: Principal, version: CredentialVersion = ()) -> None:
        """Remember a lookup made under account ``version``."""
        self._entries.put(domain, user, "", principal, version)
