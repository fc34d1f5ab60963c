"""AppliesTo matching: which registered relying party a request's ``wsp:AppliesTo`` address names.

An address is matched after one documented normalisation: surrounding whitespace removed, scheme and host
lower-cased, the default port dropped; path, query, percent-escapes and a trailing dot on the host are kept as
sent, so look-alike addresses never match (RFC 3986 §6.2.2-§6.2.3 allow more; an STS must not). Addresses with
user-info are refused. ``exact`` relying parties match the normalised address, ``prefix`` ones (their address ends
with ``/``, so ``https://rp.example`` cannot match ``https://rp.example.evil``) the longest registered prefix, and
``regex`` ones an anchored pattern (``re.fullmatch``) against the normalised address, in that order.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from sts.relying_parties.model import MAX_ADDRESS_LENGTH, Match, RelyingParty, RelyingPartyError
from sts.xmlutil import is_xml_text


@functools.lru_cache(maxsize=4096)  # once per request, for the same few addresses; refusals are not kept
def normalize_address(address: str) -> str:
    """The canonical form of an endpoint address, or :class:`RelyingPartyError`."""
    text = address.strip()
    if not text or len(text) > MAX_ADDRESS_LENGTH or any(ch.isspace() for ch in text):
        raise RelyingPartyError("address must be a URI without spaces")
    if not is_xml_text(text):  # the address is the audience written into tokens: XML 1.0 §2.2 [2] Char only
        raise RelyingPartyError("address must consist of characters XML can carry")
    if "#" in text or text.endswith("?"):
        raise RelyingPartyError("address must not carry a fragment or an empty query")
    try:
        return _normalize(text)
    except ValueError:  # bad port or IPv6 literal
        raise RelyingPartyError("address is not a valid URI") from None


def _normalize(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme.lower() in ("http", "https"):
        if not parts.hostname or "@" in parts.netloc:
            raise RelyingPartyError("http(s) addresses need a host and no user-info")
        if not parts.netloc.isascii():
            # RFC 3986 §3.2.2: a host is ASCII (an IRI's host travels IDNA-encoded). urlsplit lower-cases it with
            # Unicode rules, which fold look-alikes (KELVIN SIGN U+212A) onto ASCII letters of another host.
            raise RelyingPartyError("the host must be ASCII (IDNA A-labels)")
        scheme, host = parts.scheme.lower(), parts.hostname.lower()
        if ":" in host:
            host = f"[{host}]"
        port = parts.port
        default = {"http": 80, "https": 443}[scheme]
        netloc = host if port in (None, default) else f"{host}:{port}"
        query = f"?{parts.query}" if parts.query else ""
        return f"{scheme}://{netloc}{parts.path or '/'}{query}"
    if not parts.scheme:
        raise RelyingPartyError("address must be an absolute URI")
    return text  # urn: and other schemes: compared exactly as registered


class AddressIndex:
    """Registered relying parties arranged for matching; built once per registry version, then only read.

    The parties must have been validated (:func:`sts.relying_parties.registry.validate`): exact and prefix
    addresses are then already normalised and regular expressions compile.
    """

    def __init__(self, parties: Iterable[RelyingParty]) -> None:
        parties = list(parties)
        self._exact = {rp.address: rp for rp in parties if rp.match is Match.EXACT}
        # Longest prefix first, so the most specific registration wins.
        self._prefix = sorted((rp for rp in parties if rp.match is Match.PREFIX), key=lambda rp: -len(rp.address))
        self._regex = [(re.compile(rp.address), rp) for rp in parties if rp.match is Match.REGEX]

    def match(self, address: str) -> RelyingParty | None:
        """The relying party an AppliesTo address names; None when none does or the address is refused."""
        try:
            normalized = normalize_address(address)
        except RelyingPartyError:
            return None
        exact = self._exact.get(normalized)
        if exact is not None:
            return exact
        for rp in self._prefix:
            if normalized.startswith(rp.address):
                return rp
        for pattern, rp in self._regex:
            if pattern.fullmatch(normalized):
                return rp
        return None
