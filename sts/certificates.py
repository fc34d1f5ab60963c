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


def _files(folder: Path) -> list[Path]:
    try:
        return sorted(path for path in folder.iterdir() if path.is_file())
    except OSError:
        return []
