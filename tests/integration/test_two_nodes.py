"""Two STS nodes behind one PostgreSQL and one Redis behave as one STS.

Each node is its own ``sts serve`` (its own gunicorn master and 2 workers, its own port, its own copy of the
instance directory: the same signing key and configuration, as an operator deploys N nodes), sharing the durable
state in PostgreSQL and the hot state in Redis, both real servers on 127.0.0.1. The CLI runs against the shared
database as on a third machine.
"""

from __future__ import annotations

import io
import os
import shutil
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
import requests

from sts.cli import main as sts_main
from tests.integration.test_lifecycle import first_token, lifecycle_request, post_ok, status_of
from tests.servers.postgres import PostgresServer
from tests.servers.redis import RedisServer
from tests.support import (
    S11,
    WSSE,
    WST,
    Instance,
    Server,
    audit_records,
    fault_qname,
    fault_string,
    rst_envelope,
    start_server,
)

pytestmark = pytest.mark.integration

SAML2 = "urn:oasis:names:tc:SAML:2.0:assertion"
DEMO_RP = "https://localhost:8443/demo-rp/"
PROPAGATION = 1.0  # seconds a change made on one node (or by the CLI) may take to reach the other


@dataclass
class Cluster:
    a: Server
    b: Server
    instance: Instance  # node A's directory; the CLI uses it (same config as B's copy)
    env: dict[str, str]  # what the CLI needs besides the file: the Redis password

    def cli(self, *args: str, stdin: str = "") -> int:
        saved_env = {k: os.environ.get(k) for k in self.env}
        saved_stdin, sys.stdin = sys.stdin, io.StringIO(stdin)
        os.environ.update(self.env)
        try:
            return sts_main(["--config", str(self.instance.config), *args])
        finally:
            sys.stdin = saved_stdin
            for key, value in saved_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def issued(response: requests.Response) -> bool:
    return response.status_code == 200 and b"RequestSecurityTokenResponseCollection" in response.content


def unavailable(response: requests.Response) -> bool:
    return (
        response.status_code == 500
        and fault_qname(response.content) == (S11, "Server")
        and fault_string(response.content) == "Service unavailable"
    )


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, postgres_session: PostgresServer, redis_session: RedisServer
) -> Iterator[Cluster]:
    base = tmp_path_factory.mktemp("two-nodes")
    url = postgres_session.create_database(f"nodes_{time.monotonic_ns()}")
    url = url.replace(f":{postgres_session.password}@", "@")
    secret = base / "pg-password"
    secret.write_text(postgres_session.password + "\n")
    args = ["init", "--demo", "--key-size", "2048", "--store-url", url, "--store-password-file", str(secret)]
    assert sts_main([*args, str(base / "node-a")]) == 0
    node_a = Instance(base / "node-a")
    redis_url = redis_session.url.replace(f":{redis_session.password}@", "")
    text = node_a.config.read_text()
    node_a.config.write_text(text.replace('backend = "local"', f'backend = "redis"\nurl = "{redis_url}"'))
    shutil.copytree(node_a.base, base / "node-b")  # the same key and configuration on the second node
    node_b = Instance(base / "node-b")
    with redis_session.client() as client:
        client.flushdb()
    env = {"STS_CACHE_PASSWORD": redis_session.password}
    a = start_server(node_a, workers=2, env=env)
    try:
        b = start_server(node_b, workers=2, env=env)
    except BaseException:
        a.stop()
        raise
    try:
        yield Cluster(a, b, node_a, env)
    finally:
        a.stop()
        b.stop()


def _until(condition: object, deadline: float) -> bool:
    """Poll ``condition()`` until it holds or ``deadline`` seconds have passed."""
    end = time.monotonic() + deadline
    while True:
        if condition():  # type: ignore[operator]
            return True
        if time.monotonic() >= end:
            return False
        time.sleep(0.2)


def test_one_nonce_sent_to_both_nodes_fifty_times_is_accepted_once(cluster: Cluster) -> None:
    body = rst_envelope("admin", cluster.instance.demo_password)
    nodes = [cluster.a, cluster.b] * 25
    with ThreadPoolExecutor(max_workers=16) as pool:
        responses = list(pool.map(lambda node: node.post(body), nodes))
    assert sum(issued(r) for r in responses) == 1
    refused = [r for r in responses if not issued(r)]
    assert all(fault_qname(r.content) == (WSSE, "InvalidSecurity") for r in refused)


