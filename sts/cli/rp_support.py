"""Support for ``sts rp``: option parsing, store access and the relying-party certificates in the truststore.

Certificates are copied into the instance truststore as ``<slug>.crt.pem`` (PEM, 0644), written atomically
together with the database change, and deleted again once no relying party refers to them.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import os
import re
import sqlite3
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.x509.oid import ExtensionOID

from sts.cli.common import CommandError
from sts.config.relying_parties import (
    MATCH_KINDS,
    NAMEID_SOURCES,
    PROFILES,
    TOKEN_TYPES,
    RelyingParty,
    RelyingPartyError,
    RelyingPartyStore,
    is_absolute_uri,
    normalize_address,
    validate,
)
from sts.crypto.algorithms import CIPHER_NAMES, KEY_TRANSPORT_NAMES
from sts.crypto.keygen import certificate_pem
from sts.crypto.keystore import check_certificate, load_certificate
from sts.stores.sqlite import Database

CERT_SUFFIX = ".crt.pem"
SLUG_MAX = 60
MAX_LIFETIME = 43200
# Options whose empty value means "from the profile" (or, for --profile, "from the [tokens] profile").
_FROM_PROFILE = ("token_type", "profile")


# --- options ---------------------------------------------------------------------------------------------------


def changes_from(args: argparse.Namespace, current: RelyingParty) -> dict[str, Any]:
    """The settings given on the command line, checked, as RelyingParty field values.

    ``--token-type``, ``--nameid``, ``--profile`` and ``--encryption`` accept ``''``: back to the profile's value;
    ``--nameid-format ''`` goes back to the default Format of the NameID source.
    ``--encryption CIPHER`` alone keeps ``current``'s key transport (empty for a new relying party: the profile's).
    """
    changes: dict[str, Any] = {}
    for option, allowed in (
        ("match", MATCH_KINDS),
        ("token_type", TOKEN_TYPES),
        ("profile", PROFILES),
    ):
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
            changes["cipher"], changes["key_transport"] = parse_encryption(args.encryption, current.key_transport)
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
    """``CIPHER[,KEYTRANSPORT]`` → the two short names; only names of the allow-lists exist (E01, E02).

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
    """Claim URIs, de-duplicated in order; each must be an absolute URI without spaces."""
    claims: list[str] = []
    for item in items:
        uri = item.strip()
        if not _is_uri(uri):
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
        if not sep or not _is_uri(local) or not _is_uri(remote):
            raise CommandError(f"--claim-map expects LOCAL=REMOTE, two absolute claim URIs, got {item!r}")
        if (local, remote) in pairs:
            continue
        if any(local == seen for seen, _ in pairs):
            raise CommandError(f"--claim-map: {local} is mapped twice")
        if any(remote == seen for _, seen in pairs):
            raise CommandError(f"--claim-map: more than one local claim maps to {remote}")
        pairs.append((local, remote))
    return tuple(pairs)


def _is_uri(text: str) -> bool:
    return bool(text) and not any(ch.isspace() for ch in text) and bool(urlsplit(text).scheme)


def _parse_identifier(text: str) -> str:
    identifier = text.strip()
    if identifier and (any(ch.isspace() for ch in identifier) or not urlsplit(identifier).scheme):
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


# --- store -------------------------------------------------------------------------------------------------------


def validated(rp: RelyingParty) -> RelyingParty:
    """:func:`sts.config.relying_parties.validate`, its refusals as :class:`CommandError`."""
    try:
        return validate(rp)
    except RelyingPartyError as exc:
        raise CommandError(str(exc)) from None
    except ValueError as exc:  # urlsplit: bad port or IPv6 literal
        raise CommandError(f"invalid address {rp.address!r}: {exc}") from None


def store_call(action: Callable[[], object]) -> None:
    """Run a store change, its refusals (and duplicate keys) as :class:`CommandError`."""
    try:
        action()
    except RelyingPartyError as exc:
        raise CommandError(str(exc)) from None
    except sqlite3.IntegrityError:
        raise CommandError("that relying party is already registered") from None


