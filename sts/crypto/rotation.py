"""``sts key rotate`` and ``sts key promote``: the file changes running workers pick up (:mod:`sts.crypto.keyring`).

Every change happens under the exclusive rotation lock and by ``rename(2)`` of complete files, so a worker
(which reads under the shared lock) sees the keys before or after a change, never in between; on a shared
instance directory every node sees the same.

``[issuer] promote_at`` promotes in the workers' memory only (:func:`sts.crypto.keyring.state_at`); both commands
first record such a promotion in the files, so what they change is always what signs: the key in force is never
overwritten and the one it replaced stays accepted for ``previous_overlap`` from ``promote_at``.
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
from sts.crypto.keyring import RETIRED_SUFFIX, RingConfig, RotationFiles, files_lock, scheduled_in_force
from sts.crypto.keystore import fingerprint, key_passphrase, load_certificate, same_public_key
from sts.files import PUBLIC_FILE, SECRET_FILE, make_dirs, write_file


class RotationError(Exception):
    """A rotation step refused (nothing was changed)."""


# How long before ``[issuer] promote_at`` a next key may no longer be replaced: every node promotes by its own clock,
# and one whose clock runs ahead may already sign with it.
CLOCK_MARGIN = dt.timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class Promoted:
    """The outcome of a promotion: the new signing certificate and where the replaced one went.

    ``retired_at`` is when the replaced key stopped signing (``previous_overlap`` counts from it): now for
    ``sts key promote``, ``[issuer] promote_at`` for a promotion the schedule had already made.
    """

    current: x509.Certificate
    retired: Path
    retired_at: dt.datetime
    by_schedule: bool = False


@dataclass(frozen=True, slots=True)
class Rotated:
    """The outcome of a rotation: the new next certificate, and the scheduled promotion recorded first, if any."""

    next_cert: x509.Certificate
    promoted: Promoted | None = None


def rotate(settings: RingConfig, now: dt.datetime, days: int = 825, replace: bool = False) -> Rotated:
    """Write a new next key and certificate (same subject as the current certificate).

    A next key that ``promote_at`` has made the signing key is first moved to the signing key files, so the new
    key never takes its place; a next key that may already sign somewhere is never replaced.
    """
    issuer = settings.issuer
    if issuer.promote_at is not None and now.replace(microsecond=0) <= issuer.promote_at <= now:
        # Certificate dates have whole seconds: a key made now would count as made before promote_at and sign at
        # once, unpublished.
        raise RotationError("[issuer] promote_at is less than a second ago; run `sts key rotate` again")
    with files_lock(issuer, exclusive=True):
        passphrase = _current_key_passphrase(settings)
        promoted = _record_schedule(settings, now)
        if issuer.next_signing_key.exists() or issuer.next_signing_cert.exists():
            if not replace:
                raise RotationError(
                    f"a next key is already waiting ({issuer.next_signing_cert}): promote it, or rotate with --replace"
                )
            _refuse_replacing_a_scheduled_key(issuer, now)
        cert = _write_next_key(settings, now, days, passphrase)
    return Rotated(cert, promoted)


def promote(settings: RingConfig, now: dt.datetime) -> Promoted:
    """Make the next key the signing key; the replaced certificate goes to the retired directory.

    When ``promote_at`` has already made the next key the signing key, the files are brought in line with it
    and the replaced key counts as retired from ``promote_at``.
    """
    issuer = settings.issuer
    with files_lock(issuer, exclusive=True):
        scheduled = _record_schedule(settings, now)
        if scheduled is not None:
            return scheduled
        if not (issuer.next_signing_key.exists() and issuer.next_signing_cert.exists()):
            raise RotationError("no next key to promote: run `sts key rotate` first")
        next_cert, old_cert = _load_for_promotion(settings)
        if next_cert.not_valid_after_utc <= now:
            raise RotationError("the next certificate has expired; rotate again")
        return _swap_in_next_key(issuer, next_cert, old_cert, now)


def _record_schedule(settings: RingConfig, now: dt.datetime) -> Promoted | None:
    """Move a next key that ``promote_at`` has made the signing key (:func:`scheduled_in_force`) to the signing
    key files, as the workers already sign with it; None when there is none. Called under the exclusive lock."""
    issuer = settings.issuer
    waiting = _waiting_certificate(issuer)
    if waiting is None or issuer.promote_at is None or not scheduled_in_force(waiting, issuer.promote_at, now):
        return None
    try:
        next_cert, old_cert = _load_for_promotion(settings)
    except RotationError as exc:
        raise RotationError(
            f"[issuer] promote_at ({_stamp(issuer.promote_at)}) has passed and makes the next key the signing key,"
            f" but it cannot be moved to signing_key: {exc}"
        ) from None
    # No expiry check: the servers sign with this key whatever its dates; the files only say so.
    return _swap_in_next_key(issuer, next_cert, old_cert, issuer.promote_at, by_schedule=True)


def _refuse_replacing_a_scheduled_key(issuer: RotationFiles, now: dt.datetime) -> None:
    """Refuse ``--replace`` of a next key that ``promote_at`` makes the signing key now or within the clock margin:
    nodes may already have issued tokens with it, which would stop validating once its certificate is gone."""
    waiting = _waiting_certificate(issuer)
    if waiting is None or issuer.promote_at is None:
        return  # a next certificate that does not load is loaded by no worker, so signs nowhere
    if scheduled_in_force(waiting, issuer.promote_at, now + CLOCK_MARGIN):
        raise RotationError(
            f"the next key {fingerprint(waiting)} becomes the signing key at [issuer] promote_at"
            f" ({_stamp(issuer.promote_at)}), which has passed or is less than"
            f" {int(CLOCK_MARGIN.total_seconds()) // 60} minutes away (each node promotes by its own clock):"
            " it may already sign tokens, so it is not replaced. Wait for promote_at and run `sts key rotate`,"
            " or move promote_at and run `sts reload` on every node first"
        )


def _waiting_certificate(issuer: RotationFiles) -> x509.Certificate | None:
    """The next certificate on disk; None when there is none or it does not load."""
    try:
        return load_certificate(issuer.next_signing_cert)
    except (OSError, ValueError):
        return None


def _load_for_promotion(settings: RingConfig) -> tuple[x509.Certificate, x509.Certificate]:
    """The next certificate (its key checked against it) and the current certificate, or :class:`RotationError`."""
    issuer = settings.issuer
    try:
        next_cert = load_certificate(issuer.next_signing_cert)
        next_key = load_private_key(issuer.next_signing_key, key_passphrase(settings))
        old_cert = load_certificate(issuer.signing_cert)
    except (OSError, ValueError, TypeError) as exc:
        raise RotationError(f"the key files do not load ({type(exc).__name__}); nothing changed") from None
    if not same_public_key(next_cert, next_key):
        raise RotationError("the next key does not match its certificate; nothing changed")
    return next_cert, old_cert


def _swap_in_next_key(
    issuer: RotationFiles, next_cert: x509.Certificate, old_cert: x509.Certificate, retired_at: dt.datetime,
    by_schedule: bool = False,
) -> Promoted:
    """Retire the current certificate as of ``retired_at``, then rename the next key files over the current ones."""
    retired = retired_path(issuer.retired_certs, old_cert, retired_at)
    make_dirs(issuer.retired_certs)
    _write_atomically(retired, old_cert.public_bytes(serialization.Encoding.PEM), PUBLIC_FILE)
    os.replace(issuer.next_signing_key, issuer.signing_key)
    os.replace(issuer.next_signing_cert, issuer.signing_cert)
    return Promoted(next_cert, retired, retired_at, by_schedule)


def _current_key_passphrase(settings: RingConfig) -> bytes | None:
    """The passphrase the next key is written with: the one the signing key loads with here, so that the servers,
    which load the signing key with theirs, load the next one too. :class:`RotationError` when the signing key
    and certificate do not load (an encrypted signing key and no passphrase in this shell: a next key written in
    clear would not load in the servers, and once promoted the signing key would not either)."""
    issuer = settings.issuer
    try:
        passphrase = key_passphrase(settings)
    except OSError as exc:
        raise RotationError(
            f"issuer.signing_key_passphrase_file: {issuer.signing_key_passphrase_file} unreadable"
            f" ({exc.strerror or type(exc).__name__}); nothing changed"
        ) from None
    try:
        load_certificate(issuer.signing_cert)
        load_private_key(issuer.signing_key, passphrase)
    except (OSError, ValueError, TypeError) as exc:
        raise RotationError(
            f"the signing key or certificate does not load here ({type(exc).__name__}): an encrypted signing key"
            " needs the passphrase the server has ($STS_SIGNING_KEY_PASSPHRASE or [issuer]"
            " signing_key_passphrase_file), an unencrypted one none; nothing changed"
        ) from None
    return passphrase


def _write_next_key(settings: RingConfig, now: dt.datetime, days: int, passphrase: bytes | None) -> x509.Certificate:
    """Generate the next key and write it and its certificate (the current certificate's subject) atomically."""
    issuer = settings.issuer
    current = load_certificate(issuer.signing_cert)
    names = current.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    common_name = str(names[0].value) if names else "sts-signing"
    key = generate_rsa_key(DEFAULT_BITS)
    # Valid from now: a promote_at earlier than this key never promotes it (keyring.scheduled_in_force).
    cert = self_signed_certificate(key, common_name, days=days, not_before=now.replace(microsecond=0))
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    _write_atomically(issuer.next_signing_key, key_pem, SECRET_FILE)
    _write_atomically(issuer.next_signing_cert, cert.public_bytes(serialization.Encoding.PEM), PUBLIC_FILE)
    return cert


def _stamp(instant: dt.datetime) -> str:
    return instant.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
