"""The relying-party registry: the rules for registering, over a :class:`RelyingPartyStore` that keeps the rows.

``sts rp ...`` writes it; every worker reads it through :class:`~sts.relying_parties.directory.RelyingPartyDirectory`,
which re-reads it only when :meth:`RelyingPartyRegistry.version` moved. A relying party's identity is its
registered address: normalised for ``exact`` and ``prefix`` relying parties, the pattern as written for ``regex``.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import replace
from typing import Any, Protocol

from cryptography import x509

from sts.policy.claims import is_role_claim
from sts.relying_parties.delegation import DelegationError, check_depth, normalize_caller, parse_subjects
from sts.relying_parties.matching import normalize_address
from sts.relying_parties.model import (
    MAX_LIFETIME,
    NAMEID_SOURCES,
    Match,
    RelyingParty,
    RelyingPartyError,
    is_absolute_uri,
)
from sts.relying_parties.transformation import normalize_source
from sts.xmlutil import is_xml_text


class RelyingPartyStore(Protocol):
    """Where the registry is kept: one row per relying party, its registered address and its settings as JSON,
    and a version counter every change moves.

    Shared by every worker; each method is atomic; a store that cannot answer raises
    :class:`~sts.errors.ServiceUnavailable` (it fails closed, like every store in :mod:`sts.stores`).
    """

    def insert(self, address: str, config: str) -> bool:
        """Add a row; False (nothing written) when ``address`` is already registered."""
        ...

    def update(self, address: str, config: str) -> bool:
        """Replace a row's settings; False when ``address`` is not registered."""
        ...

    def replace(self, old_address: str, address: str, config: str) -> bool:
        """Remove ``old_address`` and add ``address`` in one transaction; False (nothing changed) when
        ``old_address`` is not registered or ``address`` already is."""
        ...

    def delete(self, address: str) -> bool:
        """Remove a row; False when ``address`` is not registered."""
        ...

    def get(self, address: str) -> str | None:
        """The settings registered under exactly ``address``."""
        ...

    def all(self) -> list[str]:
        """Every row's settings, ordered by address."""
        ...

    def version(self) -> int:
        """The change counter (0 before the first change): a cheap "has anything changed?" for caches."""
        ...


def validate(rp: RelyingParty) -> RelyingParty:
    """Check a relying party's settings; return it with the address normalised (exact/prefix).

    The enumerated settings were checked when ``rp`` was built (:class:`RelyingParty`); this checks the rest
    and how the settings fit together.
    """
    if rp.match is Match.REGEX:
        try:
            re.compile(rp.address)
        except re.error as exc:
            raise RelyingPartyError(f"invalid regular expression: {exc}") from None
        address = rp.address
        if not rp.identifier:
            raise RelyingPartyError("a regex relying party needs an identifier (its audience)")
    else:
        address = normalize_address(rp.address)
        if rp.match is Match.PREFIX and not address.endswith("/"):
            raise RelyingPartyError("prefix addresses must end with '/'")
    _check_nameid(rp)
    _check_token_text(rp)
    for local, remote in rp.claim_mapping:
        if not local or not remote or any(ch.isspace() for ch in local + remote):
            raise RelyingPartyError("claim mappings are LOCAL_URI=RP_URI without spaces")
    if rp.lifetime < 0 or rp.lifetime > MAX_LIFETIME:
        raise RelyingPartyError(f"lifetime must be between 1 and {MAX_LIFETIME} seconds (0: the default)")
    _check_certificate_reference(rp)
    return replace(rp, address=address, **_checked_delegation(rp))


def _checked_delegation(rp: RelyingParty) -> dict[str, Any]:
    """The delegation and transformation settings in their stored form (normalised, duplicates dropped)."""
    try:
        callers = tuple(dict.fromkeys(normalize_caller(entry) for entry in rp.delegation_callers))
        subjects = parse_subjects(rp.delegation_subjects)
        depth = check_depth(rp.max_delegation_depth)
        sources = tuple(dict.fromkeys(normalize_source(entry) for entry in rp.transform_from))
    except DelegationError as exc:
        raise RelyingPartyError(str(exc)) from None
    if not all(is_absolute_uri(audience) for audience in rp.delegation_audiences):
        raise RelyingPartyError("delegation audiences are absolute URIs")
    return {
        "delegation_callers": callers,
        "delegation_subjects": subjects,
        "max_delegation_depth": depth,
        "transform_from": sources,
    }


def _check_certificate_reference(rp: RelyingParty) -> None:
    """An encrypting relying party has a certificate: a truststore file or one inline PEM certificate, not both."""
    if rp.encrypt and not rp.has_certificate:
        raise RelyingPartyError("an encrypting relying party needs a certificate")
    if rp.cert_file and rp.cert_pem:
        raise RelyingPartyError("a certificate is either a truststore file or stored in the database, not both")
    if rp.cert_pem:
        if rp.cert_pem.count("-----BEGIN") != 1 or not rp.cert_pem.startswith("-----BEGIN CERTIFICATE-----"):
            raise RelyingPartyError("the stored certificate must be one PEM certificate")
        try:
            x509.load_pem_x509_certificate(rp.cert_pem.encode())
        except ValueError:
            raise RelyingPartyError("the stored certificate is not a valid PEM certificate") from None


