"""Fixtures shared by every test directory: the real servers of tests/servers/ (started only when a test asks), the
WSS4J client of tests/clients/ (compiled when a test asks), and the closing of every SQLite database a test opened."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sts.stores.sqlite import Database

pytest_plugins = ("tests.clients.wss4j", "tests.servers.postgres", "tests.servers.redis", "tests.servers.slapd")


@pytest.fixture(autouse=True)
def _close_databases(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Close, after each test, every :class:`Database` it created and left open.

    The product closes what it opens (the CLI per command, a gunicorn worker as it exits); tests often build stores
    over a temporary file and drop them. Python 3.13 reports such connections (ResourceWarning, an error here).
    """
    opened: list[Database] = []
    original = Database.__init__

    def tracking_init(self: Database, *args: object, **kwargs: object) -> None:
        original(self, *args, **kwargs)  # type: ignore[arg-type]
        opened.append(self)

    monkeypatch.setattr(Database, "__init__", tracking_init)
    yield
    for database in opened:
        database.close()
