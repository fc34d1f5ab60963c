"""Relying parties (WSO2's "service providers" with a WS-Trust configuration) and AppliesTo matching.

An AppliesTo address is matched after one documented normalisation (catalogue I03): surrounding whitespace
removed, scheme and host lower-cased, the default port dropped; path, query, percent-escapes and a trailing dot
on the host are kept as sent, so look-alike addresses never match. Addresses with user-info are refused.
``prefix`` patterns must end with ``/`` (so ``https://rp.example`` cannot match ``https://rp.example.evil``)
and ``regex`` patterns are anchored (``re.fullmatch``) against the normalised address.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from sts.config.settings import PROFILE_NAMES
from sts.crypto.algorithms import CIPHER_NAMES, KEY_TRANSPORT_NAMES
from sts.errors import ServiceUnavailable
from sts.policy.claims import is_role_claim
from sts.stores.sqlite import Database

MATCH_KINDS = ("exact", "prefix", "regex")
TOKEN_TYPES = ("saml20", "saml11")
NAMEID_SOURCES = ("username", "email")
PROFILES = PROFILE_NAMES
MAX_ADDRESS_LENGTH = 2048


class RelyingPartyError(Exception):
    """A registration problem, with a message fit for the command line."""


def normalize_address(address: str) -> str:
    """The canonical form of an endpoint address, or :class:`RelyingPartyError`."""
    text = address.strip()
    if not text or len(text) > MAX_ADDRESS_LENGTH or any(ch.isspace() for ch in text):
        raise RelyingPartyError("address must be a URI without spaces")
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


@dataclass(frozen=True, slots=True)
class RelyingParty:
    """One registered relying party and the tokens it receives."""

    address: str
    cert_file: str = ""
    # Audience and Recipient written into tokens; empty: the registered address (required for regex RPs).
    identifier: str = ""
    match: str = "exact"
    # Empty values below come from the relying party's compatibility profile (sts.config.profiles).
    token_type: str = ""
    encrypt: bool = True
    cipher: str = ""
    key_transport: str = ""
    claims: tuple[str, ...] = ()
    nameid: str = ""  # username | email | a claim URI; empty: the profile's
    lifetime: int = 0  # 0: the [tokens] default
    profile: str = ""  # empty: the [tokens] profile
    applies_to_in_response: bool = True
    # (local claim URI, URI the relying party expects), as WSO2's claim mappings.
    claim_mapping: tuple[tuple[str, str], ...] = field(default=())
    nameid_format: str = ""  # NameID Format URI; empty: by source (emailAddress for email, else unspecified)

    def to_json(self) -> str:
        """Serialize for the database."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RelyingParty:
        """Deserialize from the database."""
        data: dict[str, Any] = json.loads(text)
        data["claims"] = tuple(data.get("claims", ()))
        data["claim_mapping"] = tuple(tuple(pair) for pair in data.get("claim_mapping", ()))
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})

    def matches(self, normalized: str) -> bool:
        """Whether a normalised AppliesTo address belongs to this relying party."""
        if self.match == "exact":
            return normalized == normalize_address(self.address)
        if self.match == "prefix":
            return normalized.startswith(normalize_address(self.address))
        return re.fullmatch(self.address, normalized) is not None


def validate(rp: RelyingParty) -> RelyingParty:
    """Check a relying party's settings; return it with the address normalised (exact/prefix)."""
    if rp.match not in MATCH_KINDS:
        raise RelyingPartyError(f"match must be one of {', '.join(MATCH_KINDS)}")
    if rp.match == "regex":
        try:
            re.compile(rp.address)
        except re.error as exc:
            raise RelyingPartyError(f"invalid regular expression: {exc}") from None
        address = rp.address
        if not rp.identifier:
            raise RelyingPartyError("a regex relying party needs an identifier (its audience)")
    else:
        address = normalize_address(rp.address)
        if rp.match == "prefix" and not address.endswith("/"):
            raise RelyingPartyError("prefix addresses must end with '/'")
    if rp.token_type and rp.token_type not in TOKEN_TYPES:
        raise RelyingPartyError(f"token type must be one of {', '.join(TOKEN_TYPES)}")
    _check_nameid(rp)
    if rp.cipher and rp.cipher not in CIPHER_NAMES:
        raise RelyingPartyError(f"cipher must be one of {', '.join(CIPHER_NAMES)}")
    if rp.key_transport and rp.key_transport not in KEY_TRANSPORT_NAMES:
        raise RelyingPartyError(f"key transport must be one of {', '.join(KEY_TRANSPORT_NAMES)}")
    for local, remote in rp.claim_mapping:
        if not local or not remote or any(ch.isspace() for ch in local + remote):
            raise RelyingPartyError("claim mappings are LOCAL_URI=RP_URI without spaces")
    if rp.profile and rp.profile not in PROFILES:
        raise RelyingPartyError(f"profile must be one of {', '.join(PROFILES)}")
    if rp.lifetime < 0 or rp.lifetime > 43200:
        raise RelyingPartyError("lifetime must be between 1 and 43200 seconds (0: the default)")
    if rp.encrypt and not rp.cert_file:
        raise RelyingPartyError("an encrypting relying party needs a certificate")
    return replace(rp, address=address)


