"""Fixtures for the whole suite: the real PostgreSQL and Redis servers of tests/servers/ (started on first use)."""

pytest_plugins = ("tests.servers.postgres", "tests.servers.redis")
