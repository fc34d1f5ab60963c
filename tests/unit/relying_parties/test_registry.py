"""Tests for sts.config.relying_parties: AppliesTo matching (catalogue I03), settings and profiles, the RP store."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from sts.config.profiles import effective
from sts.config.relying_parties import (
    RelyingParty,
    RelyingPartyError,
    RelyingPartyStore,
    normalize_address,
    validate,
)
from sts.stores.sqlite import Database, initialize

RP = "https://rp.example.com/app/"


def _rp(address: str = RP, **kwargs: object) -> RelyingParty:
    kwargs.setdefault("cert_file", "rp.crt.pem")
    return RelyingParty(address=address, **kwargs)  # type: ignore[arg-type]


def _applies_to_matches(rp: RelyingParty, applies_to: str) -> bool:
    """How the issue path matches: normalise the request's address (refusals never match), then ask the RP."""
    try:
        normalized = normalize_address(applies_to)
    except RelyingPartyError:
        return False
    return validate(rp).matches(normalized)


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


def test_exact_rp_registered_in_odd_case_still_matches() -> None:
    assert _applies_to_matches(_rp("HTTPS://RP.EXAMPLE.COM:443/app/"), RP) is True


def test_urn_rp_matches_exactly() -> None:
    rp = _rp("urn:example:rp")
    assert _applies_to_matches(rp, "urn:example:rp") is True
    assert _applies_to_matches(rp, "urn:example:RP") is False
    assert _applies_to_matches(rp, "urn:example:rp:evil") is False


# --- prefix and regex RPs -------------------------------------------------------------------------------------------


def test_prefix_rp_must_end_with_slash() -> None:
    with pytest.raises(RelyingPartyError, match="end with '/'"):
        validate(_rp("https://rp.example.com/app", match="prefix"))
    with pytest.raises(RelyingPartyError):
        validate(_rp("https://rp.example.com/app?x=", match="prefix"))


def test_prefix_rp_bare_host_normalises_to_slash() -> None:
    assert validate(_rp("https://rp.example.com", match="prefix")).address == "https://rp.example.com/"


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


def test_invalid_regex_refused() -> None:
    with pytest.raises(RelyingPartyError, match="invalid regular expression"):
        validate(_rp("https://rp.example.com/(", match="regex", identifier="https://rp.example.com/"))


def test_regex_rp_needs_an_identifier() -> None:
    with pytest.raises(RelyingPartyError, match="needs an identifier"):
        validate(_rp(r"https://rp\.example\.com/.*", match="regex"))


def test_regex_address_kept_as_written() -> None:
    pattern = r"HTTPS://RP\.example\.com/.*"
    rp = validate(_rp(pattern, match="regex", identifier="https://rp.example.com/"))
    assert rp.address == pattern
    assert rp.identifier == "https://rp.example.com/"