def find_rp(store: RelyingPartyStore, address: str) -> RelyingParty:
    """A relying party by its registered address, also accepted un-normalised or differently cased.

    The address exactly as given wins (a regex RP's pattern may normalise to another RP's address), then its
    normalised form (exact/prefix RPs), then a case-insensitive comparison (addresses are unique that way).
    """
    candidates = [address, address.strip()]
    with contextlib.suppress(RelyingPartyError, ValueError):
        candidates.append(normalize_address(address))
    for candidate in dict.fromkeys(candidates):
        with contextlib.suppress(RelyingPartyError):
            return store.get(candidate)
    folded = {candidate.casefold() for candidate in candidates}
    for rp in store.all():
        if rp.address.casefold() in folded:
            return rp
    raise CommandError(f"no relying party {address}")


def save(store: RelyingPartyStore, db: Database, old: RelyingParty, new: RelyingParty) -> None:
    """Update in place, or (when the address itself changed, e.g. a new --match) replace in one transaction."""
    if new.address == old.address:
        store.update(new)
        return
    conn = db.conn
    conn.execute("BEGIN IMMEDIATE")
    try:
        store.remove(old.address)
        store.add(new)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


# --- truststore --------------------------------------------------------------------------------------------------


def slug(address: str) -> str:
    """A file-name stem for a relying party: readable part of the address plus a short hash of all of it."""
    readable = re.sub(r"[^a-z0-9]+", "-", address.lower()).strip("-")[:SLUG_MAX].strip("-") or "rp"
    return f"{readable}-{hashlib.sha256(address.encode()).hexdigest()[:8]}"


def cert_name(store: RelyingPartyStore, address: str, exclude: str) -> str:
    """``<slug>.crt.pem``, made unique among the files other relying parties use."""
    taken = {rp.cert_file for rp in store.all() if rp.address != exclude}
    stem = slug(address)
    name, counter = stem + CERT_SUFFIX, 2
    while name in taken:
        name, counter = f"{stem}-{counter}{CERT_SUFFIX}", counter + 1
    return name


def read_certificate(path: Path) -> x509.Certificate:
    """Parse and check a relying-party certificate: RSA >= 2048 bits and valid now (I20, E05); warnings printed."""
    try:
        cert = load_certificate(path)
    except FileNotFoundError:
        raise CommandError(f"--cert: {path} not found") from None
    except OSError as exc:
        raise CommandError(f"--cert: cannot read {path}: {exc.strerror or exc}") from None
    except ValueError:
        raise CommandError(f"--cert: {path} is not a PEM or DER X.509 certificate") from None
    problems, warnings = check_certificate(cert, f"certificate {path}", dt.datetime.now(dt.UTC))
    if problems:
        raise CommandError("refusing the certificate: " + "; ".join(problems))
    with contextlib.suppress(x509.ExtensionNotFound):
        usage = cert.extensions.get_extension_for_oid(ExtensionOID.KEY_USAGE).value
        if isinstance(usage, x509.KeyUsage) and not usage.key_encipherment:
            warnings.append(f"certificate {path}: its KeyUsage does not include keyEncipherment")
    for line in warnings:
        warn(line)
    return cert


def install_certificate(truststore: Path, name: str, cert: x509.Certificate, persist: Callable[[], object]) -> None:
    """Write the certificate as ``truststore/name`` (PEM, 0644) and run ``persist``; all or nothing."""
    if Path(name).name != name:
        raise CommandError(f"invalid certificate file name {name!r}")
    truststore.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=truststore, prefix=".rp-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(certificate_pem(cert))
        os.chmod(tmp, 0o644)
        store_call(persist)
        os.replace(tmp, truststore / name)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def drop_certificate(store: RelyingPartyStore, truststore: Path, name: str) -> bool:
    """Delete a truststore file no relying party refers to any more; whether it was deleted."""
    if Path(name).name != name or name in {rp.cert_file for rp in store.all()}:
        return False
    path = truststore / name
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    except OSError as exc:
        warn(f"could not delete {path}: {exc.strerror or exc}")
        return False
    return True


def warn(message: str) -> None:
    """Print ``sts: warning: message`` on stderr."""
    print(f"sts: warning: {message}", file=sys.stderr)


__all__ = [
    "CERT_SUFFIX",
    "MAX_LIFETIME",
    "cert_name",
    "changes_from",
    "drop_certificate",
    "find_rp",
    "install_certificate",
    "parse_claim_maps",
    "parse_claims",
    "parse_encryption",
    "read_certificate",
    "save",
    "slug",
    "store_call",
    "validated",
    "warn",
]
