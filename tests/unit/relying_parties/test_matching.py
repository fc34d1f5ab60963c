"""Tests for sts.relying_parties.matching: AppliesTo normalisation and matching (exact, prefix, anchored regex)."""

from __future__ import annotations

import pytest

from sts.relying_parties.matching import AddressIndex, normalize_address
from sts.relying_parties.model import RelyingParty, RelyingPartyError
from sts.relying_parties.registry import validate

RP = "https://rp.example.com/app/"


def _rp(address: str = RP, **kwargs: object) -> RelyingParty:
    kwargs.setdefault("cert_file", "rp.crt.pem")
    return RelyingParty(address=address, **kwargs)  # type: ignore[arg-type]


def _applies_to_matches(rp: RelyingParty, applies_to: str) -> bool:
    """How the issue path matches: the directory's index of the registered (validated) relying parties."""
    registered = validate(rp)
    return AddressIndex([registered]).match(applies_to) == registered


# --- normalize_address -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("HTTPS://RP.EXAMPLE.COM/app/", "https://rp.example.com/app/"),
        ("https://Rp.Example.Com/App/", "https://rp.example.com/App/"),  # path case kept
        ("https://rp.example.com:443/app/", "https://rp.example.com/app/"),
        ("http://rp.example.com:80/app/", "http://rp.example.com/app/"),
        ("https://rp.example.com:80/app/", "https://rp.example.com:80/app/"),  # not the default for https
        ("http://rp.example.com:443/", "http://rp.example.com:443/"),
        ("https://rp.example.com:8443/x", "https://rp.example.com:8443/x"),
        ("https://rp.example.com", "https://rp.example.com/"),
        ("https://rp.example.com./app/", "https://rp.example.com./app/"),  # trailing dot kept distinct
        ("  https://rp.example.com/app/ \n", "https://rp.example.com/app/"),
        ("https://rp.example.com/app/?b=2&a=1", "https://rp.example.com/app/?b=2&a=1"),
        ("https://rp.example.com/app/%2e%2e/", "https://rp.example.com/app/%2e%2e/"),  # escapes kept
        ("https://rp.example.com/a%2Fb", "https://rp.example.com/a%2Fb"),
        ("https://[::1]:443/x", "https://[::1]/x"),
        ("https://[2001:DB8::1]:9443/x", "https://[2001:db8::1]:9443/x"),
        ("urn:federation:MicrosoftOnline", "urn:federation:MicrosoftOnline"),  # other schemes as registered
        ("URN:Example:RP", "URN:Example:RP"),
    ],
)
def test_normalize_address(address: str, expected: str) -> None:
    assert normalize_address(address) == expected


@pytest.mark.parametrize(
    "address",
    [
        "https://user@rp.example.com/app/",
        "https://user:pw@rp.example.com/app/",
        "https://rp.example.com@evil.net/app/",
        "https://@rp.example.com/",
        "https:///app/",
        "https://:443/",
        "rp.example.com/app/",
        "/app/",
        "",
        "   ",
        "https://rp.example.com/a b/",
        "https://rp.example.com/a\tb/",
        "https://rp.example.com/" + "a" * 2048,
    ],
    ids=["user", "user-pw", "at-evil", "empty-userinfo", "no-host", "port-only", "relative", "path", "empty",
         "blank", "inner-space", "inner-tab", "too-long"],
)
def test_normalize_address_refusals(address: str) -> None:
    with pytest.raises(RelyingPartyError):
        normalize_address(address)


@pytest.mark.parametrize(
    "address",
    ["https://rp.example.com:abc/", "https://rp.example.com:99999/", "https://[::1/app/"],
    ids=["port-text", "port-range", "broken-ipv6"],
)
def test_normalize_address_refuses_bad_ports_and_hosts(address: str) -> None:
    with pytest.raises(RelyingPartyError):
        normalize_address(address)


# --- I03: matching tricks against an exact RP ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "applies_to",
    [
        "https://rp.example.com.evil.net/app/",
        "https://rp.example.com@evil.net/app/",
        "https://rp.example.com./app/",
        "https://rp.example.com/app/%2e%2e/",
        "https://rp.example.com/APP/",
        "https://rp.example.com/app",
        "https://rp.example.com/app/x",
        "http://rp.example.com/app/",
        "https://rp.example.com:8443/app/",
        "https://rp.example.com/app/?x=1",
        "https://rp.\u0435xample.com/app/",  # Cyrillic e homoglyph
        "https://rp.example.com/app/\u200b",
    ],
)
def test_i03_tricks_do_not_match_exact_rp(applies_to: str) -> None:
    assert _applies_to_matches(_rp(), applies_to) is False


