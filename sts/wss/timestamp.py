"""``xsd:dateTime`` parsing and message freshness (WSS 1.1 §10; WS-I BSP 1.1 R3203-R3227).

Freshness windows mirror WSS4J (``timeToLive``/``futureTimeToLive``, ``utTTL``/``utFutureTTL``): a ``Created``
may be at most ``ttl`` seconds old and at most ``future_ttl`` seconds ahead of our clock. Both bounds are
inclusive, as in WSS4J ``DateUtil.verifyCreated``: with the defaults an age of exactly 300 s and a lead of
exactly 60 s are accepted, 301 s / 61 s are not. ``Expires`` only ever shortens the window, never extends it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from lxml import etree

from sts import ns
from sts.clock import Clock
from sts.errors import InvalidSecurity, InvalidSecurityToken, MessageExpired
from sts.xmlutil import element_children, text_of

# XML Schema whitespace (the ``collapse`` facet), not Python's wider notion of whitespace: NBSP and friends are
# content, so they must make the value invalid rather than disappear.
XML_WHITESPACE = " \t\r\n"

# Longer than any accepted form (29 chars); checked first so no value of unbounded size reaches the regex.
_MAX_DATETIME_CHARS = 64

# BSP 1.1 R3217 (UTC only: ``Z``, and ``+00:00`` as sent by some SOAP client libraries) / BSP 1.1 R3220 (at most
# 3 fractional digits; Java WSS clients send milliseconds). ``[0-9]`` rather than ``\d``
# because ``\d`` also matches non-ASCII digits, which ``int()`` would then happily convert.
_DATETIME = re.compile(
    r"(?P<year>[0-9]{4})-(?P<month>[0-9]{2})-(?P<day>[0-9]{2})"
    r"T(?P<hour>[0-9]{2}):(?P<minute>[0-9]{2}):(?P<second>[0-9]{2})"
    r"(?:\.(?P<fraction>[0-9]{1,3}))?"
    r"(?:Z|\+00:00)"
)

# A SAML time value (SAML 2.0 core §1.3.3, SAML 1.1 core §1.2.2): UTC, with any number of fractional digits. The
# profile only says entities SHOULD NOT *rely* on resolution finer than milliseconds; issuers write .NET's 7 digits
# ("o" format) and Java's or Go's 6 or 9, and they must not make a token unreadable. Cut to microseconds.
_SAML_DATETIME = re.compile(
    r"(?P<year>[0-9]{4})-(?P<month>[0-9]{2})-(?P<day>[0-9]{2})"
    r"T(?P<hour>[0-9]{2}):(?P<minute>[0-9]{2}):(?P<second>[0-9]{2})"
    r"(?:\.(?P<fraction>[0-9]+))?"
    r"(?:Z|\+00:00)"
)

# Any xsd:dateTime with a zone (XML Schema part 2 §3.2.7): what a WS-Trust Lifetime may carry, where BSP's
# Timestamp profile does not apply. Any number of fractional digits (XML Schema part 2 §3.2.7: "an optional
# fraction"; the 64-character cap bounds it); digits past microseconds are cut (datetime's resolution).
_ANY_ZONED_DATETIME = re.compile(
    r"(?P<year>[0-9]{4})-(?P<month>[0-9]{2})-(?P<day>[0-9]{2})"
    r"T(?P<hour>[0-9]{2}):(?P<minute>[0-9]{2}):(?P<second>[0-9]{2})"
    r"(?:\.(?P<fraction>[0-9]+))?"
    r"(?:(?P<utc>Z)|(?P<sign>[+-])(?P<zh>[0-9]{2}):(?P<zm>[0-9]{2}))"
)

# Past the last instant a Created can be accepted, so that a replay cache's entry outlives it (replay_window).
REPLAY_MARGIN = 1

_CREATED = ns.qn(ns.WSU, "Created")
_EXPIRES = ns.qn(ns.WSU, "Expires")


@dataclass(frozen=True, slots=True)
class FreshnessPolicy:
    """Accepted age (``ttl``) and clock lead (``future_ttl``) of a ``Created``, in seconds (WSS4J defaults)."""

    ttl: int = 300
    future_ttl: int = 60

    @property
    def replay_window(self) -> int:
        """Seconds a replay cache keeps what a message carried (a nonce, a signature), counted from its ``Created``
        (or from now, the later of the two): every ``Created`` accepted now is still accepted ``ttl`` later, at that
        very instant too (the bounds are inclusive), while a cache entry counts as gone from its expiry on. One
        second past both windows keeps the entry alive at the last instant the message could be accepted."""
        return self.ttl + self.future_ttl + REPLAY_MARGIN


def parse_xsd_datetime(text: str, *, reason: str = "bad_created") -> datetime:
    """Parse a UTC ``xsd:dateTime`` as sent in ``wsu:Created``/``wsu:Expires`` (BSP 1.1 R3217, R3220).

    Surrounding XML whitespace is collapsed; the rest must be ``YYYY-MM-DDThh:mm:ss[.f{1,3}]`` followed by ``Z``
    or ``+00:00``. Zone-less values, other offsets, 4+ fractional digits, leap seconds, ``24:00:00``, year
    ``0000`` and anything over 64 characters raise :class:`InvalidSecurityToken` with ``reason``.
    """
    return _parse_utc(text, _DATETIME, reason)


def parse_saml_instant(text: str, *, reason: str = "bad_conditions") -> datetime:
    """Parse a SAML time value (``NotBefore``, ``NotOnOrAfter``, …: SAML 2.0 core §1.3.3): UTC as for
    :func:`parse_xsd_datetime`, but with any number of fractional digits, cut (never rounded) to microseconds.

    Zone-less values, other offsets, leap seconds, ``24:00:00`` and anything over 64 characters raise
    :class:`InvalidSecurityToken` with ``reason``.
    """
    return _parse_utc(text, _SAML_DATETIME, reason)


def _parse_utc(text: str, form: re.Pattern[str], reason: str) -> datetime:
    """``text`` (XML whitespace around it stripped, at most 64 characters) read in ``form``, a UTC pattern."""
    value = text.strip(XML_WHITESPACE)
    if len(value) > _MAX_DATETIME_CHARS:
        raise InvalidSecurityToken("dateTime value too long", reason=reason)
    match = form.fullmatch(value)
    if match is None:
        raise InvalidSecurityToken("dateTime not in an accepted UTC form", reason=reason)
    return _utc_fields(match, reason)


def _utc_fields(match: re.Match[str], reason: str) -> datetime:
    """The UTC instant of a matched ``_DATETIME`` or ``_SAML_DATETIME``; fractions past microseconds are cut."""
    fraction = (match["fraction"] or "")[:6]
    try:
        return datetime(
            int(match["year"]),
            int(match["month"]),
            int(match["day"]),
            int(match["hour"]),
            int(match["minute"]),
            int(match["second"]),
            int(fraction.ljust(6, "0")),
            tzinfo=UTC,
        )
    except ValueError:
        # Out-of-range fields: month 13, day 45, second 60 (datetime has no leap seconds), year 0.
        raise InvalidSecurityToken("dateTime field out of range", reason=reason) from None


def parse_zoned_datetime(text: str) -> datetime:
    """Parse an ``xsd:dateTime`` with any fractional precision and any zone offset into UTC (a WS-Trust 1.3 §4.4.1
    Lifetime); zone-less values are refused (their instant is unknown). Raises ``ValueError``."""
    value = text.strip(XML_WHITESPACE)
    match = _ANY_ZONED_DATETIME.fullmatch(value) if len(value) <= _MAX_DATETIME_CHARS else None
    if match is None:
        raise ValueError("not a zoned xsd:dateTime")
    fraction = (match["fraction"] or "")[:6]
    offset = timedelta(0)
    if not match["utc"]:
        hours, minutes = int(match["zh"]), int(match["zm"])
        if hours > 14 or minutes > 59 or (hours == 14 and minutes):  # XML Schema part 2 §3.2.7.3
            raise ValueError("zone offset out of range")
        offset = timedelta(hours=hours, minutes=minutes) * (1 if match["sign"] == "+" else -1)
    local = datetime(
        int(match["year"]), int(match["month"]), int(match["day"]), int(match["hour"]), int(match["minute"]),
        int(match["second"]), int(fraction.ljust(6, "0")), tzinfo=UTC,
    )
    return local - offset


def check_freshness(created: datetime, clock: Clock, policy: FreshnessPolicy) -> None:
    """Reject a ``Created`` older than ``ttl`` or more than ``future_ttl`` ahead (WSS 1.1 §10).

    Both bounds are inclusive (WSS4J ``DateUtil.verifyCreated``). Raises :class:`MessageExpired`.
    """
    now = clock.now()
    if created > now + timedelta(seconds=policy.future_ttl):
        raise MessageExpired("Created too far in the future", reason="created_in_future")
    if created < now - timedelta(seconds=policy.ttl):
        raise MessageExpired("Created too old", reason="created_too_old")


def check_timestamp(ts_element: etree._Element, clock: Clock, policy: FreshnessPolicy) -> datetime:
    """Check a ``wsu:Timestamp``'s structure (BSP 1.1 R3203, R3221, R3222) and freshness (WSS 1.1 §10); its
    ``Created``.

    Structure faults raise :class:`InvalidSecurity`; a stale or future ``Created`` or an ``Expires`` at or
    before now raises :class:`MessageExpired`. A far-future ``Expires`` never widens the ``Created`` window.
    """
    created_el, expires_el = _timestamp_parts(ts_element)
    created = parse_xsd_datetime(_simple_text(created_el), reason="bad_created")
    expires = None
    if expires_el is not None:
        expires = parse_xsd_datetime(_simple_text(expires_el), reason="bad_expires")
        if expires <= created:
            raise InvalidSecurity("Timestamp Expires not after Created", reason="timestamp_expires_before_created")
    check_freshness(created, clock, policy)
    # An Expires equal to now is already expired: it names the first instant the semantics no longer hold.
    if expires is not None and expires <= clock.now():
        raise MessageExpired("Timestamp expired", reason="timestamp_expired")
    return created


def _timestamp_parts(ts_element: etree._Element) -> tuple[etree._Element, etree._Element | None]:
    """Exactly one Created (R3203), then at most one Expires (R3221, R3224), nothing else (R3222)."""
    children = element_children(ts_element)
    tags = [child.tag for child in children]
    if tags not in ([_CREATED], [_CREATED, _EXPIRES]):
        raise InvalidSecurity("Timestamp must hold one Created and an optional Expires", reason="timestamp_structure")
    return children[0], children[1] if len(children) == 2 else None


def _simple_text(element: etree._Element) -> str:
    """The text of a simple-content element; element children are a structure fault, not extra text."""
    if element_children(element):
        raise InvalidSecurity("Timestamp value has element content", reason="timestamp_structure")
    return text_of(element)
