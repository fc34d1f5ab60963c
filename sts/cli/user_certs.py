"""``sts user add-cert`` / ``remove-cert``, and the certificate lines of ``sts user show``.

A client certificate registered to a built-in user authenticates that user in the X.509 scenarios (SigOnly,
certificatemixed): the certificate, never the request, says who the caller is. Registration refuses a
certificate that could not authenticate anyone now (expired, not yet valid, weak key, no ``digitalSignature``
key usage, no ``clientAuth`` extended key usage); removing it is how a registered certificate is revoked.
"""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Callable
from pathlib import Path

from cryptography import x509

from sts.auth.builtin_users import BuiltinUserStore
from sts.auth.users import UserStoreError
from sts.crypto.client_certs import certificate_problem
from sts.crypto.keystore import load_certificate
from sts.crypto.wss_sign import certificate_der
from sts.stores.certificate_index import CertificateStoreError, sha256_hex


def add_parsers(
    sub: argparse._SubParsersAction,  # type: ignore[type-arg]
    name_args: Callable[[argparse.ArgumentParser], None],
) -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    """The ``add-cert NAME CERT`` and ``remove-cert NAME FINGERPRINT|CERT`` parsers (handlers set by the caller)."""
    add = sub.add_parser("add-cert", help="register a client certificate (PEM or DER) to a user")
    name_args(add)
    add.add_argument("certificate", type=Path, metavar="CERT", help="the certificate file")
    remove = sub.add_parser("remove-cert", help="unregister a user's client certificate")
    name_args(remove)
    remove.add_argument("certificate", metavar="FINGERPRINT|CERT", help="SHA-256 fingerprint or the certificate file")
    return add, remove


def add_certificate(store: BuiltinUserStore, domain: str, name: str, path: Path) -> str:
    """Register the certificate in ``path`` to ``domain/name``; the confirmation line."""
    cert = _read(path)
    problem = certificate_problem(cert, dt.datetime.now(dt.UTC))
    if problem is not None:
        raise UserStoreError(f"{path}: certificate not usable for client authentication ({problem})")
    try:
        fingerprint = store.add_certificate(domain, name, certificate_der(cert))
    except CertificateStoreError as exc:
        raise UserStoreError(str(exc)) from None
    return f"registered certificate {fingerprint} to {domain}/{name}"


def remove_certificate(store: BuiltinUserStore, domain: str, name: str, which: str) -> str:
    """Unregister the certificate named by fingerprint or file; the confirmation line."""
    path = Path(which)
    fingerprint = sha256_hex(certificate_der(_read(path))) if path.is_file() else which
    try:
        store.remove_certificate(domain, name, fingerprint)
    except CertificateStoreError as exc:
        raise UserStoreError(str(exc)) from None
    return f"removed certificate {fingerprint.upper()} from {domain}/{name}"


def certificate_lines(store: BuiltinUserStore, domain: str, name: str) -> list[str]:
    """``cert:`` lines for ``sts user show``: fingerprint, subject and expiry of each registered certificate."""
    lines = []
    for der in store.certificates(domain, name):
        cert = x509.load_der_x509_certificate(der)
        lines.append(
            f"cert:     {sha256_hex(der)} {cert.subject.rfc4514_string()}"
            f" (until {cert.not_valid_after_utc:%Y-%m-%d})"
        )
    return lines


def _read(path: Path) -> x509.Certificate:
    try:
        return load_certificate(path)
    except (OSError, ValueError):
        raise UserStoreError(f"{path}: not a readable PEM or DER certificate") from None
