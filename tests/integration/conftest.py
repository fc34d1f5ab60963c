"""Session-wide instance and a real gunicorn with 2 workers over TLS on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import Instance, Server, make_instance, start_server


@pytest.fixture(scope="session")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Instance:
    return make_instance(tmp_path_factory.mktemp("instance") / "var")


@pytest.fixture(scope="session")
def server(instance: Instance) -> Iterator[Server]:
    srv = start_server(instance, workers=2, tls=True)
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]
