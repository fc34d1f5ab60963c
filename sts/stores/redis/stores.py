"""Replay cache, lockout and throttle counters and credential versions in Redis: one atomic round trip each.

Keys (every name, address and value hashed, so none appears in Redis and keys stay bounded)::

  sts:epoch                       the current contents of the Redis (ENSURE_EPOCH): "<time>:<random>"
  sts:replay:{namespace}:{sha256} a value seen, until the time it could be replayed (SET NX PX)
  sts:lock:{sha256}               lockout: hash count, level, until (what SqliteLockoutStore keeps in a row)
  sts:rl:{sha256}                 per-client failures: hash count, expires (what SqliteClientThrottle keeps)
  sts:ver:user:{sha256}           an account's change counter; sts:ver:global for changes to every account

The counters take ``now`` from the caller and keep the SQLite stores' semantics exactly; the key's expiry only
removes what can no longer matter. A Lua script runs atomically (https://redis.io/docs/latest/develop/
interact/programmability/eval-intro/), so concurrent workers on any node never lose or double an update.

A Redis restarted empty (no persistence, or a failover to a replica that lags) forgets the nonces seen inside the
replay window. The epoch notices: the first command after the loss sets a new one, and a nonce whose message was
created before that moment is refused as a possible replay (for one replay window, after which such a message is
stale anyway). Credential versions carry the epoch too, so a restart also invalidates every cached credential.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from sts.netaddr import AddressSet
from sts.stores.base import AccountState, CredentialVersion, LockState
from sts.stores.redis.client import ENSURE_EPOCH, PREFIX, Arg, RedisConnection, hashed

_LOG = logging.getLogger("sts.stores")
EPOCH_KEY = PREFIX + "epoch"
GLOBAL_VERSION_KEY = PREFIX + "ver:global"
# A version key outlives every cache entry made before its last bump (credential_cache_ttl is at most 300 s): when it
# expires and reads as 0 again, no entry that saw it at 0 before the bump can be alive.
VERSION_KEEP_MS = 86_400_000
BEFORE_EPOCH = -1

_REPLAY = ENSURE_EPOCH + """
if ARGV[3] ~= '' and tonumber(ARGV[3]) < tonumber(string.match(epoch, '^[^:]+')) then return -1 end
if tonumber(ARGV[2]) <= 0 then return 1 end
if redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[2]) then return 1 end
return 0
"""

_ACCOUNT = ENSURE_EPOCH + """
local lock = redis.call('HMGET', KEYS[2], 'count', 'until')
return {epoch, lock[1], lock[2], redis.call('GET', KEYS[3]), redis.call('GET', KEYS[4])}
"""

# SqliteLockoutStore.record_failure, step by step: while locked nothing changes; the failure that reaches the
# threshold locks for duration × 2^level (capped) and starts the count again.
_LOCKOUT_FAILURE = """
local now, max, dur, maxdur = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local row = redis.call('HMGET', KEYS[1], 'count', 'level', 'until')
local count, level, locked = tonumber(row[1]), tonumber(row[2]) or 0, tonumber(row[3]) or 0
if not count then
  if max <= 1 then count, level, locked = 0, 1, now + dur else count = 1 end
elseif locked > now then
  count = count
elseif count + 1 >= max then
  count, level, locked = 0, level + 1, now + math.min(dur * 2 ^ math.min(level, 20), maxdur)
else
  count = count + 1