# --- validate -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"match": "glob"}, "match must be one of"),
        ({"token_type": "jwt"}, "token type must be one of"),
        ({"nameid": "upn"}, "nameid must be one of"),
        ({"nameid": "urn:x y"}, "nameid must be one of"),
        ({"nameid": "http://wso2.org/claims/role"}, "cannot be a role claim"),
        ({"nameid": "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"}, "cannot be a role claim"),
        ({"nameid_format": "persistent"}, "nameid format must be an absolute URI"),
        ({"nameid_format": "urn:a b"}, "nameid format must be an absolute URI"),
        ({"profile": "azure"}, "profile must be one of"),
        ({"cipher": "tripledes-cbc"}, "cipher must be one of"),
        ({"cipher": "AES256-GCM"}, "cipher must be one of"),
        ({"key_transport": "rsa-1_5"}, "key transport must be one of"),
        ({"claim_mapping": (("", "urn:rp:mail"),)}, "claim mappings are"),
        ({"claim_mapping": (("http://wso2.org/claims/emailaddress", ""),)}, "claim mappings are"),
        ({"claim_mapping": (("http://wso2.org/claims/email address", "urn:rp:mail"),)}, "claim mappings are"),
        ({"claim_mapping": (("http://wso2.org/claims/emailaddress", "urn:rp:\tmail"),)}, "claim mappings are"),
        ({"lifetime": -1}, "lifetime must be between"),
        ({"lifetime": 43201}, "lifetime must be between"),
        ({"encrypt": True, "cert_file": ""}, "needs a certificate"),
    ],
)
def test_validate_refusals(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(RelyingPartyError, match=fragment):
        validate(_rp(**kwargs))


def test_defaults_are_empty_so_the_profile_decides() -> None:
    rp = validate(RelyingParty(address=RP, encrypt=False))
    assert (rp.token_type, rp.cipher, rp.key_transport, rp.nameid, rp.profile) == ("", "", "", "", "")
    assert rp.claim_mapping == ()
    settings = effective(rp, "strict")
    assert (settings.token_type, settings.cipher, settings.key_transport, settings.nameid) == (
        "saml20", "aes256-gcm", "rsa-oaep-mgf1p", "username"
    )


def test_profile_adfs_makes_cbc_effective() -> None:
    rp = validate(_rp(profile="adfs"))
    assert rp.cipher == ""
    assert (effective(rp, "strict").cipher, effective(rp, "strict").token_type) == ("aes256-cbc", "saml11")
    assert effective(validate(_rp()), "adfs").cipher == "aes256-cbc"  # the [tokens] profile when the RP names none


def test_explicit_settings_beat_the_profile() -> None:
    explicit = {"cipher": "aes256-gcm", "key_transport": "rsa-oaep", "token_type": "saml20", "nameid": "email"}
    rp = validate(_rp(profile="adfs", **explicit))
    settings = effective(rp, "strict")
    assert (settings.profile, settings.token_type, settings.cipher, settings.key_transport, settings.nameid) == (
        "adfs", "saml20", "aes256-gcm", "rsa-oaep", "email"
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"token_type": "saml11", "nameid": "email", "profile": "cxf"},
        {"cipher": "aes128-gcm", "key_transport": "rsa-oaep"},
        {"cipher": "aes256-cbc"},  # allowed (the adfs choice); the CLI warns
        {"claim_mapping": (("http://wso2.org/claims/emailaddress", "urn:rp:mail"), ("a:b", "c:d"))},
        {"nameid": "http://wso2.org/claims/immutableid",
         "nameid_format": "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"},
        {"nameid": "email", "nameid_format": "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"},
    ],
)
def test_validate_accepts_explicit_settings(kwargs: dict[str, object]) -> None:
    assert validate(_rp(**kwargs)) == _rp(**kwargs)


def test_validate_accepts_unencrypted_rp_without_cert() -> None:
    rp = validate(RelyingParty(address=RP, encrypt=False))
    assert rp.cert_file == "" and rp.encrypt is False


def test_validate_normalises_exact_address() -> None:
    assert validate(_rp(" HTTPS://RP.EXAMPLE.COM:443/app/ ")).address == RP


def test_json_round_trip() -> None:
    rp = _rp(claims=("a", "b"), claim_mapping=(("x", "y"), ("p", "q")), lifetime=600, token_type="saml11")
    back = RelyingParty.from_json(rp.to_json())
    assert back == rp
    assert back.claim_mapping == (("x", "y"), ("p", "q"))  # tuples, not JSON lists
    assert RelyingParty.from_json(_rp().to_json()) == _rp()  # empty settings stay empty


def test_from_json_record_with_concrete_settings() -> None:
    """Records written with concrete values (before profiles) keep them: explicit settings win."""
    text = (
        '{"address": "https://rp.example.com/app/", "cert_file": "rp.crt.pem", "token_type": "saml20", '
        '"cipher": "aes256-gcm", "key_transport": "rsa-oaep-mgf1p", "nameid": "username", "profile": "strict"}'
    )
    rp = RelyingParty.from_json(text)
    assert (rp.token_type, rp.cipher, rp.key_transport, rp.nameid, rp.profile) == (
        "saml20", "aes256-gcm", "rsa-oaep-mgf1p", "username", "strict"
    )
    assert rp.claim_mapping == ()
    assert effective(rp, "adfs").cipher == "aes256-gcm"


def test_nameid_claim_and_format_round_trip_and_old_records_default_them() -> None:
    persistent = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
    rp = _rp(nameid="http://wso2.org/claims/immutableid", nameid_format=persistent)
    assert RelyingParty.from_json(rp.to_json()) == rp
    settings = effective(rp, "strict")
    assert (settings.nameid, settings.nameid_format) == (rp.nameid, rp.nameid_format)
    old = RelyingParty.from_json('{"address": "https://rp.example.com/app/", "nameid": "email", "encrypt": false}')
    assert old.nameid_format == ""
    assert effective(old, "strict").nameid_format == "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"


def test_from_json_ignores_unknown_fields() -> None:
    text = _rp().to_json()[:-1] + ', "future_field": 1}'
    assert RelyingParty.from_json(text) == _rp()


