"""``sts db upgrade`` and ``sts db copy``: the schema of the configured database, and moving a single-host SQLite
instance to PostgreSQL.

``upgrade`` applies the pending schema migrations (``sts init`` runs it; on PostgreSQL nodes upgrading at once take
turns on an advisory lock). Servers and ``sts check-config`` refuse a database whose schema is older or newer than
the release. ``copy --to URL`` copies the configured SQLite database (users with their password hashes and digest
secrets, roles, claims, relying parties with their truststore certificates put inline, live tokens) into an empty
PostgreSQL database and compares both sides; a relying party whose certificate file is missing refuses the copy.
Then set ``[store] backend = "postgresql"`` and ``url`` on every node. The password is not part of the URL: it comes
from ``--password-file``, ``$PGPASSWORD`` or ``~/.pgpass``.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import time
from pathlib import Path

from sts.cli.common import CommandError, SubParsers, settings_from
from sts.relying_parties.certificates import with_inline_certificate
from sts.stores.factory import upgrade_schema
from sts.stores.migrations import DatabaseError


def register(commands: SubParsers) -> None:
    """Add the ``db`` command group."""
    db = commands.add_parser(
        "db", help="upgrade the database schema, copy SQLite to PostgreSQL", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    sub.add_parser("upgrade", help="apply pending schema migrations").set_defaults(handler=_upgrade)
    copy = sub.add_parser("copy", help="copy this SQLite instance into a PostgreSQL database")
    copy.add_argument("--to", required=True, metavar="URL", help="libpq URL of the target, without the password")
    copy.add_argument("--password-file", type=Path, metavar="FILE", help="file holding the target's password")
    copy.add_argument("--ca-file", type=Path, metavar="FILE", help="CA certificate to verify the server with")
    copy.add_argument("--replace", action="store_true", help="overwrite a target that already holds STS data")
    copy.set_defaults(handler=_copy)


def _upgrade(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    try:
        before, after = upgrade_schema(settings.store)
    except DatabaseError as exc:
        raise CommandError(str(exc)) from None
    if before == after:
        print(f"schema is current (version {after})")
    else:
        print(f"schema upgraded from version {before} to {after}")
    return 0


def _copy(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    if settings.store.backend != "sqlite":
        raise CommandError("db copy reads the instance's SQLite database: [store] backend must be sqlite")
    from sts.stores import postgres  # psycopg only for this command
    from sts.stores.copy import copy_to_postgres

    target_store = dataclasses.replace(
        settings.store, backend="postgresql", url=args.to, password_file=args.password_file, ca_file=args.ca_file
    )
    try:
        with postgres.PostgresDatabase(target_store) as target:
            copied = copy_to_postgres(
                settings.store.database, target, time.time(), replace=args.replace,
                relying_party=functools.partial(with_inline_certificate, truststore=settings.store.truststore),
            )
            where = target.target.describe()
    except DatabaseError as exc:
        raise CommandError(str(exc)) from None
    print(f"copied {settings.store.database} to {where} and compared both sides:")
    for table, count in copied.counts.items():
        print(f"  {table:16} {count}")
    if copied.converted:
        print(f"  {copied.converted} relying-party certificate(s) from {settings.store.truststore} now stored in"
              " the database")
    print('next: set [store] backend = "postgresql" and url (and password_file or $PGPASSWORD) on every node')
    return 0
