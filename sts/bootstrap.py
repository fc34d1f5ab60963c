"""Start-up: load settings, configure logging, check keys, build the app; abort with every problem listed."""

from __future__ import annotations

import datetime as dt
import logging
import os

from sts.app import create_app
from sts.certificates import configured_certificates, expiry_warnings, unbound_client_cert_warnings
from sts.clock import Clock
from sts.config import load_settings
from sts.config.settings import Settings, config_warnings
from sts.crypto.keyring import load_material
from sts.crypto.keystore import KeyStore, KeyStoreError, load_keystore
from sts.crypto.selftest import run_selftest
from sts.errors import ConfigError
from sts.logging import configure_logging
from sts.soap.transport import Transport

_LOG = logging.getLogger("sts.boot")


def startup_warnings(settings: Settings, keystore: KeyStore, now: dt.datetime | None = None) -> list[str]:
    """What the start-up log warns about: the keystore's and the configuration's warnings, and every configured
    certificate that expires within 30 days (the signing ones are among the keystore's warnings), and client
    certificates of an earlier release that unsigned PublicKey requests no longer bind."""
    now = now or dt.datetime.now(dt.UTC)
    others = [c for c in configured_certificates(settings) if c.kind not in ("signing", "previous_signing")]
    return [
        *keystore.warnings, *config_warnings(settings), *unbound_client_cert_warnings(settings),
        *expiry_warnings(others, now),
    ]


def boot(
    config: str | os.PathLike[str] | None = None, settings: Settings | None = None, clock: Clock | None = None
) -> Transport:
    """Load everything once and return the WSGI application (raises ConfigError / KeyStoreError); ``clock``:
    the time it tells (default: the wall clock)."""
    settings = settings or load_settings(config)
    configure_logging(settings.logging.level, settings.logging.format, settings.logging.file)
    keystore = load_keystore(settings)
    for warning in startup_warnings(settings, keystore):
        _LOG.warning(warning)
    try:
        app = create_app(settings, keystore, clock)
    except BaseException:
        keystore.close()  # a refused reload: the master keeps no thread of a key it never uses
        raise
    _LOG.info("sts ready", extra={"config": str(settings.config_path)})
    return app


def check_boot(settings: Settings) -> None:
    """What a reload checks before it builds anything: every key file of a rotation and the crypto self-test
    (raises :class:`KeyStoreError` with every problem)."""
    material = load_material(settings)
    try:
        problems = run_selftest(material.current)
    finally:
        material.current.close()  # loaded for the check only (the master checks on every reload)
    if problems:
        raise KeyStoreError(problems)


__all__ = ["ConfigError", "boot", "check_boot"]
