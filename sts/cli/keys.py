"""``sts key rotate | promote | status``: signing-key rotation without a restart (README, "Rotating the signing
key").

``rotate`` writes a next key and certificate beside the current ones; running workers publish its certificate in
the federation metadata within a second or so. ``promote`` makes it the signing key (running workers switch within
a second or so); the replaced certificate stays accepted by Validate and Renew for ``[issuer] previous_overlap``
seconds. ``[issuer] promote_at`` promotes at a set time instead, on every node by its own clock.
"""

from __future__ import annotations

import argparse
import datetime as dt

from sts.cli.common import CommandError, SubParsers, settings_from
from sts.config.settings import Settings
from sts.crypto.keyring import build_ring
from sts.crypto.keystore import KeyStoreError, fingerprint
from sts.crypto.rotation import RotationError, promote, rotate


def register(commands: SubParsers) -> None:
    """Add the ``key`` command group."""
    parser = commands.add_parser("key", help="rotate the signing key", description=__doc__)
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    rotate_parser = verbs.add_parser("rotate", help="create the next signing key and publish its certificate")
    rotate_parser.add_argument("--days", type=int, default=825, help="validity of the new certificate (default 825)")
    rotate_parser.add_argument("--replace", action="store_true", help="replace a next key that is already waiting")
    rotate_parser.set_defaults(handler=_rotate)
    promote_parser = verbs.add_parser("promote", help="make the next key the signing key")
    promote_parser.set_defaults(handler=_promote)
    status_parser = verbs.add_parser("status", help="show the current, next and still accepted certificates")
    status_parser.set_defaults(handler=_status)


def _settings(args: argparse.Namespace) -> Settings:
    settings = settings_from(args)
    if settings.issuer.pkcs11_module is not None:
        raise CommandError(
            "the signing key is in a PKCS#11 token: create the new key in the token, then change"
            " [issuer] pkcs11_key_label and signing_cert and run `sts reload` (README, HSM)"
        )
    return settings


def _rotate(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if not 1 <= args.days <= 3650:
        raise CommandError("--days must be between 1 and 3650")
    try:
        cert = rotate(settings, dt.datetime.now(dt.UTC), args.days, args.replace)
    except RotationError as exc:
        raise CommandError(str(exc)) from None
    print(f"next signing certificate: {fingerprint(cert)}")
    print(f"  written to {settings.issuer.next_signing_cert}; published in the metadata by running servers")
    print("  promote it with `sts key promote` once relying parties have fetched it (or set [issuer] promote_at)")
    return 0


def _promote(args: argparse.Namespace) -> int:
    settings = _settings(args)
    try:
        promoted = promote(settings, dt.datetime.now(dt.UTC))
    except RotationError as exc:
        raise CommandError(str(exc)) from None
    print(f"signing certificate now: {fingerprint(promoted.current)}")
    print(f"  replaced certificate kept in {promoted.retired}, accepted for"
          f" {settings.issuer.previous_overlap} s more; running servers switch within seconds")
    return 0


def _status(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    try:
        ring = build_ring(settings, lambda: dt.datetime.now(dt.UTC))
    except KeyStoreError as exc:
        raise CommandError("cannot load keys:\n  " + "\n  ".join(exc.problems)) from None
    for entry in ring.state().published:
        cert = entry.cert
        print(f"{entry.role:9} {fingerprint(cert)}  valid until {cert.not_valid_after_utc:%Y-%m-%d}")
    return 0
