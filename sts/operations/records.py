"""Persistence of issued tokens: the renewal record kept with each token, and the ledger that writes the store.

The token store (:class:`~sts.stores.base.TokenStore`) keeps a :class:`~sts.stores.base.TokenRecord` per token
(never the signed XML); its ``data`` holds, as JSON, what a renewal must know about how the token was requested:
a :class:`RenewalRecord`. The JSON carries a version, ``v``. Version 2 is written today. A record without ``v``
is version 1, the format written before records were versioned: the same fields, with the client's key kept as
the ``ds:KeyInfo`` XML it was issued with (``use_key``); it is read into the same typed record. A record of any
other version, or without the request's claims (written before renewals were decided again), is refused with
``wst:UnableToRenew``. ``chain`` stays a top-level member in every version: the store cancels a renewal chain by it.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from lxml import etree

from sts.crypto.keywrap import ClientKey, UseKeyRejected, read_use_key
from sts.errors import STSError, UnableToRenew
from sts.stores.base import TokenRecord, TokenStore
from sts.wstrust.model import ClaimRequest, RequestedClaims
from sts.wstrust.tokentypes import KeyKind, SamlVersion, TokenType, resolve_token_type
from sts.wstrust.version import TrustVersion
from sts.xmlutil import ParserLimits, parse_untrusted

RECORD_VERSION = 2
# The stored form: compact JSON. One encoder for every record (json.dumps with ``separators`` builds a new
# JSONEncoder at each call); the same text as ``json.dumps(data, separators=(",", ":"))``.
_COMPACT = json.JSONEncoder(separators=(",", ":"))


def token_digest(token: etree._Element) -> str:
    """SHA-256 of the token's exclusive canonical form: how a token handed back as issued is recognised."""
    return hashlib.sha256(etree.tostring(token, method="c14n", exclusive=True)).hexdigest()


@dataclass(frozen=True, slots=True)
class RenewalRecord:
    """How a token was requested, as far as a renewal decides it again (WS-Trust 1.3 §5)."""

    trust: TrustVersion  # the version the token was requested in (the spelling of key_type_uri); a renewal answers
    # in the version of the Renew request
    token_type: TokenType
    key_kind: KeyKind
    key_type_uri: str  # as the request spelled it
    key_bits: int | None
    requested_claims: RequestedClaims | None  # the request's wst:Claims, decided again at each renewal
    authn_context: str
    chain: str  # assertion ID of the first token of the renewal chain
    chain_started: float  # issue time of that first token (epoch seconds)
    client_key: ClientKey | None = None  # a PublicKey token's key, checked again at each renewal

    def to_json(self) -> str:
        """The record as stored (version :data:`RECORD_VERSION`)."""
        claims = self.requested_claims
        key = self.client_key.encoded() if self.client_key is not None else None
        data = {
            "v": RECORD_VERSION,
            "trust_ns": self.trust.namespace,
            "token_type": self.token_type.uri,
            "key_kind": self.key_kind.value,
            "key_type_uri": self.key_type_uri,
            "key_bits": self.key_bits,
            "requested_claims": None
            if claims is None
            else {"dialect": claims.dialect, "claims": [[c.uri, c.optional] for c in claims.claims]},
            "authn_context": self.authn_context,
            "chain": self.chain,
            "chain_started": self.chain_started,
            "client_key": None if key is None else [key[0], base64.b64encode(key[1]).decode("ascii")],
        }
        return _COMPACT.encode(data)

    @classmethod
    def from_json(cls, text: str) -> RenewalRecord:
        """Read a stored record of version 2 or 1; anything else is ``wst:UnableToRenew`` (``legacy_record``)."""
        try:
            data = json.loads(text)
            if not isinstance(data, dict):
                raise ValueError("not an object")
            return _read(data)
        except (ValueError, KeyError, TypeError, UseKeyRejected, STSError):
            raise UnableToRenew("token record without a renewal basis", reason="legacy_record") from None


def _read(data: dict[str, Any]) -> RenewalRecord:
    version = data.get("v", 1)
    if version == RECORD_VERSION:
        client_key = _client_key(data["client_key"])
    elif version == 1:
        client_key = _legacy_client_key(data.get("use_key"))
    else:
        raise ValueError(f"unknown record version {version!r}")
    trust = TrustVersion.of_namespace(data["trust_ns"])
    if trust is None:
        raise ValueError("unknown trust namespace")
    claims, key_bits = data["requested_claims"], data.get("key_bits")
    return RenewalRecord(
        trust=trust,
        token_type=resolve_token_type(str(data["token_type"]), SamlVersion.SAML20),
        key_kind=KeyKind(str(data["key_kind"])),
        key_type_uri=str(data["key_type_uri"]),
        key_bits=key_bits if isinstance(key_bits, int) else None,
        requested_claims=None
        if claims is None
        else RequestedClaims(
            str(claims["dialect"]), tuple(ClaimRequest(str(uri), bool(opt)) for uri, opt in claims["claims"])
        ),
        authn_context=str(data["authn_context"]),
        chain=str(data["chain"]),
        chain_started=float(data["chain_started"]),
        client_key=client_key,
    )


def _client_key(stored: Any) -> ClientKey | None:
    if stored is None:
        return None
    form, encoded = stored
    return ClientKey.decoded(str(form), base64.b64decode(str(encoded), validate=True))


def _legacy_client_key(stored: Any) -> ClientKey | None:
    """Version 1 kept the ``ds:KeyInfo`` the token was issued with; its key is read once, here."""
    if not stored:
        return None
    return read_use_key(parse_untrusted(str(stored).encode(), ParserLimits()))


class TokenLedger:
    """Writes issued tokens to the token store, kept while they may still be renewed."""

    def __init__(self, store: TokenStore, clock_skew: int, keep_after_expiry: int) -> None:
        self._store = store
        self._clock_skew = clock_skew
        self._keep_after_expiry = keep_after_expiry

    def record(self, record: TokenRecord, renews: str | None = None) -> None:
        """Record a new token; with ``renews``, retire that token in the same atomic step, or raise
        ``wst:UnableToRenew`` when another request retired it first (then nothing is written)."""
        # Kept while it may still be renewed: until expiry + skew + the renewal window after expiry.
        keep_until = record.not_on_or_after + self._clock_skew + self._keep_after_expiry
        if renews is None:
            self._store.put(record, keep_until)
        elif not self._store.renew(renews, record, keep_until):
            raise UnableToRenew("token renewed or cancelled meanwhile", reason="renewed_meanwhile")
