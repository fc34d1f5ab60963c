"""Arguments of ``sts rp``: options checked and turned into relying-party settings, ``--cert`` read and vetted.

What is done with them (the registry, the truststore) is :mod:`sts.relying_parties.registration`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path
from typing import Any

from cryptography import x509

from sts.cli.common import CommandError
from sts.config.settings import PROFILE_NAMES
from sts.crypto.algorithms import CIPHER_NAMES, KEY_TRANSPORT_NAMES
from sts.crypto.keystore import load_certificate
from sts.relying_parties.certificates import vet_certificate
from sts.relying_parties.model import (
    MAX_LIFETIME,
    NAMEID_SOURCES,
    Match,
    RelyingPartyError,
    TokenFormat,
    is_absolute_uri,
)

# Options whose empty value means "from the profile" (or, for --profile, "from the [tokens] profile").
_FROM_PROFILE = ("token_type", "profile")


# --- options ---------------------------------------------------------------------------------------------------


def changes_from(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given on the command line, checked, as RelyingParty field values (absent: not given).

    ``--token-type``, ``--nameid``, ``--profile`` and ``--encryption`` accept ``''``: back to the profile's value;
    ``--nameid-format ''`` goes back to the default Format of the NameID source.
    ``--encryption CIPHER`` alone leaves the key transport as it is (for a new relying party: the profile's).
    """
    changes: dict[str, Any] = {}
    options: tuple[tuple[str, tuple[str, ...]], ...] = (
        ("match", tuple(Match)),
        ("token_type", tuple(TokenFormat)),
        ("profile", PROFILE_NAMES),
    )
    for option, allowed in options:
        value = getattr(args, option)
        if value is not None:
            if value not in allowed and not (value == "" and option in _FROM_PROFILE):
                flag = "--" + option.replace("_", "-")
                raise CommandError(f"{flag} must be one of {', '.join(allowed)}, not {value!r}")
            changes[option] = value
    changes.update(_nameid_changes(args))
    if args.encrypt is not None:
        changes["encrypt"] = args.encrypt
    if args.applies_to_in_response is not None:
        changes["applies_to_in_response"] = args.applies_to_in_response
    if args.encryption is not None:
        if args.encryption.strip():
            changes["cipher"], key_transport = parse_encryption(args.encryption)
            if key_transport:
                changes["key_transport"] = key_transport
        else:
            changes["cipher"] = changes["key_transport"] = ""
    if args.identifier is not None:
        changes["identifier"] = _parse_identifier(args.identifier)
    if args.claim is not None:
        changes["claims"] = parse_claims(args.claim)
    if args.claim_map is not None:
        changes["claim_mapping"] = parse_claim_maps(args.claim_map)
    if args.lifetime is not None:
        changes["lifetime"] = _parse_lifetime(args.lifetime)
    return changes


def _nameid_changes(args: argparse.Namespace) -> dict[str, str]:
    """``--nameid username|email|CLAIM_URI`` and ``--nameid-format URI`` (``''``: back to the default)."""
    changes: dict[str, str] = {}
    if args.nameid is not None:
        source = args.nameid.strip()
        if source and source not in NAMEID_SOURCES and not is_absolute_uri(source):
            raise CommandError(
                f"--nameid must be one of {', '.join(NAMEID_SOURCES)} or an absolute claim URI, not {args.nameid!r}"
            )
        changes["nameid"] = source
    if args.nameid_format is not None:
        name_format = args.nameid_format.strip()
        if name_format and not is_absolute_uri(name_format):
            raise CommandError(f"--nameid-format expects an absolute URI, got {args.nameid_format!r}")
        changes["nameid_format"] = name_format
    return changes


