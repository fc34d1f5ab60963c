"""Issue 18: reload (``sts reload`` / SIGHUP) under a bounded request loop against gunicorn with 2 workers.

A changed ``sts.toml`` takes effect without a restart and without losing a request; an invalid one is refused
(by ``sts reload`` before anything is signalled, and by the master on a raw SIGHUP) and the running configuration
keeps serving.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from lxml import etree

from tests.load_loop import WST, Answer, LoadLoop, signing_cert_of
from tests.support import Instance, Server, make_instance, start_server

pytestmark = pytest.mark.integration

WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"


@pytest.fixture(scope="module")
def reload_instance(tmp_path_factory: pytest.TempPathFactory) -> Instance:
    return make_instance(tmp_path_factory.mktemp("reload") / "var")


@pytest.fixture(scope="module")
def reload_server(reload_instance: Instance) -> Iterator[Server]:
    server = start_server(reload_instance, workers=2, env={"STS_PIDFILE": str(reload_instance.base / "sts.pid")})
    yield server
    server.stop()


def _lifetime(answer: Answer) -> int:
    root = etree.fromstring(answer.body)
    created = root.findtext(f".//{{{WST}}}Lifetime/{{{WSU}}}Created")
    expires = root.findtext(f".//{{{WST}}}Lifetime/{{{WSU}}}Expires")
    assert created and expires, answer.body[:500]
    span = dt.datetime.fromisoformat(expires) - dt.datetime.fromisoformat(created)
    return int(span.total_seconds()) - 60  # Created is back-dated by [tokens] clock_skew


def _set_lifetime(config: Path, value: str) -> None:
    text = config.read_text()
    lines = [f"lifetime = {value}" if line.startswith("lifetime = ") else line for line in text.splitlines()]
    config.write_text("\n".join(lines) + "\n")


def test_reload_applies_a_changed_configuration_and_refuses_an_invalid_one(
    reload_server: Server, reload_instance: Instance, capsys: pytest.CaptureFixture[str]
) -> None:
    pid_file = reload_instance.base / "sts.pid"
    loop = LoadLoop(reload_server, reload_instance, clients=2, max_requests=2000, pace=0.02)
    loop.start()
    try:
        loop.wait_for(lambda: loop.count() >= 10)
        _set_lifetime(reload_instance.config, "900")
        signalled = time.monotonic()
        assert reload_instance.cli("reload", "--pid-file", str(pid_file)) == 0
        loop.wait_for(lambda: any(a.status == 200 and _lifetime(a) == 900 for a in list(loop.answers)), 60)
        applied = min(a.received for a in list(loop.answers) if a.status == 200 and _lifetime(a) == 900)
        capsys.readouterr()
        with capsys.disabled():  # the measurement README quotes
            print(f"\nreload: first token with the new configuration {applied - signalled:.2f} s after the signal")

        _set_lifetime(reload_instance.config, "-5")  # invalid: must be greater than 0
        assert reload_instance.cli("reload", "--pid-file", str(pid_file)) == 1
        assert "reload refused, nothing changed" in capsys.readouterr().err
        refused_at = loop.count()
        os.kill(int(pid_file.read_text()), signal.SIGHUP)  # the master checks too
        loop.wait_for(lambda: "reload refused" in reload_server.log.read_text(), 30)
        loop.wait_for(lambda: loop.count() >= refused_at + 40, 60)
        assert reload_server.process.poll() is None
    finally:
        loop.stop()
        _set_lifetime(reload_instance.config, "300")
    assert [a.body[:200] for a in loop.answers if a.status != 200] == []
    lifetimes = [_lifetime(a) for a in loop.answers]
    assert lifetimes[0] == 300 and set(lifetimes) == {300, 900}
    assert set(lifetimes[refused_at:]) == {900}  # the refused configuration never served
    for answer in loop.answers[-5:]:
        signing_cert_of(answer, reload_instance, loop.first_published)


def test_a_reload_refused_by_the_application_changes_none_of_gunicorns_settings(tmp_path: Path) -> None:
    """gunicorn reads its settings file before ``on_reload`` builds the application: a file that parses but whose
    application cannot be built (here a signing key that is not there) must not hand gunicorn its settings (here
    the log level) either."""
    instance = make_instance(tmp_path / "var")
    pid_file = instance.base / "sts.pid"
    server = start_server(instance, workers=1, env={"STS_PIDFILE": str(pid_file)})
    try:
        text = instance.config.read_text()
        text = text.replace('level = "INFO"', 'level = "DEBUG"', 1)
        text = "\n".join(
            f'signing_key = "{instance.base / "missing.key.pem"}"' if line.startswith("signing_key = ") else line
            for line in text.splitlines()
        )
        instance.config.write_text(text + "\n")
        os.kill(int(pid_file.read_text()), signal.SIGHUP)
        deadline = time.monotonic() + 30
        while "reload refused" not in server.log.read_text():
            assert time.monotonic() < deadline, server.log.read_text()[-2000:]
            time.sleep(0.1)
        time.sleep(1.0)  # the new worker boots, under whatever log level gunicorn now has
        log = server.log.read_text()
        refused = log.index("reload refused")
        assert '"DEBUG"' not in log[refused:] and "[DEBUG]" not in log[refused:], log[refused:][:2000]
        assert server.process.poll() is None
    finally:
        server.stop()