def is_absolute_uri(text: str) -> bool:
    """An absolute URI (it has a scheme) without whitespace, at most 2048 characters: claim and format URIs."""
    if not text or len(text) > MAX_ADDRESS_LENGTH or any(ch.isspace() for ch in text):
        return False
    try:
        return bool(urlsplit(text).scheme)
    except ValueError:
        return False


def _check_nameid(rp: RelyingParty) -> None:
    """NameID source: ``username``, ``email`` or a claim URI (never a role claim); Format: an absolute URI."""
    if rp.nameid and rp.nameid not in NAMEID_SOURCES:
        if not is_absolute_uri(rp.nameid):
            raise RelyingPartyError(f"nameid must be one of {', '.join(NAMEID_SOURCES)} or a claim URI")
        if is_role_claim(rp.nameid):
            raise RelyingPartyError("nameid cannot be a role claim: roles are membership, not an identifier")
    if rp.nameid_format and not is_absolute_uri(rp.nameid_format):
        raise RelyingPartyError("nameid format must be an absolute URI")


class RelyingPartyStore:
    """Relying parties in the STS database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, rp: RelyingParty) -> RelyingParty:
        """Register a relying party; duplicates (after normalisation) are refused."""
        rp = validate(rp)
        now = time.time()
        conn = self._db.conn
        if conn.execute("SELECT 1 FROM relying_parties WHERE canonical = ?", (rp.address,)).fetchone():
            raise RelyingPartyError(f"relying party {rp.address} already registered")
        conn.execute(
            "INSERT INTO relying_parties(address, canonical, config, created, updated) VALUES (?, ?, ?, ?, ?)",
            (rp.address, rp.address, rp.to_json(), now, now),
        )
        self._bump()
        return rp

    def update(self, rp: RelyingParty) -> RelyingParty:
        """Replace the settings of a registered relying party."""
        rp = validate(rp)
        cursor = self._db.conn.execute(
            "UPDATE relying_parties SET config = ?, updated = ? WHERE address = ?",
            (rp.to_json(), time.time(), rp.address),
        )
        if cursor.rowcount != 1:
            raise RelyingPartyError(f"no relying party {rp.address}")
        self._bump()
        return rp

    def remove(self, address: str) -> None:
        """Unregister a relying party."""
        cursor = self._db.conn.execute("DELETE FROM relying_parties WHERE address = ?", (address,))
        if cursor.rowcount != 1:
            raise RelyingPartyError(f"no relying party {address}")
        self._bump()

    def get(self, address: str) -> RelyingParty:
        """One relying party by its registered address."""
        row = self._db.conn.execute("SELECT config FROM relying_parties WHERE address = ?", (address,)).fetchone()
        if row is None:
            raise RelyingPartyError(f"no relying party {address}")
        return RelyingParty.from_json(row[0])

    def all(self) -> list[RelyingParty]:
        """Every relying party, ordered by address."""
        rows = self._db.conn.execute("SELECT config FROM relying_parties ORDER BY address")
        return [RelyingParty.from_json(row[0]) for row in rows]

    def unavailable(self, exc: sqlite3.Error) -> ServiceUnavailable:
        """The fail-closed error when the registry cannot be read (reconnects next time)."""
        return self._db.unavailable("relying-party store", exc, "rp_store_down")

    def version(self) -> int:
        """A counter bumped by every change to the registry: a cheap "has anything changed?" for caches.

        (SQLite's ``PRAGMA data_version`` changes with every write by another connection, replay and token
        records included, so it would reload the registry on nearly every request.)
        """
        row = self._db.conn.execute("SELECT value FROM meta WHERE key = 'rp_version'").fetchone()
        return 0 if row is None else int(row[0])

    def _bump(self) -> None:
        self._db.conn.execute(
            "INSERT INTO meta(key, value) VALUES ('rp_version', '1')"
            " ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1"
        )
