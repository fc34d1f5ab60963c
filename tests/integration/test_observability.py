"""``sts serve`` (gunicorn, 2 workers) over HTTP: ``/metrics`` adds up both workers' samples, scrapes under load
never hold up issuance, and ``/readyz`` follows the PostgreSQL store down and back up (``/healthz`` does not)."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from sts.cli import main as sts_main
from tests.servers.postgres import PostgresServer
from tests.support import WST, Instance, Server, free_port, make_instance, rst_envelope, start_server

pytestmark = pytest.mark.integration

ISSUES = 24
WRONG = 3


@pytest.fixture(scope="module")
def metrics_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("prometheus")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, metrics_dir: Path) -> Iterator[tuple[Server, Instance]]:
    instance = make_instance(tmp_path_factory.mktemp("observability") / "var")
    (metrics_dir / "counter_1.db").write_bytes(b"stale")  # a dead server's file: removed at start
    server = start_server(instance, workers=2, env={"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)})
    yield server, instance
    server.stop()


def _url(server: Server, path: str) -> str:
    return server.url.replace("/services/wso2carbon-sts", path)


def _issue(server: Server, instance: Instance, password: str | None = None) -> int:
    body = rst_envelope("admin", password or instance.demo_password)
    with requests.Session() as session:  # a connection of its own: spread over both workers
        response = session.post(
            server.url, data=body, verify=server.verify, timeout=30,
            headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{WST}/RST/Issue"'},
        )
    return response.status_code


def _scrape(server: Server) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = requests.get(_url(server, "/metrics"), verify=server.verify, timeout=10)
    assert response.status_code == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_metrics_add_up_the_samples_of_both_workers(served: tuple[Server, Instance], metrics_dir: Path) -> None:
    server, instance = served
    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = list(pool.map(lambda _: _issue(server, instance), range(ISSUES)))
        statuses += list(pool.map(lambda _: _issue(server, instance, "wrong"), range(WRONG)))
    assert statuses == [200] * ISSUES + [500] * WRONG
    success = (("operation", "issue"), ("outcome", "success"))
    wrong = (("fault", "FailedAuthentication"), ("operation", "issue"), ("reason", "wrong_password"))
    deadline = time.monotonic() + 15  # each worker writes its samples at least once a second
    # Wait for both counts: a worker may write its successes in one flush and the failures that followed in the next.
    while (seen := _scrape(server)).get(("sts_requests_total", success)) != ISSUES or seen.get(
        ("sts_request_failures_total", wrong)
    ) != WRONG:
        assert time.monotonic() < deadline
        time.sleep(0.3)
    pids = {int(m.group(1)) for f in metrics_dir.iterdir() if (m := re.fullmatch(r"counter_(\d+)\.db", f.name))}
    assert len(pids) >= 2 and 1 not in pids  # both workers wrote samples; the stale file is gone
    for _ in range(8):  # scrapes land on either worker: each one sees the whole instance
        found = _scrape(server)
        assert found[("sts_requests_total", success)] == ISSUES
        assert found[("sts_request_failures_total", wrong)] == WRONG
        assert found[("sts_stage_duration_seconds_count", (("stage", "sign"),))] == ISSUES
        assert found[("sts_certificate_expiry_days", (("kind", "tls"), ("name", "tls.crt.pem")))] > 30


def test_scrapes_under_load_never_hold_up_issuance(served: tuple[Server, Instance]) -> None:
    server, instance = served
    stop = threading.Event()
    scrapes: list[int] = []

    def scrape() -> None:
        deadline = time.monotonic() + 60
        while not stop.is_set() and time.monotonic() < deadline and len(scrapes) < 400:
            for path in ("/metrics", "/readyz"):
                scrapes.append(requests.get(_url(server, path), verify=server.verify, timeout=10).status_code)

    scrapers = [threading.Thread(target=scrape) for _ in range(3)]
    for thread in scrapers:
        thread.start()
    try:
        with ThreadPoolExecutor(max_workers=3) as pool:
            statuses = list(pool.map(lambda _: _issue(server, instance), range(30)))
    finally:
        stop.set()
        for thread in scrapers:
            thread.join(30)
    assert statuses == [200] * 30
    assert scrapes and set(scrapes) == {200}


def test_metrics_are_refused_outside_the_allowed_networks(served: tuple[Server, Instance]) -> None:
    server, instance = served
    other = start_server(instance, workers=1, env={"STS_METRICS_ALLOW": "10.9.9.9"})
    try:
        assert requests.get(_url(other, "/metrics"), verify=other.verify, timeout=10).status_code == 403
    finally:
        other.stop()


def test_metrics_on_a_listener_of_their_own_are_served_by_the_master(served: tuple[Server, Instance]) -> None:
    _, instance = served
    port = free_port()
    other = start_server(instance, workers=2, env={"STS_METRICS_BIND": f"127.0.0.1:{port}"})
    try:
        assert _issue(other, instance) == 200
        assert requests.get(_url(other, "/metrics"), verify=other.verify, timeout=10).status_code == 404
        deadline = time.monotonic() + 15  # written by the worker within a second, read by the master
        while 'sts_requests_total{operation="issue",outcome="success"} 1.0' not in (
            requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        ):
            assert time.monotonic() < deadline
            time.sleep(0.3)
    finally:
        other.stop()


@pytest.fixture(scope="module")
def pg_served(
    tmp_path_factory: pytest.TempPathFactory, postgres_session: PostgresServer
) -> Iterator[tuple[Server, Instance]]:
    base = tmp_path_factory.mktemp("ready-pg")
    url = postgres_session.create_database(f"ready_{time.monotonic_ns()}").replace(
        f":{postgres_session.password}@", "@"
    )
    secret = base / "pg-password"
    secret.write_text(postgres_session.password + "\n")
    args = ["init", "--demo", "--key-size", "2048", "--store-url", url, "--store-password-file", str(secret)]
    assert sts_main([*args, str(base / "var")]) == 0
    instance = Instance(base / "var")
    env = {"STS_STORE_OPERATION_TIMEOUT_MS": "1000", "STS_SERVER_READINESS_TIMEOUT_MS": "1500"}
    server = start_server(instance, workers=2, env=env)
    yield server, instance
    server.stop()


def _ready(server: Server) -> tuple[int, dict[str, object]]:
    response = requests.get(_url(server, "/readyz"), verify=server.verify, timeout=10)
    return response.status_code, response.json()


def _until(server: Server, status: int) -> dict[str, object]:
    deadline = time.monotonic() + 30
    while True:
        code, body = _ready(server)
        if code == status:
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.3)


def test_readyz_follows_the_database_down_and_back_while_healthz_stays_up(
    pg_served: tuple[Server, Instance], postgres_server: PostgresServer
) -> None:
    server, _ = pg_served
    assert _ready(server) == (200, {"status": "ready", "checks": {"store": "ok"}})
    postgres_server.stop()
    try:
        body = _until(server, 503)
        assert body["status"] == "not ready" and body["checks"] in ({"store": "down"}, {"store": "timeout"})
        time.sleep(1.2)  # the other worker may reuse its last verdict for a second
        for _ in range(4):  # both workers: each answer is bounded by the readiness timeout
            started = time.monotonic()
            assert _ready(server)[0] == 503
            assert time.monotonic() - started < 5
        assert requests.get(_url(server, "/healthz"), verify=server.verify, timeout=10).status_code == 200
    finally:
        postgres_server.start()
    _until(server, 200)
