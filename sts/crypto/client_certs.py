"""Client certificates: the checks on every use, and a configured client CA with its CRL (RFC 5280).

:func:`certificate_problem` applies what any client certificate must satisfy, registered or CA-issued: inside
its validity period, an RSA key of at least ``min_rsa_bits`` or an EC key on a curve of at least 256 bits (never
DSA), KeyUsage (when present) with ``digitalSignature``, ExtendedKeyUsage (when present) with ``clientAuth`` or
``anyExtendedKeyUsage`` (RFC 5280 §4.2.1.3, §4.2.1.12). :class:`ClientAuthority` answers whether a certificate was
issued directly by one of the configured CA certificates (no intermediates, nothing fetched) and whether the CA's
CRL lists it. The CRL file holds one CRL per CA (:mod:`sts.crypto.client_crl`), verified once each time the files
are read; a CA without a usable, current CRL in it (none, not signed by the CA, unreadable, outside thisUpdate ..
nextUpdate, or one that is no complete CRL of the CA) fails closed: every certificate of that CA counts as revoked.
A CA certificate vouches only while it is itself inside its validity period and, when it has KeyUsage, with
``keyCertSign`` asserted (RFC 5280 §4.2.1.3; §6.1.3 (a)(2) and §6.1.4 (n) for a CA certificate on a certification
path).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from sts.crypto.client_crl import CrlVerdict, asserts_ca, crl_verdict, key_usage_allows, load_crls, signed_by
from sts.crypto.keystore import check_validity

_LOG = logging.getLogger("sts.clients")
MIN_CLIENT_RSA_BITS = 2048


def certificate_problem(
    cert: x509.Certificate, now: dt.datetime, min_rsa_bits: int = MIN_CLIENT_RSA_BITS
) -> str | None:
    """Why ``cert`` may not authenticate a client now (an audit reason), or None."""
    if not cert.not_valid_before_utc <= now < cert.not_valid_after_utc:
        return "certificate_expired" if now >= cert.not_valid_after_utc else "certificate_not_yet_valid"
    try:  # both parse lazily: a certificate from the message may carry a malformed key or extension
        public = cert.public_key()
        extensions = cert.extensions
    except (ValueError, UnsupportedAlgorithm):
        return "certificate_malformed"
    if isinstance(public, rsa.RSAPublicKey):
        if public.key_size < min_rsa_bits:
            return "certificate_weak_key"
    elif isinstance(public, ec.EllipticCurvePublicKey):
        if public.curve.key_size < 256:
            return "certificate_weak_key"
    else:
        return "certificate_key_type"
    try:
        usage = extensions.get_extension_for_class(x509.KeyUsage).value
        if not usage.digital_signature:
            return "certificate_key_usage"
    except x509.ExtensionNotFound:
        pass
    try:
        extended = extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        allowed = {ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE}
        if not allowed.intersection(extended):
            return "certificate_extended_key_usage"
    except x509.ExtensionNotFound:
        pass
    return None


def load_client_certificate(data: bytes) -> x509.Certificate:
    """A TLS client certificate as the transport hands it over: DER from our own TLS socket, or one PEM block from a
    trusted proxy's header. ValueError for anything else (also for PEM with more than one certificate, or issuer
    or subject names that do not decode: cryptography would raise only when the trust decision reads them)."""
    if data.lstrip().startswith(b"-----BEGIN"):
        certificates = x509.load_pem_x509_certificates(data)
        if len(certificates) != 1:
            raise ValueError("expected exactly one certificate")
        cert = certificates[0]
    else:
        cert = x509.load_der_x509_certificate(data)
    _ = cert.issuer, cert.subject
    return cert


def same_key(a: x509.Certificate, b: object) -> bool:
    """Whether certificate ``a`` certifies the public key ``b`` (a certificate or a bare public key)."""
    other = b.public_key() if isinstance(b, x509.Certificate) else b
    return bool(a.public_key() == other)


@dataclass(frozen=True, slots=True)
class _Loaded:
    """The files as last read: the CA certificates, each CA's CRL as judged then (no entry: the file has none for
    it), and the CRLs that no configured CA signed (for ``sts check-config``)."""

    stamp: tuple[tuple[int, int], ...]
    cas: tuple[x509.Certificate, ...]
    crls: Mapping[x509.Certificate, CrlVerdict]
    strangers: tuple[str, ...] = ()


class ClientAuthority:
    """The configured client CA certificates (a PEM bundle) and optional CRL file (one DER CRL, or PEM CRLs, one
    per CA), re-read on change."""

    def __init__(self, ca_file: Path, crl_file: Path | None = None) -> None:
        self._ca_file = ca_file
        self._crl_file = crl_file
        self._loaded: _Loaded | None = None
        self._pid = os.getpid()
        self._reading = threading.Lock()  # changed files are read by one thread; the others take its result

    def check(self) -> list[str]:
        """Problems with the files, for start-up and ``sts check-config``."""
        try:
            loaded = self._load()
        except (OSError, ValueError) as exc:
            return [f"client CA files unreadable: {exc.__class__.__name__}"]
        if not loaded.cas:
            return [f"{self._ca_file}: no CA certificate"]
        return []

    def crl_problems(self, now: dt.datetime) -> list[str]:
        """Why the CRL file would refuse certificates now (``sts check-config``): a CRL signed by no configured CA,
        and every CA without a usable, current CRL in the file. Unreadable files are :meth:`check`'s to report."""
        if self._crl_file is None:
            return []
        try:
            loaded = self._load()
        except (OSError, ValueError):
            return []
        problems = [f"{self._crl_file}: {label}: not signed by a configured client CA" for label in loaded.strangers]
        for ca in loaded.cas:
            verdict = loaded.crls.get(ca)
            problem = "no CRL of this CA in the file" if verdict is None else (
                verdict.problem or verdict.window_problem(now))
            if problem is not None:
                problems.append(f"{self._crl_file}: CA {ca.subject.rfc4514_string()}: {problem}; every certificate"
                                " it issued is refused")
        return problems

    def ca_problems(self, now: dt.datetime) -> tuple[list[str], list[str]]:
        """Problems and warnings of the CA certificates themselves (``sts check-config``): one that is expired or
        not yet valid, or whose KeyUsage lacks ``keyCertSign``, vouches for no certificate; one expiring within 30
        days is a warning. Unreadable files are :meth:`check`'s to report."""
        try:
            loaded = self._load()
        except (OSError, ValueError):
            return [], []
        problems: list[str] = []
        warnings: list[str] = []
        for ca in loaded.cas:
            label = f"{self._ca_file}: CA {ca.subject.rfc4514_string()}"
            dates, soon = check_validity(ca, label, now)
            problems += [f"{problem}; it vouches for no certificate" for problem in dates]
            warnings += soon
            if not key_usage_allows(ca, "key_cert_sign"):
                problems.append(f"{label}: KeyUsage without keyCertSign; it vouches for no certificate")
        return problems, warnings

    def issuer_of(self, cert: x509.Certificate, now: dt.datetime) -> x509.Certificate | None:
        """The configured CA that signed ``cert`` directly and may vouch for it at ``now``, or None (self-signed
        leaves never match; nor does a certificate whose names do not decode, which its reader should have refused
        already)."""
        try:
            issuer, subject = cert.issuer, cert.subject
        except ValueError:
            return None
        if issuer == subject:
            return None
        for ca in self._current().cas:
            if ca.subject != issuer:
                continue
            try:
                cert.verify_directly_issued_by(ca)
            except (InvalidSignature, ValueError, TypeError):
                continue
            if not (ca.not_valid_before_utc <= now < ca.not_valid_after_utc and key_usage_allows(ca, "key_cert_sign")):
                _LOG.error("client CA certificate expired, not yet valid or without keyCertSign: refusing its"
                           " certificates")
                continue
            return ca
        return None

    def revoked(self, cert: x509.Certificate, ca: x509.Certificate, now: dt.datetime) -> bool:
        """Whether the CA's CRL lists ``cert``; without a usable, current CRL from that CA covering ``cert``: True
        (fail closed). The CRL was verified when the file was read: this is a time check and a set lookup."""
        if self._crl_file is None:
            return False
        verdict = self._current().crls.get(ca)
        if verdict is None:
            _LOG.error("client CRL file holds no usable CRL of the CA: refusing its certificates")
            return True
        problem = verdict.refusal(cert, now)
        if problem is not None:
            _LOG.error("client CRL unusable (%s): refusing the CA's certificates", problem)
            return True
        return cert.serial_number in verdict.revoked

    def _current(self) -> _Loaded:
        try:
            return self._load()
        except (OSError, ValueError):
            _LOG.error("client CA or CRL file unreadable: refusing CA-issued certificates")
            return _Loaded((), (), {})

    def _load(self) -> _Loaded:
        paths = [self._ca_file] + ([self._crl_file] if self._crl_file else [])
        stamp = tuple((st.st_mtime_ns, st.st_size) for st in (path.stat() for path in paths))
        loaded = self._loaded
        if loaded is not None and loaded.stamp == stamp and self._pid == os.getpid():
            return loaded
        # Requests on several threads that find the files changed would each read, parse and verify them again
        # (a CRL may list many thousands of serials): one does, the others wait for what it read.
        with self._reading:
            loaded = self._loaded
            if loaded is not None and loaded.stamp == stamp and self._pid == os.getpid():
                return loaded
            cas = tuple(
                ca for ca in x509.load_pem_x509_certificates(self._ca_file.read_bytes()) if asserts_ca(ca)
            )
            crls = load_crls(self._crl_file.read_bytes()) if self._crl_file is not None else ()
            verdicts, strangers = _judge(cas, crls)
            loaded = _Loaded(stamp, cas, verdicts, strangers)
            self._loaded, self._pid = loaded, os.getpid()
            return loaded


def _judge(
    cas: tuple[x509.Certificate, ...], crls: tuple[x509.CertificateRevocationList, ...]
) -> tuple[dict[x509.Certificate, CrlVerdict], tuple[str, ...]]:
    """Each CA's CRL verdict (signature, scope, extensions: checked here, once per load), and a label for each CRL
    no configured CA signed. Two CRLs of one CA are ambiguous: neither is used (fail closed)."""
    verdicts: dict[x509.Certificate, CrlVerdict] = {}
    strangers: list[str] = []
    for number, crl in enumerate(crls, 1):
        signers = [ca for ca in cas if signed_by(crl, ca)]
        if not signers:
            strangers.append(f"CRL {number} of {len(crls)}")
        for ca in signers:
            verdicts[ca] = CrlVerdict("more than one CRL of this CA in the file") if ca in verdicts else (
                crl_verdict(crl, ca))
    return verdicts, tuple(strangers)