@pytest.mark.parametrize(
    "applies_to",
    [RP, "HTTPS://RP.EXAMPLE.COM:443/app/", " https://rp.example.com/app/ ", "https://RP.example.com/app/"],
)
def test_i03_equivalent_forms_match_exact_rp(applies_to: str) -> None:
    assert _applies_to_matches(_rp(), applies_to) is True


@pytest.mark.parametrize("host", ["ban\u212a.example", "BAN\u212a.EXAMPLE", "bank.exam\u0131ple"])
def test_a_host_whose_unicode_lower_case_is_ascii_does_not_match(host: str) -> None:
    """KELVIN SIGN (U+212A) lower-cases to an ASCII k (and U+0131 is no i): RFC 3986 hosts are ASCII, only ASCII
    letters fold."""
    assert _applies_to_matches(_rp("https://bank.example/app/"), f"https://{host}/app/") is False
    assert _applies_to_matches(_rp("https://bank.example/app/"), "https://BANK.example/app/") is True


def test_exact_rp_registered_in_odd_case_still_matches() -> None:
    assert _applies_to_matches(_rp("HTTPS://RP.EXAMPLE.COM:443/app/"), RP) is True


def test_urn_rp_matches_exactly() -> None:
    rp = _rp("urn:example:rp")
    assert _applies_to_matches(rp, "urn:example:rp") is True
    assert _applies_to_matches(rp, "urn:example:RP") is False
    assert _applies_to_matches(rp, "urn:example:rp:evil") is False


# --- prefix and regex RPs -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("applies_to", "expected"),
    [
        ("https://rp.example.com/app/", True),
        ("https://rp.example.com/app/page", True),
        ("HTTPS://rp.example.com:443/app/x/y", True),
        ("https://rp.example.com/app", False),
        ("https://rp.example.com/application/", False),
        ("https://rp.example.com.evil.net/app/", False),
        ("https://rp.example.com@evil.net/app/", False),
        ("https://rp.example.com/APP/x", False),
    ],
)
def test_prefix_matching(applies_to: str, expected: bool) -> None:
    assert _applies_to_matches(_rp(RP, match="prefix"), applies_to) is expected


@pytest.mark.parametrize(
    ("applies_to", "expected"),
    [
        ("https://rp.example.com/app/", True),
        ("https://rp.example.com/app/x", True),
        ("https://rp.example.com.evil.net/app/", False),
        ("https://evil.net/?https://rp.example.com/app/", False),
        ("https://rp.example.com/app/\n", True),  # trailing whitespace is trimmed before matching
    ],
)
def test_regex_rp_is_anchored(applies_to: str, expected: bool) -> None:
    rp = _rp(r"https://rp\.example\.com/app/.*", match="regex", identifier="https://rp.example.com/app/")
    assert _applies_to_matches(rp, applies_to) is expected


def test_regex_without_anchors_does_not_search() -> None:
    rp = _rp(r"rp\.example\.com", match="regex", identifier="https://rp.example.com/")
    assert _applies_to_matches(rp, "https://rp.example.com/") is False


@pytest.mark.parametrize("address", ["https://rp.example.com/app/#x", "https://rp.example.com/app/?", "urn:x#y"])
def test_fragments_and_empty_queries_are_refused(address: str) -> None:
    with pytest.raises(RelyingPartyError):
        normalize_address(address)


def test_most_specific_registration_wins() -> None:
    """Exact addresses first, then the longest prefix, then regular expressions."""
    exact = validate(_rp("https://rp.example.com/app/x"))
    short = validate(_rp("https://rp.example.com/", match="prefix"))
    long = validate(_rp("https://rp.example.com/app/", match="prefix"))
    regex = validate(_rp(r"https://rp\.example\.com/.*", match="regex", identifier="urn:rp"))
    index = AddressIndex([regex, short, long, exact])
    assert index.match("https://rp.example.com/app/x") == exact
    assert index.match("https://rp.example.com/app/y") == long
    assert index.match("https://rp.example.com/other") == short
    assert AddressIndex([regex]).match("https://rp.example.com/other") == regex
    assert AddressIndex([]).match("https://rp.example.com/") is None
    assert index.match("https://user@rp.example.com/app/x") is None  # a refused address matches nothing