end
local text = string.format('%.17g', locked)
redis.call('HSET', KEYS[1], 'count', count, 'level', level, 'until', text)
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return {count, text}
"""

# SqliteClientThrottle.record_failure: a window starts at the first failure after the previous one expired.
_THROTTLE_FAILURE = """
local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local row = redis.call('HMGET', KEYS[1], 'count', 'expires')
local count, expires = tonumber(row[1]), tonumber(row[2])
if not count or expires <= now then count, expires = 1, now + window else count = count + 1 end
redis.call('HSET', KEYS[1], 'count', count, 'expires', string.format('%.17g', expires))
redis.call('PEXPIRE', KEYS[1], math.ceil((expires - now) * 1000))
return count
"""

_BUMP = """
local n = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return n
"""


def lock_key(key: str) -> str:
    """The lockout hash of account ``key``."""
    return f"{PREFIX}lock:{hashed(key)}"


def version_key(key: str) -> str:
    """The change counter of account ``key``."""
    return f"{PREFIX}ver:user:{hashed(key)}"


def _text(value: object) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _lock_state(count: Any, until: Any) -> LockState | None:
    """A LockState from the hash fields (None when the account has no failures on record)."""
    return None if count is None else LockState(int(count), float(until))


class RedisReplayCache:
    """The replay cache: ``SET key 1 NX PX <until expiry>`` in one script with the epoch check.

    ``window``: the replay window of the namespace checked against the epoch (the value's creation time is
    ``expires_at - window``); None checks no creation time (a value that carries none).
    """

    def __init__(self, conn: RedisConnection, window: float | None) -> None:
        self._conn = conn
        self._window = window
        self._script = conn.script(_REPLAY)

    def check_and_add(self, namespace: str, value: bytes, expires_at: float, created: float | None = None) -> bool:
        """True when first seen (and recorded until ``expires_at``); False for a replay, or for a value created
        before the Redis lost what it had seen (``created``, else ``expires_at`` less the window)."""
        remaining = math.ceil((expires_at - self._conn.clock.now().timestamp()) * 1000)
        if created is None and self._window is not None:
            created = expires_at - self._window
        keys = [EPOCH_KEY, f"{PREFIX}replay:{namespace}:{hashed(value)}"]
        args: list[Arg] = [self._conn.fresh_epoch(), max(remaining, 0), "" if created is None else repr(created)]
        answer = self._conn.call("replay store", "replay_store_down", lambda: self._script(keys, args))
        if answer == BEFORE_EPOCH:
            _LOG.warning("replay cache restarted empty: refusing a message created before it", extra={"ns": namespace})
        return bool(answer == 1)


class RedisLockoutStore:
    """Consecutive-failure counters with doubling lock periods (the semantics of SqliteLockoutStore)."""

    def __init__(self, conn: RedisConnection, max_failures: int, duration: int, max_duration: int) -> None:
        self._conn = conn
        self._max = max_failures
        self._duration = duration
        self._max_duration = max_duration
        self._failure = conn.script(_LOCKOUT_FAILURE)

    def state(self, key: str) -> LockState | None:
        """Current failures and lock, or None."""
        count, until = self._conn.call(
            "lockout store", "lockout_store_down", lambda: self._conn.command("HMGET", lock_key(key), "count", "until")
        )
        return _lock_state(count, until)

    def record_failure(self, key: str, now: float) -> LockState:
        """Count one failure, or lock when it reaches the threshold; atomic across every node."""
        keep_ms = max(self._max_duration, 86400) * 1000
        args: list[Arg] = [repr(now), self._max, self._duration, self._max_duration, keep_ms]
        count, until = self._conn.call(
            "lockout store", "lockout_store_down", lambda: self._failure([lock_key(key)], args)
        )
        return LockState(int(count), float(until))

    def reset(self, key: str) -> None:
        """Forget the key's failures and lock level."""
        self._conn.call("lockout store", "lockout_store_down", lambda: self._conn.command("DEL", lock_key(key)))


class RedisClientThrottle:
    """Failed-authentication counts per client address (the semantics of SqliteClientThrottle)."""

    def __init__(self, conn: RedisConnection, limit: int, window: int, exempt: AddressSet | None = None) -> None:
        self._conn = conn
        self._limit = limit
        self._window = window
        self._exempt = exempt or AddressSet()
        self._failure = conn.script(_THROTTLE_FAILURE)

    def _key(self, client: str) -> str:
        return f"{PREFIX}rl:{hashed(client)}"

    def throttled(self, client: str, now: float) -> bool:
        """True when ``client`` has ``limit`` failures in the current window."""
        if self._limit <= 0 or client in self._exempt:
            return False
        count, expires = self._conn.call(
            "throttle store", "throttle_store_down",
            lambda: self._conn.command("HMGET", self._key(client), "count", "expires"),
        )
        return count is not None and expires is not None and float(expires) > now and int(count) >= self._limit

    def record_failure(self, client: str, now: float) -> int:
        """Count one failure in the current window (a new window when the old one expired)."""
        if self._limit <= 0 or client in self._exempt:
            return 0
        args: list[Arg] = [repr(now), self._window]
        count = self._conn.call(
            "throttle store", "throttle_store_down", lambda: self._failure([self._key(client)], args)
        )
        return int(count)


class RedisCredentialVersions:
    """Account change counters (``INCR``), read with the lock state in one script by :meth:`read`."""

    def __init__(self, conn: RedisConnection) -> None:
        self._conn = conn
        self._account = conn.script(_ACCOUNT)
        self._bump = conn.script(_BUMP)

    def read(self, key: str) -> AccountState:
        """The account's lock state and version, in one round trip (:class:`~sts.stores.base.AccountReader`)."""
        keys = [EPOCH_KEY, lock_key(key), version_key(key), GLOBAL_VERSION_KEY]
        args: list[Arg] = [self._conn.fresh_epoch()]
        reply = self._conn.call("account state", "lockout_store_down", lambda: self._account(keys, args))
        epoch, count, until, user, every = reply
        version: CredentialVersion = (_text(epoch), _text(user or b"0"), _text(every or b"0"))
        return AccountState(_lock_state(count, until), version)

    def current(self, key: str) -> CredentialVersion:
        """The account's version: the epoch, its own counter and the global one."""
        return self.read(key).version

    def bump(self, key: str) -> None:
        """Account ``key`` changed."""
        self._incr(version_key(key))

    def bump_all(self) -> None:
        """Every account may have changed."""
        self._incr(GLOBAL_VERSION_KEY)

    def _incr(self, name: str) -> None:
        self._conn.call("credential versions", "cache_down", lambda: self._bump([name], [VERSION_KEEP_MS]))
