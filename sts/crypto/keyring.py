"""The signing keys a running worker uses, re-read from the instance directory when they change on disk.

Rotation without a restart (README, "Rotating the signing key"): ``sts key rotate`` writes a *next* key and
certificate beside the current ones, ``sts key promote`` makes it the current one and moves the replaced
certificate to the retired directory (:mod:`sts.crypto.rotation`). Every worker checks, at most once a second
and only on a request, whether those files changed (modification time, inode and size of each, and of the
retired directory); when they did it loads them again, under a shared lock that ``sts key`` holds exclusively
while it writes, so a worker never sees half a promotion. Files that do not load (or a key that does not match
its certificate) leave the worker on the keys it has, with a warning: a bad change never stops the service.

What is signed is always published: the metadata (:mod:`sts.soap.metadata`) and the signer read the same
:class:`SigningState`, whose published certificates are the current one, the next one and those still accepted;
a next key is published from the moment a worker loads it and signs only once promoted.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree

from sts.crypto.keygen import load_private_key as load_signing_key
from sts.crypto.keystore import (
    IssuerConfig,
    KeyStore,
    KeyStoreError,
    SigningFiles,
    check_key,
    fingerprint,
    key_passphrase,
    load_certificate,
    load_keystore,
    same_public_key,
)
from sts.crypto.message_keys import MessageKeys
from sts.crypto.signer import AssertionSigner

_LOG = logging.getLogger("sts.keys")
CHECK_INTERVAL = 1.0  # seconds between two looks at the key files (at most; only when requests come)
LOCK_NAME = ".rotation.lock"
RETIRED_SUFFIX = ".crt.pem"


class RotationFiles(SigningFiles, Protocol):
    """The ``[issuer]`` settings of rotation (``sts.config.settings.IssuerSettings``)."""

    @property
    def next_signing_key(self) -> Path:
        """Where ``sts key rotate`` writes the next key."""
        ...

    @property
    def next_signing_cert(self) -> Path:
        """Where ``sts key rotate`` writes the next key's certificate."""
        ...

    @property
    def retired_certs(self) -> Path:
        """The directory of certificates replaced by ``sts key promote``."""
        ...

    @property
    def previous_overlap(self) -> int:
        """Seconds a retired certificate stays accepted after its key stopped signing."""
        ...

    @property
    def promote_at(self) -> dt.datetime | None:
        """The instant a next key made before it becomes the signing key (None: only ``sts key promote``)."""
        ...


@dataclass(frozen=True, slots=True)
class Retired:
    """A certificate replaced at ``retired_at``."""

    cert: x509.Certificate
    retired_at: dt.datetime


@dataclass(frozen=True, slots=True)
class KeyMaterial:
    """What the key files hold: the current keystore, the next key pair if any, the retired certificates."""

    current: KeyStore
    next_key: rsa.RSAPrivateKey | None = None
    next_cert: x509.Certificate | None = None
    retired: tuple[Retired, ...] = ()


@dataclass(frozen=True, slots=True)
class PublishedCert:
    """A certificate as the metadata lists it: ``role`` is current, next or previous."""

    role: str
    cert: x509.Certificate


@dataclass(frozen=True, slots=True)
class SigningState:
    """The keys in force at one moment: who signs, and which certificates are published and accepted."""

    signer: AssertionSigner
    published: tuple[PublishedCert, ...]
    # The private keys of the published certificates that have one: the signing key first, then a next key
    # (retired certificates keep no key). Message-level security signs with the first and decrypts with any.
    keys: tuple[tuple[rsa.RSAPrivateKey, x509.Certificate], ...] = ()

    @property
    def signing_cert(self) -> x509.Certificate:
        """The certificate of the key that signs."""
        return self.published[0].cert

    @property
    def accepted_certs(self) -> tuple[x509.Certificate, ...]:
        """Certificates whose signatures Validate and Renew accept: every published one.

        The next one too: another node may have promoted it a second earlier and issued with it.
        """
        return tuple(entry.cert for entry in self.published)


