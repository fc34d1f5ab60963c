"""Schema migrations: a fresh database, the upgrade of a database of the releases before versioned migrations, and
the refusal of a schema older or newer than the code, on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from sts.clock import SystemClock
from sts.config.settings import StoreSettings
from sts.errors import ConfigError
from sts.stores.certificate_index import certificate_row, find_lookup
from sts.stores.factory import build_stores, check_schema, upgrade_schema
from sts.stores.migrations import DatabaseError, latest, migrations, split_statements
from sts.stores.sqlite import check_database, initialize, upgrade
from tests.unit.stores.backends import settings_with
from tests.x509_support import make_cert, printable_name, rsa_key

V1_SQLITE = migrations("sqlite")[0].sql  # exactly what releases before versioned migrations created


def legacy_database(path: Path) -> None:
    """A database as ``sts init`` of an earlier release left it: the schema and meta.schema_version = 1."""
    conn = sqlite3.connect(path)
    conn.executescript(V1_SQLITE)
    conn.execute("INSERT INTO roles(name, canonical) VALUES ('admin', 'admin')")
    conn.commit()
    conn.close()


def test_the_migrations_are_numbered_without_gaps_and_split_into_statements() -> None:
    assert [m.version for m in migrations("sqlite")] == list(range(1, latest("sqlite") + 1))
    assert [m.version for m in migrations("postgresql")] == list(range(1, latest("postgresql") + 1))
    assert split_statements("-- note\nCREATE TABLE a (x int);\nINSERT INTO a\nVALUES (1);\n") == [
        "CREATE TABLE a (x int);", "INSERT INTO a\nVALUES (1);"
    ]


def test_fresh_sqlite_database_is_at_the_latest_version(tmp_path: Path) -> None:
    path = tmp_path / "sts.db"
    initialize(path)
    check_database(path)
    assert upgrade(path) == (latest("sqlite"), latest("sqlite"))  # idempotent


def test_a_v1_sqlite_database_is_recognised_and_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "sts.db"
    legacy_database(path)
    needs = rf"has schema version 1; this release needs version {latest('sqlite')}: run `sts db upgrade`"
    with pytest.raises(DatabaseError, match=needs):
        check_database(path)
    assert upgrade(path) == (1, latest("sqlite"))
    check_database(path)
    conn = sqlite3.connect(path)
    try:
        versions = conn.execute("SELECT version FROM schema_version ORDER BY version").fetchall()
        assert versions == [(v,) for v in range(1, latest("sqlite") + 1)]
        assert conn.execute("SELECT name FROM roles").fetchall() == [("admin",)]  # the data stayed
        # The old marker is gone, so an earlier release refuses this database instead of running on it.
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() is None
    finally:
        conn.close()


def test_a_newer_sqlite_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "sts.db"
    initialize(path)
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO schema_version(version, applied_at) VALUES (99, 0)")
    conn.commit()
    conn.close()
    message = re.escape(
        f"schema version 99 is newer than this release knows ({latest('sqlite')}): run the release that upgraded it"
    )
    with pytest.raises(DatabaseError, match=message):
        check_database(path)
    with pytest.raises(DatabaseError, match=message):
        upgrade(path)
    with pytest.raises(ConfigError, match="newer than this release"):
        build_stores(settings_with(tmp_path, StoreSettings(database=path)), SystemClock())


def test_a_file_of_something_else_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "sts.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE other (x int)")
    conn.close()
    with pytest.raises(DatabaseError, match="not an STS database"):
        upgrade(path)


def test_postgres_fresh_database_needs_an_upgrade_then_runs(tmp_path: Path, postgres_database: str) -> None:
    store = StoreSettings(backend="postgresql", url=postgres_database)
    with pytest.raises(ConfigError) as refused:
        check_schema(store)
    [problem] = refused.value.problems
    assert problem.startswith("store.url: postgresql://127.0.0.1:") and "@" not in problem  # never the password
    needs = f"has no STS schema; this release needs version {latest('postgresql')}: run `sts db upgrade`"
    assert problem.endswith(needs)
    assert upgrade_schema(store) == (0, latest("postgresql"))
    assert upgrade_schema(store) == (latest("postgresql"), latest("postgresql"))
    check_schema(store)


def test_postgres_newer_schema_is_refused(postgres_database: str) -> None:
    store = StoreSettings(backend="postgresql", url=postgres_database)
    upgrade_schema(store)
    with psycopg.connect(postgres_database, autocommit=True) as conn:
        conn.execute("INSERT INTO schema_version(version) VALUES (7)")
    with pytest.raises(ConfigError, match="schema version 7 is newer than this release knows"):
        check_schema(store)
    with pytest.raises(DatabaseError, match="schema version 7 is newer"):
        upgrade_schema(store)


def test_postgres_upgrades_racing_from_several_nodes_apply_each_step_once(postgres_database: str) -> None:
    store = StoreSettings(backend="postgresql", url=postgres_database)
    barrier, results, errors = threading.Barrier(4), [], []

    def node() -> None:
        barrier.wait(timeout=30)
        try:
            results.append(upgrade_schema(store))
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=node) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == [] and sorted(after for _, after in results) == [latest("postgresql")] * 4
    with psycopg.connect(postgres_database, autocommit=True) as conn:
        versions = conn.execute("SELECT version FROM schema_version ORDER BY version").fetchall()
        assert versions == [(v,) for v in range(1, latest("postgresql") + 1)]  # each step applied once


# --- migration steps vs the serving limits (statement_timeout, lock_timeout) -----------------------------------------

MIGRATE_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('sts:migrate', 0))"


def _postgres_before_serial_index(url: str, certificates: int = 0) -> None:
    """A PostgreSQL database at the version before the serial index, with ``certificates`` registered."""
    with psycopg.connect(url, autocommit=True) as pg:
        _before_serial_index("postgresql", pg.execute)
        if certificates:
            pg.execute("INSERT INTO users(id, domain, name, canonical, password_hash, created, updated)"
                       " VALUES (1, 'PRIMARY', 'many', 'many', 'x', 0, 0)")
            pg.execute("INSERT INTO user_certificates(sha256, user_id, sha1, issuer, serial, der, added)"
                       " SELECT md5(i::text) || i, 1, '\\x00', '\\x00', md5(i::text) || i, '\\x00', 0"
                       " FROM generate_series(1, %s) i", (certificates,))


def _versions(url: str) -> list[int]:
    with psycopg.connect(url, autocommit=True) as pg:
        return [int(row[0]) for row in pg.execute("SELECT version FROM schema_version ORDER BY version")]


def test_postgres_a_step_longer_than_the_serving_statement_timeout_is_applied(postgres_database: str) -> None:
    """Building the serial index over 100,000 certificates takes longer than a 10 ms statement_timeout: a step is
    bulk work, not a request, and the serving limit (its only workaround: raising it for every request) cancelled
    it."""
    _postgres_before_serial_index(postgres_database, certificates=100_000)
    store = StoreSettings(backend="postgresql", url=postgres_database, statement_timeout_ms=10)
    assert upgrade_schema(store) == (SERIAL_INDEX["postgresql"] - 1, latest("postgresql"))
    check_schema(store)


def test_postgres_an_upgrade_waits_its_turn_behind_another_applying_a_long_step(postgres_database: str) -> None:
    """Another node's ``sts db upgrade`` holds the migration lock for 1.5 s (longer than the default
    statement_timeout and lock_timeout): this one takes its turn after it, instead of failing on lock_timeout."""
    store = StoreSettings(backend="postgresql", url=postgres_database)
    held = 1.5
    with psycopg.connect(postgres_database) as other:  # a transaction: the lock is held until its end
        other.execute(MIGRATE_LOCK)
        release = threading.Timer(held, other.rollback)
        started = time.monotonic()
        release.start()
        try:
            assert upgrade_schema(store) == (0, latest("postgresql"))
        finally:
            release.join()
    assert time.monotonic() - started >= held
    assert _versions(postgres_database) == list(range(1, latest("postgresql") + 1))


def test_an_upgrade_that_waited_for_another_reports_the_version_it_found_then(
    tmp_path: Path, postgres_database: str
) -> None:
    """Another node applies every step while this upgrade waits its turn: this one applied nothing and says so
    ("schema is current"), instead of reporting the upgrade the other node made as its own."""
    store = StoreSettings(backend="postgresql", url=postgres_database)
    with psycopg.connect(postgres_database) as other:
        other.execute(MIGRATE_LOCK)
        waiting: list[tuple[int, int]] = []
        thread = threading.Thread(target=lambda: waiting.append(upgrade_schema(store)))
        thread.start()
        time.sleep(0.5)  # this upgrade read the schema and waits for the lock
        _before_serial_index("postgresql", other.execute)  # type: ignore[arg-type]
        for migration in migrations("postgresql")[SERIAL_INDEX["postgresql"] - 1:]:
            other.execute(migration.sql.encode())
            other.execute("INSERT INTO schema_version(version) VALUES (%s)", (migration.version,))
    thread.join(timeout=30)
    assert waiting == [(latest("postgresql"), latest("postgresql"))]
    path = tmp_path / "sts.db"
    initialize(path)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("DELETE FROM schema_version WHERE version = ?", (latest("sqlite"),))
    conn.execute("BEGIN IMMEDIATE")  # another upgrade's step, holding the write lock
    thread = threading.Thread(target=lambda: waiting.append(upgrade(path)))
    thread.start()
    time.sleep(0.5)
    conn.execute("INSERT INTO schema_version(version, applied_at) VALUES (?, 0)", (latest("sqlite"),))
    conn.execute("COMMIT")
    conn.close()
    thread.join(timeout=30)
    assert waiting[1:] == [(latest("sqlite"), latest("sqlite"))]


def test_postgres_a_table_lock_held_elsewhere_fails_the_step_within_lock_timeout_and_a_rerun_applies_it(
    postgres_database: str,
) -> None:
    """A long transaction that read user_certificates (a report, pg_dump) keeps the step from its lock: the upgrade
    fails within lock_timeout (never queueing serving requests behind it for longer), says that nothing of the
    step was applied, and a rerun once the transaction ended applies it."""
    _postgres_before_serial_index(postgres_database)
    store = StoreSettings(backend="postgresql", url=postgres_database)
    target = SERIAL_INDEX["postgresql"]
    with psycopg.connect(postgres_database) as reader:
        reader.execute("SELECT count(*) FROM user_certificates")
        started = time.monotonic()
        with pytest.raises(DatabaseError) as refused:
            upgrade_schema(store)
        assert time.monotonic() - started < 5  # lock_timeout: 500 ms
    assert re.fullmatch(
        rf"postgresql://127\.0\.0\.1:\d+/t_\w+: cannot upgrade to version {target}: another session kept a table"
        " it changes locked for longer than lock_timeout \\(a long transaction or a backup\\?\\); nothing of"
        rf" version {target} was applied: run `sts db upgrade` again",
        str(refused.value),
    ), str(refused.value)
    assert _versions(postgres_database) == list(range(1, target))
    assert "user_certificates_issuer_serial" in _indexes("postgresql", Path(), postgres_database)
    assert upgrade_schema(store) == (target - 1, latest("postgresql"))


# --- IssuerSerial by serial number (sqlite 0004, postgresql 0003) ------------------------------------------------

SERIAL_INDEX = {"sqlite": 4, "postgresql": 3}  # the migration that moved IssuerSerial to the serial index


def _before_serial_index(dialect: str, execute: Callable[[str], object]) -> None:
    """The schema of the release before the serial index, applied statement by statement, with its versions."""
    execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL DEFAULT 0)")
    for migration in migrations(dialect)[: SERIAL_INDEX[dialect] - 1]:
        for statement in split_statements(migration.sql):
            execute(statement)
        execute(f"INSERT INTO schema_version(version) VALUES ({migration.version})")  # noqa: S608 - a constant


def _register_as_before(dialect: str, execute: Callable[..., object], cert: x509.Certificate) -> None:
    """A user and its certificate as the earlier release wrote them (the issuer's DER in the searched column)."""
    der = cert.public_bytes(Encoding.DER)
    mark = "?" if dialect == "sqlite" else "%s"
    execute("INSERT INTO users(id, domain, name, canonical, password_hash, created, updated)"
            " VALUES (1, 'PRIMARY', 'svc-kt', 'svc-kt', 'x', 0, 0)")
    execute(f"INSERT INTO user_certificates(sha256, user_id, sha1, ski, issuer, serial, der, added)"  # noqa: S608
            f" VALUES ({', '.join([mark] * 8)})", (*certificate_row(der)[:1], 1, *certificate_row(der)[1:], der, 0))


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_a_database_with_registered_certificates_upgrades_to_the_serial_lookup(
    dialect: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A keytool certificate registered before the upgrade is found by IssuerSerial after it, by the index."""
    cert = make_cert("keytool", rsa_key(), subject=printable_name("keytool"))
    url = request.getfixturevalue("postgres_database") if dialect == "postgresql" else ""
    if dialect == "sqlite":
        conn = sqlite3.connect(tmp_path / "sts.db")
        _before_serial_index(dialect, conn.execute)
        _register_as_before(dialect, conn.execute, cert)
        conn.commit()
        conn.close()
        store = StoreSettings(database=tmp_path / "sts.db")
    else:
        with psycopg.connect(url, autocommit=True) as pg:
            _before_serial_index(dialect, pg.execute)  # type: ignore[arg-type]
            _register_as_before(dialect, pg.execute, cert)  # type: ignore[arg-type]
        store = StoreSettings(backend="postgresql", url=url)
    assert upgrade_schema(store) == (SERIAL_INDEX[dialect] - 1, latest(dialect))
    built = build_stores(settings_with(tmp_path, store), SystemClock())
    try:
        assert built.certificates is not None
        found = built.certificates.find(issuer_serial=(x509.Name.from_rfc4514_string("CN=keytool,O=sts tests"),
                                                       cert.serial_number))
        assert found is not None and (found.certificate, found.name) == (cert, "svc-kt")
    finally:
        built.close()
    assert _indexes(dialect, tmp_path, url) >= {"user_certificates_serial"}
    assert "user_certificates_issuer_serial" not in _indexes(dialect, tmp_path, url)


def _indexes(dialect: str, tmp_path: Path, url: str) -> set[str]:
    if dialect == "sqlite":
        conn = sqlite3.connect(tmp_path / "sts.db")
        try:
            rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'").fetchall()
        finally:
            conn.close()
    else:
        with psycopg.connect(url, autocommit=True) as pg:
            rows = pg.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'user_certificates'").fetchall()
    return {str(row[0]) for row in rows}


def test_the_serial_lookup_searches_an_index(tmp_path: Path) -> None:
    """SQLite's plan for an IssuerSerial lookup searches the serial index, never scans the table."""
    path = tmp_path / "sts.db"
    initialize(path)
    conn = sqlite3.connect(path)
    try:
        lookup = find_lookup(None, None, None, (x509.Name.from_rfc4514_string("CN=a"), 1), "?")
        assert lookup is not None
        plan = " ".join(str(row[-1]) for row in conn.execute("EXPLAIN QUERY PLAN " + lookup.query, lookup.values))
    finally:
        conn.close()
    assert "USING INDEX user_certificates_serial" in plan and "SCAN c" not in plan, plan
