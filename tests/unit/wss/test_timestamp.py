"""Tests for sts.wss.timestamp: xsd:dateTime forms (R16, R17, W22) and Timestamp rules (BSP R32xx, W19-W23)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from lxml import etree

from sts import errors, ns
from sts.clock import FrozenClock
from sts.wss.timestamp import FreshnessPolicy, check_freshness, check_timestamp, parse_xsd_datetime

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
POLICY = FreshnessPolicy()


def _iso(instant: datetime) -> str:
    return instant.strftime("%Y-%m-%dT%H:%M:%SZ")


def _timestamp(*children: str) -> etree._Element:
    xml = f'<wsu:Timestamp xmlns:wsu="{ns.WSU}" wsu:Id="TS-1">{"".join(children)}</wsu:Timestamp>'
    return etree.fromstring(xml)


def _created(value: str) -> str:
    return f"<wsu:Created>{value}</wsu:Created>"


def _expires(value: str) -> str:
    return f"<wsu:Expires>{value}</wsu:Expires>"


def _clock() -> FrozenClock:
    return FrozenClock(NOW)


# --- parse_xsd_datetime: accepted forms (interop R16, R17) ------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-01T12:00:00Z", NOW),
        ("2026-01-01T12:00:00+00:00", NOW),
        ("2026-01-01T12:00:00.5Z", NOW.replace(microsecond=500_000)),
        ("2026-01-01T12:00:00.12Z", NOW.replace(microsecond=120_000)),
        ("2026-01-01T12:00:00.123Z", NOW.replace(microsecond=123_000)),
        ("2026-01-01T12:00:00.123+00:00", NOW.replace(microsecond=123_000)),
        ("\n    2026-01-01T12:00:00Z\n  ", NOW),
        ("\t2026-01-01T12:00:00Z\r\n", NOW),
    ],
)
def test_parse_accepts_utc_forms(text: str, expected: datetime) -> None:
    parsed = parse_xsd_datetime(text)
    assert parsed == expected
    assert parsed.tzinfo is UTC


# --- parse_xsd_datetime: rejected forms (BSP R3217, R3220; row W22) ----------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "yesterday",
        "",
        "2026-13-45T00:00:00Z",  # month 13, day 45
        "2026-01-01T12:00:00",  # no zone
        "2026-01-01T23:59:60Z",  # leap second
        "2026-01-01T24:00:00Z",  # end-of-day form
        "2026-01-01T12:00:00.1234Z",  # 4 fractional digits
        "2026-01-01T12:00:00.Z",  # dot without digits
        "0000-01-01T12:00:00Z",  # year 0000
        "2026-01-01T12:00:00+14:00",
        "2026-01-01T12:00:00-00:00",
        "2026-01-01T12:00:00+01:00",
        "2026-01-01 12:00:00Z",  # space instead of T
        "2026-01-01T12:00:00z",
        "2026-01-01T12:00:00Z\n2026",  # $ would match before a newline; fullmatch does not
        "2026-01-01T12:00:00Z junk",
        "\u00a02026-01-01T12:00:00Z",  # NBSP is not XML whitespace
        "\u0662026-01-01T12:00:00Z",  # Arabic-Indic digit: \d would match it
        "12026-01-01T12:00:00Z",  # 5-digit year
        "2" * 10_000,  # a 10 KB string
    ],
)
def test_parse_rejects_everything_else(text: str) -> None:
    with pytest.raises(errors.InvalidSecurityToken) as caught:
        parse_xsd_datetime(text)
    assert caught.value.reason == "bad_created"


def test_parse_rejects_over_64_chars_even_when_padded_inside() -> None:
    with pytest.raises(errors.InvalidSecurityToken):
        parse_xsd_datetime("2026-01-01T12:00:00" + "0" * 50 + "Z")


def test_parse_reason_is_configurable() -> None:
    with pytest.raises(errors.InvalidSecurityToken) as caught:
        parse_xsd_datetime("nope", reason="bad_expires")
    assert caught.value.reason == "bad_expires"


# --- freshness boundaries (rows W19, W20; WSS4J inclusive bounds) -------------------------------------------


@pytest.mark.parametrize("age", [0, 1, 299, 300])
def test_created_age_within_ttl_accepted(age: int) -> None:
    check_freshness(NOW - timedelta(seconds=age), _clock(), POLICY)


@pytest.mark.parametrize("age", [301, 3600])
def test_created_older_than_ttl_expired(age: int) -> None:
    with pytest.raises(errors.MessageExpired) as caught:
        check_freshness(NOW - timedelta(seconds=age), _clock(), POLICY)
    assert caught.value.reason == "created_too_old"


def test_created_300_001_seconds_old_expired() -> None:
    with pytest.raises(errors.MessageExpired):
        check_freshness(NOW - timedelta(seconds=300, milliseconds=1), _clock(), POLICY)


@pytest.mark.parametrize("lead", [1, 59, 60])
def test_created_near_future_accepted(lead: int) -> None:
    check_freshness(NOW + timedelta(seconds=lead), _clock(), POLICY)


@pytest.mark.parametrize("lead", [61, 86_400])
def test_created_far_future_expired(lead: int) -> None:
    with pytest.raises(errors.MessageExpired) as caught:
        check_freshness(NOW + timedelta(seconds=lead), _clock(), POLICY)
    assert caught.value.reason == "created_in_future"


def test_custom_policy_windows() -> None:
    policy = FreshnessPolicy(ttl=10, future_ttl=0)
    check_freshness(NOW - timedelta(seconds=10), _clock(), policy)
    with pytest.raises(errors.MessageExpired):
        check_freshness(NOW - timedelta(seconds=11), _clock(), policy)
    with pytest.raises(errors.MessageExpired):
        check_freshness(NOW + timedelta(seconds=1), _clock(), policy)


def test_freshness_policy_defaults_and_frozen() -> None:
    assert (POLICY.ttl, POLICY.future_ttl) == (300, 60)
    with pytest.raises(AttributeError):
        POLICY.ttl = 1  # type: ignore[misc]


# --- check_timestamp: accepted --------------------------------------------------------------------------------


def test_timestamp_created_only_accepted() -> None:
    check_timestamp(_timestamp(_created(_iso(NOW - timedelta(seconds=5)))), _clock(), POLICY)


def test_timestamp_microsoft_shape_accepted() -> None:
    # Interop R23: Expires = Created + 10 min, whole seconds, Z, wsu:Id="_0".
    ts = _timestamp(_created(_iso(NOW)), _expires(_iso(NOW + timedelta(minutes=10))))
    check_timestamp(ts, _clock(), POLICY)


def test_timestamp_with_comments_and_whitespace_accepted() -> None:
    ts = _timestamp("\n  <!-- c -->", _created("\n 2026-01-01T11:59:00.123Z \n"), "\n  ")
    check_timestamp(ts, _clock(), POLICY)


def test_timestamp_default_namespace_accepted() -> None:
    ts = etree.fromstring(f'<Timestamp xmlns="{ns.WSU}"><Created>2026-01-01T12:00:00Z</Created></Timestamp>')
    check_timestamp(ts, _clock(), POLICY)


def test_timestamp_created_299_seconds_old_accepted() -> None:
    check_timestamp(_timestamp(_created(_iso(NOW - timedelta(seconds=299)))), _clock(), POLICY)


def test_timestamp_created_59_seconds_ahead_accepted() -> None:
    check_timestamp(_timestamp(_created(_iso(NOW + timedelta(seconds=59)))), _clock(), POLICY)


# --- check_timestamp: MessageExpired (row W23) ------------------------------------------------------------


def test_timestamp_created_301_seconds_old_expired() -> None:
    with pytest.raises(errors.MessageExpired):
        check_timestamp(_timestamp(_created(_iso(NOW - timedelta(seconds=301)))), _clock(), POLICY)


def test_timestamp_created_61_seconds_ahead_expired() -> None:
    with pytest.raises(errors.MessageExpired):
        check_timestamp(_timestamp(_created(_iso(NOW + timedelta(seconds=61)))), _clock(), POLICY)


def test_timestamp_expires_in_the_past_expired() -> None:
    ts = _timestamp(_created(_iso(NOW - timedelta(seconds=60))), _expires(_iso(NOW - timedelta(seconds=1))))
    with pytest.raises(errors.MessageExpired) as caught:
        check_timestamp(ts, _clock(), POLICY)
    assert caught.value.reason == "timestamp_expired"


def test_timestamp_expires_equal_to_now_expired() -> None:
    ts = _timestamp(_created(_iso(NOW - timedelta(seconds=60))), _expires(_iso(NOW)))
    with pytest.raises(errors.MessageExpired):
        check_timestamp(ts, _clock(), POLICY)


def test_timestamp_far_future_expires_does_not_extend_window() -> None:
    ts = _timestamp(_created(_iso(NOW - timedelta(minutes=10))), _expires(_iso(NOW + timedelta(days=365))))
    with pytest.raises(errors.MessageExpired) as caught:
        check_timestamp(ts, _clock(), POLICY)
    assert caught.value.reason == "created_too_old"


# --- check_timestamp: InvalidSecurity for structure (BSP R3203, R3221, R3222) ----------------------------


def test_timestamp_expires_before_created_invalid() -> None:  # R3221
    ts = _timestamp(_created(_iso(NOW)), _expires(_iso(NOW - timedelta(seconds=1))))
    with pytest.raises(errors.InvalidSecurity):
        check_timestamp(ts, _clock(), POLICY)


def test_timestamp_expires_equal_to_created_invalid() -> None:  # R3221: Expires strictly after Created
    ts = _timestamp(_created(_iso(NOW)), _expires(_iso(NOW)))
    with pytest.raises(errors.InvalidSecurity):
        check_timestamp(ts, _clock(), POLICY)


def test_timestamp_expires_before_created_element_invalid() -> None:  # R3221: Created precedes Expires
    ts = _timestamp(_expires(_iso(NOW + timedelta(minutes=5))), _created(_iso(NOW)))
    with pytest.raises(errors.InvalidSecurity):
        check_timestamp(ts, _clock(), POLICY)


def test_timestamp_two_created_invalid() -> None:  # R3203
    ts = _timestamp(_created(_iso(NOW - timedelta(hours=1))), _created(_iso(NOW)))
    with pytest.raises(errors.InvalidSecurity):
        check_timestamp(ts, _clock(), POLICY)


def test_timestamp_no_created_invalid() -> None:  # R3203
    with pytest.raises(errors.InvalidSecurity):
        check_timestamp(_timestamp(_expires(_iso(NOW + timedelta(minutes=5)))), _clock(), POLICY)


def test_timestamp_empty_invalid() -> None:  # R3203
    with pytest.raises(errors.InvalidSecurity):
        check_timestamp(_timestamp(), _clock(), POLICY)


def test_timestamp_two_expires_invalid() -> None:  # R3224
    later = _expires(_iso(NOW + timedelta(minutes=5)))
    with pytest.raises(errors.InvalidSecurity):
        check_timestamp(_timestamp(_created(_iso(NOW)), later, later), _clock(), POLICY)


def test_timestamp_extra_child_invalid() -> None:  # R3222
    extra = '<x:Other xmlns:x="urn:x">1</x:Other>'
    with pytest.raises(errors.InvalidSecurity):
        check_timestamp(_timestamp(_created(_iso(NOW)), extra), _clock(), POLICY)


def test_timestamp_created_in_wrong_namespace_invalid() -> None:  # R3222, matched by Clark name (R20)
    wrong = f'<wsse:Created xmlns:wsse="{ns.WSSE}">{_iso(NOW)}</wsse:Created>'
    with pytest.raises(errors.InvalidSecurity):
        check_timestamp(_timestamp(wrong), _clock(), POLICY)


def test_timestamp_created_with_element_content_invalid() -> None:
    with pytest.raises(errors.InvalidSecurity):
        check_timestamp(_timestamp(_created("2026-01-01T<b>12:00:00Z</b>")), _clock(), POLICY)


# --- check_timestamp: malformed values (row W22) ---------------------------------------------------------


def test_timestamp_malformed_created_invalid_token() -> None:
    with pytest.raises(errors.InvalidSecurityToken) as caught:
        check_timestamp(_timestamp(_created("2026-01-01T12:00:00")), _clock(), POLICY)
    assert caught.value.reason == "bad_created"


def test_timestamp_malformed_expires_invalid_token() -> None:
    with pytest.raises(errors.InvalidSecurityToken) as caught:
        check_timestamp(_timestamp(_created(_iso(NOW)), _expires("tomorrow")), _clock(), POLICY)
    assert caught.value.reason == "bad_expires"


def test_timestamp_comment_inside_created_reads_full_text() -> None:
    # Finding M6: `.text` would stop at the comment and see "2026-01-01T12:00"; itertext sees the whole value.
    ts = _timestamp(_created("2026-01-01T12:00<!-- -->:00Z"))
    check_timestamp(ts, _clock(), POLICY)