def state_at(material: KeyMaterial, files: RotationFiles, now: dt.datetime, signers: SignerCache) -> SigningState:
    """The keys in force at ``now``: ``promote_at`` passed promotes a next key made before it."""
    key, cert = material.current.signing_key, material.current.signing_cert
    next_key, next_cert = material.next_key, material.next_cert
    retired = list(material.retired)
    promote_at = files.promote_at
    if (
        promote_at is not None and next_key is not None and next_cert is not None
        and scheduled_in_force(next_cert, promote_at, now)
    ):
        retired.append(Retired(cert, promote_at))
        key, cert, next_key, next_cert = next_key, next_cert, None, None
    overlap = dt.timedelta(seconds=files.previous_overlap)
    published = [PublishedCert("current", cert)]
    if next_cert is not None:
        published.append(PublishedCert("next", next_cert))
    seen = {fingerprint(cert)} | ({fingerprint(next_cert)} if next_cert is not None else set())
    still = [r.cert for r in sorted(retired, key=lambda r: r.retired_at, reverse=True) if r.retired_at + overlap > now]
    for old in (*still, *material.current.previous_certs):
        if fingerprint(old) not in seen:
            seen.add(fingerprint(old))
            published.append(PublishedCert("previous", old))
    keys = ((key, cert),) if next_key is None or next_cert is None else ((key, cert), (next_key, next_cert))
    return SigningState(signers.get(key, cert), tuple(published), keys)


def scheduled_in_force(next_cert: x509.Certificate, promote_at: dt.datetime, now: dt.datetime) -> bool:
    """Whether ``promote_at`` has made the next key the signing key at ``now`` (only a key made before it).

    The one rule of scheduled promotion: the workers (:func:`state_at`) sign by it and ``sts key``
    (:mod:`sts.crypto.rotation`) writes the files by it, so the two never disagree.
    """
    return now >= promote_at and next_cert.not_valid_before_utc <= promote_at


class SignerCache:
    """One :class:`AssertionSigner` per key, kept while that key is current or next (two at most)."""

    def __init__(self) -> None:
        self._signers: dict[str, AssertionSigner] = {}

    def get(self, key: rsa.RSAPrivateKey, cert: x509.Certificate) -> AssertionSigner:
        """The signer of ``key``; built once."""
        name = fingerprint(cert)
        signer = self._signers.get(name)
        if signer is None:
            signer = AssertionSigner(key, cert)
            self._signers = {**dict(list(self._signers.items())[-1:]), name: signer}
        return signer


class KeyRing:
    """The signing state of this process, checked against the files at most once per ``interval`` seconds."""

    def __init__(
        self,
        files: RotationFiles,
        now: Callable[[], dt.datetime],
        material: KeyMaterial,
        load: Callable[[], KeyMaterial],
        interval: float = CHECK_INTERVAL,
    ) -> None:
        self._files = files
        self._now = now
        self._load = load
        self._interval = interval
        self._lock = threading.Lock()
        self._signers = SignerCache()
        self._material = material
        self._marker = file_marker(files)
        self._failed_marker: object = None
        self._checked = time.monotonic()
        self._state = state_at(material, files, now(), self._signers)
        # Message-level security's view of the same keys (made ready on first use: a key in an HSM never is).
        self.message_keys = MessageKeys(lambda: self.state().keys)

    def state(self) -> SigningState:
        """The keys in force now (re-checked when the last check is ``interval`` seconds old)."""
        if time.monotonic() - self._checked < self._interval:
            return self._state
        with self._lock:
            if time.monotonic() - self._checked >= self._interval:
                self._refresh()
        return self._state

    def _refresh(self) -> None:
        marker = file_marker(self._files)
        if marker != self._marker and marker != self._failed_marker:
            try:
                self._material = self._load()
                self._marker = marker
                self._failed_marker = None
                _LOG.info("signing keys reloaded from disk")
            except KeyStoreError as exc:
                self._failed_marker = marker  # logged once per change of the files, retried on the next one
                _LOG.warning("signing keys changed on disk but do not load; keeping the keys in use: %s",
                             "; ".join(exc.problems))
            except OSError as exc:
                self._failed_marker = marker
                _LOG.warning("signing keys changed on disk but cannot be read (%s); keeping the keys in use",
                             type(exc).__name__)
        state = state_at(self._material, self._files, self._now(), self._signers)
        if state.published != self._state.published:
            _LOG.info("signing certificate in force: %s", fingerprint(state.signing_cert))
        self._state = state
        self._checked = time.monotonic()


