"""Time source: every "now" and skew computation goes through a :class:`Clock` so tests can freeze it."""

from __future__ import annotations

import datetime as dt
import functools
from typing import Protocol


class Clock(Protocol):
    """Anything that tells the current UTC time."""

    def now(self) -> dt.datetime:
        """Current time, timezone-aware UTC."""
        ...


class SystemClock:
    """The wall clock."""

    def now(self) -> dt.datetime:
        """Current time, timezone-aware UTC."""
        return dt.datetime.now(dt.UTC)


class FrozenClock:
    """A clock that stands still until moved; for tests and deterministic tooling."""

    def __init__(self, at: dt.datetime) -> None:
        self._at = at

    def now(self) -> dt.datetime:
        """The frozen instant."""
        return self._at

    def advance(self, seconds: float) -> None:
        """Move the clock forward (or back, with a negative value)."""
        self._at += dt.timedelta(seconds=seconds)


@functools.lru_cache(maxsize=64)  # a token writes the same few instants several times
def format_instant(instant: dt.datetime) -> str:
    """Write an instant as xsd:dateTime in UTC with a ``Z`` and whole seconds (SAML 2.0 core §1.3.3)."""
    return instant.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
