"""``sts reload``: apply a changed ``sts.toml``, keys, policies and certificates to the running server without
dropping a request.

The new configuration is checked here first (settings, keys and the crypto self-test, policies, database); if
anything is wrong, nothing is signalled and the running server keeps its configuration. Otherwise the gunicorn
master gets SIGHUP (a plain ``kill -HUP`` does the same): it checks everything again, builds the application
anew, starts new workers with it and lets the old ones finish their requests (:mod:`sts.gunicorn_reload`).
"""

from __future__ import annotations

import argparse
import os
import signal
from pathlib import Path

from sts.bootstrap import check_boot
from sts.cli.common import CommandError, SubParsers
from sts.config import load_settings
from sts.config.settings import hsm_scenario_problems, tls_problems
from sts.crypto.keystore import KeyStoreError
from sts.errors import ConfigError
from sts.soap.wsdl_render import load_policy
from sts.stores.factory import check_schema


def register(commands: SubParsers) -> None:
    """Add the ``reload`` command."""
    parser = commands.add_parser("reload", help="apply a changed configuration to the running server",
                                 description=__doc__)
    parser.add_argument("--pid-file", type=Path, metavar="PATH",
                        help="the gunicorn master's pid file (default: $STS_PIDFILE, else [server] pid_file)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Check the new configuration, then signal the master."""
    try:
        settings = load_settings(args.config)
        if problems := hsm_scenario_problems(settings) + tls_problems(settings):
            raise ConfigError(problems)
        check_boot(settings)
        try:
            load_policy(settings.security.scenario)
        except (KeyError, OSError):
            raise ConfigError([f"security.scenario: no policy file for {settings.security.scenario}"]) from None
        check_schema(settings.store)
    except (KeyStoreError, ConfigError) as exc:
        raise CommandError("reload refused, nothing changed:\n  " + "\n  ".join(exc.problems)) from None
    pid_file = args.pid_file or os.environ.get("STS_PIDFILE") or settings.server.pid_file
    if not pid_file:
        raise CommandError("no pid file: pass --pid-file, or set [server] pid_file (then restart the server once)")
    try:
        pid = int(Path(pid_file).read_text().strip())
        os.kill(pid, signal.SIGHUP)
    except (OSError, ValueError) as exc:
        raise CommandError(f"cannot signal the server through {pid_file} ({type(exc).__name__})") from None
    print(f"configuration checked; reload signalled to the server (pid {pid})")
    return 0
