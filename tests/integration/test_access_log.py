"""Issue 12, item 17: gunicorn's access log goes where README says, stderr (or ``[logging] file``), never stdout;
as JSON lines by default (like the application log) or as text lines with ``[logging] access_log_format``."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import stat
import time
from pathlib import Path

import pytest
import requests

from tests.support import Instance, Server, rst_envelope, start_server

pytestmark = pytest.mark.integration


def _serve_and_call(instance: Instance, **env: str) -> Server:
    """A server with the access log on, one token request and one health check, then stopped."""
    server = start_server(
        instance, workers=1, tls=False, env={"STS_LOGGING_ACCESS_LOG": "true", **env}, split_output=True
    )
    try:
        response = server.post(rst_envelope("admin", instance.demo_password))
        assert response.status_code == 200
        health = requests.get(server.url.replace("/services/wso2carbon-sts", "/healthz"), timeout=30)
        assert health.status_code == 200
    finally:
        server.stop()
    return server


def _access_records(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if '"logger": "gunicorn.access"' in line]


def test_access_log_is_json_lines_on_stderr_by_default(instance: Instance) -> None:
    server = _serve_and_call(instance)
    assert server.stdout_log is not None
    stdout, stderr = server.stdout_log.read_text(), server.log.read_text()
    assert "/healthz" not in stdout and "gunicorn.access" not in stdout
    records = _access_records(stderr)[-2:]  # before them: start_server's readiness checks of /healthz
    assert [(r["method"], r["path"], r["status"]) for r in records] == [
        ("POST", "/services/wso2carbon-sts", 200),
        ("GET", "/healthz", 200),
    ]
    post = records[0]
    assert post["client"] == "127.0.0.1"
    assert post["protocol"] == "HTTP/1.1"
    assert isinstance(post["bytes"], int) and post["bytes"] > 1000
    assert isinstance(post["duration_ms"], float | int)
    assert {"time", "level", "pid", "message"} <= set(post)
    assert instance.demo_password not in stderr + stdout


def test_access_log_as_text_lines(instance: Instance) -> None:
    server = _serve_and_call(instance, STS_LOGGING_ACCESS_LOG_FORMAT="text")
    assert server.stdout_log is not None
    assert "/healthz" not in server.stdout_log.read_text()
    lines = server.log.read_text().splitlines()
    assert any(re.fullmatch(r'127\.0\.0\.1 "GET /healthz HTTP/1\.1" 200 16 \d+ms', line) for line in lines), lines
    assert any(line.startswith('127.0.0.1 "POST /services/wso2carbon-sts HTTP/1.1" 200 ') for line in lines)
    assert _access_records(server.log.read_text()) == []


def test_access_log_follows_the_logging_file(instance: Instance, tmp_path: Path) -> None:
    log_file = tmp_path / "sts.log"
    umask = os.umask(0o022)  # the usual shell umask: gunicorn created the file 0644, readable by every user
    try:
        server = _serve_and_call(instance, STS_LOGGING_FILE=str(log_file))
    finally:
        os.umask(umask)
    assert stat.S_IMODE(log_file.stat().st_mode) == 0o600  # it names users and client addresses
    assert server.stdout_log is not None
    text = log_file.read_text()
    records = _access_records(text)
    assert [r["path"] for r in records][-2:] == ["/services/wso2carbon-sts", "/healthz"]
    assert "Booting worker" in text  # gunicorn's own messages follow the file too
    assert "/healthz" not in server.log.read_text() + server.stdout_log.read_text()


def test_access_log_off(instance: Instance) -> None:
    server = _serve_and_call(instance, STS_LOGGING_ACCESS_LOG="false")
    assert server.stdout_log is not None
    assert "/healthz" not in server.log.read_text() + server.stdout_log.read_text()


# What misconfigured clients and probes put in query strings: credentials the redaction filter's keyword
# patterns do not all recognise (an OAuth token, a client secret, a password under another name, a bare token).
_SECRETS = ("SECRET-A1", "SECRET-B2", "SECRET-C3", "SECRET-D4", "SECRET-E5")
_QUERY = (f"user=alice&access_token={_SECRETS[0]}&client_secret={_SECRETS[1]}&pwd={_SECRETS[2]}"
          f"&wresult=%3Csaml%3A{_SECRETS[3]}&{_SECRETS[4]}")


@pytest.mark.parametrize("access_format", ["json", "text"])
def test_access_log_never_shows_query_values(instance: Instance, access_format: str) -> None:
    """Query parameters are logged by name, never by value (a 404, a refused method and a SOAP POST alike);
    the one query string the STS answers, ``?wsdl``, is logged as it is."""
    server = start_server(instance, workers=1, tls=False, split_output=True,
                          env={"STS_LOGGING_ACCESS_LOG": "true", "STS_LOGGING_ACCESS_LOG_FORMAT": access_format})
    base = server.url.replace("/services/wso2carbon-sts", "")
    try:
        assert requests.get(f"{base}/adfs/ls/?{_QUERY}", timeout=30).status_code == 404
        assert requests.get(f"{server.url}?{_QUERY}", timeout=30).status_code == 405
        assert server.post(rst_envelope("admin", instance.demo_password), params=_QUERY).status_code == 200
        assert requests.get(f"{server.url}?wsdl", timeout=30).status_code == 200
    finally:
        server.stop()
    text = server.log.read_text()
    assert not [secret for secret in _SECRETS if secret in text]
    masked = ("user=[redacted]&access_token=[redacted]&client_secret=[redacted]&pwd=[redacted]&wresult=[redacted]"
              "&[redacted]")
    if access_format == "json":
        records = _access_records(text)
        assert [(r["path"], r["query"]) for r in records if r["path"] != "/healthz"] == [
            ("/adfs/ls/", masked), ("/services/wso2carbon-sts", masked), ("/services/wso2carbon-sts", masked),
            ("/services/wso2carbon-sts", "wsdl"),
        ]
    else:
        lines = [line for line in text.splitlines() if line.startswith('127.0.0.1 "')]
        assert [line.split('"')[1] for line in lines if "/healthz" not in line] == [
            f"GET /adfs/ls/?{masked} HTTP/1.1", f"GET /services/wso2carbon-sts?{masked} HTTP/1.1",
            f"POST /services/wso2carbon-sts?{masked} HTTP/1.1", "GET /services/wso2carbon-sts?wsdl HTTP/1.1",
        ]


@pytest.mark.parametrize("access_log", ["true", "false"])
def test_log_file_reopened_on_usr1_is_created_0600_too(instance: Instance, tmp_path: Path, access_log: str) -> None:
    """logrotate moves the file away and sends SIGUSR1 (gunicorn's "reopen the log files"): the file the master
    and the workers then create names users and client addresses like the first one, so it is 0600 whatever the
    umask too (it was created with the umask's mode, 0644 from a shell)."""
    log_file = tmp_path / "sts.log"
    umask = os.umask(0o022)
    try:
        server = start_server(instance, workers=1, tls=False, split_output=True,
                              env={"STS_LOGGING_ACCESS_LOG": access_log, "STS_LOGGING_FILE": str(log_file)})
    finally:
        os.umask(umask)
    try:
        assert server.post(rst_envelope("admin", instance.demo_password)).status_code == 200
        log_file.rename(tmp_path / "sts.log.1")
        os.kill(server.process.pid, signal.SIGUSR1)
        deadline = time.monotonic() + 20
        while not log_file.exists() or (access_log == "true" and "gunicorn.access" not in log_file.read_text()):
            assert server.post(rst_envelope("admin", instance.demo_password)).status_code == 200
            assert time.monotonic() < deadline
            time.sleep(0.2)
    finally:
        server.stop()
    assert stat.S_IMODE(log_file.stat().st_mode) == 0o600


def test_the_audit_log_follows_the_file_reopened_on_usr1(instance: Instance, tmp_path: Path) -> None:
    """After logrotate moved the file and sent SIGUSR1, gunicorn reopened its own handlers only: the application
    log, audit events included, went on into the moved file (sts.log.1) until a reload or restart."""
    log_file = tmp_path / "sts.log"
    server = start_server(instance, workers=1, tls=False, split_output=True, env={"STS_LOGGING_FILE": str(log_file)})
    try:
        assert server.post(rst_envelope("admin", instance.demo_password)).status_code == 200
        log_file.rename(tmp_path / "sts.log.1")
        os.kill(server.process.pid, signal.SIGUSR1)
        deadline = time.monotonic() + 20
        while '"sts.audit"' not in (log_file.read_text() if log_file.exists() else ""):
            # An unknown user: a wrong password would lock the session's demo account for the other tests.
            assert server.post(rst_envelope("no-such-user", "wrong password")).status_code == 500
            assert time.monotonic() < deadline, (tmp_path / "sts.log.1").read_text()[-2000:]
            time.sleep(0.2)
    finally:
        server.stop()
    assert stat.S_IMODE(log_file.stat().st_mode) == 0o600


@pytest.mark.parametrize("access_format", ["json", "text"])
def test_access_log_never_shows_credentials_of_an_absolute_form_target(instance: Instance, access_format: str) -> None:
    """A request line in absolute form (``GET http://user:password@host/path HTTP/1.1``, RFC 9112 §3.2.2, as a
    client configured with a proxy-style URL sends it): gunicorn accepts it, and the text format's request line is
    the raw target, so the URL's user information was logged verbatim; it is masked like the query's values."""
    server = start_server(instance, workers=1, tls=False, split_output=True,
                          env={"STS_LOGGING_ACCESS_LOG": "true", "STS_LOGGING_ACCESS_LOG_FORMAT": access_format})
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as client:
            client.sendall(b"GET http://bob:SECRET-F6@127.0.0.1/healthz?x=SECRET-G7 HTTP/1.1\r\n"
                           b"Host: 127.0.0.1\r\nConnection: close\r\n\r\n")
            assert client.recv(64).startswith(b"HTTP/1.1 200 ")
        deadline = time.monotonic() + 10
        while "/healthz?x=" not in server.log.read_text() and '"query": "x=' not in server.log.read_text():
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        server.stop()
    text = server.log.read_text()
    assert "SECRET-F6" not in text and "SECRET-G7" not in text and "bob" not in text
    if access_format == "text":
        assert '"GET http://[redacted]@127.0.0.1/healthz?x=[redacted] HTTP/1.1"' in text
