"""Metrics across a reload (SIGHUP), gunicorn with 2 workers: gunicorn executes its settings file again on every
reload, and the samples the workers wrote so far (prometheus_client's multiprocess files) must survive it, in the
directory the operator names with ``$PROMETHEUS_MULTIPROC_DIR`` as in the one the master creates itself."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import time
from pathlib import Path

import pytest
import requests

from tests.support import WST, Instance, Server, free_port, make_instance, rst_envelope, start_server

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


def _reloaded(server: Server, pid_file: Path) -> None:
    """SIGHUP to the master, and wait until it installed the new application."""
    before = server.log.read_text().count("reloaded: new workers serve the new configuration")
    os.kill(int(pid_file.read_text()), signal.SIGHUP)
    deadline = time.monotonic() + 30
    while server.log.read_text().count("reloaded: new workers serve the new configuration") == before:
        assert time.monotonic() < deadline, server.log.read_text()[-2000:]
        time.sleep(0.1)


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
        _reloaded(server, pid_file)
        for _ in range(3):
            _issue(server, instance.demo_password)  # served by the new workers
        _until(server, 9)  # the six before the reload still count
        time.sleep(2.5)  # the old workers have exited by now (no request held them): still nine
        assert _issued(server) == 9
    finally:
        server.stop()


def _listening(tmp_path: Path, workers: int) -> tuple[Instance, Path, int, Server]:
    """A new instance served with ``[metrics] bind`` on a free port, and a pid file for ``sts reload``."""
    instance = make_instance(tmp_path / "var")
    pid_file = instance.base / "sts.pid"
    port = free_port()
    config = instance.config.read_text()
    instance.config.write_text(config.replace('bind = ""', f'bind = "127.0.0.1:{port}"', 1))
    return instance, pid_file, port, start_server(instance, workers=workers, env={"STS_PIDFILE": str(pid_file)})


def _renamed_signing_files(instance: Instance) -> str:
    """Copy the signing key pair under new file names (a renewed certificate); the config text naming them."""
    keystore = instance.base / "keystore"
    shutil.copy(keystore / "sts-signing.key.pem", keystore / "renewed.key.pem")
    shutil.copy(keystore / "sts-signing.crt.pem", keystore / "renewed.crt.pem")
    text = instance.config.read_text().replace("sts-signing.key.pem", "renewed.key.pem")
    return text.replace("sts-signing.crt.pem", "renewed.crt.pem")


def _listener_signing_certs(port: int) -> set[str]:
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return set(re.findall(r'sts_certificate_expiry_days\{kind="signing",name="([^"]+)"\}', text))


def _listener_shows(port: int, name: str) -> None:
    """Wait until the listener on ``port`` reports the signing certificate ``name`` (the master hands the listener
    over right after it logged the reload), and only that one."""
    deadline = time.monotonic() + 10
    while True:
        try:
            if _listener_signing_certs(port) == {name}:
                return
        except requests.ConnectionError:
            pass  # not listening yet
        assert time.monotonic() < deadline, name
        time.sleep(0.2)


def test_the_masters_listener_follows_a_reload(tmp_path: Path) -> None:
    """``[metrics] bind`` is served by the master: after a reload it reports the new configuration's certificates
    (here the signing certificate under a new file name), on the same address, then on the address a further
    reload gives it, and the old address stops answering."""
    instance, pid_file, port, server = _listening(tmp_path, workers=1)
    other = free_port()
    try:
        assert _listener_signing_certs(port) == {"sts-signing.crt.pem"}
        instance.config.write_text(_renamed_signing_files(instance))
        _reloaded(server, pid_file)
        _listener_shows(port, "renewed.crt.pem")

        instance.config.write_text(instance.config.read_text().replace(f":{port}", f":{other}", 1))
        _reloaded(server, pid_file)
        _listener_shows(other, "renewed.crt.pem")
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    finally:
        server.stop()


def test_a_reload_to_a_taken_listener_address_keeps_the_server_and_its_listener(tmp_path: Path) -> None:
    """A reload whose ``[metrics] bind`` cannot be bound (the port taken by another program) must not stop the
    master: gunicorn's main loop stops everything on an exception from ``on_reload``. The server keeps serving,
    the listener keeps answering on its old address (with the new configuration), and the master says why."""
    instance, pid_file, port, server = _listening(tmp_path, workers=1)
    taken = socket.socket()
    try:
        assert _listener_signing_certs(port) == {"sts-signing.crt.pem"}
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        other = taken.getsockname()[1]
        instance.config.write_text(instance.config.read_text().replace(f":{port}", f":{other}", 1))
        _reloaded(server, pid_file)
        deadline = time.monotonic() + 10
        while "metrics listener" not in server.log.read_text():
            assert server.process.poll() is None, server.log.read_text()[-3000:]
            assert time.monotonic() < deadline, server.log.read_text()[-3000:]
            time.sleep(0.1)
        time.sleep(1)
        assert server.process.poll() is None, server.log.read_text()[-3000:]
        _issue(server, instance.demo_password)
        assert _listener_signing_certs(port) == {"sts-signing.crt.pem"}
    finally:
        taken.close()
        server.stop()


def test_a_reload_can_move_the_listener_to_another_host_on_the_same_port(tmp_path: Path) -> None:
    """127.0.0.1:P to 0.0.0.0:P (opening the listener to Prometheus on the network): the new address overlaps the
    old one, so the old listener must go first, and its port must be free then: the workers forked while it
    listened must not hold a copy of its socket (they did: the move failed, and stopped the server)."""
    instance, pid_file, port, server = _listening(tmp_path, workers=2)
    try:
        assert _listener_signing_certs(port) == {"sts-signing.crt.pem"}
        text = _renamed_signing_files(instance)
        instance.config.write_text(text.replace(f'"127.0.0.1:{port}"', f'"0.0.0.0:{port}"', 1))
        _reloaded(server, pid_file)
        _listener_shows(port, "renewed.crt.pem")
        assert server.process.poll() is None
        assert "metrics listener could not be moved" not in server.log.read_text()
    finally:
        server.stop()
