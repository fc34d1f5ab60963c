"""Stopping the server: a stop signal that reaches a worker while it boots is not lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.support import Instance, free_port

# gunicorn's settings file with one test hook: as the first worker boots (before it has signal handlers of its own)
# it asks the master to stop, and stays in the hook for a second, so the master's SIGTERM to it arrives meanwhile.
_STOP_WHILE_BOOTING = """
import os, signal, time
from sts.gunicorn_conf import *  # noqa: F403

def post_fork(server, worker):
    os.kill(server.pid, signal.SIGTERM)
    time.sleep(1.0)
"""


def test_a_sigterm_that_reaches_a_booting_worker_stops_it(instance: Instance, tmp_path: Path) -> None:
    """Until its handlers were installed a worker ran the master's, which only queued the signal: a SIGTERM sent
    while it booted (``systemctl stop`` right after a start) was lost, and the master waited ``graceful_timeout``
    before killing the worker."""
    settings = tmp_path / "stop_while_booting.py"
    settings.write_text(_STOP_WHILE_BOOTING)
    env = {k: v for k, v in os.environ.items() if not k.startswith("STS_")} | {
        "STS_CONFIG": str(instance.config),
        "STS_SERVER_BIND": f"127.0.0.1:{free_port()}",
        "STS_SERVER_WORKERS": "1",
        "STS_SERVER_GRACEFUL_TIMEOUT": "120",
    }
    argv = [sys.executable, "-P", "-m", "sts.gunicorn_main", "-c", str(settings)]
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        master = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
    try:
        code = master.wait(timeout=30)
    except subprocess.TimeoutExpired:
        master.send_signal(signal.SIGQUIT)  # fast shutdown: its workers go too
        try:
            master.wait(timeout=30)
        except subprocess.TimeoutExpired:
            master.kill()
            master.wait(timeout=30)  # reaped: no "still running" warning when the Popen is collected
        raise AssertionError(f"the worker did not stop: {log.read_text()}") from None
    text = log.read_text()
    assert code == 0, text
    assert "Handling signal: term" in text and "Worker exiting" in text, text
    assert "Shutting down: Master" in text, text
