"""Client certificates registered to built-in users (``sts user add-cert``), in the STS's SQLite database
(the contract: :class:`sts.stores.certificate_index.CertificateStore`; removing a user removes its certificates,
``ON DELETE CASCADE``)."""

from __future__ import annotations

import sqlite3
import time

from cryptography import x509

from sts.stores.certificate_index import (
    CertificateStoreError,
    RegisteredCertificate,
    certificate_row,
    find_lookup,
    normalise_fingerprint,
    registered,
)
from sts.stores.sqlite import Database


class SqliteCertificateStore:
    """Registered client certificates by user."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def _conn(self) -> sqlite3.Connection:
        return self._db.conn  # the table comes with the schema migrations (sts/stores/migrations/)

    def add(self, user_id: int, der: bytes) -> str:
        """Register the DER certificate ``der`` to the user with ``user_id``; returns its fingerprint."""
        fingerprint, sha1, ski, issuer, serial = certificate_row(der)
        try:
            self._conn().execute(
                "INSERT INTO user_certificates(sha256, user_id, sha1, ski, issuer, serial, der, added)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (fingerprint, user_id, sha1, ski, issuer, serial, der, time.time()),
            )
        except sqlite3.IntegrityError:
            raise CertificateStoreError("this certificate is already registered") from None
        return fingerprint

    def remove(self, user_id: int, fingerprint: str) -> bool:
        """Unregister the user's certificate with this SHA-256 fingerprint (any case, colons optional)."""
        wanted = normalise_fingerprint(fingerprint)
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
        lookup = find_lookup(der, sha1, ski, issuer_serial, "?")
        if lookup is None:
            return None
        try:
            rows = self._conn().execute(lookup.query, lookup.values).fetchall()
        except sqlite3.Error as exc:
            raise self._db.unavailable("certificate store", exc, "certificate_store_down") from None
        return registered(rows, lookup)
