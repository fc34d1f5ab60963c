"""``sts rp ...``: register the relying parties tokens are issued for (WSO2's "service providers" with WS-Trust).

A relying party is an endpoint address (``--match exact``, the default), an address prefix ending in ``/``
(``--match prefix``) or an anchored regular expression (``--match regex``), compared with the AppliesTo of a
request after one documented normalisation (lower-case scheme and host, default port dropped).
Tokens for it are encrypted with its certificate, which ``add`` checks (RSA >= 2048 bits, currently valid) and
copies into the instance truststore. Data ciphers: aes256-gcm (default), aes128-gcm, aes256-cbc (.NET Framework /
WIF relying parties only); key transport: rsa-oaep-mgf1p (default) or rsa-oaep. RSA 1.5 and 3DES do not exist.
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
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtensionOID

from sts.cli.common import CommandError, SubParsers, open_database, settings_from
from sts.config.relying_parties import (
    MATCH_KINDS,
    NAMEID_SOURCES,
    PROFILES,
    TOKEN_TYPES,
    RelyingParty,
    RelyingPartyError,
    RelyingPartyStore,
    normalize_address,
    validate,
)
from sts.crypto.algorithms import CIPHER_NAMES, KEY_TRANSPORT_NAMES
from sts.crypto.keystore import check_certificate, fingerprint, load_certificate
from sts.stores.sqlite import Database

DEFAULT_CIPHER = "aes256-gcm"
DEFAULT_KEY_TRANSPORT = "rsa-oaep-mgf1p"
LEGACY_CIPHER = "aes256-cbc"
CERT_SUFFIX = ".crt.pem"
SLUG_MAX = 60
MAX_LIFETIME = 43200


def register(commands: SubParsers) -> None:
    """Add the ``rp`` command group."""
    rp = commands.add_parser("rp", help="manage relying parties", description=__doc__)
    sub = rp.add_subparsers(dest="rp_command", metavar="ACTION", required=True)

    add = sub.add_parser("add", help="register a relying party", description="Register a relying party.")
    add.add_argument("address", metavar="ADDRESS", help="endpoint address (or prefix / regular expression)")
    add.add_argument("--cert", type=Path, metavar="FILE", help="its certificate, PEM or DER (required to encrypt)")
    add.add_argument(
        "--no-encrypt", dest="encrypt", action="store_const", const=False, help="issue unencrypted tokens"
    )
    add.add_argument(
        "--no-applies-to-in-response",
        dest="applies_to_in_response",
        action="store_const",
        const=False,
        help="leave wsp:AppliesTo out of the response",
    )
    _options(add, update=False)
    add.set_defaults(handler=_add)

    sub.add_parser("list", help="list relying parties", description="One line per relying party.").set_defaults(
        handler=_list
    )

    show = sub.add_parser("show", help="show a relying party", description="Every setting and the certificate.")
    show.add_argument("address", metavar="ADDRESS", help="the registered address")
    show.set_defaults(handler=_show)

    update = sub.add_parser(
        "update", help="change a relying party", description="Change the given settings; the others are kept."
    )
    update.add_argument("address", metavar="ADDRESS", help="the registered address")
    update.add_argument("--cert", type=Path, metavar="FILE", help="replace its certificate (PEM or DER)")
    update.add_argument(
        "--encrypt", action=argparse.BooleanOptionalAction, default=None, help="encrypt tokens (or not)"
    )
    update.add_argument(
        "--applies-to-in-response",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="echo wsp:AppliesTo in the response (or not)",
    )
    _options(update, update=True)
    update.add_argument("--clear-claims", action="store_true", help="request no claims")
    update.set_defaults(handler=_update)

    remove = sub.add_parser(
        "remove", help="unregister a relying party", description="Unregister a relying party and drop its certificate."
    )
    remove.add_argument("address", metavar="ADDRESS", help="the registered address")
    remove.set_defaults(handler=_remove)


def _options(parser: argparse.ArgumentParser, *, update: bool) -> None:
    """The settings shared by ``add`` and ``update`` (values are checked by the handlers: errors exit 1)."""
    default = " (default: {})"
    parser.add_argument(
        "--match",
        metavar="|".join(MATCH_KINDS),
        help="how ADDRESS is compared; prefixes must end with '/', regexes are anchored"
        + ("" if update else default.format("exact")),
    )
    parser.add_argument(
        "--token-type",
        metavar="|".join(sorted(TOKEN_TYPES)),
        help="SAML version of issued tokens" + ("" if update else default.format("saml20")),
    )
    parser.add_argument(
        "--identifier",
        metavar="URI",
        help="Audience/Recipient written into tokens; required with --match regex"
        + ("; '' clears it" if update else " (default: the registered address)"),
    )
    kt_default = "keeps the current KEYTRANSPORT" if update else f"means KEYTRANSPORT {DEFAULT_KEY_TRANSPORT}"
    parser.add_argument(
        "--encryption",
        metavar="CIPHER[,KEYTRANSPORT]",
        help=f"CIPHER: {', '.join(CIPHER_NAMES)}; KEYTRANSPORT: {', '.join(KEY_TRANSPORT_NAMES)}; "
        f"CIPHER alone {kt_default}" + ("" if update else default.format(f"{DEFAULT_CIPHER},{DEFAULT_KEY_TRANSPORT}")),
    )
    parser.add_argument(
        "--claim",
        action="append",
        metavar="URI",
        help="claim to include (repeatable)" + ("; replaces the current list" if update else ""),
    )
    parser.add_argument(
        "--lifetime",
        metavar="SECONDS",
        help=f"token lifetime, 1..{MAX_LIFETIME} (0: the [tokens] default)" + ("" if update else default.format(0)),
    )
    parser.add_argument(
        "--nameid",
        metavar="|".join(NAMEID_SOURCES),
        help="what the subject NameID carries" + ("" if update else default.format("username")),
    )
    parser.add_argument(
        "--profile",
        metavar="|".join(PROFILES),
        help="compatibility profile" + ("" if update else default.format("strict")),
    )


# --- handlers -------------------------------------------------------------------------------------------------


def _add(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    changes = _changes(args, RelyingParty(address=args.address))
    rp = replace(RelyingParty(address=args.address), **changes)
    if rp.encrypt and args.cert is None:
        raise CommandError("--cert is required unless --no-encrypt")
    cert = _read_certificate(args.cert) if args.cert is not None else None
    rp = _validated(rp if cert is None else replace(rp, cert_file="pending" + CERT_SUFFIX))
    db = open_database(settings)
    try:
        store = RelyingPartyStore(db)
        if cert is None:
            rp = replace(rp, cert_file="")
            _store_call(lambda: store.add(rp))
        else:
            name = _cert_name(store, rp.address, exclude="")
            rp = replace(rp, cert_file=name)
            _install(settings.store.truststore, name, cert, lambda: store.add(rp))
    finally:
        db.close()
    print(f"registered relying party {rp.address} ({rp.match}, {rp.token_type}, {_encryption_text(rp)})")
    if cert is not None:
        print(f"  certificate: {settings.store.truststore / rp.cert_file}  SHA-256 {fingerprint(cert)}")
    _warn_about(rp, cipher_given=True)
    return 0


def _list(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    db = open_database(settings)
    try:
        rps = RelyingPartyStore(db).all()
    finally:
        db.close()
    for rp in rps:
        encrypt = "yes" if rp.encrypt else "no"
        cipher = f"{rp.cipher},{rp.key_transport}" if rp.encrypt else "-"
        print(f"{rp.address}\t{rp.match}\t{rp.token_type}\tencrypt: {encrypt}\t{cipher}")
    return 0


def _show(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    db = open_database(settings)
    try:
        rp = _find(RelyingPartyStore(db), args.address)
    finally:
        db.close()
    print(f"address:                {rp.address}")
    print(f"match:                  {rp.match}")
    print(f"identifier:             {rp.identifier or '(the address)'}")
    print(f"token type:             {rp.token_type}")
    print(f"encrypt:                {'yes' if rp.encrypt else 'no'}")
    print(f"cipher:                 {rp.cipher}")
    print(f"key transport:          {rp.key_transport}")
    print(f"nameid:                 {rp.nameid}")
    print(f"lifetime:               {rp.lifetime or 'default'}")
    print(f"profile:                {rp.profile}")
    print(f"applies-to in response: {'yes' if rp.applies_to_in_response else 'no'}")
    print(f"claims:                 {len(rp.claims) or '-'}")
    for claim in rp.claims:
        print(f"  claim:                {claim}")
    if rp.claim_mapping:
        print("claim mapping:")
        for local, remote in rp.claim_mapping:
            print(f"  {local} -> {remote}")
    if not rp.cert_file:
        print("certificate:            -")
        return 0
    path = settings.store.truststore / rp.cert_file
    print(f"certificate file:       {path}")
    try:
        cert = load_certificate(path)
    except (OSError, ValueError) as exc:
        print(f"certificate:            unreadable ({exc.__class__.__name__}: {exc})")
        return 0
    print(f"certificate subject:    {cert.subject.rfc4514_string()}")
    print(f"certificate issuer:     {cert.issuer.rfc4514_string()}")
    print(f"certificate valid from: {cert.not_valid_before_utc:%Y-%m-%d %H:%M:%S} UTC")
    print(f"certificate expires:    {cert.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC")
    print(f"certificate SHA-256:    {fingerprint(cert)}")
    problems, warnings = check_certificate(cert, "certificate", dt.datetime.now(dt.UTC))
    for line in problems:
        print(f"problem: {line}")
    for line in warnings:
        print(f"warning: {line}")
    return 0


def _update(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    if args.clear_claims and args.claim:
        raise CommandError("give either --claim or --clear-claims, not both")
    cert = _read_certificate(args.cert) if args.cert is not None else None
    db = open_database(settings)
    try:
        store = RelyingPartyStore(db)
        old = _find(store, args.address)
        changes = _changes(args, old)
        if args.clear_claims:
            changes["claims"] = ()
        new = replace(old, **changes)
        if new.encrypt and not new.cert_file and cert is None:
            raise CommandError(f"relying party {old.address} has no certificate: give --cert to encrypt")
        if cert is not None:
            new = replace(new, cert_file="pending" + CERT_SUFFIX)
        new = _validated(new)
        if cert is None:
            _store_call(lambda: _save(store, db, old, new))
        else:
            new = replace(new, cert_file=_cert_name(store, new.address, exclude=old.address))
            _install(settings.store.truststore, new.cert_file, cert, lambda: _save(store, db, old, new))
            if old.cert_file and old.cert_file != new.cert_file:
                _drop_certificate(store, settings.store.truststore, old.cert_file)
    finally:
        db.close()
    print(f"updated relying party {new.address} ({new.match}, {new.token_type}, {_encryption_text(new)})")
    if cert is not None:
        print(f"  certificate: {settings.store.truststore / new.cert_file}  SHA-256 {fingerprint(cert)}")
    _warn_about(new, cipher_given=args.encryption is not None, encrypt_given=args.encrypt is not None)
    return 0


def _remove(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    db = open_database(settings)
    try:
        store = RelyingPartyStore(db)
        rp = _find(store, args.address)
        _store_call(lambda: store.remove(rp.address))
        print(f"removed relying party {rp.address}")
        if rp.cert_file and _drop_certificate(store, settings.store.truststore, rp.cert_file):
            print(f"  deleted certificate {settings.store.truststore / rp.cert_file}")
    finally:
        db.close()
    return 0


# --- options ---------------------------------------------------------------------------------------------------


def _changes(args: argparse.Namespace, current: RelyingParty) -> dict[str, Any]:
    """The settings given on the command line, checked, as RelyingParty field values."""
    changes: dict[str, Any] = {}
    for option, allowed in (
        ("match", MATCH_KINDS),
        ("token_type", TOKEN_TYPES),
        ("nameid", NAMEID_SOURCES),
        ("profile", PROFILES),
    ):
        value = getattr(args, option)
        if value is not None:
            if value not in allowed:
                flag = "--" + option.replace("_", "-")
                raise CommandError(f"{flag} must be one of {', '.join(allowed)}, not {value!r}")
            changes[option] = value
    if args.encrypt is not None:
        changes["encrypt"] = args.encrypt
    if args.applies_to_in_response is not None:
        changes["applies_to_in_response"] = args.applies_to_in_response
    if args.encryption is not None:
        changes["cipher"], changes["key_transport"] = parse_encryption(args.encryption, current.key_transport)
    if args.identifier is not None:
        changes["identifier"] = _parse_identifier(args.identifier)
    if args.claim is not None:
        changes["claims"] = parse_claims(args.claim)
    if args.lifetime is not None:
        changes["lifetime"] = _parse_lifetime(args.lifetime)
    return changes


def parse_encryption(text: str, default_key_transport: str = DEFAULT_KEY_TRANSPORT) -> tuple[str, str]:
    """``CIPHER[,KEYTRANSPORT]`` → the two short names; only names of the allow-lists exist (E01, E02)."""
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
        if not uri or any(ch.isspace() for ch in uri) or not urlsplit(uri).scheme:
            raise CommandError(f"--claim expects an absolute claim URI, got {item!r}")
        if uri not in claims:
            claims.append(uri)
    return tuple(claims)


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


# --- store and truststore ----------------------------------------------------------------------------------------


def _validated(rp: RelyingParty) -> RelyingParty:
    try:
        return validate(rp)
    except RelyingPartyError as exc:
        raise CommandError(str(exc)) from None
    except ValueError as exc:  # urlsplit: bad port or IPv6 literal
        raise CommandError(f"invalid address {rp.address!r}: {exc}") from None


def _store_call(action: Callable[[], object]) -> None:
    try:
        action()
    except RelyingPartyError as exc:
        raise CommandError(str(exc)) from None
    except sqlite3.IntegrityError:
        raise CommandError("that relying party is already registered") from None


def _find(store: RelyingPartyStore, address: str) -> RelyingParty:
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


def _save(store: RelyingPartyStore, db: Database, old: RelyingParty, new: RelyingParty) -> None:
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


def slug(address: str) -> str:
    """A file-name stem for a relying party: readable part of the address plus a short hash of all of it."""
    readable = re.sub(r"[^a-z0-9]+", "-", address.lower()).strip("-")[:SLUG_MAX].strip("-") or "rp"
    return f"{readable}-{hashlib.sha256(address.encode()).hexdigest()[:8]}"


def _cert_name(store: RelyingPartyStore, address: str, exclude: str) -> str:
    """``<slug>.crt.pem``, made unique among the files other relying parties use."""
    taken = {rp.cert_file for rp in store.all() if rp.address != exclude}
    stem = slug(address)
    name, counter = stem + CERT_SUFFIX, 2
    while name in taken:
        name, counter = f"{stem}-{counter}{CERT_SUFFIX}", counter + 1
    return name


def _read_certificate(path: Path) -> x509.Certificate:
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
        _warn(line)
    return cert


def _install(truststore: Path, name: str, cert: x509.Certificate, save: Callable[[], object]) -> None:
    """Write the certificate as ``truststore/name`` (PEM, 0644) and run ``save``; all or nothing."""
    if Path(name).name != name:
        raise CommandError(f"invalid certificate file name {name!r}")
    truststore.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=truststore, prefix=".rp-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(cert.public_bytes(serialization.Encoding.PEM))
        os.chmod(tmp, 0o644)
        _store_call(save)
        os.replace(tmp, truststore / name)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _drop_certificate(store: RelyingPartyStore, truststore: Path, name: str) -> bool:
    """Delete a truststore file no relying party refers to any more; whether it was deleted."""
    if Path(name).name != name or name in {rp.cert_file for rp in store.all()}:
        return False
    path = truststore / name
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    except OSError as exc:
        _warn(f"could not delete {path}: {exc.strerror or exc}")
        return False
    return True


# --- output ----------------------------------------------------------------------------------------------------


def _encryption_text(rp: RelyingParty) -> str:
    return f"encrypted with {rp.cipher},{rp.key_transport}" if rp.encrypt else "NOT encrypted"


def _warn(message: str) -> None:
    print(f"sts: warning: {message}", file=sys.stderr)


def _warn_about(rp: RelyingParty, *, cipher_given: bool, encrypt_given: bool = True) -> None:
    if rp.encrypt and rp.cipher == LEGACY_CIPHER and cipher_given:
        _warn("aes256-cbc is for .NET Framework / WIF relying parties only (no AES-GCM there); prefer aes256-gcm")
    if not rp.encrypt and encrypt_given:
        _warn(f"tokens issued for {rp.address} will not be encrypted")


__all__ = ["parse_claims", "parse_encryption", "register", "slug"]
