"""``sts key rotate`` and ``sts key promote``: the file changes running workers pick up (:mod:`sts.crypto.keyring`).

Every change happens under the exclusive rotation lock and by ``rename(2)`` of complete files, so a worker
(which reads under the shared lock) sees the keys before or after a change, never in between; on a shared
instance directory every node sees the same.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from sts.crypto.keygen import DEFAULT_BITS, generate_rsa_key, load_private_key, self_signed_certificate
from sts.crypto.keyring import RETIRED_SUFFIX, RingConfig, files_lock
from sts.crypto.keystore import fingerprint, key_passphrase, load_certificate, same_public_key
from sts.files import PUBLIC_FILE, SECRET_FILE, make_dirs, write_file


class RotationError(Exception):
    """A rotation step refused (nothing was changed)."""


@dataclass(frozen=True, slots=True)
class Promoted:
    """The outcome of a promotion: the new signing certificate and where the replaced one went."""

    current: x509.Certificate
    retired: Path


def rotate(settings: RingConfig, now: dt.datetime, days: int = 825, replace: bool = False) -> x509.Certificate:
    """Write a new next key and certificate (same subject as the current certificate); return the certificate."""
    issuer = settings.issuer
    with files_lock(issuer, exclusive=True):
        if not replace and (issuer.next_signing_key.exists() or issuer.next_signing_cert.exists()):
            raise RotationError(
                f"a next key is already waiting ({issuer.next_signing_cert}): promote it, or rotate with --replace"
            )
        current = load_certificate(issuer.signing_cert)
        names = current.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        common_name = str(names[0].value) if names else "sts-signing"
        key = generate_rsa_key(DEFAULT_BITS)
        # Valid from now: a promote_at earlier than this key never promotes it (keyring.state_at).
        cert = self_signed_certificate(key, common_name, days=days, not_before=now.replace(microsecond=0))
        passphrase = key_passphrase(settings)
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
        )
        key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
        _write_atomically(issuer.next_signing_key, key_pem, SECRET_FILE)
        _write_atomically(issuer.next_signing_cert, cert.public_bytes(serialization.Encoding.PEM), PUBLIC_FILE)
    return cert


def promote(settings: RingConfig, now: dt.datetime) -> Promoted:
    """Make the next key the signing key; the replaced certificate goes to the retired directory."""
    issuer = settings.issuer
    with files_lock(issuer, exclusive=True):
        if not (issuer.next_signing_key.exists() and issuer.next_signing_cert.exists()):
            raise RotationError("no next key to promote: run `sts key rotate` first")
        try:
            next_cert = load_certificate(issuer.next_signing_cert)
            next_key = load_private_key(issuer.next_signing_key, key_passphrase(settings))
            old_cert = load_certificate(issuer.signing_cert)
        except (OSError, ValueError, TypeError) as exc:
            raise RotationError(f"the key files do not load ({type(exc).__name__}); nothing changed") from None
        if not same_public_key(next_cert, next_key):
            raise RotationError("the next key does not match its certificate; nothing changed")
        if next_cert.not_valid_after_utc <= now:
            raise RotationError("the next certificate has expired; rotate again")
        retired = retired_path(issuer.retired_certs, old_cert, now)
        make_dirs(issuer.retired_certs)
        _write_atomically(retired, old_cert.public_bytes(serialization.Encoding.PEM), PUBLIC_FILE)
        os.replace(issuer.next_signing_key, issuer.signing_key)
        os.replace(issuer.next_signing_cert, issuer.signing_cert)
    return Promoted(next_cert, retired)


def retired_path(directory: Path, cert: x509.Certificate, now: dt.datetime) -> Path:
    """``<YYYYMMDDTHHMMSSZ>-<fingerprint prefix>.crt.pem``: the name tells when the key stopped signing."""
    stamp = now.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return directory / f"{stamp}-{fingerprint(cert).replace(':', '')[:16].lower()}{RETIRED_SUFFIX}"


def _write_atomically(path: Path, data: bytes, mode: int) -> None:
    """Write a complete file beside ``path``, then rename it over ``path`` (readers see old or new, whole)."""
    temporary = path.with_name(f".{path.name}.tmp")
    if os.path.lexists(temporary):
        os.unlink(temporary)
    write_file(temporary, data, mode)
    os.replace(temporary, path)
