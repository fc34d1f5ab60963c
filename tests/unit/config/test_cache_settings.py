"""``[cache]`` in sts.toml and the environment: the backend, its URL (``STS_CACHE_URL`` overrides it) and bounded
timeouts; the Redis password is never a setting (``$STS_CACHE_PASSWORD`` is read by the backend itself)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sts.config.loader import foreign_environment, load_settings
from sts.errors import ConfigError


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sts.toml"
    path.write_text(text)
    return path


def test_default_is_the_local_cache(tmp_path: Path) -> None:
    cache = load_settings(_write(tmp_path, ""), env={}).cache
    assert (cache.backend, cache.url, cache.socket_timeout_ms, cache.connect_timeout_ms) == ("local", "", 300, 300)


def test_redis_from_the_file_and_the_url_from_the_environment(tmp_path: Path) -> None:
    path = _write(tmp_path, '[cache]\nbackend = "redis"\nurl = "redis://file:6379/0"\nca_file = "ca.pem"\n'
                            'password_file = "/run/secrets/redis"\nsocket_timeout_ms = 500\n')
    cache = load_settings(path, env={"STS_CACHE_URL": "rediss://cache.internal:6380/1"}).cache
    assert cache.backend == "redis"
    assert cache.url == "rediss://cache.internal:6380/1"
    assert cache.ca_file == tmp_path / "ca.pem"
    assert cache.password_file == Path("/run/secrets/redis")
    assert cache.socket_timeout_ms == 500


def test_the_password_variable_is_not_a_setting(tmp_path: Path) -> None:
    env = {"STS_CACHE_PASSWORD": "s3cret"}
    assert load_settings(_write(tmp_path, ""), env=env).cache.url == ""
    assert foreign_environment(env) == []


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('backend = "memcached"', "[cache] backend: must be local or redis"),
        ('url = "http://cache:6379"', "[cache] url: must be a redis:// or rediss:// URL"),
        ("socket_timeout_ms = 0", "[cache] socket_timeout_ms: must be between 10 and 10000"),
        ("connect_timeout_ms = 60000", "[cache] connect_timeout_ms: must be between 10 and 10000"),
        ("max_connections = 0", "[cache] max_connections: must be between 1 and 256"),
        ('password = "in-the-file"', "[cache] unknown key 'password'"),
    ],
)
def test_bad_values_are_refused(tmp_path: Path, text: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(_write(tmp_path, f"[cache]\n{text}\n"), env={})
    assert any(problem in line for line in caught.value.problems), caught.value.problems


@pytest.mark.parametrize("url", [
    "rediss+sentinel://:hunter2@cache.internal:6379/0",  # a scheme redis-py knows, not one we accept
    "REDIS://default:hunter2@cache.internal:6379/0",  # the scheme's case
    "redis//:hunter2@cache.internal",  # a missing colon
])
@pytest.mark.parametrize("password", ["hunter2", "hun/ter2", "hun#ter2", "hun?ter2", "hu@n/ter2"],
                         ids=["plain", "slash", "hash", "question", "at-slash"])
@pytest.mark.parametrize("where", ["file", "environment"])
def test_a_refused_url_is_never_echoed_with_its_password(tmp_path: Path, url: str, where: str, password: str) -> None:
    """check-config prints problems and the gunicorn master logs them: the URL they quote has its user
    information masked (the password in a URL, often from $STS_CACHE_URL, is accepted when the URL is), whatever
    the password holds: a generated one (base64: ``/``) typed unencoded must not end the masking early."""
    url = url.replace("hunter2", password)
    text = f'[cache]\nurl = "{url}"\n' if where == "file" else ""
    env = {"STS_CACHE_URL": url} if where == "environment" else {}
    with pytest.raises(ConfigError) as caught:
        load_settings(_write(tmp_path, text), env=env)
    (problem,) = caught.value.problems
    assert "hun" not in problem and "ter2" not in problem
    assert "must be a redis:// or rediss:// URL (got '" in problem and "***@cache.internal" in problem
