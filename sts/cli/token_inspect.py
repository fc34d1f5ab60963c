"""``sts token inspect``: decrypt, verify and show a token with :func:`sts.client.inspect_token`.

Exit 1 if the signature is invalid (or the file holds no usable token).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sts.cli.common import CommandError, SubParsers, read_secret, settings_from
from sts.client import DecryptionKeyNeeded, Inspection, InspectOptions, clean, inspect_token
from sts.crypto.keystore import fingerprint


def register(commands: SubParsers) -> None:
    """Add the ``token`` command and its ``inspect`` action."""
    token = commands.add_parser("token", help="work with issued tokens")
    sub = token.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    inspect = sub.add_parser(
        "inspect",
        help="decrypt, verify and show a token",
        description="Decrypt (--rp-key) and verify a token, then show what the signed assertion says. FILE holds "
        "an Assertion, EncryptedAssertion or EncryptedData, or a whole RSTR / SOAP response.",
    )
    inspect.add_argument("file", type=Path, metavar="FILE", help="token or response file")
    inspect.add_argument("--rp-key", type=Path, metavar="KEY", help="relying-party private key (PEM) to decrypt with")
    inspect.add_argument(
        "--sts-cert", type=Path, metavar="CERT", help="STS signing certificate (default: the instance's, from --config)"
    )
    inspect.set_defaults(handler=_inspect)


def _inspect(args: argparse.Namespace) -> int:
    options = InspectOptions(
        token_file=args.file,
        # The instance's certificate is looked up only once the file is known to hold a token.
        sts_certificate=args.sts_cert if args.sts_cert is not None else lambda: settings_from(args).issuer.signing_cert,
        rp_key=args.rp_key,
        passphrase=_ask_passphrase,
    )
    try:
        inspection = inspect_token(options)
    except DecryptionKeyNeeded:
        raise CommandError("the token is encrypted: give the relying party's private key with --rp-key KEY") from None
    print(f"encrypted: {'yes (decrypted with ' + str(args.rp_key) + ')' if inspection.encrypted else 'no'}")
    if not inspection.valid:
        print(f"signature: INVALID ({inspection.rejection})")
        return 1
    print(f"signature: valid (pinned STS certificate {fingerprint(inspection.certificate)})")
    for line in _table(inspection):
        print(line)
    return 0


def _ask_passphrase(path: Path) -> str:
    return read_secret(f"Passphrase for {path}: ", from_stdin=False)


def _table(inspection: Inspection) -> list[str]:
    """One ``label: value`` line per row, labels aligned, values escaped for a terminal."""
    width = max(len(label) for label, _ in inspection.rows)
    return [f"{label + ':':<{width + 1}} {clean(value)}" for label, value in inspection.rows]
