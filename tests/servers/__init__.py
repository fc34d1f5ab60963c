"""Real servers the test suite starts on 127.0.0.1 (slapd, PostgreSQL, Redis), each with its own fixture module."""