def parse_encryption(text: str, default_key_transport: str = "") -> tuple[str, str]:
    """``CIPHER[,KEYTRANSPORT]`` → the two short names; only names of the allow-lists exist (XML Encryption 1.1 §5).

    With CIPHER alone the key transport is ``default_key_transport`` (empty: the profile decides).
    """
    cipher, sep, transport = (part.strip().lower() for part in text.partition(","))
    if cipher not in CIPHER_NAMES:
        raise CommandError(
            f"--encryption: unknown data cipher {cipher!r}; choose from {', '.join(CIPHER_NAMES)}"
            " (legacy algorithms such as 3DES are not available)"
        )
    if not sep:
        return cipher, default_key_transport
    if transport not in KEY_TRANSPORT_NAMES:
        raise CommandError(
            f"--encryption: unknown key transport {transport!r}; choose from {', '.join(KEY_TRANSPORT_NAMES)}"
            " (RSA 1.5 is not available)"
        )
    return cipher, transport


def parse_claims(items: list[str]) -> tuple[str, ...]:
    """Claim URIs, de-duplicated in order; each must be an absolute URI without spaces, of XML characters."""
    claims: list[str] = []
    for item in items:
        uri = item.strip()
        if not is_absolute_uri(uri):
            raise CommandError(f"--claim expects an absolute claim URI, got {item!r}")
        if uri not in claims:
            claims.append(uri)
    return tuple(claims)


def parse_claim_maps(items: list[str]) -> tuple[tuple[str, str], ...]:
    """``LOCAL=REMOTE`` items → (local claim URI, URI the relying party expects) pairs, in order.

    Both sides must be absolute URIs without spaces. The mapping has to work both ways (a request may use
    either spelling), so a local claim maps to one URI and no two local claims share one; repeats are dropped.
    """
    pairs: list[tuple[str, str]] = []
    for item in items:
        local, sep, remote = (part.strip() for part in item.partition("="))
        if not sep or not is_absolute_uri(local) or not is_absolute_uri(remote):
            raise CommandError(f"--claim-map expects LOCAL=REMOTE, two absolute claim URIs, got {item!r}")
        if (local, remote) in pairs:
            continue
        if any(local == seen for seen, _ in pairs):
            raise CommandError(f"--claim-map: {local} is mapped twice")
        if any(remote == seen for _, seen in pairs):
            raise CommandError(f"--claim-map: more than one local claim maps to {remote}")
        pairs.append((local, remote))
    return tuple(pairs)


def _parse_identifier(text: str) -> str:
    identifier = text.strip()
    if identifier and not is_absolute_uri(identifier):
        raise CommandError(f"--identifier expects an absolute URI, got {text!r}")
    return identifier


def _parse_lifetime(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise CommandError(f"--lifetime expects a number of seconds, got {text!r}") from None
    if not 0 <= value <= MAX_LIFETIME:
        raise CommandError(f"--lifetime must be between 1 and {MAX_LIFETIME} seconds (0: the default)")
    return value


# --- certificate file ------------------------------------------------------------------------------------------


def read_certificate(path: Path) -> x509.Certificate:
    """Read ``--cert`` (PEM or DER) and vet it for a relying party (RSA >= 2048 bits, valid now, an end entity's
    key that may transport keys: :func:`~sts.relying_parties.certificates.rp_certificate_problems`); warnings
    printed."""
    try:
        cert = load_certificate(path)
    except FileNotFoundError:
        raise CommandError(f"--cert: {path} not found") from None
    except OSError as exc:
        raise CommandError(f"--cert: cannot read {path}: {exc.strerror or exc}") from None
    except ValueError:
        raise CommandError(f"--cert: {path} is not a PEM or DER X.509 certificate") from None
    try:
        warnings = vet_certificate(cert, f"certificate {path}", dt.datetime.now(dt.UTC))
    except RelyingPartyError as exc:
        raise CommandError(str(exc)) from None
    for line in warnings:
        warn(line)
    return cert


def warn(message: str) -> None:
    """Print ``sts: warning: message`` on stderr."""
    print(f"sts: warning: {message}", file=sys.stderr)


__all__ = [
    "changes_from",
    "parse_claim_maps",
    "parse_claims",
    "parse_encryption",
    "read_certificate",
    "warn",
]
