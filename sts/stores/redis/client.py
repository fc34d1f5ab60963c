"""One Redis connection pool per worker process, with bounded timeouts and no retries; errors fail closed.

redis-py's defaults retry a failed command ten times with 5 s timeouts (a minute against a hung server). Here a
command gets ``socket_timeout_ms`` and is never retried: a timed-out ``SET … NX`` may still have run (the server
executes what sat in its socket when it resumes), so a retry would answer "already seen" for a first use, and a
retried increment would count twice. Any error is :class:`~sts.errors.ServiceUnavailable` for that request; the
next request connects afresh, so the node recovers by itself when Redis is back. All of one request's round trips
together get ``connect_timeout_ms + socket_timeout_ms`` (:meth:`RedisConnection._time_left`).

The URL is parsed here, not by ``redis.from_url``: its query parameters (``?ssl_cert_reqs=none`` …) would override
the verified-TLS settings, so a URL with any is refused.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import redis
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError
from redis.retry import Retry

from sts.clock import Clock
from sts.config.settings import CACHE_PASSWORD_ENV, CacheSettings
from sts.errors import ConfigError, ServiceUnavailable
from sts.telemetry import current

T = TypeVar("T")
Arg = str | int | float
Script_ = Callable[[list[str], list[Arg]], Any]
PREFIX = "sts:"
DEFAULT_PORT = 6379

# The epoch names the current contents of the Redis: the time this Redis server started (its TIME less its
# uptime) and a random part, set by the first command that finds it missing, so a Redis restarted empty gets a new
# one. A message created before the server started may have had its nonce in the Redis that was lost; one created
# after cannot have, so a freshly started Redis refuses nothing new (a Redis emptied by FLUSHALL without a restart
# keeps its start time: see README). Every script that needs it runs this first (KEYS[1] = the epoch key,
# ARGV[1] = a fresh "<node time>:<random>" value whose random part is used).
ENSURE_EPOCH = """
local epoch = redis.call('GET', KEYS[1])
if not epoch then
  local uptime = tonumber(string.match(redis.call('INFO', 'server'), 'uptime_in_seconds:(%d+)')) or 0
  local started = tonumber(redis.call('TIME')[1]) - uptime
  epoch = started .. ':' .. string.match(ARGV[1], ':(.*)$')
  redis.call('SET', KEYS[1], epoch)
