"""Races that READ COMMITTED lets through on PostgreSQL but SQLite's single writer does not: each interleaving is
forced (one operation held inside its transaction while the other starts), so the outcome does not depend on timing.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from sts.clock import SystemClock
from sts.config.settings import StoreSettings
from sts.stores import postgres
from sts.stores.base import TokenRecord
from sts.stores.factory import Stores, build_stores, upgrade_schema
from tests.unit.stores.backends import settings_with

KEEP = time.time() + 3600
BOUND = 5.0  # every wait of these tests


def record(token_id: str, chain: str = "") -> TokenRecord:
    return TokenRecord(
        token_id=token_id, subject="PRIMARY/bob", relying_party="https://rp.example.com/",
        token_type="urn:oasis:names:tc:SAML:2.0:assertion", not_before=0.0, not_on_or_after=KEEP, status="issued",
        renewable=True, renew_after_expiry=False, digest=f"digest-{token_id}",
        data=json.dumps({"chain": chain or token_id}),
    )


@pytest.fixture
def stores(tmp_path: Path, postgres_database: str) -> Iterator[Stores]:
    store = StoreSettings(
        backend="postgresql", url=postgres_database, operation_timeout_ms=4000, credential_key=tmp_path / "none.key"
    )
    upgrade_schema(store)
    built = build_stores(settings_with(tmp_path, store), SystemClock())
    yield built
    built.close()


def waiting_on_a_lock(url: str) -> bool:
    """Whether some session of the test database waits for a lock (a row or an advisory lock) now."""
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        ).fetchone()
    return bool(row and row[0])


@pytest.mark.parametrize("cancelled", ["t1", "t2"])
def test_cancel_racing_a_renewal_cancels_the_successor_too(
    stores: Stores, postgres_database: str, monkeypatch: pytest.MonkeyPatch, cancelled: str
) -> None:
    """Renew of t2 has retired it and inserted t3 but not committed yet when Cancel (of the chain's first token,
    or of t2 itself) starts: Cancel must end the whole chain, t3 included. On READ COMMITTED the Cancel statement
    waited for the row lock on t2 and then cancelled only the rows of its snapshot, leaving t3 live."""
    tokens = stores.tokens
    assert tokens is not None
    tokens.put(record("t1"), KEEP)
    assert tokens.renew("t1", record("t2", chain="t1"), KEEP)

    inserted, release = threading.Event(), threading.Event()
    original = postgres.Session.execute

    def execute(self: postgres.Session, query: str, params: Any = None) -> postgres.Result:
        result = original(self, query, params)
        if query.startswith("INSERT INTO tokens") and params and params[0] == "t3":
            inserted.set()
            release.wait(BOUND)  # the renewal's transaction stays open, its successor uncommitted
        return result

    monkeypatch.setattr(postgres.Session, "execute", execute)
    outcome: dict[str, object] = {}
    renewer = threading.Thread(target=lambda: outcome.setdefault("renew", tokens.renew("t2", record("t3", "t1"), KEEP)))
    canceller = threading.Thread(target=lambda: outcome.setdefault("cancel", tokens.cancel(cancelled)))
    renewer.start()
    try:
        assert inserted.wait(BOUND)
        canceller.start()
        end = time.monotonic() + BOUND
        while not waiting_on_a_lock(postgres_database):  # Cancel is now blocked behind the renewal
            assert time.monotonic() < end and canceller.is_alive()
            time.sleep(0.02)
    finally:
        release.set()
        renewer.join(BOUND)
        if canceller.ident is not None:
            canceller.join(BOUND)
    assert outcome == {"renew": True, "cancel": True}
    statuses = [(r.status if (r := tokens.get(i)) else None) for i in ("t1", "t2", "t3")]
    assert statuses == ["cancelled", "cancelled", "cancelled"]
