"""``sts check-config``: load config, keys, truststore, policies and database, run the crypto self-test."""

from __future__ import annotations

import argparse
import datetime as dt

from sts.cli.common import SubParsers
from sts.config import foreign_environment, load_settings
from sts.config.relying_parties import RelyingPartyStore
from sts.crypto.keystore import KeyStoreError, check_certificate, load_certificate, load_keystore
from sts.crypto.selftest import run_selftest
from sts.errors import ConfigError
from sts.soap.wsdl_render import load_policy
from sts.stores.sqlite import Database, DatabaseError, check_database


def register(commands: SubParsers) -> None:
    """Add the ``check-config`` command."""
    parser = commands.add_parser(
        "check-config", help="check configuration, keys, truststore and database", description=__doc__
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Print every problem found; exit 1 if there is any."""
    problems: list[str] = []
    # Ignored by the loader (not ours), but a misspelt table name would be ignored too: say so here.
    warnings = [f"environment: {name} names no sts setting; ignored" for name in foreign_environment()]
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        _report(exc.problems, warnings)
        return 1
    try:
        keystore = load_keystore(settings)
        warnings += keystore.warnings
        problems += run_selftest(keystore)
    except KeyStoreError as exc:
        problems += exc.problems
    try:
        load_policy(settings.security.scenario)
    except (KeyError, OSError):
        problems.append(f"security.scenario: no policy file for {settings.security.scenario}")
    for path in (settings.server.tls_cert, settings.server.tls_key):
        if path is not None and not path.is_file():
            problems.append(f"server: {path} not found")
    if (settings.server.tls_cert is None) != (settings.server.tls_key is None):
        problems.append("server: tls_cert and tls_key go together")
    if not settings.store.truststore.is_dir():
        problems.append(f"store.truststore: {settings.store.truststore} is not a directory")
    try:
        check_database(settings.store.database)
        problems += _check_relying_parties(Database(settings.store.database), settings.store.truststore, warnings)
    except DatabaseError as exc:
        problems.append(f"store.database: {exc}")
    _report(problems, warnings)
    if not problems:
        print(f"configuration OK: {settings.config_path}")
    return 1 if problems else 0


def _check_relying_parties(db: Database, truststore: object, warnings: list[str]) -> list[str]:
    from pathlib import Path

    problems: list[str] = []
    now = dt.datetime.now(dt.UTC)
    for rp in RelyingPartyStore(db).all():
        if not rp.cert_file:
            continue
        path = Path(str(truststore)) / rp.cert_file
        try:
            cert = load_certificate(path)
        except (OSError, ValueError):
            problems.append(f"relying party {rp.address}: certificate {path} missing or unreadable")
            continue
        cert_problems, cert_warnings = check_certificate(cert, f"relying party {rp.address}", now)
        problems += cert_problems
        warnings += cert_warnings
    db.close()
    return problems


def _report(problems: list[str], warnings: list[str]) -> None:
    for warning in warnings:
        print(f"warning: {warning}")
    for problem in problems:
        print(f"problem: {problem}")
