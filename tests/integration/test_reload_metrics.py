"""Metrics across a reload (SIGHUP), gunicorn with 2 workers: gunicorn executes its settings file again on every
reload, and the samples the workers wrote so far (prometheus_client's multiprocess files) must survive it, in the
directory the operator names with ``$PROMETHEUS_MULTIPROC_DIR`` as in the one the master creates itself."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest
import requests

from tests.support import WST, Server, make_instance, rst_envelope, start_server

pytestmark = pytest.mark.integration

SUCCESS = 'sts_requests_total{operation="issue",outcome="success"}'


def _issued(server: Server) -> float:
    """The instance's count of successful Issue requests, as a scrape of the main port shows it (0 if none)."""
    response = requests.get(server.url.replace("/services/wso2carbon-sts", "/metrics"), verify=server.verify,
                            timeout=10)
    assert response.status_code == 200
    found = re.search(re.escape(SUCCESS) + r" (\S+)", response.text)
    return float(found.group(1)) if found else 0.0


def _issue(server: Server, password: str) -> None:
    response = server.post(rst_envelope("admin", password), action=f"{WST}/RST/Issue")
    assert response.status_code == 200, response.content[:500]


def _until(server: Server, count: float) -> None:
    """Wait until a scrape shows ``count`` issues (each worker writes its samples within a second)."""
    deadline = time.monotonic() + 15
    while (seen := _issued(server)) != count:
        assert seen <= count and time.monotonic() < deadline, seen
        time.sleep(0.3)


@pytest.mark.parametrize("named", [True, False], ids=["named-directory", "own-directory"])
def test_a_reload_keeps_the_counts_of_every_worker(tmp_path: Path, named: bool) -> None:
    instance = make_instance(tmp_path / "var")
    pid_file = instance.base / "sts.pid"
    metrics_dir = tmp_path / "prometheus"
    env = {"STS_PIDFILE": str(pid_file)} | ({"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)} if named else {})
    server = start_server(instance, workers=2, env=env)
    try:
        for _ in range(6):
            _issue(server, instance.demo_password)
        _until(server, 6)
        os.kill(int(pid_file.read_text()), signal.SIGHUP)
        deadline = time.monotonic() + 30
        while "reloaded: new workers serve the new configuration" not in server.log.read_text():
            assert time.monotonic() < deadline, server.log.read_text()[-2000:]
            time.sleep(0.1)
        for _ in range(3):
            _issue(server, instance.demo_password)  # served by the new workers
        _until(server, 9)  # the six before the reload still count
        time.sleep(2.5)  # the old workers have exited by now (no request held them): still nine
        assert _issued(server) == 9
    finally:
        server.stop()
