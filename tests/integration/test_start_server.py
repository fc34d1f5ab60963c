"""The test harness's :func:`tests.support.start_server`: a port picked free can be taken by another process before
gunicorn binds it; the harness then starts the server on another port instead of failing the test."""

from __future__ import annotations

import socket

import pytest
import requests

from tests import support
from tests.support import Instance, start_server

pytestmark = pytest.mark.integration


def test_a_port_taken_between_the_pick_and_the_bind_is_replaced(
    instance: Instance, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        taken_port = taken.getsockname()[1]
        picks = iter([taken_port])
        real_free_port = support.free_port
        monkeypatch.setattr(support, "free_port", lambda: next(picks, None) or real_free_port())
        server = start_server(instance, workers=1, tls=False)
        try:
            assert server.port != taken_port
            health = server.url.replace("/services/wso2carbon-sts", "/healthz")
            assert requests.get(health, timeout=10).status_code == 200
        finally:
            server.stop()
    first_log = instance.base / f"server-{taken_port}.log"
    assert f"Connection in use: ('127.0.0.1', {taken_port})" in first_log.read_text()
