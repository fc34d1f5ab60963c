"""``sts user ...`` / ``sts role ...`` with ``[cache] backend = "redis"``: every account change bumps the account's
credential version in Redis (so every node drops its cached logins at once), and lockout is read and cleared there."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sts.cli import main
from sts.clock import SystemClock
from sts.config.settings import CACHE_PASSWORD_ENV, CacheSettings
from sts.stores.base import CredentialVersion
from sts.stores.redis.client import RedisConnection
from sts.stores.redis.stores import RedisCredentialVersions, RedisLockoutStore
from tests.servers.redis import RedisServer
from tests.unit.cli.test_users_cli import ALICE_PW, Cli

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("instance") / "var"
    assert main(["init", "--key-size", "2048", str(base)]) == 0
    return base


@pytest.fixture
def conn(redis_server: RedisServer) -> Iterator[RedisConnection]:
    with redis_server.client() as client:
        client.flushdb()
    connection = RedisConnection(CacheSettings(backend="redis", url=redis_server.url), SystemClock())
    yield connection
    connection.close()


@pytest.fixture
def cli(template: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        redis_server: RedisServer, conn: RedisConnection) -> Cli:
    for key in [k for k in os.environ if k.startswith("STS_")]:
        monkeypatch.delenv(key)
    base = tmp_path / "var"
    shutil.copytree(template, base)
    # The password from the environment, not the file.
    url = redis_server.url.replace(f":{redis_server.password}@", "")
    config = base / "sts.toml"
    config.write_text(config.read_text().replace('backend = "local"', f'backend = "redis"\nurl = "{url}"'))
    monkeypatch.setenv(CACHE_PASSWORD_ENV, redis_server.password)
    cli = Cli(base, capsys, monkeypatch)
    cli.add_alice()
    cli.ok("user", "add", "bob", "--role", "admin", "--password-stdin", stdin="bob-Pa55word!\n")
    return cli


def _versions(conn: RedisConnection) -> tuple[CredentialVersion, CredentialVersion]:
    versions = RedisCredentialVersions(conn)
    return versions.current("PRIMARY/alice") + versions.current("PRIMARY/alice2"), versions.current("PRIMARY/bob")


@pytest.mark.parametrize(
    ("args", "stdin"),
    [
        (("user", "passwd", "alice", "--password-stdin"), "new-Pa55word!\n"),
        (("user", "disable", "Alice"), ""),
        (("user", "enable", "alice"), ""),
        (("user", "grant", "alice", "admin"), ""),
        (("user", "revoke", "alice", "admin"), ""),
        (("user", "set-claim", "alice", "http://wso2.org/claims/emailaddress=a@example.com"), ""),
        (("user", "remove", "PRIMARY/alice"), ""),
        (("user", "add", "PRIMARY/ALICE2", "--password-stdin"), "Pa55word-2!\n"),
    ],
)
def test_an_account_change_bumps_that_accounts_version(
    cli: Cli, conn: RedisConnection, args: tuple[str, ...], stdin: str
) -> None:
    alice, bob = _versions(conn)
    cli.ok(*args, stdin=stdin)
    after_alice, after_bob = _versions(conn)
    assert after_alice != alice
    assert after_bob == bob


def test_role_remove_bumps_every_account(cli: Cli, conn: RedisConnection) -> None:
    alice, bob = _versions(conn)
    cli.ok("role", "add", "auditor")
    assert _versions(conn) == (alice, bob)  # a new role changes nobody
    cli.ok("role", "remove", "admin")
    after_alice, after_bob = _versions(conn)
    assert after_alice != alice and after_bob != bob


def test_show_and_unlock_use_the_redis_lockout(cli: Cli, conn: RedisConnection) -> None:
    lockout = RedisLockoutStore(conn, 5, 300, 86400)
    for _ in range(5):
        lockout.record_failure("PRIMARY/alice", time.time())
    assert "failures: 0 (locked until" in cli.ok("user", "show", "alice")
    assert cli.ok("user", "unlock", "Alice").strip() == "unlocked PRIMARY/Alice"
    assert lockout.state("PRIMARY/alice") is None
    assert "failures:" not in cli.ok("user", "show", "alice")


def test_redis_down_the_change_is_stored_and_the_operator_told(
    cli: Cli, conn: RedisConnection, redis_server: RedisServer
) -> None:
    redis_server.kill()
    cli.fails("user", "passwd", "alice", "--password-stdin", stdin="new-Pa55word!\n",
              message="the change is stored, but running nodes could not be told")
    stored = cli.stored_hash("PRIMARY/alice")
    assert stored is not None and ALICE_PW not in stored
    cli.fails("user", "unlock", "alice", message="a store is unavailable (lockout store: Redis ConnectionError)")


def test_check_config_reaches_the_redis(cli: Cli, redis_server: RedisServer) -> None:
    assert "configuration OK" in cli.ok("check-config")
    redis_server.kill()
    result = cli("check-config")
    assert result.code == 1
    assert "cache: Redis does not answer (cache: Redis ConnectionError)" in result.out + result.err


def test_check_config_reports_a_password_given_twice(cli: Cli, redis_server: RedisServer) -> None:
    config = cli.base / "sts.toml"
    config.write_text(config.read_text().replace('url = "redis://', f'url = "redis://:{redis_server.password}@'))
    result = cli("check-config")
    assert result.code == 1
    assert "cache: give the password once" in result.out + result.err
