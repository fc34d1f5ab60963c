"""What a worker keeps between requests for its relying parties: parsed certificates and built encrypters.

Parsing a certificate and building an encrypter (its key and templates) are far too slow for every request, so each
is done once: a certificate once per file version (name, modification time, size) or, kept inline in the registry (a
shared store), once per PEM text, with its SHA-256 fingerprint; an encrypter once per certificate (by that
fingerprint) and algorithm pair in each worker process, the least recently used ones given up beyond
:data:`MAX_ENCRYPTERS`.
A certificate's dates are not cached but judged at every use against the injected clock (two comparisons,
RFC 5280 §4.1.2.5), so one that expires while the server runs stops being used at that instant; the log says so
once per worker, and warns once when it is within 30 days of expiry.

Neither cache locks: :class:`~sts.relying_parties.directory.RelyingPartyDirectory` calls them under its lock.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from sts.clock import Clock
from sts.crypto.algorithms import CIPHER_NAMES, KEY_TRANSPORT_NAMES, CipherName, KeyTransportName
from sts.crypto.encrypter import EncryptionPolicy, TokenEncrypter
from sts.crypto.keystore import Validity, check_key, check_validity, fingerprint
from sts.relying_parties.certificates import load_rp_certificate
from sts.relying_parties.model import RelyingParty

_LOG = logging.getLogger("sts.rp")


@dataclass(frozen=True, slots=True, eq=False)
class LoadedCertificate:
    """A relying party's parsed certificate with its SHA-256 fingerprint (of the DER), worked out once when it is
    parsed: the encrypters' key (hashing or comparing an ``x509.Certificate`` costs microseconds at every request)."""

    certificate: x509.Certificate
    fingerprint: str

    @classmethod
    def of(cls, certificate: x509.Certificate) -> LoadedCertificate:
        """``certificate`` with its fingerprint."""
        return cls(certificate, fingerprint(certificate))


class CertificateCache:
    """Relying-party certificates, inline or from the truststore, parsed again only when their text or file changed."""

    def __init__(self, truststore: Path, clock: Clock) -> None:
        self._truststore = truststore
        self._clock = clock
        self._parsed: dict[tuple[str, int, int], LoadedCertificate | None] = {}
        self._inline: dict[str, LoadedCertificate | None] = {}  # by PEM text: only the registered ones are kept
        self._noted: set[tuple[str, str, float]] = set()

    def load(self, rp: RelyingParty) -> LoadedCertificate | None:
        """The certificate of ``rp`` (None: it has none, or it is unusable), whatever its dates."""
        if rp.cert_pem:
            if rp.cert_pem not in self._inline:
                self._inline[rp.cert_pem] = self._parse(rp)
            return self._inline[rp.cert_pem]
        if not rp.cert_file:
            return None
        try:
            stat = (self._truststore / rp.cert_file).stat()
        except OSError:
            return self._parse(rp)
        key = (rp.cert_file, stat.st_mtime_ns, stat.st_size)
        if key not in self._parsed:
            self._parsed[key] = self._parse(rp)
        return self._parsed[key]

    def forget_others(self, parties: list[RelyingParty]) -> None:
        """Drop the parsed inline certificates no relying party of ``parties`` (the registry now) holds."""
        held = {rp.cert_pem for rp in parties}
        self._inline = {pem: cert for pem, cert in self._inline.items() if pem in held}

    def usable(self, rp: RelyingParty, loaded: LoadedCertificate | None) -> LoadedCertificate | None:
        """``loaded`` if its certificate is within its validity period now, else None."""
        if loaded is None:
            return None
        cert = loaded.certificate
        validity, now = Validity.of(cert), self._clock.now()
        if not validity.valid_at(now):
            self._note_once(rp, cert, now, refused=True)
            return None
        if validity.expires_soon(now):
            self._note_once(rp, cert, now, refused=False)
        return loaded

    def _note_once(self, rp: RelyingParty, cert: x509.Certificate, now: dt.datetime, *, refused: bool) -> None:
        """Log a certificate's date problem once per worker and certificate, not once per request."""
        key = (rp.address, "refused" if refused else "expiring", cert.not_valid_after_utc.timestamp())
        if key in self._noted:
            return
        self._noted.add(key)
        problems, warnings = check_validity(cert, f"relying party {rp.address}", now)
        for message in problems if refused else warnings:
            (_LOG.error if refused else _LOG.warning)(message, extra={"relying_party": rp.address})

    def _parse(self, rp: RelyingParty) -> LoadedCertificate | None:
        """Parse a certificate; an unusable one (missing, weak key) disables encryption for that RP.

        Its dates are not judged here but at each use (:meth:`usable`): a certificate that is not yet valid when
        loaded becomes usable when its time comes, one that expires stops being used.
        """
        try:
            cert = load_rp_certificate(rp, self._truststore)
        except (OSError, ValueError):
            _LOG.error("relying party certificate unreadable", extra={"relying_party": rp.address})
            return None
        problems = check_key(cert, f"relying party {rp.address}")
        if problems:
            _LOG.error("; ".join(problems))
            return None
        return LoadedCertificate.of(cert)


# Encrypters a worker keeps (about 7 KiB each: the parsed public key and two small templates). The least recently used
# goes first beyond it, so thousands of active relying parties, or certificates rotated away, cannot grow a worker
# without bound; a relying party whose encrypter went is served by building it again (one certificate parse).
MAX_ENCRYPTERS = 1024


class EncrypterCache:
    """One :class:`TokenEncrypter` per certificate and algorithms, in each worker process, at most ``limit``."""

    def __init__(self, limit: int = MAX_ENCRYPTERS) -> None:
        self._pid = -1
        self._limit = limit
        self._encrypters: OrderedDict[tuple[str, CipherName, KeyTransportName], TokenEncrypter] = OrderedDict()

    def get(
        self, rp: RelyingParty, loaded: LoadedCertificate, cipher: CipherName, key_transport: KeyTransportName
    ) -> TokenEncrypter:
        """The encrypter for this certificate and algorithm pair, built on first use."""
        if self._pid != os.getpid():  # xmlsec key managers are never shared across fork()
            self._pid, self._encrypters = os.getpid(), OrderedDict()
        key = (loaded.fingerprint, cipher, key_transport)  # made when parsed: another DER, another key
        encrypter = self._encrypters.get(key)
        if encrypter is not None:
            self._encrypters.move_to_end(key)
        else:
            if cipher is CipherName.AES256_CBC:
                _LOG.warning("AES-CBC encryption for a legacy relying party", extra={"relying_party": rp.address})
            encrypter = TokenEncrypter(
                loaded.certificate, EncryptionPolicy(CIPHER_NAMES[cipher], KEY_TRANSPORT_NAMES[key_transport])
            )
            self._encrypters[key] = encrypter
            if len(self._encrypters) > self._limit:
                self._encrypters.popitem(last=False)
        return encrypter

    def __len__(self) -> int:
        """How many encrypters this process keeps."""
        return len(self._encrypters) if self._pid == os.getpid() else 0
