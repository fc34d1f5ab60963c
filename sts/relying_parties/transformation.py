"""A relying party's transformation policy: which validated tokens may be exchanged for one of its tokens.

WS-Trust 1.3 §7: a Validate request whose ``TokenType`` names a token type (not ``…/RSTR/Status``) asks the STS to
validate the target and return a new token of that type for the request's ``AppliesTo``. That is an issuance for the
token's subject, so nothing is allowed until the operator names, per relying party, the issuers whose tokens may be
exchanged for its tokens (Apache CXF's STS applies no such rule; this STS denies by default):
``sts rp update ADDR --allow-transformation-from self`` (tokens this STS issued) or ``… --allow-transformation-from
ENTITY_ID`` (assertions of a ``[[trusted_issuers]]`` entry).

Who may ask is decided with the relying party's delegation policy (:mod:`sts.relying_parties.delegation`): the
token's own subject always, anyone else only as an allowed OnBehalfOf caller (see :mod:`sts.operations.transformation`).
"""

from __future__ import annotations

from dataclasses import dataclass

from sts.relying_parties.delegation import DelegationError

SELF_SOURCE = "self"
ISSUER_PREFIX = "issuer:"
MAX_SOURCE_LENGTH = 2048


def normalize_source(text: str) -> str:
    """A ``--allow-transformation-from`` value in its stored form: ``self`` or ``issuer:ENTITY_ID``.

    An entity id is written as it is (``https://idp.example.test``) or with the ``issuer:`` prefix; it is compared
    exactly with the configured ``[[trusted_issuers]] entity_id``, as the assertions' Issuer is.
    """
    value = text.strip()
    if value.lower() == SELF_SOURCE:
        return SELF_SOURCE
    if value.lower().startswith(ISSUER_PREFIX):
        value = value[len(ISSUER_PREFIX) :].strip()
    if not value or len(value) > MAX_SOURCE_LENGTH or any(ch.isspace() for ch in value) or ":" not in value:
        raise DelegationError(f"invalid transformation source {text!r}: self or a trusted issuer's entity id")
    return f"{ISSUER_PREFIX}{value}"


def source_of(entity_id: str | None) -> str:
    """The stored form of a token's source: this STS (None) or the trusted issuer ``entity_id``."""
    return SELF_SOURCE if entity_id is None else f"{ISSUER_PREFIX}{entity_id}"


@dataclass(frozen=True, slots=True)
class TransformationPolicy:
    """The issuers whose validated tokens a relying party accepts in exchange; none listed: no transformation."""

    sources: tuple[str, ...] = ()

    @property
    def enabled(self) -> bool:
        """No source listed: Validate never issues a token for this relying party (deny by default)."""
        return bool(self.sources)

    def allows(self, source: str) -> bool:
        """Whether tokens of ``source`` (``self`` or ``issuer:ENTITY_ID``) may be exchanged."""
        return source in self.sources

    def describe(self) -> str:
        """One line for ``sts rp show``."""
        if not self.enabled:
            return "denied (no sources allowed)"
        return f"from {', '.join(self.sources)}; asked by the token's subject or an OnBehalfOf delegation caller"