# --- store ------------------------------------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RelyingPartyStore]:
    initialize(tmp_path / "sts.db")
    db = Database(tmp_path / "sts.db")
    yield RelyingPartyStore(db)
    db.close()


def test_store_add_and_get(store: RelyingPartyStore) -> None:
    added = store.add(_rp(" HTTPS://RP.EXAMPLE.COM:443/app/ ", claims=("email",)))
    assert added.address == RP
    assert store.get(RP) == added
    assert store.all() == [added]


def test_store_get_unknown(store: RelyingPartyStore) -> None:
    with pytest.raises(RelyingPartyError, match="no relying party"):
        store.get("https://nope.example.com/")


@pytest.mark.parametrize("duplicate", [RP, "HTTPS://RP.EXAMPLE.COM:443/app/", f" {RP} "])
def test_store_duplicate_refused(store: RelyingPartyStore, duplicate: str) -> None:
    store.add(_rp())
    with pytest.raises(RelyingPartyError, match="already registered"):
        store.add(_rp(duplicate, token_type="saml11"))
    assert store.get(RP) == validate(_rp())  # the first registration, token type still from the profile


def test_store_refuses_invalid(store: RelyingPartyStore) -> None:
    with pytest.raises(RelyingPartyError):
        store.add(_rp("https://rp.example.com/app", match="prefix"))
    assert store.all() == []


def test_store_update(store: RelyingPartyStore) -> None:
    store.add(_rp())
    updated = store.update(replace(_rp(), token_type="saml11", lifetime=900))
    assert store.get(RP) == updated
    assert store.get(RP).token_type == "saml11"
    assert store.get(RP).lifetime == 900


def test_store_update_unknown(store: RelyingPartyStore) -> None:
    with pytest.raises(RelyingPartyError, match="no relying party"):
        store.update(_rp("https://other.example.com/"))


def test_store_update_validates(store: RelyingPartyStore) -> None:
    store.add(_rp())
    with pytest.raises(RelyingPartyError):
        store.update(replace(_rp(), token_type="jwt"))
    with pytest.raises(RelyingPartyError):
        store.update(replace(_rp(), claim_mapping=(("urn:local", "urn:rp mail"),)))
    assert store.get(RP) == validate(_rp())


def test_store_keeps_claim_mapping_and_empty_settings(store: RelyingPartyStore) -> None:
    mapping = (("http://wso2.org/claims/emailaddress", "urn:rp:mail"),)
    store.add(_rp(claim_mapping=mapping, profile="adfs"))
    rp = store.get(RP)
    assert (rp.claim_mapping, rp.profile, rp.cipher, rp.token_type) == (mapping, "adfs", "", "")
    store.update(replace(rp, claim_mapping=()))
    assert store.get(RP).claim_mapping == ()


def test_store_remove(store: RelyingPartyStore) -> None:
    store.add(_rp())
    store.add(_rp("https://b.example.com/"))
    store.remove(RP)
    assert [rp.address for rp in store.all()] == ["https://b.example.com/"]
    with pytest.raises(RelyingPartyError):
        store.get(RP)
    with pytest.raises(RelyingPartyError, match="no relying party"):
        store.remove(RP)


def test_store_all_is_ordered(store: RelyingPartyStore) -> None:
    for address in ("https://c.example.com/", "https://a.example.com/", "https://b.example.com/"):
        store.add(_rp(address))
    assert [rp.address for rp in store.all()] == [
        "https://a.example.com/", "https://b.example.com/", "https://c.example.com/"
    ]


def test_store_version_moves_with_registry_changes_only(tmp_path: Path, store: RelyingPartyStore) -> None:
    before = store.version()
    other = Database(tmp_path / "sts.db")
    try:
        RelyingPartyStore(other).add(_rp())
        after_add = store.version()
        assert after_add != before
        other.conn.execute("INSERT INTO replay(ns, key, expires) VALUES ('n', 'k', 1)")  # not a registry change
        assert store.version() == after_add
    finally:
        other.close()


def test_store_paths_differing_in_case_are_distinct(store: RelyingPartyStore) -> None:
    store.add(_rp("https://rp.example.com/app/"))
    store.add(_rp("https://rp.example.com/APP/"))
    assert len(store.all()) == 2


@pytest.mark.parametrize("address", ["https://rp.example.com/app/#x", "https://rp.example.com/app/?", "urn:x#y"])
def test_fragments_and_empty_queries_are_refused(address: str) -> None:
    with pytest.raises(RelyingPartyError):
        normalize_address(address)
