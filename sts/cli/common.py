"""Helpers shared by the command modules: errors, loading settings, opening the database."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from sts.config import load_settings
from sts.config.settings import Settings
from sts.errors import ConfigError
from sts.stores.sqlite import Database, DatabaseError, check_database

SubParsers = Any  # argparse's _SubParsersAction is private


class CommandError(Exception):
    """A user-facing error: printed without a traceback, exit code 1 (or as given)."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def settings_from(args: argparse.Namespace) -> Settings:
    """Load the configuration named by ``--config`` (or the default), turning problems into a CommandError."""
    try:
        return load_settings(args.config)
    except ConfigError as exc:
        raise CommandError("invalid configuration:\n  " + "\n  ".join(exc.problems)) from None


def open_database(settings: Settings) -> Database:
    """The instance database, checked to exist with the right schema."""
    try:
        check_database(settings.store.database)
    except DatabaseError as exc:
        raise CommandError(str(exc)) from None
    return Database(settings.store.database, settings.store.busy_timeout_ms)


def read_secret(prompt: str, from_stdin: bool, confirm: bool = False) -> str:
    """A password from stdin (first line) or an interactive prompt; never from the command line."""
    if from_stdin:
        line = sys.stdin.readline()
        secret = line[:-1] if line.endswith("\n") else line
        if secret.endswith("\r"):
            secret = secret[:-1]
    else:
        if not sys.stdin.isatty():
            raise CommandError("no terminal to prompt on: use --password-stdin")
        secret = getpass.getpass(prompt)
        if confirm and getpass.getpass("Repeat: ") != secret:
            raise CommandError("the passwords do not match")
    if not secret:
        raise CommandError("empty password")
    return secret
