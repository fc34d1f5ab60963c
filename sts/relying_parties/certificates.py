"""Relying-party certificates: checked, then kept where every node serving the registry can read them.

With a single host's store (SQLite) a certificate is a file of the instance truststore, ``<slug>.crt.pem`` (PEM,
0644), named in the registry (``cert_file``). It is written to a temporary file first and renamed into place only
after the registry accepted the change, so a refused registration leaves no file behind and a failed write leaves
the registry untouched; it is deleted once no relying party refers to it. With a store shared by several nodes
(PostgreSQL) the certificate itself is kept in the registry (``cert_pem``): no node has to hold a file another
node's ``sts rp add`` wrote.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

from cryptography import x509
from cryptography.x509.oid import ExtensionOID

from sts.crypto.keygen import certificate_pem
from sts.crypto.keystore import check_certificate, load_certificate
from sts.relying_parties.model import RelyingParty, RelyingPartyError
from sts.relying_parties.registry import RelyingPartyRegistry

CERT_SUFFIX = ".crt.pem"
SLUG_MAX = 60

_T = TypeVar("_T")


def vet_certificate(cert: x509.Certificate, label: str, now: dt.datetime) -> list[str]:
    """Refuse a certificate tokens cannot be encrypted for (:func:`rp_certificate_problems`); return the
    warnings (expiring within 30 days)."""
    problems, warnings = rp_certificate_problems(cert, label, now)
    if problems:
        raise RelyingPartyError("refusing the certificate: " + "; ".join(problems))
    return warnings


def rp_certificate_problems(cert: x509.Certificate, label: str, now: dt.datetime) -> tuple[list[str], list[str]]:
    """Problems of a relying party's certificate (RSA < 2048 bits, expired, not yet valid: RFC 5280 §4.1.2.5; a
    key its certificate does not allow for key transport, :func:`encryption_problems`) and its warnings."""
    problems, warnings = check_certificate(cert, label, now)
    return problems + encryption_problems(cert, label), warnings


def encryption_problems(cert: x509.Certificate, label: str) -> list[str]:
    """Why tokens must not be encrypted to this certificate's key: a KeyUsage without keyEncipherment (RFC 5280
    §4.2.1.3: the key may not transport the RSA-wrapped token key), or a CA certificate (§4.2.1.9 cA: its key
    signs certificates; a relying party's encryption key is an end entity's)."""
    problems: list[str] = []
    with contextlib.suppress(x509.ExtensionNotFound):
        usage = cert.extensions.get_extension_for_oid(ExtensionOID.KEY_USAGE).value
        if isinstance(usage, x509.KeyUsage) and not usage.key_encipherment:
            problems.append(f"{label}: its KeyUsage does not allow keyEncipherment (RFC 5280 §4.2.1.3)")
    with contextlib.suppress(x509.ExtensionNotFound):
        constraints = cert.extensions.get_extension_for_oid(ExtensionOID.BASIC_CONSTRAINTS).value
        if isinstance(constraints, x509.BasicConstraints) and constraints.ca:
            problems.append(f"{label}: a CA certificate (BasicConstraints CA:TRUE, RFC 5280 §4.2.1.9)")
    return problems


def inline_pem(cert: x509.Certificate) -> str:
    """``cert`` as the PEM text a relying party keeps in the registry (``cert_pem``)."""
    return certificate_pem(cert).decode("ascii")


def load_rp_certificate(rp: RelyingParty, truststore: Path) -> x509.Certificate:
    """The certificate registered for ``rp``: its inline PEM, else its truststore file (PEM or DER).

    Raises OSError (a missing or unreadable file) or ValueError (not a certificate); ``rp`` must have one.
    """
    if rp.cert_pem:
        return x509.load_pem_x509_certificate(rp.cert_pem.encode())
    if not rp.cert_file or Path(rp.cert_file).name != rp.cert_file:
        raise ValueError("no certificate file name")
    return load_certificate(truststore / rp.cert_file)


def with_inline_certificate(config: str, truststore: Path) -> str:
    """A relying party's stored settings (JSON) with its truststore certificate file put inline, for a store that
    several nodes share (``sts db copy``); unchanged when it has no certificate file.

    Raises ValueError, with the reason, when the file is missing or unreadable.
    """
    try:
        rp = RelyingParty.from_json(config)
    except (RelyingPartyError, TypeError, ValueError) as exc:
        raise ValueError(f"unreadable settings ({exc})") from None
    if not rp.cert_file:
        return config
    try:
        cert = load_rp_certificate(rp, truststore)
    except (OSError, ValueError):
        raise ValueError(f"certificate file {truststore / rp.cert_file} missing or unreadable") from None
    return replace(rp, cert_file="", cert_pem=inline_pem(cert)).to_json()


def certificate_location(rp: RelyingParty, truststore: Path) -> str:
    """Where the certificate of ``rp`` is kept, for messages: its truststore file or the database."""
    return "stored in the database" if rp.cert_pem else str(truststore / rp.cert_file)


def slug(address: str) -> str:
    """A file-name stem for a relying party: readable part of the address plus a short hash of all of it."""
    readable = re.sub(r"[^a-z0-9]+", "-", address.lower()).strip("-")[:SLUG_MAX].strip("-") or "rp"
    return f"{readable}-{hashlib.sha256(address.encode()).hexdigest()[:8]}"


def certificate_name(registry: RelyingPartyRegistry, address: str, exclude: str) -> str:
    """``<slug>.crt.pem``, made unique among the files the other relying parties (all but ``exclude``) use."""
    taken = {rp.cert_file for rp in registry.all() if rp.address != exclude}
    stem = slug(address)
    name, counter = stem + CERT_SUFFIX, 2
    while name in taken:
        name, counter = f"{stem}-{counter}{CERT_SUFFIX}", counter + 1
    return name


def install_certificate(truststore: Path, name: str, cert: x509.Certificate, persist: Callable[[], _T]) -> _T:
    """Write ``cert`` as ``truststore/name`` and run ``persist`` (the registry change); all or nothing."""
    if Path(name).name != name:
        raise RelyingPartyError(f"invalid certificate file name {name!r}")
    truststore.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=truststore, prefix=".rp-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(certificate_pem(cert))
        os.chmod(tmp, 0o644)
        result = persist()
        os.replace(tmp, truststore / name)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return result


@dataclass(frozen=True, slots=True)
class Dropped:
    """What became of a certificate file no longer needed: deleted, or kept with the reason."""

    deleted: bool
    warning: str = ""


def drop_certificate(registry: RelyingPartyRegistry, truststore: Path, name: str) -> Dropped:
    """Delete a truststore file no relying party refers to any more."""
    if Path(name).name != name or name in {rp.cert_file for rp in registry.all()}:
        return Dropped(False)
    path = truststore / name
    try:
        path.unlink()
    except FileNotFoundError:
        return Dropped(False)
    except OSError as exc:
        return Dropped(False, f"could not delete {path}: {exc.strerror or exc}")
    return Dropped(True)
