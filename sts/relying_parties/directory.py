"""The relying-party directory at run time: AppliesTo → relying party, certificates parsed once, encrypters
built once per worker (a python-xmlsec KeysManager per RP certificate; dependencies.md §7).

The registry lives in the database (``sts rp ...`` writes it, bumping a version counter); a worker looks at
that counter at most once a second and re-reads the registry only when it moved, so registering an RP needs no
restart and costs the request path nothing. Parsed certificates (by file and modification time) and encrypters
(by certificate and algorithms) survive a re-read. A certificate's dates are checked at every use against the
injected clock (two comparisons), so one that expires while the server runs stops being used at that instant; the
log warns once per worker when it is within 30 days of expiry, and once when it is refused.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from sts.clock import Clock, SystemClock
from sts.config.profiles import EffectiveSettings, effective
from sts.config.relying_parties import RelyingParty, RelyingPartyError, RelyingPartyStore, normalize_address
from sts.crypto.algorithms import CIPHER_NAMES, KEY_TRANSPORT_NAMES
from sts.crypto.encrypter import EncryptionPolicy, TokenEncrypter
from sts.crypto.keystore import Validity, check_key, check_validity, fingerprint, load_certificate
from sts.errors import InvalidRequest, InvalidScope, RequestFailed

_LOG = logging.getLogger("sts.rp")
_RECHECK_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class ResolvedParty:
    """A relying party matched for one request, with the audience its tokens name."""

    rp: RelyingParty
    audience: str
    certificate: x509.Certificate | None
    settings: EffectiveSettings
    # True when the request's AppliesTo matched nothing and ``[tokens] default_relying_party`` was used.
    fallback: bool = False


class RelyingPartyDirectory:
    """Matches AppliesTo addresses against the registered relying parties, or finds one by its registration."""

    def __init__(
        self,
        store: RelyingPartyStore,
        truststore: Path,
        default_address: str = "",
        default_profile: str = "strict",
        recheck_seconds: float = _RECHECK_SECONDS,
        clock: Clock | None = None,
    ) -> None:
        self._store = store
        self._recheck = recheck_seconds
        self._clock = clock or SystemClock()
        self._noted: set[tuple[str, str, float]] = set()
        self._default_profile = default_profile
        self._truststore = truststore
        self._default = default_address
        self._version: int | None = None
        self._registered: dict[str, RelyingParty] = {}
        self._exact: dict[str, RelyingParty] = {}
        self._prefix: list[RelyingParty] = []
        self._regex: list[tuple[re.Pattern[str], RelyingParty]] = []
        self._certs: dict[str, x509.Certificate | None] = {}
        self._cert_cache: dict[tuple[str, int, int], x509.Certificate | None] = {}
        self._encrypters: dict[tuple[str, str, str], TokenEncrypter] = {}
        self._pid = -1
        self._checked = -1.0
        # A worker's threads share the registry snapshot and the caches below: one lock keeps a re-read from
        # being seen half done and builds each encrypter once.
        self._lock = threading.Lock()

    def resolve(self, address: str | None) -> ResolvedParty:
        """The relying party for an AppliesTo address (None: absent), else the default RP, else InvalidScope."""
        with self._lock:
            return self._resolve(address)

    def _resolve(self, address: str | None) -> ResolvedParty:
        self._refresh()
        rp = self._match(address) if address is not None else None
        fallback = rp is None and bool(self._default)
        if fallback:
            rp = self._match(self._default)
        if rp is None and address is None:
            raise InvalidRequest("no AppliesTo and no default relying party", reason="missing_applies_to")
        if rp is None:
            raise InvalidScope("AppliesTo matches no relying party", reason="unknown_applies_to")
        return self._party(rp, fallback)

    def registered(self, address: str) -> ResolvedParty | None:
        """The relying party registered under exactly ``address`` (as recorded with an issued token), with its
        current settings; None once that registration is gone. No AppliesTo matching and no default: a token
        renewed for its relying party never lands on another one (a prefix, a regex or the default RP)."""
        self._refresh()
        rp = self._registered.get(address)
        return None if rp is None else self._party(rp, fallback=False)

    def _party(self, rp: RelyingParty, fallback: bool) -> ResolvedParty:
        """The resolved party with its certificate only while that is valid now."""
        settings = effective(rp, self._default_profile)
        return ResolvedParty(rp, rp.identifier or rp.address, self._usable_cert(rp), settings, fallback)

    def _usable_cert(self, rp: RelyingParty) -> x509.Certificate | None:
        """The RP certificate if it is within its validity period now (RFC 5280 §4.1.2.5), else None."""
        cert = self._certs.get(rp.address)
        if cert is None:
            return None
        validity, now = Validity.of(cert), self._clock.now()
        if not validity.valid_at(now):
            self._note_once(rp, cert, now, refused=True)
            return None
        if validity.expires_soon(now):
            self._note_once(rp, cert, now, refused=False)
        return cert

    def _note_once(self, rp: RelyingParty, cert: x509.Certificate, now: dt.datetime, *, refused: bool) -> None:
        """Log a certificate's date problem once per worker and certificate, not once per request."""
        key = (rp.address, "refused" if refused else "expiring", cert.not_valid_after_utc.timestamp())
        if key in self._noted:
            return
        self._noted.add(key)
        problems, warnings = check_validity(cert, f"relying party {rp.address}", now)
        for message in problems if refused else warnings:
            (_LOG.error if refused else _LOG.warning)(message, extra={"relying_party": rp.address})

    def encrypter(self, party: ResolvedParty) -> TokenEncrypter:
        """The worker's encrypter for this relying party's certificate and algorithms."""
        with self._lock:
            return self._encrypter(party)

    def _encrypter(self, party: ResolvedParty) -> TokenEncrypter:
        if self._pid != os.getpid():  # xmlsec key managers are never shared across fork()
            self._pid, self._encrypters = os.getpid(), {}
        if party.certificate is None:
            _LOG.error("relying party has no usable certificate", extra={"relying_party": party.rp.address})
            raise RequestFailed("relying party certificate unusable", reason="rp_certificate_unusable")
        key = (fingerprint(party.certificate), party.settings.cipher, party.settings.key_transport)
        encrypter = self._encrypters.get(key)
        if encrypter is None:
            settings = party.settings
            policy = EncryptionPolicy(CIPHER_NAMES[settings.cipher], KEY_TRANSPORT_NAMES[settings.key_transport])
            if settings.cipher.endswith("-cbc"):
                _LOG.warning("AES-CBC encryption for a legacy relying party", extra={"relying_party": party.rp.address})
            encrypter = TokenEncrypter(party.certificate, policy)
            self._encrypters[key] = encrypter
        return encrypter

    def _match(self, address: str) -> RelyingParty | None:
        try:
            normalized = normalize_address(address)
        except RelyingPartyError:
            return None
        exact = self._exact.get(normalized)
        if exact is not None:
            return exact
        for rp in self._prefix:  # longest prefix first
            if normalized.startswith(rp.address):
                return rp
        for pattern, rp in self._regex:
            if pattern.fullmatch(normalized):
                return rp
        return None

    def _refresh(self) -> None:
        now = time.monotonic()
        if self._version is not None and now - self._checked < self._recheck:
            return
        try:
            version = self._store.version()
            self._checked = now
            if version == self._version:
                return
            parties = self._store.all()
        except sqlite3.Error as exc:  # the registry cannot be read: fail closed
            raise self._store.unavailable(exc) from None
        self._registered = {rp.address: rp for rp in parties}
        self._exact = {rp.address: rp for rp in parties if rp.match == "exact"}
        self._prefix = sorted((rp for rp in parties if rp.match == "prefix"), key=lambda rp: -len(rp.address))
        self._regex = [(re.compile(rp.address), rp) for rp in parties if rp.match == "regex"]
        self._certs = {rp.address: self._cached_cert(rp) for rp in parties if rp.cert_file}
        self._version = version
        for rp in parties:  # log expired and expiring certificates now, not only when their RP is asked for
            self._usable_cert(rp)

    def _cached_cert(self, rp: RelyingParty) -> x509.Certificate | None:
        """The RP certificate, parsed again only when its file changed."""
        try:
            stat = (self._truststore / rp.cert_file).stat()
        except OSError:
            return self._load_cert(rp)
        key = (rp.cert_file, stat.st_mtime_ns, stat.st_size)
        if key not in self._cert_cache:
            self._cert_cache[key] = self._load_cert(rp)
        return self._cert_cache[key]

    def _load_cert(self, rp: RelyingParty) -> x509.Certificate | None:
        """Parse an RP certificate; an unusable one (missing, weak key) disables encryption for that RP.

        Its dates are not judged here but at each use (:meth:`_usable_cert`): a certificate that is not yet
        valid when loaded becomes usable when its time comes, one that expires stops being used.
        """
        try:
            cert = load_certificate(self._truststore / rp.cert_file)
        except (OSError, ValueError):
            _LOG.error("relying party certificate unreadable", extra={"relying_party": rp.address})
            return None
        problems = check_key(cert, f"relying party {rp.address}")
        if problems:
            _LOG.error("; ".join(problems))
            return None
        return cert
