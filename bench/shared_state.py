"""The benchmark's shared state: a real PostgreSQL and Redis (the test suite's servers, tests/servers/) under an
instance moved to them with ``sts db copy``, as an operator moves a single host to several nodes.

The round trips per token are counted from the servers' own statistics around a fixed number of tokens:
PostgreSQL's committed transactions (``pg_stat_database.xact_commit``) and Redis's executed commands
(``INFO commandstats``), so what a token costs in shared-state traffic is reported next to its CPU.
"""

from __future__ import annotations

import contextlib
import ssl
import subprocess
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg

from tests.servers.postgres import PostgresServer, postgres_server
from tests.servers.redis import RedisServer, redis_server


@dataclass
class SharedState:
    """The running servers and what a node needs to reach them."""

    postgres: PostgresServer
    redis: RedisServer

    def env(self) -> dict[str, str]:
        """The passwords, from the environment as the README says (never in ``sts.toml``)."""
        return {"PGPASSWORD": self.postgres.password, "STS_CACHE_PASSWORD": self.redis.password}


@contextlib.contextmanager
def running_shared_state() -> Iterator[SharedState]:
    """A PostgreSQL and a Redis on free loopback ports, stopped when the block ends."""
    with postgres_server() as postgres, redis_server() as redis:
        yield SharedState(postgres, redis)


def move_instance(sts_bin: Path, config: Path, state: SharedState) -> None:
    """``sts db copy`` the instance's SQLite database to PostgreSQL, then point its ``sts.toml`` at PostgreSQL
    and Redis (the file keeps no password)."""
    url = state.postgres.url.replace(f":{state.postgres.password}@", "@")
    env = {"PGPASSWORD": state.postgres.password, "PATH": "/usr/bin:/bin"}
    subprocess.run(  # noqa: S603 - the project's own CLI
        [str(sts_bin), "--config", str(config), "db", "copy", "--to", url], check=True, env=env,
        stdout=subprocess.DEVNULL,
    )
    redis_url = state.redis.url.replace(f":{state.redis.password}@", "")
    text = config.read_text()
    text = text.replace('\nbackend = "sqlite"', '\nbackend = "postgresql"', 1)
    text = text.replace('\nurl = ""', f'\nurl = "{url}"', 1)  # [store] url: the first key spelt exactly so
    text = text.replace('backend = "local"', f'backend = "redis"\nurl = "{redis_url}"', 1)
    config.write_text(text)


def round_trips(state: SharedState, send: Callable[[], bool], tokens: int = 200) -> dict[str, float]:
    """Database transactions and Redis commands per issued token, over ``tokens`` sequential requests."""
    before = _counts(state)
    issued = sum(send() for _ in range(tokens))
    after = _counts(state)
    if issued != tokens:
        raise RuntimeError(f"round-trip count: {tokens - issued} of {tokens} requests failed")
    return {name: (after[name] - before[name]) / tokens for name in before} | {"tokens": float(tokens)}


def _counts(state: SharedState) -> dict[str, float]:
    with psycopg.connect(state.postgres.admin_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = %s", (state.postgres.database,)
        ).fetchone()
    with state.redis.client() as client:
        stats = client.info("commandstats")
    commands = sum(int(v["calls"]) for k, v in stats.items() if k not in ("cmdstat_info",))
    # A script is one round trip; the commands it runs inside are counted by Redis too.
    scripts = sum(int(v["calls"]) for k, v in stats.items() if k in ("cmdstat_evalsha", "cmdstat_eval"))
    return {"postgresql_transactions": float(row[0] if row else 0), "redis_commands": float(commands),
            "redis_scripts": float(scripts)}


def poster(url: str, body: Callable[[], bytes], headers: dict[str, str]) -> Callable[[], bool]:
    """A function that posts one fresh request and says whether a token came back (plain HTTP on loopback)."""
    def send() -> bool:
        request = urllib.request.Request(url, data=body(), headers=headers, method="POST")  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=10, context=ssl.create_default_context()) as reply:  # noqa: S310
                return reply.status == 200 and b"RequestSecurityTokenResponseCollection" in reply.read()
        except OSError:
            return False

    return send
