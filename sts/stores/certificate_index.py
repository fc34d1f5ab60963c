"""Client certificates registered to built-in users, whatever database keeps them: the lookup contract and the
values both backends share.

A registered certificate is one of the two ways a client certificate is trusted (the other is a configured client
CA); it is looked up by what a ``wsse:SecurityTokenReference`` can name (WSS X.509 Token Profile 1.1 §3.2): the
whole DER, its SHA-1 thumbprint, its SubjectKeyIdentifier, or issuer and serial number. A certificate belongs to
at most one user; removing the user removes its certificates.

Issuer and serial number: the database finds the certificates with that serial number (indexed), and
:func:`same_name` compares their issuer with the one named, as RFC 5280 §7.1 compares names. Never the DER of the
name: ``ds:X509IssuerName`` is text (XML-DSig §4.4.4), and the same name encoded as PrintableString (Java's keytool,
.NET) or UTF8String (what parsing that text gives back) is other bytes.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import unicodedata
from dataclasses import dataclass
from typing import Protocol

from cryptography import x509

_LOG = logging.getLogger("sts.clients")
# Serial numbers are unique per issuer (RFC 5280 §4.1.2.2) and random in practice: more candidates than this for one
# serial number is a database no lookup should scan on a request's behalf; the reference is refused (fail closed).
MAX_SERIAL_CANDIDATES = 64


class CertificateStoreError(Exception):
    """A provisioning error fit for the command line."""


@dataclass(frozen=True, slots=True)
class RegisteredCertificate:
    """A registered certificate and the built-in user it belongs to (domain, stored name)."""

    certificate: x509.Certificate
    domain: str
    name: str


def sha256_hex(der: bytes) -> str:
    """The SHA-256 fingerprint of a DER certificate as upper-case colon-separated hex (what ``sts user show``
    lists)."""
    return hashlib.sha256(der).digest().hex(":").upper()


@functools.lru_cache(maxsize=1024)
def load_registered(der: bytes) -> x509.Certificate:
    """A registered certificate's DER, parsed once per worker: the parsed object is immutable, and it keeps its
    parsed extensions, which the checks made at every login read again. Bounded: the certificates a worker meets."""
    return x509.load_der_x509_certificate(der)


def ski_of(cert: x509.Certificate) -> bytes | None:
    try:
        return bytes(cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest)
    except x509.ExtensionNotFound:
        return None


def normalise_fingerprint(text: str) -> str:
    """A SHA-256 fingerprint as 64 upper-case hex digits (colons and case as the operator typed them)."""
    compact = text.replace(":", "").strip().upper()
    if len(compact) != 64 or any(ch not in "0123456789ABCDEF" for ch in compact):
        raise CertificateStoreError("a fingerprint is 64 hex digits (SHA-256), colons optional")
    return compact


def certificate_row(der: bytes) -> tuple[str, bytes, bytes | None, bytes, str]:
    """``(sha256, sha1, ski, issuer, serial)`` of a DER certificate: the columns it is found by (the issuer's DER
    is kept as the certificate has it, but not searched: see :func:`same_name`)."""
    cert = x509.load_der_x509_certificate(der)
    sha1 = hashlib.sha1(der).digest()  # noqa: S324 - the ThumbprintSHA1 name a request may use
    return sha256_hex(der), sha1, ski_of(cert), cert.issuer.public_bytes(), str(cert.serial_number)


FIND_QUERY = (
    "SELECT c.der, u.domain, u.name FROM user_certificates c JOIN users u ON u.id = c.user_id"
    " WHERE {where} LIMIT {limit}"
)


@dataclass(frozen=True, slots=True)
class Lookup:
    """One indexed query for a reference: its ``WHERE`` condition and values, how many rows to read, and, for
    IssuerSerial, the issuer name each candidate row must have (:func:`same_name`)."""

    where: str
    values: tuple[str | bytes, ...]
    issuer: x509.Name | None = None

    @property
    def query(self) -> str:
        """The whole ``SELECT``: two rows tell "ambiguous"; every candidate of a serial number (one past the cap)."""
        limit = 2 if self.issuer is None else MAX_SERIAL_CANDIDATES + 1
        return FIND_QUERY.format(where=self.where, limit=limit)


def find_lookup(
    der: bytes | None, sha1: bytes | None, ski: bytes | None, issuer_serial: tuple[x509.Name, int] | None, mark: str
) -> Lookup | None:
    """The :class:`Lookup` (with ``mark`` as the driver's placeholder) for the first reference given, in the order a
    SecurityTokenReference is resolved; None when none is."""
    if der is not None:
        return Lookup(f"c.sha256 = {mark}", (sha256_hex(der),))
    if sha1 is not None:
        return Lookup(f"c.sha1 = {mark}", (sha1,))
    if ski is not None:
        return Lookup(f"c.ski = {mark}", (ski,))
    if issuer_serial is not None:
        return Lookup(f"c.serial = {mark}", (str(issuer_serial[1]),), issuer_serial[0])
    return None


def registered(rows: list[tuple[object, ...]], lookup: Lookup) -> RegisteredCertificate | None:
    """The one row that matches as a :class:`RegisteredCertificate` (None for none or several: ambiguous)."""
    found = [entry for entry in (_entry(row) for row in rows) if entry is not None]
    if lookup.issuer is not None:
        if len(rows) > MAX_SERIAL_CANDIDATES:
            _LOG.warning("more than %d registered certificates share a serial number: IssuerSerial refused",
                         MAX_SERIAL_CANDIDATES)
            return None
        found = [entry for entry in found if _issued_by(entry.certificate, lookup.issuer)]
    return found[0] if len(found) == 1 else None


def _entry(row: tuple[object, ...]) -> RegisteredCertificate | None:
    der_value, domain, name = row
    if not isinstance(der_value, bytes | bytearray | memoryview):  # the column is a BLOB (SQLite), BYTEA (PostgreSQL)
        return None
    return RegisteredCertificate(load_registered(bytes(der_value)), str(domain), str(name))


def _issued_by(certificate: x509.Certificate, issuer: x509.Name) -> bool:
    try:  # parsed lazily: a name that does not decode names nothing (fail closed)
        return same_name(certificate.issuer, issuer)
    except ValueError:
        return False


def same_name(a: x509.Name, b: x509.Name) -> bool:
    """Whether two distinguished names are the same name (RFC 5280 §7.1): the same RDNs in the same order, each with
    the same set of attribute types, and values equal after RFC 4518 string preparation as caseIgnoreMatch does it
    (NFKC after case folding, insignificant spaces removed), whatever string type encodes them. Non-string values
    (a BIT STRING) compare byte for byte."""
    first, second = a.rdns, b.rdns
    return len(first) == len(second) and all(_rdn_key(x) == _rdn_key(y) for x, y in zip(first, second, strict=True))


def _rdn_key(rdn: x509.RelativeDistinguishedName) -> frozenset[tuple[str, str | bytes]]:
    return frozenset((attribute.oid.dotted_string, _prepared(attribute.value)) for attribute in rdn)


def _prepared(value: str | bytes) -> str | bytes:
    """A string value as RFC 4518 prepares it for caseIgnoreMatch (§2.2 map with case folding, §2.3 NFKC, §2.6.1
    insignificant space handling: leading and trailing spaces dropped, inner runs one space)."""
    if isinstance(value, bytes):
        return value
    return " ".join(unicodedata.normalize("NFKC", value.casefold()).split())


class CertificateStore(Protocol):
    """Registered client certificates by user (SQLite: :mod:`sts.stores.sqlite_certificates`; PostgreSQL:
    :mod:`sts.stores.postgres_certificates`)."""

    def add(self, user_id: int, der: bytes) -> str:
        """Register ``der`` to the user; returns its SHA-256 fingerprint."""
        ...

    def remove(self, user_id: int, fingerprint: str) -> bool:
        """Unregister the user's certificate with this fingerprint."""
        ...

    def of_user(self, user_id: int) -> list[bytes]:
        """The DER of the user's certificates, oldest first."""
        ...

    def of_name(self, domain: str, canonical_name: str) -> list[bytes]:
        """The DER of the certificates of ``domain``/``canonical_name``."""
        ...

    def find(
        self,
        *,
        der: bytes | None = None,
        sha1: bytes | None = None,
        ski: bytes | None = None,
        issuer_serial: tuple[x509.Name, int] | None = None,
    ) -> RegisteredCertificate | None:
        """The registered certificate one of these names, with its user; None when none (or several) does."""
        ...
