"""Fixtures shared by every test directory: the real servers of tests/servers/ (started only when a test asks)."""

pytest_plugins = ("tests.servers.postgres", "tests.servers.redis", "tests.servers.slapd")