def _check_token_text(rp: RelyingParty) -> None:
    """The settings written into tokens (audience, claim URIs) are XML 1.0 text (§2.2 [2] Char): one that is
    not would make every Issue for this relying party fail when the assertion is built."""
    if rp.identifier and not is_xml_text(rp.identifier):
        raise RelyingPartyError("identifier must consist of characters XML can carry")
    uris = (*rp.claims, *(uri for pair in rp.claim_mapping for uri in pair))
    if not all(is_xml_text(uri) for uri in uris):
        raise RelyingPartyError("claim URIs must consist of characters XML can carry")


def _check_nameid(rp: RelyingParty) -> None:
    """NameID source: ``username``, ``email`` or a claim URI (never a role claim); Format: an absolute URI."""
    if rp.nameid and rp.nameid not in NAMEID_SOURCES:
        if not is_absolute_uri(rp.nameid):
            raise RelyingPartyError(f"nameid must be one of {', '.join(NAMEID_SOURCES)} or a claim URI")
        if is_role_claim(rp.nameid):
            raise RelyingPartyError("nameid cannot be a role claim: roles are membership, not an identifier")
    if rp.nameid_format and not is_absolute_uri(rp.nameid_format):
        raise RelyingPartyError("nameid format must be an absolute URI")


class RelyingPartyRegistry:
    """The registered relying parties: validated on the way in, parsed once on the way out."""

    def __init__(self, store: RelyingPartyStore) -> None:
        self._store = store

    def add(self, rp: RelyingParty) -> RelyingParty:
        """Register a relying party; duplicates (after normalisation) are refused."""
        rp = validate(rp)
        if not self._store.insert(rp.address, rp.to_json()):
            raise RelyingPartyError(f"relying party {rp.address} already registered")
        return rp

    def update(self, rp: RelyingParty) -> RelyingParty:
        """Replace the settings of a registered relying party."""
        rp = validate(rp)
        if not self._store.update(rp.address, rp.to_json()):
            raise RelyingPartyError(f"no relying party {rp.address}")
        return rp

    def save(self, old: RelyingParty, new: RelyingParty) -> RelyingParty:
        """Update in place, or (when the address itself changed, e.g. a new match kind) replace atomically."""
        new = validate(new)
        if new.address == old.address:
            return self.update(new)
        if not self._store.replace(old.address, new.address, new.to_json()):
            if self._store.get(old.address) is None:
                raise RelyingPartyError(f"no relying party {old.address}")
            raise RelyingPartyError(f"relying party {new.address} already registered")
        return new

    def remove(self, address: str) -> None:
        """Unregister a relying party."""
        if not self._store.delete(address):
            raise RelyingPartyError(f"no relying party {address}")

    def get(self, address: str) -> RelyingParty:
        """One relying party by its registered address."""
        config = self._store.get(address)
        if config is None:
            raise RelyingPartyError(f"no relying party {address}")
        return RelyingParty.from_json(config)

    def find(self, address: str) -> RelyingParty:
        """A relying party by its registered address, also accepted un-normalised or differently cased.

        The address exactly as given wins (a regex RP's pattern may normalise to another RP's address), then its
        normalised form (exact/prefix RPs), then a case-insensitive comparison, but only when it names exactly one
        registration: paths are case-sensitive (RFC 3986 §6.2.2.1), so ``…/app/`` and ``…/APP/`` can both be
        registered, and ``…/App/`` must not pick one of them to show, change or remove.
        """
        candidates = [address, address.strip()]
        with contextlib.suppress(RelyingPartyError, ValueError):
            candidates.append(normalize_address(address))
        for candidate in dict.fromkeys(candidates):
            with contextlib.suppress(RelyingPartyError):
                return self.get(candidate)
        folded = {candidate.casefold() for candidate in candidates}
        matches = [rp for rp in self.all() if rp.address.casefold() in folded]
        if len(matches) > 1:
            names = ", ".join(rp.address for rp in matches)
            raise RelyingPartyError(f"{address} is ambiguous: it names {names} (give the address exactly)")
        if not matches:
            raise RelyingPartyError(f"no relying party {address}")
        return matches[0]

    def all(self) -> list[RelyingParty]:
        """Every relying party, ordered by address."""
        return [RelyingParty.from_json(config) for config in self._store.all()]

    def version(self) -> int:
        """A counter bumped by every change to the registry (see :meth:`RelyingPartyStore.version`)."""
        return self._store.version()