def test_failures_on_node_a_lock_the_account_on_node_b(cluster: Cluster) -> None:
    assert cluster.cli("user", "add", "victim", "--role", "admin", "--password-stdin", stdin="Correct-Horse-1\n") == 0
    for _ in range(5):  # [lockout] max_failures
        assert fault_qname(cluster.a.post(rst_envelope("victim", "wrong")).content) == (WSSE, "FailedAuthentication")
    refused = cluster.b.post(rst_envelope("victim", "Correct-Horse-1"))
    assert fault_qname(refused.content) == (WSSE, "FailedAuthentication")
    assert audit_records(cluster.b.log)[-1]["reason"] == "account_locked"


def test_a_relying_party_added_with_the_cli_is_served_by_both_nodes_within_a_second(cluster: Cluster) -> None:
    address = "https://new-rp.example.org/app/"
    cert = cluster.instance.base / "demo-rp" / "rp.crt.pem"
    body = lambda: rst_envelope("admin", cluster.instance.demo_password, applies_to=address)  # noqa: E731
    assert not issued(cluster.a.post(body()))  # unknown before
    assert cluster.cli("rp", "add", address, "--cert", str(cert)) == 0
    added = time.monotonic()
    for node in (cluster.a, cluster.b):
        assert _until(lambda node=node: issued(node.post(body())), PROPAGATION - (time.monotonic() - added) + 0.5)


def test_a_token_issued_on_a_is_validated_renewed_and_cancelled_on_b(cluster: Cluster) -> None:
    instance = cluster.instance
    body = rst_envelope("admin", instance.demo_password, token_type=SAML2, extra_rst='<wst:Renewing Allow="true"/>')
    token = first_token(post_ok(cluster.a, body, f"{WST}/RST/Issue"))
    validate = lifecycle_request(instance, "Validate", token, SAML2)
    assert status_of(post_ok(cluster.b, validate, f"{WST}/RST/Validate")) == "valid"
    renewed = first_token(post_ok(cluster.b, lifecycle_request(instance, "Renew", token, SAML2), f"{WST}/RST/Renew"))
    again = cluster.a.post(lifecycle_request(instance, "Renew", token, SAML2), action=f"{WST}/RST/Renew")
    assert again.status_code == 500  # the chain moved on: the old token is renewed once, on whichever node
    post_ok(cluster.b, lifecycle_request(instance, "Cancel", renewed, SAML2), f"{WST}/RST/Cancel")
    validate_renewed = lifecycle_request(instance, "Validate", renewed, SAML2)
    assert status_of(post_ok(cluster.a, validate_renewed, f"{WST}/RST/Validate")) == "invalid"


def test_a_password_changed_via_node_a_stops_cached_logins_on_node_b_within_a_second(cluster: Cluster) -> None:
    assert cluster.cli("user", "add", "rotating", "--role", "admin", "--password-stdin", stdin="Old-Horse-1\n") == 0
    for _ in range(4):  # both workers of B have the login in their credential cache
        assert issued(cluster.b.post(rst_envelope("rotating", "Old-Horse-1")))
    assert cluster.cli("user", "passwd", "rotating", "--password-stdin", stdin="New-Horse-2\nNew-Horse-2\n") == 0
    changed = time.monotonic()
    # Each refused attempt counts towards the lockout (5): one poll at a time, a few more to reach both workers.
    assert _until(lambda: not issued(cluster.b.post(rst_envelope("rotating", "Old-Horse-1"))), PROPAGATION)
    assert time.monotonic() - changed < PROPAGATION + 0.5
    for _ in range(2):  # and never again, on either worker
        assert not issued(cluster.b.post(rst_envelope("rotating", "Old-Horse-1")))
    assert audit_records(cluster.b.log)[-1]["reason"] == "wrong_password"  # refused by the store, not the cache
    assert issued(cluster.a.post(rst_envelope("rotating", "New-Horse-2")))


def test_killing_redis_yields_faults_only_and_service_resumes_when_it_is_back(
    cluster: Cluster, redis_server: RedisServer
) -> None:
    password = cluster.instance.demo_password
    redis_server.kill()
    try:
        for node in (cluster.a, cluster.b, cluster.a, cluster.b):
            response = node.post(rst_envelope("admin", password))
            assert unavailable(response), response.content[:500]
    finally:
        redis_server.start()
    for node in (cluster.a, cluster.b):
        assert _until(lambda node=node: issued(node.post(rst_envelope("admin", password))), 10.0)
