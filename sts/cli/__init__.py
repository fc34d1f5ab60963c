"""The ``sts`` command line: one parser, one module per command group.

Every command has ``--help``; problems are printed as ``sts: error: ...`` and give a non-zero exit code.
The global ``--config`` defaults to ``$STS_CONFIG``, else ``./var/sts.toml``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from sts import __version__
from sts.cli import (
    db,
    explain,
    init,
    instance,
    keys,
    lifecycle_cmds,
    preview,
    reload,
    request,
    rp,
    serve,
    token_inspect,
    user_stores,
    users,
)
from sts.cli.common import CommandError
from sts.client import ClientError, FaultReceived


class _Parser(argparse.ArgumentParser):
    """No option abbreviations anywhere: ``--password`` must never be taken for ``--password-stdin``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser."""
    parser = _Parser(prog="sts", description="WS-Trust Security Token Service")
    parser.add_argument("--version", action="version", version=f"sts {__version__}")
    parser.add_argument(
        "--config", metavar="PATH", help="configuration file (default: $STS_CONFIG, else ./var/sts.toml)"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in (
        init, instance, serve, db, users, user_stores, rp, request, token_inspect, lifecycle_cmds, keys, reload,
        explain, preview,
    ):
        module.register(commands)
    return parser


# Fixed: the offending text is never echoed (it cannot be printed as it is, and may be a password).
NOT_UTF8_ARGUMENT = "an argument is not UTF-8 text"
NOT_UTF8_INPUT = "input that is not UTF-8 text (an argument, stdin or a file) cannot be used"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sts`` console script."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if not all(is_utf8(argument) for argument in arguments):
        # Python hands undecodable bytes of argv over as lone surrogates (PEP 383); caught here, before they
        # reach a store or an error message, they are one clean refusal instead of a UnicodeEncodeError later.
        print(f"sts: error: {NOT_UTF8_ARGUMENT}", file=sys.stderr)
        return 1
    parser = build_parser()
    args = parser.parse_args(arguments)
    try:
        result: int = args.handler(args)
        sys.stdout.flush()  # a reader that went away (`sts token inspect … | head`) shows here, not at exit
    except BrokenPipeError:
        _discard_stdout()
        return 141  # 128 + SIGPIPE: what a shell reports for a writer whose reader closed the pipe
    except UnicodeError:  # the backstop, for text read from stdin or a file: the README promises `sts: error:`
        print(f"sts: error: {NOT_UTF8_INPUT}", file=sys.stderr)
        return 1
    except CommandError as exc:
        print(f"sts: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except FaultReceived as exc:  # the STS refused: its fault, exit 2
        print(f"sts: fault: {exc.fault.describe()}", file=sys.stderr)
        return 2
    except ClientError as exc:
        print(f"sts: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return result


def _discard_stdout() -> None:
    """Point stdout at /dev/null: the interpreter flushes it at exit, which would raise into a closed pipe again
    (the recipe of Python's documentation, "Note on SIGPIPE", in the signal module)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def is_utf8(text: str) -> bool:
    """Whether ``text`` can be written as UTF-8: no lone surrogate (an undecodable byte, PEP 383)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
