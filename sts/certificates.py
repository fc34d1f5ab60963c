"""The certificates an instance is configured with, and when each ends: for the start-up log's expiry warnings,
``sts check-config`` and the ``sts_certificate_expiry_days`` metric.

Read from files only (never from the database), so the gunicorn master can list them as cheaply as a worker:
the signing certificate and the previous ones still accepted, the TLS certificate, every certificate in the
relying-party truststore (``sts rp`` writes one file per RP) and the trusted client certificates.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from sts.config.settings import Settings
from sts.crypto.keystore import EXPIRY_WARNING, load_certificate


@dataclass(frozen=True, slots=True)
class CertificateExpiry:
    """A configured certificate: ``kind`` signing | previous_signing | tls | relying_party | client, ``name`` the
    file name (no secret), and its notAfter."""

    kind: str
    name: str
    not_after: dt.datetime

    def days_left(self, now: dt.datetime) -> float:
        """Days until it expires (negative once it has)."""
        return (self.not_after - now).total_seconds() / 86400


def configured_certificates(settings: Settings) -> list[CertificateExpiry]:
    """Every certificate file the configuration names or the truststores hold; unreadable files are skipped
    (``sts check-config`` reports them)."""
    named: list[tuple[str, Path]] = [("signing", settings.issuer.signing_cert)]
    named += [("previous_signing", path) for path in settings.issuer.previous_certs]
    if settings.server.tls_cert is not None:
        named.append(("tls", settings.server.tls_cert))
    named += [("relying_party", path) for path in _files(settings.store.truststore)]
    named += [("client", path) for path in _files(settings.security.trusted_client_certs)]
    found: list[CertificateExpiry] = []
    for kind, path in named:
        try:
            cert = load_certificate(path)
        except (OSError, ValueError):
            continue
        found.append(CertificateExpiry(kind, path.name, cert.not_valid_after_utc))
    return found


def expiry_warnings(certificates: list[CertificateExpiry], now: dt.datetime) -> list[str]:
    """One line per certificate that has expired or expires within 30 days."""
    warnings = []
    for cert in certificates:
        if cert.not_after - now >= EXPIRY_WARNING:
            continue
        when = f"{cert.not_after:%Y-%m-%d}"
        state = "expired on" if cert.not_after <= now else f"expires in {int(cert.days_left(now))} days, on"
        warnings.append(f"{cert.kind.replace('_', ' ')} certificate {cert.name} {state} {when}")
    return warnings


def unbound_client_cert_warnings(settings: Settings) -> list[str]:
    """The certificates in ``[security] trusted_client_certs`` when nothing reads them: without
    ``legacy_unproven_use_key`` an unsigned PublicKey request binds only a certificate registered to its caller
    (``sts user add-cert``). An instance made by a release before that rule keeps its clients' certificates in
    this folder, and their PublicKey requests are refused (``wst:InvalidRequest``, ``bad_use_key``) until each is
    registered to its user."""
    security = settings.security
    if security.legacy_unproven_use_key:
        return []
    names = []
    for path in _files(security.trusted_client_certs):
        try:
            load_certificate(path)
        except (OSError, ValueError):
            continue  # sts check-config names it as not a certificate
        names.append(path.name)
    if not names:
        return []
    return [
        f"security.trusted_client_certs: {security.trusted_client_certs} holds {len(names)} client certificate(s)"
        f" ({', '.join(names)}) that unsigned PublicKey requests no longer bind (wst:InvalidRequest): register each"
        " to its user with `sts user add-cert USER FILE`, then remove it from this folder"
        " ([security] legacy_unproven_use_key = true restores the old rule, without proof of possession)"
    ]


def _files(folder: Path) -> list[Path]:
    try:
        return sorted(path for path in folder.iterdir() if path.is_file())
    except OSError:
        return []