end
"""


@dataclass(frozen=True, slots=True)
class RedisAddress:
    """Where the Redis is and how to log in, from ``[cache]``."""

    host: str
    port: int
    db: int
    username: str | None
    password: str | None
    tls: bool
    ca_file: Path | None

    @classmethod
    def from_settings(cls, cache: CacheSettings, environ: Mapping[str, str] | None = None) -> RedisAddress:
        """Parse ``url`` and find the password (URL, ``password_file`` or ``$STS_CACHE_PASSWORD``, exactly one)."""
        environ = os.environ if environ is None else environ
        problems: list[str] = []
        parts = urlsplit(cache.url)
        if not cache.url:
            problems.append('cache.url: required with backend = "redis" (redis://HOST:PORT/DB or rediss://…)')
        elif parts.query or parts.fragment:
            problems.append("cache.url: query parameters are not accepted; use the [cache] settings")
        try:
            port = parts.port or DEFAULT_PORT
        except ValueError:
            problems.append("cache.url: the port is not a number")
            port = DEFAULT_PORT
        path = parts.path.strip("/") or "0"
        if not path.isdigit():
            problems.append("cache.url: the path must be a database number, e.g. /0")
        tls = parts.scheme == "rediss"
        if cache.ca_file is not None and not tls:
            problems.append("cache.ca_file: only used with a rediss:// URL")
        if cache.url and not parts.hostname:
            problems.append("cache.url: no host")
        sources = [unquote(parts.password)] if parts.password else []
        if cache.password_file is not None:
            try:
                sources.append(cache.password_file.read_text(encoding="utf-8").rstrip("\r\n"))
            except OSError as exc:
                problems.append(f"cache.password_file: {cache.password_file} unreadable ({exc.strerror})")
            except UnicodeDecodeError:  # the bytes are never echoed: they may be the password
                problems.append(f"cache.password_file: {cache.password_file} is not UTF-8 text")
        if environ.get(CACHE_PASSWORD_ENV):
            sources.append(environ[CACHE_PASSWORD_ENV])
        if len(sources) > 1:
            problems.append(f"cache: give the password once (in the URL, password_file or ${CACHE_PASSWORD_ENV})")
        if problems:
            raise ConfigError(problems)
        username = unquote(parts.username) if parts.username else None
        return cls(parts.hostname or "", port, int(path), username, sources[0] if sources else None, tls, cache.ca_file)


class RedisConnection:
    """The per-process client of one Redis (built on first use in each process: never shared across ``fork``)."""

    def __init__(self, cache: CacheSettings, clock: Clock, address: RedisAddress | None = None) -> None:
        self._settings = cache
        self._address = address or RedisAddress.from_settings(cache)
        self._clock = clock
        self._lock = threading.Lock()
        self._pid = -1
        self._client: redis.Redis | None = None
        # All of one request's round trips together get what one command to a hung Redis may take (connect, then
        # one reply): a Redis answering each command just within socket_timeout holds a request no longer than a
        # hung one, instead of the sum of its commands (past gunicorn's worker timeout with long timeouts).
        self._budget = (cache.connect_timeout_ms + cache.socket_timeout_ms) / 1000
        self._local = threading.local()  # each request thread's (trace, deadline): see _time_left

    @property
    def clock(self) -> Clock:
        """The clock the stores tell the time by (the node's)."""
        return self._clock

    def client(self) -> redis.Redis:
        """This process's client (its pool connects lazily, one connection per concurrent command)."""
        with self._lock:
            if self._client is None or self._pid != os.getpid():
                self._client, self._pid = self._new_client(), os.getpid()
            return self._client

    def _new_client(self) -> redis.Redis:
        address, settings = self._address, self._settings
        options: dict[str, Any] = {"connection_class": _BudgetedConnection}
        if address.tls:
            options = {
                "connection_class": _BudgetedSSLConnection,
                "ssl_cert_reqs": "required",
                "ssl_check_hostname": True,
                "ssl_ca_certs": str(address.ca_file) if address.ca_file else None,  # None: the system's CAs
            }
        # Blocking: a thread finding every connection busy waits (at most the command timeout) for one, where the
        # default pool would fail at once with "Too many connections".
        pool = redis.BlockingConnectionPool(  # type: ignore[no-untyped-call]
            max_connections=settings.max_connections,
            timeout=settings.socket_timeout_ms / 1000,
            host=address.host,
            port=address.port,
            db=address.db,
            username=address.username,
            password=address.password,
            socket_timeout=settings.socket_timeout_ms / 1000,
            socket_connect_timeout=settings.connect_timeout_ms / 1000,
            retry=Retry(NoBackoff(), 0),
            **options,
        )
        return redis.Redis(connection_pool=pool)

    def script(self, source: str) -> Script_:
        """A Lua script run with EVALSHA (loaded again, once, when a restarted Redis answers NOSCRIPT: a script
        that was not found did not run, so that is no retry)."""
        sha = hashlib.sha1(source.encode("utf-8"), usedforsecurity=False).hexdigest()  # EVALSHA's name for it

        def run(keys: list[str], args: list[Arg]) -> Any:
            command = ("EVALSHA", sha, len(keys), *keys, *args)

            def exchange(conn: Any) -> Any:
                try:
                    return _ask(conn, command)
                except NoScriptError:
                    _ask(conn, ("SCRIPT", "LOAD", source))
                    return _ask(conn, command)

            return self._on_connection(exchange)

        return run

    def command(self, *command: Arg) -> Any:
        """One command, its raw reply (bytes, integers, lists; no decoding)."""
        return self._on_connection(lambda conn: _ask(conn, command))

    def _time_left(self, limit: float) -> float:
        """``limit`` seconds, or less when the current request's Redis budget ends sooner; none left fails closed.

        The budget starts with the request's first command (a request is one
        :class:`~sts.telemetry.RequestTrace`); outside a request (tools, readiness probes) every command gets
        ``limit``."""
        trace = current()
        if trace is None:
            return limit
        local = self._local
        if getattr(local, "trace", None) is not trace:
            # Holding the trace keeps its identity unique until this thread's next request replaces it.
            local.trace, local.ends = trace, time.monotonic() + self._budget
        left: float = local.ends - time.monotonic()
        if left <= 0:
            raise redis.TimeoutError("the request's time for Redis is spent")
        return min(limit, left)

    def _on_connection(self, exchange: Callable[[Any], T]) -> T:
        """Run ``exchange`` on a connection of the pool, through redis-py's connection API. The command path of
        ``Redis`` (retry wrapper, observability hooks, response callbacks) has nothing to do for this client,
        which never retries and reads raw replies, and cost about 20-25 us of CPU a command (of 150, measured on
        the replay and account scripts, two a token)."""
        self._time_left(0.0)  # fails before taking a connection when the request's budget is spent
        pool = self.client().connection_pool
        conn: Any = pool.get_connection()  # redis-py's Connection, untyped
        conn.time_left = self._time_left  # its reads, the handshake's too, end within the request's budget
        connect_timeout = self._settings.connect_timeout_ms / 1000
        try:
            conn.socket_connect_timeout = self._time_left(connect_timeout)  # used only if it connects now
            return exchange(conn)
        except redis.ResponseError:
            raise  # an error reply: the exchange is complete, the connection is fine
        except BaseException:
            # A socket error (redis-py has disconnected already) or an interruption between a command and its
            # reply: the connection may hold an unread reply, so it is never handed out again as it is.
            conn.disconnect()
            raise
        finally:
            conn.socket_connect_timeout = connect_timeout
            pool.release(conn)

    def call(self, what: str, reason: str, command: Callable[[], T]) -> T:
        """Run one command; any Redis or socket error is ServiceUnavailable (the request fails closed)."""
        try:
            return command()
        except (redis.RedisError, OSError) as exc:
            raise ServiceUnavailable(f"{what}: Redis {type(exc).__name__}", reason=reason) from None

    def ping(self) -> None:
        """One round trip (``sts check-config``); ServiceUnavailable when Redis does not answer."""
        self.call("cache", "cache_down", lambda: self.client().ping())

    def fresh_epoch(self) -> str:
        """A new epoch value: the time now and a random part."""
        return f"{self._clock.now().timestamp():.6f}:{secrets.token_hex(8)}"

    def close(self) -> None:
        """Close this process's connections (a forked child's inherited client is left to its parent)."""
        with self._lock:
            client, mine = self._client, self._pid == os.getpid()
            self._client = None
        if client is not None and mine:
            client.connection_pool.close()  # Redis.close() leaves a pool it was given open


def _ask(conn: Any, command: tuple[Arg, ...]) -> Any:
    """Send one command on a redis-py connection (connecting it first if need be) and read its reply."""
    conn.send_command(*command)
    return conn.read_response()


def _no_budget(limit: float) -> float:
    """Outside :meth:`RedisConnection._on_connection` (``ping``): the configured timeout."""
    return limit


class _Budgeted:
    """A redis-py connection whose every reply (a command's, or one of the handshake's: AUTH, SETINFO, SELECT) is
    awaited no longer than the current request has left for Redis (``time_left``, set by the connection's user)."""

    time_left: Callable[[float], float] = staticmethod(_no_budget)
    socket_timeout: float | None  # set by RedisConnection._new_client

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        """The reply, within the budget (unless the caller gives a timeout of its own)."""
        if "timeout" not in kwargs and self.socket_timeout is not None:
            kwargs["timeout"] = self.time_left(self.socket_timeout)
        return super().read_response(*args, **kwargs)  # type: ignore[misc]


class _BudgetedConnection(_Budgeted, redis.Connection):
    """:class:`_Budgeted` over TCP."""


class _BudgetedSSLConnection(_Budgeted, redis.SSLConnection):
    """:class:`_Budgeted` over TLS."""


def hashed(value: str | bytes) -> str:
    """A fixed-length key part: names and addresses never appear in Redis, and keys stay bounded."""
    data = value.encode("utf-8") if isinstance(value, str) else value
    return hashlib.sha256(data).hexdigest()
