"""Client certificates registered to built-in users, in PostgreSQL (the contract:
:class:`sts.stores.certificate_index.CertificateStore`, the same as the SQLite store's). Any failure fails closed
as :class:`~sts.errors.ServiceUnavailable`."""

from __future__ import annotations

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
from sts.stores.postgres import PostgresDatabase

_WHAT, _REASON = "certificate store", "certificate_store_down"


class PostgresCertificateStore:
    """Registered client certificates by user, in the shared database."""

    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    def add(self, user_id: int, der: bytes) -> str:
        """Register the DER certificate ``der`` to the user with ``user_id``; returns its fingerprint."""
        fingerprint, sha1, ski, issuer, serial = certificate_row(der)
        with self._db.session(_WHAT, _REASON, transaction=True) as session:
            added = session.execute(
                "INSERT INTO user_certificates(sha256, user_id, sha1, ski, issuer, serial, der, added)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (sha256) DO NOTHING",
                (fingerprint, user_id, sha1, ski, issuer, serial, der, time.time()),
            ).rowcount
        if added != 1:
            raise CertificateStoreError("this certificate is already registered")
        return fingerprint

    def remove(self, user_id: int, fingerprint: str) -> bool:
        """Unregister the user's certificate with this SHA-256 fingerprint (any case, colons optional)."""
        wanted = normalise_fingerprint(fingerprint)
        with self._db.session(_WHAT, _REASON, transaction=True) as session:
            removed = session.execute(
                "DELETE FROM user_certificates WHERE user_id = %s AND replace(sha256, ':', '') = %s",
                (user_id, wanted),
            ).rowcount
        return removed > 0

    def of_user(self, user_id: int) -> list[bytes]:
        """The DER of the user's registered certificates, oldest first."""
        with self._db.session(_WHAT, _REASON) as session:
            rows = session.execute(
                "SELECT der FROM user_certificates WHERE user_id = %s ORDER BY added", (user_id,)
            ).rows
        return [bytes(row[0]) for row in rows]

    def of_name(self, domain: str, canonical_name: str) -> list[bytes]:
        """The DER of the certificates registered to ``domain``/``canonical_name`` (case-folded name)."""
        with self._db.session(_WHAT, _REASON) as session:
            rows = session.execute(
                "SELECT c.der FROM user_certificates c JOIN users u ON u.id = c.user_id"
                " WHERE u.domain = %s AND u.canonical = %s ORDER BY c.added",
                (domain.upper(), canonical_name),
            ).rows
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
        lookup = find_lookup(der, sha1, ski, issuer_serial, "%s")
        if lookup is None:
            return None
        with self._db.session(_WHAT, _REASON) as session:
            rows = session.execute(lookup.query, lookup.values).rows
        return registered([tuple(row) for row in rows], lookup)
