"""Typed access to one TOML table of ``sts.toml`` (a ``[[user_stores]]`` entry), collecting problems instead of
raising, so that ``sts check-config`` reports every problem of every table at once."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# libpq's key=value form (``host=db password=s3cret``), quoted or not (PostgreSQL, "Connection Strings").
# The authority's user information, up to the value's last "@": a password typed unencoded may hold an "@", and a
# "/", "?" or "#" as well (a generated one: base64 has "/"), which would end the authority for a URL parser; a
# masked "@" in a path or query only hides a little more of a value that was refused anyway.
_USERINFO = re.compile(r"//.*@", re.S)
_KEYWORD_PASSWORD = re.compile(r"""(?i)(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)""")


def shown_value(value: object) -> str:
    """``repr(value)`` for a problem message, with a URL's user information (``scheme://user:password@``,
    RFC 3986 §3.2.1) and the value of a ``password=`` keyword replaced by ``***``: check-config prints problems
    and the gunicorn master logs them, so a value echoed back must never hold the credential it came with."""
    if not isinstance(value, str):
        return repr(value)
    return repr(_USERINFO.sub("//***@", _KEYWORD_PASSWORD.sub(r"\1***", value)))


class TableReader:
    """Reads the keys of one table; each problem is appended to ``problems``, prefixed with ``where``."""

    def __init__(self, table: dict[str, Any], where: str, problems: list[str]) -> None:
        self.table_ = table
        self.where = where
        self.problems = problems

    def problem(self, message: str) -> None:
        """Record a problem of this table."""
        self.problems.append(f"{self.where}: {message}")

    def text(self, key: str, required: bool = False) -> str:
        """A string value, trimmed; ``""`` when absent."""
        value = self.table_.get(key, "")
        if not isinstance(value, str):
            self.problem(f"{key}: expected a string")
            return ""
        if required and not value.strip():
            self.problem(f"{key}: required")
        return value.strip()

    def strings(self, key: str) -> tuple[str, ...]:
        """A list of non-empty strings (WSO2 writes lists as one space-separated string: accepted too)."""
        value = self.table_.get(key, [])
        if isinstance(value, str):
            value = value.split()
        if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
            self.problem(f"{key}: expected a list of strings")
            return ()
        return tuple(value)

    def urls(self) -> tuple[str, ...]:
        """``connection_url``: one URL or a list, required."""
        urls = self.strings("connection_url")
        if not urls:
            self.problem("connection_url: required (one URL or a list, tried in order)")
        return urls

    def boolean(self, key: str, default: bool) -> bool:
        """A TOML boolean."""
        value = self.table_.get(key, default)
        if not isinstance(value, bool):
            self.problem(f"{key}: expected true or false")
            return default
        return value

    def integer(self, key: str, default: int, low: int, high: int) -> int:
        """An integer within ``low``..``high`` (a boolean is no integer here)."""
        value = self.table_.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.problem(f"{key}: must be an integer between {low} and {high}")
            return default
        return value

    def path(self, key: str, base: Path) -> Path | None:
        """A path, relative ones resolved against ``base`` (the configuration file's directory)."""
        value = self.text(key)
        if not value:
            return None
        path = Path(value).expanduser()
        return path if path.is_absolute() else base / path

    def choice(self, key: str, enum: type[Any], required: bool = False) -> Any:
        """A member of ``enum`` by its value; None when absent or not one of them."""
        value = self.text(key, required)
        if not value:
            return None
        try:
            return enum(value)
        except ValueError:
            self.problem(f"{key}: must be one of {', '.join(member.value for member in enum)}")
            return None

    def table(self, key: str) -> dict[str, Any]:
        """A sub-table."""
        value = self.table_.get(key, {})
        if not isinstance(value, dict):
            self.problem(f"{key}: expected a table")
            return {}
        return value

    def finish(
        self,
        known: frozenset[str] | set[str],
        refused: Mapping[str, tuple[Any, str]],
        ignored: frozenset[str],
    ) -> list[str]:
        """Report refused and unknown keys; return the keys of ``ignored`` present (accepted without effect).

        ``refused`` maps a key to the value that is refused (None: any value) and why.
        """
        accepted_without_effect = []
        for key, value in self.table_.items():
            if key in refused:
                refused_value, why = refused[key]
                if refused_value is None or value == refused_value:
                    self.problem(f"{key} is not supported: {why}")
            elif key in ignored:
                accepted_without_effect.append(key)
            elif key not in known:
                self.problem(f"unknown key {key!r}")
        return accepted_without_effect
