"""Registering relying parties, one call per ``sts rp`` action: the registry change and the certificate that goes
with it, as one step. Refusals are :class:`~sts.relying_parties.model.RelyingPartyError`; nothing is printed here
(the command line prints the outcomes).

Where a new certificate goes is the caller's ``in_database``: true for a store several nodes share (PostgreSQL),
whose relying parties carry their certificate inline; false for a single host (SQLite), whose certificates are
truststore files (:mod:`sts.relying_parties.certificates`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cryptography import x509

from sts.relying_parties.certificates import (
    CERT_SUFFIX,
    certificate_name,
    drop_certificate,
    inline_pem,
    install_certificate,
    load_rp_certificate,
    rp_certificate_problems,
)
from sts.relying_parties.model import RelyingParty, RelyingPartyError
from sts.relying_parties.profiles import EffectiveSettings, effective
from sts.relying_parties.registry import RelyingPartyRegistry, validate

# A placeholder file name while a new certificate's real name is not chosen yet: it lets validation see that
# a certificate will be there.
_PENDING = "pending" + CERT_SUFFIX


@dataclass(frozen=True, slots=True)
class Outcome:
    """A relying party as ``add`` or ``update`` left it."""

    rp: RelyingParty
    settings: EffectiveSettings  # with the profile's values filled in
    certificate: Path | None = None  # the truststore file this call installed (None: none, or in the database)
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Removal:
    """A relying party ``remove`` unregistered, and its certificate file if that was deleted too."""

    rp: RelyingParty
    deleted: Path | None
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Description:
    """Everything ``show`` prints: the stored and effective settings and the certificate as it is now."""

    rp: RelyingParty
    settings: EffectiveSettings
    certificate_file: Path | None = None  # its truststore file, if it is one
    in_database: bool = False  # its certificate is stored inline in the registry
    certificate: x509.Certificate | None = None
    unreadable: str = ""  # why the certificate could not be read
    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


def register(
    registry: RelyingPartyRegistry,
    truststore: Path,
    rp: RelyingParty,
    cert: x509.Certificate | None,
    default_profile: str,
    *,
    in_database: bool = False,
) -> Outcome:
    """Register ``rp``, with ``cert`` (already vetted) as its certificate when given: stored inline when
    ``in_database``, else installed in the truststore."""
    rp = checked(rp, cert)
    if cert is None or in_database:
        pem = "" if cert is None else inline_pem(cert)
        rp = registry.add(replace(rp, cert_file="", cert_pem=pem))
        return Outcome(rp, effective(rp, default_profile))
    rp = replace(rp, cert_file=certificate_name(registry, rp.address, exclude=""), cert_pem="")
    rp = install_certificate(truststore, rp.cert_file, cert, lambda: registry.add(rp))
    return Outcome(rp, effective(rp, default_profile), truststore / rp.cert_file)


def update(
    registry: RelyingPartyRegistry,
    truststore: Path,
    address: str,
    changes: Callable[[RelyingParty], Mapping[str, Any]],
    cert: x509.Certificate | None,
    default_profile: str,
    *,
    in_database: bool = False,
) -> Outcome:
    """Change settings of the relying party registered as ``address``; a new certificate replaces the old one
    (stored inline when ``in_database``, else installed in the truststore), and the old one's file is deleted when
    no other relying party uses it.

    ``changes`` gives the settings to change (field → value) once the relying party is found, so that an unknown
    address is reported before anything about the new values.
    """
    old = registry.find(address)
    new = replace(old, **changes(old))  # the values are parsed (and refused) by RelyingParty itself
    if new.encrypt and not new.has_certificate and cert is None:
        raise RelyingPartyError(f"relying party {old.address} has no certificate: give --cert to encrypt")
    new = checked(new, cert)
    if cert is None:
        new = registry.save(old, new)
        return Outcome(new, effective(new, default_profile))
    installed: Path | None = None
    if in_database:
        new = registry.save(old, replace(new, cert_file="", cert_pem=inline_pem(cert)))
    else:
        new = replace(new, cert_file=certificate_name(registry, new.address, exclude=old.address), cert_pem="")
        new = install_certificate(truststore, new.cert_file, cert, lambda: registry.save(old, new))
        installed = truststore / new.cert_file
        if new.cert_file == old.cert_file:
            # The registration was saved (the version moved) before the new file took the old one's name: a worker
            # that re-read in between loaded the old certificate, and re-reads only when the version moves again.
            new = registry.save(new, new)
    warnings: tuple[str, ...] = ()
    if old.cert_file and old.cert_file != new.cert_file:
        dropped = drop_certificate(registry, truststore, old.cert_file)
        warnings = (dropped.warning,) if dropped.warning else ()
    return Outcome(new, effective(new, default_profile), installed, warnings)


def unregister(registry: RelyingPartyRegistry, truststore: Path, address: str) -> Removal:
    """Unregister the relying party registered as ``address`` and delete its certificate file if now unused."""
    rp = registry.find(address)
    registry.remove(rp.address)
    if not rp.cert_file:
        return Removal(rp, None)
    dropped = drop_certificate(registry, truststore, rp.cert_file)
    warnings = (dropped.warning,) if dropped.warning else ()
    return Removal(rp, truststore / rp.cert_file if dropped.deleted else None, warnings)


def overview(registry: RelyingPartyRegistry, default_profile: str) -> list[tuple[RelyingParty, EffectiveSettings]]:
    """Every relying party with its effective settings, ordered by address."""
    return [(rp, effective(rp, default_profile)) for rp in registry.all()]


def describe(
    registry: RelyingPartyRegistry, truststore: Path, address: str, default_profile: str, now: dt.datetime
) -> Description:
    """The relying party registered as ``address``, its settings and its certificate checked at ``now``."""
    rp = registry.find(address)
    settings = effective(rp, default_profile)
    if not rp.has_certificate:
        return Description(rp, settings)
    path = None if rp.cert_pem else truststore / rp.cert_file
    where = Description(rp, settings, path, in_database=bool(rp.cert_pem))
    try:
        cert = load_rp_certificate(rp, truststore)
    except (OSError, ValueError) as exc:
        return replace(where, unreadable=f"{exc.__class__.__name__}: {exc}")
    problems, warnings = rp_certificate_problems(cert, "certificate", now)
    return replace(where, certificate=cert, problems=tuple(problems), warnings=tuple(warnings))


def checked(rp: RelyingParty, cert: x509.Certificate | None) -> RelyingParty:
    """``rp`` validated (:func:`~sts.relying_parties.registry.validate`) as it will be registered: with a
    certificate to come when ``cert`` is given. Nothing is written."""
    try:
        return validate(rp if cert is None else replace(rp, cert_file=_PENDING, cert_pem=""))
    except ValueError as exc:  # urlsplit: bad port or IPv6 literal
        raise RelyingPartyError(f"invalid address {rp.address!r}: {exc}") from None
