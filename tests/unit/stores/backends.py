"""Settings for a store of either backend: an SQLite file, or a fresh PostgreSQL database on the test server."""

from __future__ import annotations

from pathlib import Path

from sts.config.settings import Settings, StoreSettings
from sts.crypto.secretbox import generate_key_file
from sts.stores.factory import upgrade_schema
from sts.stores.sqlite import initialize

BACKENDS = ("sqlite", "postgresql")


def store_settings(tmp_path: Path, backend: str, url: str = "", **extra: object) -> StoreSettings:
    """``[store]`` of a new, upgraded database of ``backend`` (``url``: the empty PostgreSQL database to use)."""
    key = tmp_path / "credentials.key"
    if not key.exists():
        generate_key_file(key)
    store = StoreSettings(
        backend=backend, database=tmp_path / "sts.db", credential_key=key, url=url, **extra  # type: ignore[arg-type]
    )
    if backend == "sqlite":
        initialize(store.database)
    else:
        upgrade_schema(store)
    return store


def settings_with(tmp_path: Path, store: StoreSettings, **sections: object) -> Settings:
    """Whole settings around ``store``."""
    return Settings(config_path=tmp_path / "sts.toml", store=store, **sections)  # type: ignore[arg-type]