class RingSigner:
    """Signs with whichever key is current when asked (the interface of :class:`AssertionSigner`)."""

    def __init__(self, ring: KeyRing) -> None:
        self._ring = ring

    def sign_saml2(self, assertion: etree._Element) -> etree._Element:
        """Sign a SAML 2.0 assertion with the current key."""
        return self._ring.state().signer.sign_saml2(assertion)

    def sign_saml11(self, assertion: etree._Element) -> etree._Element:
        """Sign a SAML 1.1 assertion with the current key."""
        return self._ring.state().signer.sign_saml11(assertion)


def file_marker(files: RotationFiles) -> tuple[tuple[int, int, int] | None, ...]:
    """What tells a change of the key files: (mtime in ns, inode, size) of each, None where missing."""
    return tuple(
        _stat(path)
        for path in (files.signing_key, files.signing_cert, files.next_signing_key, files.next_signing_cert,
                     files.retired_certs)
    )


def _stat(path: Path) -> tuple[int, int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_mtime_ns, info.st_ino, info.st_size


@contextmanager
def files_lock(files: SigningFiles, exclusive: bool) -> Iterator[None]:
    """The lock between ``sts key`` (exclusive, while it writes) and the workers (shared, while they read)."""
    path = files.signing_key.parent / LOCK_NAME
    try:
        fd = os.open(path, (os.O_RDWR | os.O_CREAT) if exclusive else os.O_RDONLY, 0o600)
    except OSError:
        if exclusive:
            raise
        yield  # no lock file: no rotation ever wrote here
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # closing releases the lock


class RingConfig(IssuerConfig, Protocol):
    """The loaded ``Settings``, as far as the key ring reads them."""

    @property
    def issuer(self) -> RotationFiles:
        """The ``[issuer]`` table."""
        ...


def load_material(settings: RingConfig, now: dt.datetime | None = None) -> KeyMaterial:
    """Load every key file under the shared lock (:func:`files_lock`), or raise :class:`KeyStoreError`."""
    with files_lock(settings.issuer, exclusive=False):
        current = load_keystore(settings, now)
        try:
            try:
                passphrase = key_passphrase(settings)
            except OSError:
                passphrase = None  # load_keystore read it a moment ago; a key then refused reports it
            return load_extra(settings.issuer, current, passphrase)
        except BaseException:
            current.close()  # a token's key: its thread would outlive the refusal (a refused reload, in the master)
            raise


def build_ring(settings: RingConfig, now: Callable[[], dt.datetime], material: KeyMaterial | None = None) -> KeyRing:
    """The key ring of this process, starting from ``material`` (default: loaded now)."""
    return KeyRing(settings.issuer, now, material or load_material(settings, now()), lambda: load_material(settings))


def load_extra(files: RotationFiles, current: KeyStore, passphrase: bytes | None) -> KeyMaterial:
    """The next key pair and the retired certificates beside the loaded ``current`` keystore."""
    problems: list[str] = []
    next_key = next_cert = None
    if files.next_signing_key.exists() or files.next_signing_cert.exists():
        try:
            next_cert = load_certificate(files.next_signing_cert)
            next_key = load_signing_key(files.next_signing_key, passphrase)
        except (OSError, ValueError, TypeError) as exc:
            problems.append(f"issuer.next_signing_key/next_signing_cert: unreadable ({type(exc).__name__})")
        else:
            problems += check_key(next_cert, "issuer.next_signing_cert")
            if not same_public_key(next_cert, next_key):
                problems.append("issuer.next_signing_key does not match issuer.next_signing_cert")
    if problems:
        raise KeyStoreError(problems)
    return KeyMaterial(current, next_key, next_cert, tuple(_retired(files.retired_certs)))


def _retired(directory: Path) -> Iterator[Retired]:
    """Certificates named ``<YYYYMMDDTHHMMSSZ>-<fingerprint>.crt.pem`` by ``sts key promote``."""
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return
    for name in names:
        if not name.endswith(RETIRED_SUFFIX):
            continue
        stamp = name.partition("-")[0]
        try:
            retired_at = dt.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
            cert = load_certificate(directory / name)
        except (OSError, ValueError):
            _LOG.warning("retired certificate %s ignored: unreadable or misnamed", name)
            continue
        yield Retired(cert, retired_at)
