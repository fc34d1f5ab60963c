"""The relying-party directory at run time: AppliesTo → relying party, or a registration → its current settings.

The registry lives in a shared store (``sts rp ...`` writes it, bumping a version counter); a worker looks at that
counter at most once a second and re-reads the registry only when it moved, so registering an RP needs no restart
and costs the request path nothing. Parsed certificates and built encrypters survive a re-read
(:mod:`sts.relying_parties.caches`); a certificate's dates are judged at every use.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from sts.clock import Clock, SystemClock
from sts.config.settings import ProfileName
from sts.crypto.encrypter import TokenEncrypter
from sts.errors import InvalidRequest, InvalidScope, RequestFailed, ServiceUnavailable
from sts.policy.claims import ClaimPolicy
from sts.relying_parties.caches import CertificateCache, EncrypterCache, LoadedCertificate
from sts.relying_parties.matching import AddressIndex
from sts.relying_parties.model import RelyingParty, RelyingPartyError
from sts.relying_parties.profiles import EffectiveSettings, effective
from sts.relying_parties.registry import RelyingPartyRegistry

_LOG = logging.getLogger("sts.rp")
_RECHECK_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class ResolvedParty:
    """A relying party matched for one request, with the audience its tokens name."""

    rp: RelyingParty
    audience: str
    loaded: LoadedCertificate | None  # its certificate while valid now, with the fingerprint its encrypter is found by
    settings: EffectiveSettings
    claims: ClaimPolicy  # its claims and claim mapping, worked out for issuing
    # True when the request's AppliesTo matched nothing and ``[tokens] default_relying_party`` was used.
    fallback: bool = False

    @property
    def certificate(self) -> x509.Certificate | None:
        """The relying party's certificate while it is valid now; None: it has none, or none usable now."""
        return None if self.loaded is None else self.loaded.certificate


class RelyingPartyDirectory:
    """Matches AppliesTo addresses against the registered relying parties, or finds one by its registration.

    Thread-safe: a worker's threads share the registry snapshot and the caches, and one lock keeps a re-read from
    being seen half done and builds each encrypter once.
    """

    def __init__(
        self,
        registry: RelyingPartyRegistry,
        truststore: Path,
        default_address: str = "",
        default_profile: str = "strict",
        recheck_seconds: float = _RECHECK_SECONDS,
        clock: Clock | None = None,
    ) -> None:
        self._registry = registry
        self._recheck = recheck_seconds
        self._default_profile = ProfileName(default_profile)  # the [tokens] profile, parsed once
        self._default = default_address
        self._version: int | None = None
        self._checked = -1.0
        self._registered: dict[str, RelyingParty] = {}
        self._index = AddressIndex(())
        self._certs: dict[str, LoadedCertificate | None] = {}
        # address → (the registration, its effective settings, its claim policy), made at its first use after a
        # re-read.
        self._settings: dict[str, tuple[RelyingParty, EffectiveSettings, ClaimPolicy]] = {}
        self._certificates = CertificateCache(truststore, clock or SystemClock())
        self._encrypters = EncrypterCache()
        self._lock = threading.Lock()

    def resolve(self, address: str | None) -> ResolvedParty:
        """The relying party for an AppliesTo address (None: absent), else the default RP, else InvalidScope."""
        with self._lock:
            self._refresh()
            rp = self._index.match(address) if address is not None else None
            fallback = rp is None and bool(self._default)
            if fallback:
                rp = self._index.match(self._default)
            if rp is None and address is None:
                raise InvalidRequest("no AppliesTo and no default relying party", reason="missing_applies_to")
            if rp is None:
                raise InvalidScope("AppliesTo matches no relying party", reason="unknown_applies_to")
            return self._party(rp, fallback)

    def registered(self, address: str) -> ResolvedParty | None:
        """The relying party registered under exactly ``address`` (as recorded with an issued token), with its
        current settings; None once that registration is gone. No AppliesTo matching and no default: a token
        renewed for its relying party never lands on another one (a prefix, a regex or the default RP)."""
        with self._lock:
            self._refresh()
            rp = self._registered.get(address)
            return None if rp is None else self._party(rp, fallback=False)

    def nameid_sources(self, audience: str) -> frozenset[str]:
        """The NameID sources (``username``, ``email``, a claim URI) in force for the registered relying parties
        whose tokens name ``audience`` (their identifier, else their address, as their tokens' Audience is made);
        empty when none does."""
        with self._lock:
            self._refresh()
            return frozenset(
                self._effective(rp)[1].nameid
                for rp in self._registered.values()
                if (rp.identifier or rp.address) == audience
            )

    def encrypter(self, party: ResolvedParty) -> TokenEncrypter:
        """The worker's encrypter for this relying party's certificate and algorithms."""
        if party.loaded is None:
            _LOG.error("relying party has no usable certificate", extra={"relying_party": party.rp.address})
            raise RequestFailed("relying party certificate unusable", reason="rp_certificate_unusable")
        with self._lock:
            settings = party.settings
            return self._encrypters.get(party.rp, party.loaded, settings.cipher, settings.key_transport)

    def _party(self, rp: RelyingParty, fallback: bool) -> ResolvedParty:
        """The resolved party with its certificate only while that is valid now."""
        _, settings, claims = self._effective(rp)
        loaded = self._certificates.usable(rp, self._certs.get(rp.address))
        return ResolvedParty(rp, rp.identifier or rp.address, loaded, settings, claims, fallback)

    def _effective(self, rp: RelyingParty) -> tuple[RelyingParty, EffectiveSettings, ClaimPolicy]:
        """The relying party's settings with its profile's gaps filled and its claim policy, worked out once per
        registration object (a re-read makes new objects, so a changed registration is never answered with old
        settings or claims)."""
        known = self._settings.get(rp.address)
        if known is None or known[0] is not rp:
            policy = ClaimPolicy.of(rp.claims, dict(rp.claim_mapping))
            known = (rp, effective(rp, self._default_profile), policy)
            self._settings[rp.address] = known
        return known

    def _refresh(self) -> None:
        """Re-read the registry when its version moved (looked at once per ``recheck_seconds`` at most).

        A registry that cannot be read (the store down, or a row this release cannot parse) raises
        ServiceUnavailable: the store fails closed, and so does every request until a re-read succeeds.
        """
        now = time.monotonic()
        if self._version is not None and now - self._checked < self._recheck:
            return
        version = self._registry.version()
        if version == self._version:
            self._checked = now
            return
        try:
            parties = self._registry.all()
        except (RelyingPartyError, TypeError, ValueError):  # a row this release cannot parse (e.g. a newer one's)
            _LOG.exception("relying-party registry unreadable")
            raise ServiceUnavailable("relying-party registry unreadable", reason="rp_store_down") from None
        # Only now: after a failed re-read every request tries again (and fails closed) rather than being answered,
        # until the next look, from the registry as it was before the change (a removed party still in it).
        self._checked = now
        self._registered = {rp.address: rp for rp in parties}
        self._settings = {}
        self._index = AddressIndex(parties)
        self._certs = {rp.address: self._certificates.load(rp) for rp in parties if rp.has_certificate}
        self._certificates.forget_others(parties)
        self._version = version
        for rp in parties:  # log expired and expiring certificates now, not only when their RP is asked for
            self._certificates.usable(rp, self._certs.get(rp.address))
