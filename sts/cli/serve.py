"""``sts serve``: run the STS under gunicorn in the foreground with the project's gunicorn settings.

The settings ship inside the package (:mod:`sts.gunicorn_conf`) and are passed with ``-c`` explicitly, so a
``gunicorn.conf.py`` lying in the working directory is never picked up by accident.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

from sts import gunicorn_conf_path
from sts.app.published import public_url
from sts.cli.common import CommandError, SubParsers, settings_from
from sts.config.settings import hsm_scenario_problems, tls_problems
from sts.crypto.keystore import KeyStoreError, load_keystore
from sts.errors import ConfigError
from sts.stores.factory import check_schema


def register(commands: SubParsers) -> None:
    """Add the ``serve`` command."""
    parser = commands.add_parser("serve", help="run the STS under gunicorn", description=__doc__)
    parser.add_argument("--bind", metavar="HOST:PORT", help="listen address (default: [server] bind)")
    parser.add_argument("--workers", type=int, metavar="N", help="worker processes (default: one per core)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Check the instance, print how to reach it, then exec gunicorn."""
    env = dict(os.environ)
    if args.bind:
        env["STS_SERVER_BIND"] = args.bind
    if args.workers is not None:
        if args.workers < 1:
            raise CommandError("--workers must be at least 1")
        env["STS_SERVER_WORKERS"] = str(args.workers)
    os.environ.update({k: v for k, v in env.items() if k.startswith("STS_SERVER_")})
    settings = settings_from(args)
    if problems := hsm_scenario_problems(settings) + tls_problems(settings):  # refused by the master too
        raise CommandError("\n  ".join(problems))
    try:
        load_keystore(settings)
    except KeyStoreError as exc:
        raise CommandError("cannot load keys:\n  " + "\n  ".join(exc.problems)) from None
    try:
        check_schema(settings.store)  # the workers would refuse it too, after gunicorn started
    except ConfigError as exc:
        raise CommandError("\n  ".join(exc.problems)) from None
    env["STS_CONFIG"] = str(settings.config_path)
    _announce(settings.config_path.parent, public_url(settings), settings.server.tls_cert)
    # -P and sts.gunicorn_main: the installed release is served, whatever folders the working directory holds.
    argv = [sys.executable, "-P", "-m", "sts.gunicorn_main", "-c", str(gunicorn_conf_path())]
    sys.stdout.flush()
    os.execve(sys.executable, argv, env)  # noqa: S606 - our own interpreter, fixed arguments
    return 0  # not reached


def _announce(base: Path, url: str, ca_file: Path | None) -> None:
    print(f"STS endpoint: {url}")
    print(f"WSDL:         {url}?wsdl")
    if ca_file is not None:
        print(f"CA file:      {ca_file}")
    demo_file = base / "demo.json"
    if demo_file.is_file():
        demo = json.loads(demo_file.read_text())
        cafile = f" --cafile {ca_file}" if ca_file else ""
        print("Fetch a token for the demo relying party:")
        print(
            f"  {sts_command()} --config {base / 'sts.toml'} request {url} --username {demo['username']}"
            f" --password-stdin --applies-to {demo['applies_to']}{cafile} < {base / demo['password_file']}"
        )


def sts_command() -> str:
    """How to run this installation's ``sts``: the console script beside the interpreter (``.venv/bin/sts`` after
    ``make run``, ``/opt/sts/bin/sts`` in a venv of the wheel), else ``python -m sts``."""
    script = Path(sys.executable).with_name("sts")
    if script.is_file():
        return shlex.quote(str(script))
    return f"{shlex.quote(sys.executable)} -m sts"
