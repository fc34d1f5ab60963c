"""``sts validate``, ``sts renew`` and ``sts cancel``: the sample client's Validate, Renew and Cancel requests.

The token is named either inline (``--token FILE``: the file ``sts request --out`` wrote; its first element, a
``saml2:Assertion``, ``saml:Assertion``, ``saml2:EncryptedAssertion`` or ``xenc:EncryptedData``, is sent as is) or
by its ID (``--id ID``: a ``wsse:SecurityTokenReference`` with a SAML ``KeyIdentifier``; ``--token-type`` saml20 or
saml11). Authentication and transport are those of ``sts request`` (UsernameToken, verified TLS).

``validate`` prints ``status: valid`` or ``status: invalid`` and the STS's reason; ``renew`` prints or writes the new
token like ``sts request`` (``--out``, ``--proof-key-out``); ``cancel`` prints ``cancelled``.

``validate --token FILE --applies-to ADDR --token-type saml20|saml11`` asks for token transformation (WS-Trust 1.3
§7): the status and, for a valid token whose exchange ADDR's policy allows, a new token for ADDR, printed or written
(``--out``) like ``sts request``'s; the status then goes to stderr. FILE must hold the assertion itself (as its
relying party decrypted it), not the encrypted form.
Exit codes: 0 valid / renewed / cancelled, 1 HTTP/TLS/usage error, 2 SOAP fault, 3 (validate) the token is invalid.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sts.cli.common import (
    CommandError,
    SubParsers,
    add_connection_options,
    connection_from,
    emit_issued,
    read_password,
)
from sts.client import TargetOptions, cancel_token, clean, read_target_token, renew_token, validate_token
from sts.wstrust.tokentypes import SamlVersion

EXIT_INVALID = 3
_COMMANDS = {
    "validate": "ask the STS whether a token is valid",
    "renew": "ask the STS to renew a token (a new token with a new validity window)",
    "cancel": "ask the STS to cancel a token",
}


def register(commands: SubParsers) -> None:
    """Add the ``validate``, ``renew`` and ``cancel`` commands."""
    for name, summary in _COMMANDS.items():
        parser = commands.add_parser(
            name, help=summary, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
        )
        add_connection_options(parser)
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--token", type=Path, metavar="FILE", help="token file, as written by sts request --out")
        target.add_argument("--id", metavar="ID", help="ID of the token (SAML 2.0 ID, SAML 1.1 AssertionID)")
        parser.add_argument(
            "--token-type",
            choices=sorted(version.value for version in SamlVersion),
            help="with --id: the kind of token the ID names (default saml20)"
            + ("; with --applies-to: the kind of new token asked for (default saml20)" if name == "validate" else ""),
        )
        if name == "validate":
            parser.add_argument(
                "--applies-to", metavar="ADDR", help="also ask for a new token for this relying party (--token only)"
            )
            parser.add_argument("--out", type=Path, metavar="FILE", help="write the new token here, not to stdout")
        if name == "renew":
            parser.add_argument("--out", type=Path, metavar="FILE", help="write the new token here, not to stdout")
            parser.add_argument(
                "--proof-key-out", type=Path, metavar="FILE", help="write the new proof key (raw bytes, mode 0600) here"
            )
        parser.set_defaults(handler=_HANDLERS[name])


def _target(args: argparse.Namespace) -> TargetOptions:
    """The connection and the token named, checked before the password is asked for."""
    connection = connection_from(args)
    applies_to = getattr(args, "applies_to", None)
    if applies_to is not None and args.id is not None:
        raise CommandError("--applies-to needs the token itself (--token), not its ID")
    if args.token_type is not None and args.id is None and applies_to is None:
        raise CommandError("--token-type goes with --id or --applies-to (an inline token says what it is)")
    wanted = SamlVersion(args.token_type or SamlVersion.SAML20.value)
    return TargetOptions(
        connection,
        token=read_target_token(args.token) if args.token is not None else None,
        token_id=args.id,
        id_version=wanted,
        transform_to=wanted if applies_to is not None else None,
        applies_to=applies_to,
    )


def _validate(args: argparse.Namespace) -> int:
    if args.out is not None and args.applies_to is None:
        raise CommandError("--out goes with --applies-to (only a new token is written)")
    status = validate_token(_target(args), read_password(args))
    # With a new token on stdout, the status goes to stderr so that stdout is the token alone.
    stream = sys.stderr if status.issued is not None else sys.stdout
    print("status: valid" if status.valid else "status: invalid", file=stream)
    print(f"reason: {clean(status.reason) or '-'}", file=stream)
    if status.issued is not None:
        stream.flush()
        return emit_issued(status.issued, out=args.out, proof_key_out=None)
    return 0 if status.valid else EXIT_INVALID


def _renew(args: argparse.Namespace) -> int:
    issued = renew_token(_target(args), read_password(args))
    return emit_issued(issued, out=args.out, proof_key_out=args.proof_key_out)


def _cancel(args: argparse.Namespace) -> int:
    cancel_token(_target(args), read_password(args))
    print("cancelled")
    sys.stdout.flush()
    return 0


_HANDLERS = {"validate": _validate, "renew": _renew, "cancel": _cancel}

__all__ = ["EXIT_INVALID", "register"]
