"""Reload on SIGHUP (``sts reload``): a changed ``sts.toml``, keys, policies and certificates take effect without
dropping a request, or the change is refused and the running configuration keeps serving.

gunicorn answers SIGHUP by reading its settings file again, starting new workers and stopping the old ones
gracefully (they finish their requests; ``[server] graceful_timeout``). With ``preload_app`` the new workers
would fork the application the master loaded at start, with the old configuration: so the master builds the
application again in gunicorn's ``on_reload`` hook, which runs before the new workers start, and hands it to
them. Everything is checked before anything changes: settings, keys (and the crypto self-test), policies and
database are loaded into a new application; if any of it fails, the master logs why and the new workers get the
application they had (the reload is refused), and gunicorn's own settings (bind, TLS files, workers, timeouts,
logging) stay as they were too. gunicorn reads its settings file *before* ``on_reload`` runs, so the application
is built when the settings are read (:func:`settings_for_gunicorn`), and only installed in ``on_reload``.

State kept here lives in the master for its whole life: gunicorn executes its settings file afresh on each
reload, but this module stays imported.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from sts.config import load_settings
from sts.config.settings import Settings, tls_problems
from sts.errors import ConfigError
from sts.logging import RootLogging

_LOG = logging.getLogger("sts.reload")
_last_good: list[Settings] = []
_built: list[Any] = []  # the application a reload built from the settings it handed gunicorn, until installed


def settings_for_gunicorn() -> Settings:
    """The settings gunicorn's settings file is built from: at start the file's (an invalid file stops the
    process with every problem); on a reload the file's only if the whole application builds from them, else the
    ones in force, so that a refused reload changes nothing, gunicorn's settings included."""
    if not _last_good:
        try:
            settings = load_settings()
            if problems := tls_problems(settings):
                raise ConfigError(problems)
        except ConfigError as exc:
            sys.stderr.write("sts: invalid configuration:\n  " + "\n  ".join(exc.problems) + "\n")
            raise SystemExit(1) from None
        _last_good[:] = [settings]
        return settings
    _built.clear()
    try:
        settings = load_settings()
        if problems := tls_problems(settings):
            raise ConfigError(problems)
        application = _build(settings)
    except Exception as exc:  # noqa: BLE001 - a failed reload must never stop the master
        problems = getattr(exc, "problems", None) or [type(exc).__name__]
        _LOG.error("reload refused, the running configuration keeps serving: %s", "; ".join(map(str, problems)))
        return _last_good[0]
    _built.append(application)
    _last_good[:] = [settings]
    return settings


def _build(settings: Settings) -> Any:
    """The application of ``settings``; when it cannot be built, the master's logging is as it was (``boot``
    sets logging up from the new settings before it builds the application, which may still fail)."""
    from sts.bootstrap import boot, check_boot  # the application, not loaded by the settings file itself

    running = RootLogging()
    try:
        check_boot(settings)
        application = boot(settings=settings)
    except BaseException:
        running.restore()
        raise
    running.release()
    return application


def rebuild_application(arbiter: Any) -> bool:
    """gunicorn's ``on_reload``: install the application built when the settings were read, or keep the old one
    (False: the reload was refused then, and logged)."""
    if not _built:
        return False
    application = _built.pop()
    old = arbiter.app.callable
    arbiter.app.callable = application  # what the workers started next will serve
    close = getattr(old, "close", None)
    if callable(close):
        close()  # the master's own connections, if any; the old workers hold their own copies
    _LOG.info("reloaded: new workers serve the new configuration, old ones finish their requests")
    return True
