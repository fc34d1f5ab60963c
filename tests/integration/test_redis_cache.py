"""``sts serve`` (gunicorn, 2 workers) with ``[cache] backend = "redis"`` on a real redis-server: replays refused
across workers, a password changed by the CLI (another process, as on another node) stops cached logins at once,
and a Redis that dies yields faults only, then tokens again once it is back, with no restart of the STS."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.servers.delay_proxy import delay_proxy
from tests.servers.redis import RedisServer
from tests.support import (
    S11,
    STS_BIN,
    Instance,
    Server,
    audit_records,
    fault_qname,
    fault_string,
    make_instance,
    rst_envelope,
    start_server,
)

pytestmark = pytest.mark.integration

RECOVERY = 10.0  # seconds the first token may take after Redis is back (the first messages predate its new epoch)


def issued(response: requests.Response) -> bool:
    """Authentication passed and a token was issued."""
    return response.status_code == 200 and b"RequestSecurityTokenResponseCollection" in response.content


def unavailable(response: requests.Response) -> bool:
    """The fail-closed answer: soap:Server "Service unavailable"."""
    return (
        response.status_code == 500
        and fault_qname(response.content) == (S11, "Server")
        and fault_string(response.content) == "Service unavailable"
    )


@pytest.fixture(scope="module")
def redis_instance(tmp_path_factory: pytest.TempPathFactory, redis_session: RedisServer) -> Instance:
    instance = make_instance(tmp_path_factory.mktemp("redis-cache") / "var")
    # The password is not in the file: the server gets it from $STS_CACHE_PASSWORD.
    url = redis_session.url.replace(f":{redis_session.password}@", "")
    text = instance.config.read_text()
    instance.config.write_text(text.replace('backend = "local"', f'backend = "redis"\nurl = "{url}"'))
    return instance


@pytest.fixture(scope="module")
def redis_sts(redis_instance: Instance, redis_session: RedisServer) -> Iterator[Server]:
    with redis_session.client() as client:
        client.flushdb()
    server = start_server(redis_instance, workers=2, tls=False, env={"STS_CACHE_PASSWORD": redis_session.password})
    yield server
    server.stop()


def _issue(server: Server, password: str) -> requests.Response:
    return server.post(rst_envelope("admin", password))


def _first_token(server: Server, password: str) -> None:
    """Tokens are issued: faults only until then (a Redis new to the STS refuses messages created before it)."""
    deadline = time.monotonic() + RECOVERY
    while True:
        response = _issue(server, password)
        if issued(response):
            return
        assert fault_qname(response.content)[1] in ("InvalidSecurity", "Server"), response.content
        assert time.monotonic() < deadline, response.content
        time.sleep(0.2)


def test_a_replayed_nonce_is_refused(redis_sts: Server, redis_instance: Instance) -> None:
    _first_token(redis_sts, redis_instance.demo_password)
    envelope = rst_envelope("admin", redis_instance.demo_password)
    answers = [redis_sts.post(envelope) for _ in range(6)]  # across both workers
    assert issued(answers[0])
    for replay in answers[1:]:
        assert replay.status_code == 500
        assert fault_qname(replay.content)[1] == "InvalidSecurity"


def test_a_password_change_stops_cached_logins_at_once(
    redis_sts: Server, redis_instance: Instance, redis_session: RedisServer
) -> None:
    old = redis_instance.demo_password
    _first_token(redis_sts, old)
    for _ in range(10):  # both workers now hold the verified password in their caches (60 s TTL)
        assert issued(_issue(redis_sts, old))
    new = "Changed-Pa55word!"
    subprocess.run(
        [str(STS_BIN), "--config", str(redis_instance.config), "user", "passwd", "admin", "--password-stdin"],
        input=f"{new}\n", text=True, env=redis_sts.env, check=True, capture_output=True, timeout=60,
    )
    try:
        for _ in range(3):  # fewer than [lockout] max_failures
            refused = _issue(redis_sts, old)
            assert fault_qname(refused.content)[1] == "FailedAuthentication", refused.content
        assert issued(_issue(redis_sts, new))
    finally:
        subprocess.run(
            [str(STS_BIN), "--config", str(redis_instance.config), "user", "passwd", "admin", "--password-stdin"],
            input=f"{old}\n", text=True, env=redis_sts.env, check=True, capture_output=True, timeout=60,
        )
        subprocess.run(
            [str(STS_BIN), "--config", str(redis_instance.config), "user", "unlock", "admin"],
            env=redis_sts.env, check=True, capture_output=True, timeout=60,
        )


def test_redis_killed_faults_only_then_tokens_again(
    redis_sts: Server, redis_instance: Instance, redis_session: RedisServer
) -> None:
    password = redis_instance.demo_password
    _first_token(redis_sts, password)
    redis_session.kill()
    try:
        for _ in range(6):
            start = time.monotonic()
            response = _issue(redis_sts, password)
            assert unavailable(response), response.content
            assert time.monotonic() - start < 5
    finally:
        redis_session.start()  # same port, empty
    _first_token(redis_sts, password)
    assert issued(_issue(redis_sts, password))


def test_redis_hung_faults_within_the_timeout(
    redis_sts: Server, redis_instance: Instance, redis_session: RedisServer
) -> None:
    password = redis_instance.demo_password
    _first_token(redis_sts, password)
    redis_session.pause()
    try:
        for _ in range(4):
            start = time.monotonic()
            response = _issue(redis_sts, password)
            assert unavailable(response), response.content
            assert time.monotonic() - start < 0.3 + 2  # the socket timeout, with room for the HTTP round trip
    finally:
        redis_session.resume()
    _first_token(redis_sts, password)


def test_redis_answering_each_command_just_in_time_fails_the_request_within_one_budget(
    tmp_path: Path, redis_session: RedisServer
) -> None:
    """A Redis (here: a delaying proxy) answering every command in 2.5 s, within socket_timeout (3 s): a request's
    three or four round trips together get connect_timeout + socket_timeout (1 + 3 s), so the request fails closed
    in time and gunicorn (timeout 7 s) never kills the worker that serves it (it did: 7.5-10 s a request)."""
    instance = make_instance(tmp_path / "var")
    with delay_proxy(redis_session.port) as proxy:
        url = f"redis://127.0.0.1:{proxy.port}/{redis_session.db}"
        text = instance.config.read_text()
        instance.config.write_text(text.replace('backend = "local"', f'backend = "redis"\nurl = "{url}"'))
        env = {
            "STS_CACHE_PASSWORD": redis_session.password,
            "STS_CACHE_SOCKET_TIMEOUT_MS": "3000",
            "STS_CACHE_CONNECT_TIMEOUT_MS": "1000",
            "STS_SERVER_TIMEOUT": "7",
        }
        server = start_server(instance, workers=1, tls=False, env=env)
        try:
            _first_token(server, instance.demo_password)  # a pooled connection
            proxy.delay = 1.25  # each round trip 2.5 s: within socket_timeout, two of them are not within the budget
            for _ in range(2):
                started = time.monotonic()
                response = _issue(server, instance.demo_password)
                assert time.monotonic() - started < 4 + 0.8
                assert unavailable(response), response.content
                assert str(audit_records(server.log)[-1]["reason"]).endswith("_down")  # where the budget ran out
            proxy.delay = 0
            _first_token(server, instance.demo_password)
        finally:
            server.stop()
        assert "WORKER TIMEOUT" not in server.log.read_text(errors="replace")
