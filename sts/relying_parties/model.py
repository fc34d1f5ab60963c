"""A relying party (WSO2's "service provider" with a WS-Trust configuration) and its settings.

The enumerated settings (match kind, token type, cipher, key transport, profile) are string enums, parsed once when
a :class:`RelyingParty` is built, from the database or from the command line; code past that point compares
members, never spellings. A setting left unset (None, or ``""`` for the free-form ones) comes from the relying
party's compatibility profile (:mod:`sts.relying_parties.profiles`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, TypeVar
from urllib.parse import urlsplit

from sts.config.settings import ProfileName
from sts.crypto.algorithms import CipherName, KeyTransportName
from sts.relying_parties.delegation import DelegationMode, DelegationPolicy
from sts.relying_parties.transformation import TransformationPolicy
from sts.xmlutil import is_xml_text

NAMEID_SOURCES = ("username", "email")
MAX_ADDRESS_LENGTH = 2048
MAX_LIFETIME = 43200  # seconds, as ``[tokens] max_lifetime`` allows at most


class RelyingPartyError(Exception):
    """A registration problem, with a message fit for the command line."""


class Match(StrEnum):
    """How a registered address is compared with a request's AppliesTo (:mod:`sts.relying_parties.matching`)."""

    EXACT = "exact"
    PREFIX = "prefix"
    REGEX = "regex"


class TokenFormat(StrEnum):
    """The SAML version a relying party receives when a request names no TokenType."""

    SAML20 = "saml20"
    SAML11 = "saml11"


_E = TypeVar("_E", bound=StrEnum)


def _member(kind: type[_E], value: str | None, what: str, *, optional: bool) -> _E | None:
    """``value`` as a member of ``kind``; ``""``/None are "unset" where ``optional``; else RelyingPartyError."""
    if optional and not value:
        return None
    try:
        return kind(value or "")
    except ValueError:
        raise RelyingPartyError(f"{what} must be one of {', '.join(kind)}") from None


@dataclass(frozen=True, slots=True)
class RelyingParty:
    """One registered relying party and the tokens it receives."""

    address: str
    cert_file: str = ""  # a file name in the instance truststore (single host, SQLite)
    # The certificate itself, PEM, kept in the registry: what every node of a shared (PostgreSQL) store reads.
    # At most one of ``cert_file`` and ``cert_pem`` is set (:func:`~sts.relying_parties.registry.validate`).
    cert_pem: str = ""
    # Audience and Recipient written into tokens; empty: the registered address (required for regex RPs).
    identifier: str = ""
    match: Match = Match.EXACT
    # None (and the empty strings) below: from the relying party's compatibility profile.
    token_type: TokenFormat | None = None
    encrypt: bool = True
    cipher: CipherName | None = None
    key_transport: KeyTransportName | None = None
    claims: tuple[str, ...] = ()
    nameid: str = ""  # username | email | a claim URI; empty: the profile's
    lifetime: int = 0  # 0: the [tokens] default
    profile: ProfileName | None = None  # None: the [tokens] profile
    applies_to_in_response: bool = True
    # (local claim URI, URI the relying party expects), as WSO2's claim mappings.
    claim_mapping: tuple[tuple[str, str], ...] = field(default=())
    nameid_format: str = ""  # NameID Format URI; empty: by source (emailAddress for email, else unspecified)
    # Delegation (WS-Trust 1.3 §9.1 OnBehalfOf, 1.4 ActAs), deny by default: no callers listed, no delegation.
    delegation_callers: tuple[str, ...] = ()  # user:DOMAIN/name | role:NAME | cert:SHA256-HEX
    delegation_mode: DelegationMode = DelegationMode.BOTH
    delegation_subjects: str = "same-domain"  # any | same-domain | role:NAME
    max_delegation_depth: int = 1
    # When set, a delegated assertion must be addressed to one of these (e.g. the front-end the user logged in to).
    delegation_audiences: tuple[str, ...] = ()
    # Validate with transformation (WS-Trust 1.3 §7), deny by default: whose tokens may be exchanged for ours.
    transform_from: tuple[str, ...] = ()  # self | issuer:ENTITY_ID

    def __post_init__(self) -> None:
        """Parse the enumerated settings once; a spelling outside the lists is a RelyingPartyError."""
        parsed = {
            "match": _member(Match, self.match, "match", optional=False),
            "token_type": _member(TokenFormat, self.token_type, "token type", optional=True),
            "cipher": _member(CipherName, self.cipher, "cipher", optional=True),
            "key_transport": _member(KeyTransportName, self.key_transport, "key transport", optional=True),
            "profile": _member(ProfileName, self.profile, "profile", optional=True),
            "delegation_mode": _member(DelegationMode, self.delegation_mode, "delegation mode", optional=False),
        }
        for name, value in parsed.items():
            object.__setattr__(self, name, value)

    @property
    def delegation(self) -> DelegationPolicy:
        """The delegation policy of this relying party (no callers: none)."""
        return DelegationPolicy(
            self.delegation_callers, self.delegation_mode, self.delegation_subjects, self.max_delegation_depth
        )

    @property
    def transformation(self) -> TransformationPolicy:
        """The transformation policy of this relying party (no sources: none)."""
        return TransformationPolicy(self.transform_from)

    @property
    def has_certificate(self) -> bool:
        """Whether a certificate is registered, as a truststore file or inline."""
        return bool(self.cert_file or self.cert_pem)

    def to_json(self) -> str:
        """Serialize for the database; an unset setting is written as ``""`` (the format since profiles came)."""
        data = asdict(self)
        for name in ("match", "token_type", "cipher", "key_transport", "profile", "delegation_mode"):
            data[name] = "" if data[name] is None else data[name].value
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RelyingParty:
        """Deserialize from the database; fields this version does not know are ignored."""
        data: dict[str, Any] = json.loads(text)
        data["claims"] = tuple(data.get("claims", ()))
        data["claim_mapping"] = tuple(tuple(pair) for pair in data.get("claim_mapping", ()))
        data["delegation_callers"] = tuple(data.get("delegation_callers", ()))
        data["delegation_audiences"] = tuple(data.get("delegation_audiences", ()))
        data["transform_from"] = tuple(data.get("transform_from", ()))
        data["delegation_mode"] = data.get("delegation_mode") or DelegationMode.BOTH.value
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


def is_absolute_uri(text: str) -> bool:
    """An absolute URI (it has a scheme) without whitespace, at most 2048 characters, of XML 1.0 characters only
    (§2.2 [2] Char: it is written into tokens): claim, format and audience URIs."""
    if not text or len(text) > MAX_ADDRESS_LENGTH or any(ch.isspace() for ch in text) or not is_xml_text(text):
        return False
    try:
        return bool(urlsplit(text).scheme)
    except ValueError:
        return False
