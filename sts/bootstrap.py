"""Start-up: load settings, configure logging, check keys, build the app; abort with every problem listed."""

from __future__ import annotations

import datetime as dt
import logging
import os

from sts.app import create_app
from sts.certificates import configured_certificates, expiry_warnings
from sts.clock import Clock
from sts.config import load_settings
from sts.config.settings import Settings, config_warnings
from sts.crypto.keystore import load_keystore
from sts.logging import configure_logging
from sts.soap.transport import Transport

_LOG = logging.getLogger("sts.boot")


def boot(
    config: str | os.PathLike[str] | None = None, settings: Settings | None = None, clock: Clock | None = None
) -> Transport:
    """Load everything once and return the WSGI application (raises ConfigError / KeyStoreError); ``clock``:
    the time it tells (default: the wall clock)."""
    settings = settings or load_settings(config)
    configure_logging(settings.logging.level, settings.logging.format, settings.logging.file)
    keystore = load_keystore(settings)
    now = dt.datetime.now(dt.UTC)
    # Expiry of the signing certificate is among the keystore's warnings; the TLS, RP and client ones are here.
    others = [c for c in configured_certificates(settings) if c.kind not in ("signing", "previous_signing")]
    for warning in (*keystore.warnings, *config_warnings(settings), *expiry_warnings(others, now)):
        _LOG.warning(warning)
    app = create_app(settings, keystore, clock)
    _LOG.info("sts ready", extra={"config": str(settings.config_path)})
    return app
