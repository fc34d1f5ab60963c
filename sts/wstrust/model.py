"""Frozen values of a parsed WS-Trust request (WS-Trust 1.3 §4.1)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from lxml import etree

from sts.wstrust.actions import Operation
from sts.wstrust.version import TrustVersion


@dataclass(frozen=True, slots=True)
class AppliesTo:
    """``wsp:AppliesTo/wsa:EndpointReference/wsa:Address`` and the namespaces it came in (echoed in them)."""

    address: str
    policy_ns: str
    addressing_ns: str


@dataclass(frozen=True, slots=True)
class ClaimRequest:
    """One ``ClaimType``: its URI and whether the caller can do without it (``Optional``, default true)."""

    uri: str
    optional: bool = True


@dataclass(frozen=True, slots=True)
class RequestedClaims:
    """``wst:Claims``: the dialect and the claim types asked for."""

    dialect: str
    claims: tuple[ClaimRequest, ...]


@dataclass(frozen=True, slots=True)
class Lifetime:
    """A requested or issued validity window."""

    created: dt.datetime | None
    expires: dt.datetime | None


@dataclass(frozen=True, slots=True)
class Renewing:
    """``wst:Renewing``: may the token be renewed, and also after it expired (``OK``)."""

    allow: bool = True
    ok: bool = False


@dataclass(frozen=True, slots=True)
class RequestSecurityToken:
    """A parsed RST; raw URIs are kept as sent so they can be echoed (token-type spelling, key type)."""

    trust: TrustVersion
    operation: Operation
    context: str | None = None
    token_type: str | None = None
    applies_to: AppliesTo | None = None
    lifetime: Lifetime | None = None
    key_type: str | None = None
    key_size: int | None = None
    claims: RequestedClaims | None = None
    renewing: Renewing | None = None
    entropy: bytes | None = None
    computed_key_algorithm: str | None = None
    use_key: etree._Element | None = None
    target: etree._Element | None = None
    on_behalf_of: etree._Element | None = None  # the token inside wst:OnBehalfOf (WS-Trust 1.3 §9.1)
    act_as: etree._Element | None = None  # the token inside wst14:ActAs (WS-Trust 1.4)
