"""Client certificates registered to built-in users (``sts user add-cert``), in the STS's SQLite database.

A registered certificate is one of the two ways a client certificate is trusted (the other is a configured client
CA); it is looked up by what a ``wsse:SecurityTokenReference`` can name (WSS X.509 Token Profile 1.1 §3.2): the
whole DER, its SHA-1 thumbprint, its SubjectKeyIdentifier, or issuer and serial number. A certificate belongs to
at most one user; removing the user removes its certificates (``ON DELETE CASCADE``).
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from dataclasses import dataclass

from cryptography import x509

from sts.stores.sqlite import Database

# Also in sts.stores.sqlite's schema; repeated here so a database made before this table existed gains it.
SCHEMA = """
CREATE TABLE IF NOT EXISTS user_certificates (
    sha256 TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    sha1 BLOB NOT NULL,
    ski BLOB,
    issuer BLOB NOT NULL,
    serial TEXT NOT NULL,
    der BLOB NOT NULL,
    added REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS user_certificates_sha1 ON user_certificates(sha1);
CREATE INDEX IF NOT EXISTS user_certificates_ski ON user_certificates(ski);
CREATE INDEX IF NOT EXISTS user_certificates_issuer_serial ON user_certificates(issuer, serial);
CREATE INDEX IF NOT EXISTS user_certificates_user ON user_certificates(user_id);
"""


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


def _ski(cert: x509.Certificate) -> bytes | None:
    try:
        return bytes(cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest)
    except x509.ExtensionNotFound:
        return None


class SqliteCertificateStore:
    """Registered client certificates by user."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._ready = False

    def _conn(self) -> sqlite3.Connection:
        conn = self._db.conn
        if not self._ready:
            conn.executescript(SCHEMA)
            self._ready = True
        return conn

    def add(self, user_id: int, der: bytes) -> str:
        """Register the DER certificate ``der`` to the user with ``user_id``; returns its fingerprint."""
        cert = x509.load_der_x509_certificate(der)
        fingerprint = sha256_hex(der)
        sha1 = hashlib.sha1(der).digest()  # noqa: S324 - the ThumbprintSHA1 name a request may use
        try:
            self._conn().execute(
                "INSERT INTO user_certificates(sha256, user_id, sha1, ski, issuer, serial, der, added)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (fingerprint, user_id, sha1, _ski(cert), cert.issuer.public_bytes(), str(cert.serial_number), der,
                 time.time()),
            )
        except sqlite3.IntegrityError:
            raise CertificateStoreError("this certificate is already registered") from None
        return fingerprint

    def remove(self, user_id: int, fingerprint: str) -> bool:
        """Unregister the user's certificate with this SHA-256 fingerprint (any case, colons optional)."""
        wanted = _normalise_fingerprint(fingerprint)
        cursor = self._conn().execute(
            "DELETE FROM user_certificates WHERE user_id = ? AND replace(sha256, ':', '') = ?", (user_id, wanted)
        )
        return cursor.rowcount > 0

    def of_user(self, user_id: int) -> list[bytes]:
        """The DER of the user's registered certificates, oldest first."""
        rows = self._conn().execute(
            "SELECT der FROM user_certificates WHERE user_id = ? ORDER BY added", (user_id,)
        )
        return [bytes(row[0]) for row in rows]

    def of_name(self, domain: str, canonical_name: str) -> list[bytes]:
        """The DER of the certificates registered to ``domain``/``canonical_name`` (case-folded name)."""
        try:
            rows = self._conn().execute(
                "SELECT c.der FROM user_certificates c JOIN users u ON u.id = c.user_id"
                " WHERE u.domain = ? AND u.canonical = ? ORDER BY c.added",
                (domain.upper(), canonical_name),
            ).fetchall()
        except sqlite3.Error as exc:
            raise self._db.unavailable("certificate store", exc, "certificate_store_down") from None
        return [bytes(row[0]) for row in rows]

    def find(
        self,
        *,
        der: bytes | None = None,
        sha1: bytes | None = None,
        ski: bytes | None = None,
        issuer_serial: tuple[x509.Name, int] | None = None,
    ) -> RegisteredCertificate | None:
        """The registered certificate one of these names, with its user; None when none (or more than one) does."""
        args: tuple[str | bytes, ...]
        if der is not None:
            where, args = "c.sha256 = ?", (sha256_hex(der),)
        elif sha1 is not None:
            where, args = "c.sha1 = ?", (sha1,)
        elif ski is not None:
            where, args = "c.ski = ?", (ski,)
        elif issuer_serial is not None:
            where, args = "c.issuer = ? AND c.serial = ?", (issuer_serial[0].public_bytes(), str(issuer_serial[1]))
        else:
            return None
        try:
            rows = self._conn().execute(
                f"SELECT c.der, u.domain, u.name FROM user_certificates c JOIN users u ON u.id = c.user_id"  # noqa: S608
                f" WHERE {where} LIMIT 2",
                args,
            ).fetchall()
        except sqlite3.Error as exc:
            raise self._db.unavailable("certificate store", exc, "certificate_store_down") from None
        if len(rows) != 1:
            return None
        der_value, domain, name = rows[0]
        return RegisteredCertificate(x509.load_der_x509_certificate(der_value), domain, name)


def _normalise_fingerprint(text: str) -> str:
    compact = text.replace(":", "").strip().upper()
    if len(compact) != 64 or any(ch not in "0123456789ABCDEF" for ch in compact):
        raise CertificateStoreError("a fingerprint is 64 hex digits (SHA-256), colons optional")
    return compact
