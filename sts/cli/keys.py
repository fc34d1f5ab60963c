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
from sts.crypto.keyring import build_ring, load_material
from sts.crypto.keystore import KeyStoreError, fingerprint
from sts.crypto.rotation import Promoted, RotationError, promote, rotate


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
        rotated = rotate(settings, dt.datetime.now(dt.UTC), args.days, args.replace)
    except RotationError as exc:
        raise CommandError(str(exc)) from None
    if rotated.promoted is not None:
        _print_promoted(settings, rotated.promoted)
    print(f"next signing certificate: {fingerprint(rotated.next_cert)}")
    print(f"  written to {settings.issuer.next_signing_cert}; published in the metadata by running servers")
    print("  promote it with `sts key promote` once relying parties have fetched it (or set [issuer] promote_at)")
    return 0


def _promote(args: argparse.Namespace) -> int:
    settings = _settings(args)
    try:
        promoted = promote(settings, dt.datetime.now(dt.UTC))
    except RotationError as exc:
        raise CommandError(str(exc)) from None
    _print_promoted(settings, promoted)
    return 0


def _print_promoted(settings: Settings, promoted: Promoted) -> None:
    until = promoted.retired_at + dt.timedelta(seconds=settings.issuer.previous_overlap)
    if promoted.by_schedule:
        print(f"[issuer] promote_at made the next key the signing key at {promoted.retired_at:%Y-%m-%dT%H:%M:%SZ};"
              " moved its files to signing_key/signing_cert")
    print(f"signing certificate now: {fingerprint(promoted.current)}")
    print(f"  replaced certificate kept in {promoted.retired}, accepted until {until:%Y-%m-%dT%H:%M:%SZ};"
          " running servers switch within seconds")


def _status(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    now = dt.datetime.now(dt.UTC)
    try:
        material = load_material(settings, now)
    except KeyStoreError as exc:
        raise CommandError("cannot load keys:\n  " + "\n  ".join(exc.problems)) from None
    state = build_ring(settings, lambda: now, material).state()
    for entry in state.published:
        cert = entry.cert
        print(f"{entry.role:9} {fingerprint(cert)}  valid until {cert.not_valid_after_utc:%Y-%m-%d}")
    if material.next_cert is not None and fingerprint(material.next_cert) == fingerprint(state.signing_cert):
        # Not an error: the next `sts key rotate` or `promote` moves the files; say why the names differ.
        print(f"(the current key is still in {settings.issuer.next_signing_key}: [issuer] promote_at promoted it;"
              " `sts key rotate` or `sts key promote` moves it to signing_key)")
    return 0
