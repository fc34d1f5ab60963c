"""``sts db copy``: move a single-host SQLite instance into PostgreSQL without losing a user, claim, relying party
or live token.

The target gets the current schema first (:func:`sts.stores.postgres.upgrade`); then every table is copied in one
transaction, in dependency order (a failure leaves the target as it was), and afterwards the row counts of both
sides and the IDs of the live tokens are compared. Expired tokens, nonces and counters are left behind; unexpired
nonces come along, so a message replayed across the move is still refused. A target that already holds STS data is
refused unless the caller asks to replace it.

The caller passes how a relying party's settings are to arrive (``relying_party``): the command line puts the
certificate of one whose certificate is a file of the instance truststore inline, as ``sts rp add`` registers it on a
shared store, so every node reads it from the database and none needs this host's truststore. A relying party it
cannot convert (its certificate file is missing or unreadable) refuses the copy before anything is written: copied
without its certificate, it would fail on every node at its first token.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sts.stores import postgres
from sts.stores.migrations import DatabaseError
from sts.stores.sqlite import check_database


@dataclass(frozen=True, slots=True)
class _Table:
    name: str
    columns: tuple[str, ...]
    live_only: bool = False  # rows with an ``expires`` in the past are not copied
    booleans: tuple[str, ...] = ()  # 0/1 in SQLite, BOOLEAN in PostgreSQL

    def select(self) -> str:
        where = " WHERE expires > :now" if self.live_only else ""
        if self.name == "meta":
            where = " WHERE key <> 'schema_version'"
        return f"SELECT {', '.join(self.columns)} FROM {self.name}{where}"  # noqa: S608 - names from TABLES

    def exists(self) -> str:
        return f"SELECT EXISTS (SELECT 1 FROM {self.name})"  # noqa: S608 - names from TABLES

    def insert(self) -> str:
        marks = ", ".join(["%s"] * len(self.columns))
        return f"INSERT INTO {self.name} ({', '.join(self.columns)}) VALUES ({marks})"  # noqa: S608


# Parents before children (foreign keys); the column lists are those of the current migrations of both dialects.
TABLES = (
    _Table("meta", ("key", "value")),
    _Table("roles", ("name", "canonical")),
    _Table(
        "users",
        ("id", "domain", "name", "canonical", "password_hash", "digest_secret", "enabled", "created", "updated"),
        booleans=("enabled",),
    ),
    _Table("user_roles", ("user_id", "role")),
    _Table("user_claims", ("user_id", "uri", "position", "value")),
    _Table("user_certificates", ("sha256", "user_id", "sha1", "ski", "issuer", "serial", "der", "added")),
    _Table("relying_parties", ("address", "canonical", "config", "created", "updated")),
    _Table(
        "tokens",
        ("id", "subject", "relying_party", "token_type", "not_before", "not_on_or_after", "status", "renewable",
         "renew_after_expiry", "digest", "data", "expires"),
        live_only=True,
        booleans=("renewable", "renew_after_expiry"),
    ),
    _Table("replay", ("ns", "key", "expires"), live_only=True),
    _Table("counters", ("ns", "key", "count", "level", "locked_until", "expires"), live_only=True),
)


@dataclass(frozen=True, slots=True)
class Copied:
    """What a copy moved: the rows per table, and how many relying parties' settings ``relying_party`` changed."""

    counts: dict[str, int]
    converted: int


def _unchanged(config: str) -> str:
    return config


def copy_to_postgres(
    source: Path,
    target: postgres.PostgresDatabase,
    now: float,
    replace: bool = False,
    relying_party: Callable[[str], str] = _unchanged,
) -> Copied:
    """Copy the SQLite database at ``source`` into ``target``.

    ``relying_party`` turns a relying party's settings (the JSON of its row) into those to copy; it raises
    ValueError, with the reason, for one it cannot convert. Raises :class:`DatabaseError` when the source is not a
    current STS database, a relying party cannot be converted, the target holds data (and ``replace`` is false), a
    statement fails (nothing is written then) or the comparison afterwards differs.
    """
    check_database(source)
    rows = _read(source, now)
    converted = _convert_relying_parties(rows["relying_parties"], relying_party)
    postgres.upgrade(target)
    with target.tool_session("copy") as session:
        held = [t.name for t in TABLES if session.execute(t.exists()).rows[0][0]]
        if held and not replace:
            raise DatabaseError(
                f"{target.target.describe()} already holds STS data (tables {', '.join(held)}):"
                " copy into an empty database, or pass --replace to overwrite it"
            )
        session.execute("TRUNCATE " + ", ".join(t.name for t in TABLES))
        for table in TABLES:
            if rows[table.name]:
                session.executemany(table.insert(), rows[table.name])
        # Explicit ids leave the identity sequence behind: the next `sts user add` must not collide.
        session.execute(
            "SELECT setval(pg_get_serial_sequence('users', 'id'), coalesce(max(id), 0) + 1, false) FROM users"
        )
    _verify(rows, target)
    return Copied({name: len(table_rows) for name, table_rows in rows.items()}, converted)


def _convert_relying_parties(rows: list[tuple[Any, ...]], convert: Callable[[str], str]) -> int:
    """Apply ``convert`` to the settings of each ``relying_parties`` row, in place; how many changed.

    Every relying party that cannot be converted is named in one refusal.
    """
    config = next(t for t in TABLES if t.name == "relying_parties").columns.index("config")
    changed, refused = 0, []
    for i, row in enumerate(rows):
        try:
            new = convert(row[config])
        except ValueError as exc:
            refused.append(f"{row[0]}: {exc}")
            continue
        if new != row[config]:
            rows[i] = (*row[:config], new, *row[config + 1 :])
            changed += 1
    if refused:
        raise DatabaseError(
            "nothing copied: relying parties cannot be moved (" + "; ".join(refused) + "); restore the file, give a"
            " new certificate (`sts rp update ADDRESS --cert FILE`) or `sts rp remove ADDRESS`, then copy again"
        )
    return changed


def _read(source: Path, now: float) -> dict[str, list[tuple[Any, ...]]]:
    conn = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        rows: dict[str, list[tuple[Any, ...]]] = {}
        for table in TABLES:
            flags = [column in table.booleans for column in table.columns]
            rows[table.name] = [
                tuple(bool(value) if flag else value for value, flag in zip(row, flags, strict=True))
                for row in conn.execute(table.select(), {"now": now})
            ]
        return rows
    except sqlite3.Error as exc:
        raise DatabaseError(f"{source}: cannot read ({type(exc).__name__}: {exc})") from None
    finally:
        conn.close()


def _verify(rows: dict[str, list[tuple[Any, ...]]], target: postgres.PostgresDatabase) -> None:
    """Both sides hold the same number of rows per table, and the same live token IDs."""
    with target.tool_session("verification") as session:
        for table in TABLES:
            count = session.execute(f"SELECT count(*) FROM {table.name}").rows[0][0]  # noqa: S608
            if count != len(rows[table.name]):
                raise DatabaseError(f"copy check: {table.name} has {count} rows, the source {len(rows[table.name])}")
        copied = {row[0] for row in session.execute("SELECT id FROM tokens").rows}
    if copied != {row[0] for row in rows["tokens"]}:
        raise DatabaseError("copy check: the token IDs differ from the source's")
