"""Client certificates registered to built-in users, whatever database keeps them: the lookup contract and the
values both backends share.

A registered certificate is one of the two ways a client certificate is trusted (the other is a configured client
CA); it is looked up by what a ``wsse:SecurityTokenReference`` can name (WSS X.509 Token Profile 1.1 §3.2): the
whole DER, its SHA-1 thumbprint, its SubjectKeyIdentifier, or issuer and serial number. A certificate belongs to
at most one user; removing the user removes its certificates.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from typing import Protocol

from cryptography import x509


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
    """``(sha256, sha1, ski, issuer, serial)`` of a DER certificate: the columns it is found by."""
    cert = x509.load_der_x509_certificate(der)
    sha1 = hashlib.sha1(der).digest()  # noqa: S324 - the ThumbprintSHA1 name a request may use
    return sha256_hex(der), sha1, ski_of(cert), cert.issuer.public_bytes(), str(cert.serial_number)


FIND_QUERY = (
    "SELECT c.der, u.domain, u.name FROM user_certificates c JOIN users u ON u.id = c.user_id WHERE {where} LIMIT 2"
)


def find_condition(
    der: bytes | None, sha1: bytes | None, ski: bytes | None, issuer_serial: tuple[x509.Name, int] | None, mark: str
) -> tuple[str, tuple[str | bytes, ...]] | None:
    """The ``WHERE`` condition (with ``mark`` as the driver's placeholder) and its values for the first reference
    given, in the order a SecurityTokenReference is resolved; None when none is."""
    if der is not None:
        return f"c.sha256 = {mark}", (sha256_hex(der),)
    if sha1 is not None:
        return f"c.sha1 = {mark}", (sha1,)
    if ski is not None:
        return f"c.ski = {mark}", (ski,)
    if issuer_serial is not None:
        return f"c.issuer = {mark} AND c.serial = {mark}", (issuer_serial[0].public_bytes(), str(issuer_serial[1]))
    return None


def registered(rows: list[tuple[object, ...]]) -> RegisteredCertificate | None:
    """The one matching row as a :class:`RegisteredCertificate` (None for none or several: ambiguous)."""
    if len(rows) != 1:
        return None
    der_value, domain, name = rows[0]
    if not isinstance(der_value, bytes | bytearray | memoryview):  # the column is a BLOB (SQLite), BYTEA (PostgreSQL)
        return None
    return RegisteredCertificate(load_registered(bytes(der_value)), str(domain), str(name))


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
