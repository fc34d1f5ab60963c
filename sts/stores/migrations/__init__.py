"""Versioned schema migrations: numbered SQL files per dialect, shipped in the package, and the rules of the runner.

``sqlite/NNNN_name.sql`` and ``postgresql/NNNN_name.sql`` are applied in order, each in its own transaction, and
recorded in the table ``schema_version(version, applied_at)``. The runners are next to each dialect's connections
(:func:`sts.stores.sqlite.upgrade`, :func:`sts.stores.postgres.upgrade`); what they share is here: the list of
migrations, and :func:`require_current`, the refusal of a database older or newer than this code.

Rules for a new step, which README's rolling upgrade relies on: keep what the previous release reads and writes (add
tables, columns and indexes; drop or rename only a release later), since nodes of that release keep serving on the
upgraded schema until they are restarted. On PostgreSQL a step runs without ``statement_timeout``: a lock the
serving path needs, held for the whole step (a table rewrite, or an index built on ``tokens``, which blocks its
writes), would fail every node's requests for that long.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

DIALECTS = ("sqlite", "postgresql")
_FILE = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")


class DatabaseError(Exception):
    """The database is missing, unreachable, not an STS database, or of a schema version this code does not run."""


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered step of a dialect's schema."""

    version: int
    name: str
    sql: str


@cache
def migrations(dialect: str) -> tuple[Migration, ...]:
    """Every migration of ``dialect``, in order; the numbers run 1, 2, 3 … without a gap."""
    found = []
    for entry in resources.files(__package__).joinpath(dialect).iterdir():
        match = _FILE.fullmatch(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migrations of {dialect} are not numbered 1..n")  # a packaging mistake, not a user's
    return tuple(found)


def latest(dialect: str) -> int:
    """The schema version this code runs on for ``dialect``."""
    return len(migrations(dialect))


def pending(dialect: str, current: int) -> tuple[Migration, ...]:
    """What :func:`upgrade` still has to apply to a database at ``current`` (refusing one that is newer)."""
    if current > latest(dialect):
        raise DatabaseError(_newer(current, latest(dialect)))
    return migrations(dialect)[current:]


def require_current(dialect: str, current: int, where: str) -> None:
    """Refuse a database whose schema is not exactly the one this code knows: a node never serves on a schema
    it was not written for (an older one lacks what it needs, a newer one may mean something else)."""
    known = latest(dialect)
    if current > known:
        raise DatabaseError(f"{where}: {_newer(current, known)}")
    if current < known:
        state = "has no STS schema" if current == 0 else f"has schema version {current}"
        raise DatabaseError(f"{where}: {state}; this release needs version {known}: run `sts db upgrade`")


def _newer(current: int, known: int) -> str:
    return (
        f"schema version {current} is newer than this release knows ({known}): run the release that upgraded it"
    )


def split_statements(script: str) -> list[str]:
    """The statements of a migration file, for drivers that run one statement per call (``sqlite3`` inside a
    transaction: its ``executescript`` would commit first). Statements end with ``;`` at the end of a line."""
    statements: list[str] = []
    current: list[str] = []
    for line in script.splitlines():
        if line.lstrip().startswith("--") and not current:
            continue
        current.append(line)
        if line.rstrip().endswith(";"):
            statements.append("\n".join(current).strip())
            current = []
    if "\n".join(current).strip():
        statements.append("\n".join(current).strip())
    return statements
