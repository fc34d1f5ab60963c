"""Tests for sts.relying_parties.registry: registration rules (validate), the JSON form, the registry over the
SQLite store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from sts import errors
from sts.config.settings import ProfileName
from sts.crypto import keygen
from sts.crypto.algorithms import CipherName, KeyTransportName
from sts.relying_parties.model import Match, RelyingParty, RelyingPartyError, TokenFormat
from sts.relying_parties.profiles import effective
from sts.relying_parties.registry import RelyingPartyRegistry, validate
from sts.stores.sqlite import Database, initialize
from sts.stores.sqlite_relying_parties import SqliteRelyingPartyStore

RP = "https://rp.example.com/app/"


def _rp(address: str = RP, **kwargs: object) -> RelyingParty:
    kwargs.setdefault("cert_file", "rp.crt.pem")
    return RelyingParty(address=address, **kwargs)  # type: ignore[arg-type]


# --- settings parsed once -----------------------------------------------------------------------------------------


def test_settings_are_parsed_once_into_enums() -> None:
    rp = RelyingParty(RP, match="prefix", token_type="saml11", cipher="aes256-cbc", key_transport="rsa-oaep",
                      profile="adfs")  # type: ignore[arg-type]  # spellings, as the database and the CLI give them
    assert (rp.match, rp.token_type, rp.profile) == (Match.PREFIX, TokenFormat.SAML11, ProfileName.ADFS)
    assert (rp.cipher, rp.key_transport) == (CipherName.AES256_CBC, KeyTransportName.RSA_OAEP)
    assert type(rp.match) is Match and type(rp.profile) is ProfileName
    unset = RelyingParty(RP, token_type="", cipher="", key_transport="", profile="")  # type: ignore[arg-type]
    assert unset == RelyingParty(RP)


@pytest.mark.parametrize("field", ["match", "token_type", "cipher", "key_transport", "profile"])
def test_unknown_spellings_are_refused_when_built(field: str) -> None:
    with pytest.raises(RelyingPartyError, match="must be one of"):
        RelyingParty(RP, **{field: "SAML20" if field == "token_type" else "bogus"})  # type: ignore[arg-type]


def test_unset_settings_are_stored_as_empty_strings() -> None:
    """The stored form is the one written since profiles exist: "" for a setting the profile decides."""
    data = json.loads(RelyingParty(RP, cert_file="rp.crt.pem").to_json())
    assert {name: data[name] for name in ("match", "token_type", "cipher", "key_transport", "profile")} == {
        "match": "exact", "token_type": "", "cipher": "", "key_transport": "", "profile": ""
    }


# --- prefix and regex registrations -------------------------------------------------------------------------------


def test_prefix_rp_must_end_with_slash() -> None:
    with pytest.raises(RelyingPartyError, match="end with '/'"):
        validate(_rp("https://rp.example.com/app", match="prefix"))
    with pytest.raises(RelyingPartyError):
        validate(_rp("https://rp.example.com/app?x=", match="prefix"))


def test_prefix_rp_bare_host_normalises_to_slash() -> None:
    assert validate(_rp("https://rp.example.com", match="prefix")).address == "https://rp.example.com/"


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
        # XML 1.0 §2.2 [2] Char: what is written into tokens must be XML text.
        ({"identifier": "https://rp.example/\uffff"}, "identifier must consist of characters XML can carry"),
        ({"claims": ("http://wso2.org/claims/\ufffe",)}, "claim URIs must consist of characters XML can carry"),
        ({"claim_mapping": (("http://wso2.org/claims/emailaddress", "urn:rp:\udc80"),)}, "claim URIs must consist"),
        ({"nameid": "urn:claim:\uffff"}, "nameid must be one of"),
        ({"nameid_format": "urn:format:\x01"}, "nameid format must be an absolute URI"),
        ({"address": "https://rp.example.com/\uffff"}, "address must consist of characters XML can carry"),
    ],
)
def test_validate_refusals(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(RelyingPartyError, match=fragment):
        validate(_rp(**kwargs))


def test_defaults_are_empty_so_the_profile_decides() -> None:
    rp = validate(RelyingParty(address=RP, encrypt=False))
    assert (rp.token_type, rp.cipher, rp.key_transport, rp.nameid, rp.profile) == (None, None, None, "", None)
    assert rp.claim_mapping == ()
    settings = effective(rp, "strict")
    assert (settings.token_type, settings.cipher, settings.key_transport, settings.nameid) == (
        "saml20", "aes256-gcm", "rsa-oaep-mgf1p", "username"
    )


def test_profile_adfs_makes_cbc_effective() -> None:
    rp = validate(_rp(profile="adfs"))
    assert rp.cipher is None
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
def store(tmp_path: Path) -> Iterator[RelyingPartyRegistry]:
    initialize(tmp_path / "sts.db")
    db = Database(tmp_path / "sts.db")
    yield RelyingPartyRegistry(SqliteRelyingPartyStore(db))
    db.close()


def test_store_add_and_get(store: RelyingPartyRegistry) -> None:
    added = store.add(_rp(" HTTPS://RP.EXAMPLE.COM:443/app/ ", claims=("email",)))
    assert added.address == RP
    assert store.get(RP) == added
    assert store.all() == [added]


def test_store_get_unknown(store: RelyingPartyRegistry) -> None:
    with pytest.raises(RelyingPartyError, match="no relying party"):
        store.get("https://nope.example.com/")


@pytest.mark.parametrize("duplicate", [RP, "HTTPS://RP.EXAMPLE.COM:443/app/", f" {RP} "])
def test_store_duplicate_refused(store: RelyingPartyRegistry, duplicate: str) -> None:
    store.add(_rp())
    with pytest.raises(RelyingPartyError, match="already registered"):
        store.add(_rp(duplicate, token_type="saml11"))
    assert store.get(RP) == validate(_rp())  # the first registration, token type still from the profile


def test_store_refuses_invalid(store: RelyingPartyRegistry) -> None:
    with pytest.raises(RelyingPartyError):
        store.add(_rp("https://rp.example.com/app", match="prefix"))
    assert store.all() == []


def test_store_update(store: RelyingPartyRegistry) -> None:
    store.add(_rp())
    updated = store.update(replace(_rp(), token_type="saml11", lifetime=900))
    assert store.get(RP) == updated
    assert store.get(RP).token_type == "saml11"
    assert store.get(RP).lifetime == 900


def test_store_update_unknown(store: RelyingPartyRegistry) -> None:
    with pytest.raises(RelyingPartyError, match="no relying party"):
        store.update(_rp("https://other.example.com/"))


def test_store_update_validates(store: RelyingPartyRegistry) -> None:
    store.add(_rp())
    with pytest.raises(RelyingPartyError):
        store.update(replace(_rp(), token_type="jwt"))
    with pytest.raises(RelyingPartyError):
        store.update(replace(_rp(), claim_mapping=(("urn:local", "urn:rp mail"),)))
    assert store.get(RP) == validate(_rp())


def test_store_keeps_claim_mapping_and_empty_settings(store: RelyingPartyRegistry) -> None:
    mapping = (("http://wso2.org/claims/emailaddress", "urn:rp:mail"),)
    store.add(_rp(claim_mapping=mapping, profile="adfs"))
    rp = store.get(RP)
    assert (rp.claim_mapping, rp.profile, rp.cipher, rp.token_type) == (mapping, "adfs", None, None)
    store.update(replace(rp, claim_mapping=()))
    assert store.get(RP).claim_mapping == ()


def test_store_remove(store: RelyingPartyRegistry) -> None:
    store.add(_rp())
    store.add(_rp("https://b.example.com/"))
    store.remove(RP)
    assert [rp.address for rp in store.all()] == ["https://b.example.com/"]
    with pytest.raises(RelyingPartyError):
        store.get(RP)
    with pytest.raises(RelyingPartyError, match="no relying party"):
        store.remove(RP)


def test_store_all_is_ordered(store: RelyingPartyRegistry) -> None:
    for address in ("https://c.example.com/", "https://a.example.com/", "https://b.example.com/"):
        store.add(_rp(address))
    assert [rp.address for rp in store.all()] == [
        "https://a.example.com/", "https://b.example.com/", "https://c.example.com/"
    ]


def test_store_version_moves_with_registry_changes_only(tmp_path: Path, store: RelyingPartyRegistry) -> None:
    before = store.version()
    other = Database(tmp_path / "sts.db")
    try:
        RelyingPartyRegistry(SqliteRelyingPartyStore(other)).add(_rp())
        after_add = store.version()
        assert after_add != before
        other.conn.execute("INSERT INTO replay(ns, key, expires) VALUES ('n', 'k', 1)")  # not a registry change
        assert store.version() == after_add
    finally:
        other.close()


def test_store_paths_differing_in_case_are_distinct(store: RelyingPartyRegistry) -> None:
    store.add(_rp("https://rp.example.com/app/"))
    store.add(_rp("https://rp.example.com/APP/"))
    assert len(store.all()) == 2


def test_save_moves_a_registration_to_its_new_address(store: RelyingPartyRegistry) -> None:
    old = store.add(_rp("https://rp.example.com/app"))
    before = store.version()
    new = store.save(old, replace(old, address="https://rp.example.com/app/", match="prefix"))
    assert store.all() == [new] and new.match is Match.PREFIX
    assert store.version() != before


def test_save_to_a_taken_address_changes_nothing(store: RelyingPartyRegistry) -> None:
    first = store.add(_rp("https://a.example.com/"))
    second = store.add(_rp("https://b.example.com/"))
    before = store.version()
    with pytest.raises(RelyingPartyError, match="relying party https://b.example.com/ already registered"):
        store.save(first, replace(first, address="HTTPS://B.EXAMPLE.COM/"))
    assert store.all() == [first, second]
    assert store.version() == before


def test_save_of_a_vanished_registration(store: RelyingPartyRegistry) -> None:
    gone = validate(_rp("https://a.example.com/"))
    with pytest.raises(RelyingPartyError, match="no relying party https://a.example.com/"):
        store.save(gone, replace(gone, address="https://c.example.com/"))
    assert store.all() == []


def test_find_accepts_the_address_unnormalised_or_differently_cased(store: RelyingPartyRegistry) -> None:
    exact = store.add(_rp(RP))
    pattern = store.add(_rp(r"https://RP\.example\.com/.*", match="regex", identifier="urn:rp"))
    assert store.find(" HTTPS://rp.example.com:443/app/ ") == exact
    assert store.find(r"https://RP\.example\.com/.*") == pattern  # as written, not normalised
    assert store.find(r"https://rp\.EXAMPLE\.com/.*") == pattern  # case-insensitively
    with pytest.raises(RelyingPartyError, match="no relying party https://nobody.example.com/"):
        store.find("https://nobody.example.com/")


def test_find_refuses_an_address_that_names_several_registrations_case_insensitively(
    store: RelyingPartyRegistry,
) -> None:
    """Paths differ by case (RFC 3986 §6.2.2.1): …/App/ must not resolve to whichever of …/app/ and …/APP/ sorts
    first; each is still found when named exactly."""
    lower = store.add(_rp("https://case.example/app/"))
    upper = store.add(_rp("https://case.example/APP/"))
    with pytest.raises(RelyingPartyError, match="https://case.example/App/ is ambiguous: it names "
                       "https://case.example/APP/, https://case.example/app/"):
        store.find("https://case.example/App/")
    assert store.find("https://case.example/app/") == lower
    assert store.find("HTTPS://CASE.example/APP/") == upper  # the normalised form is exact
    store.remove(upper.address)
    assert store.find("https://case.example/App/") == lower  # one registration left: the fallback names it


def test_unusable_store_fails_closed(tmp_path: Path, store: RelyingPartyRegistry) -> None:
    store.add(_rp())
    db = Database(tmp_path / "sts.db")
    db.conn.execute("DROP TABLE relying_parties")
    db.close()
    for action in (store.all, lambda: store.get(RP), lambda: store.add(_rp("https://b.example.com/")),
                   lambda: store.update(_rp()), lambda: store.remove(RP),
                   lambda: store.save(_rp(), _rp("https://b.example.com/"))):
        with pytest.raises(errors.ServiceUnavailable) as down:
            action()
        assert down.value.reason == "rp_store_down"


# --- the certificate kept inline (a shared store) -----------------------------------------------------------------


@pytest.fixture(scope="module")
def pem() -> str:
    return keygen.certificate_pem(keygen.self_signed_certificate(keygen.generate_rsa_key(2048), "inline")).decode()


def test_an_inline_certificate_is_a_certificate_and_round_trips(pem: str) -> None:
    rp = validate(RelyingParty(address=RP, cert_pem=pem))
    assert rp.has_certificate and rp.cert_file == ""
    assert RelyingParty.from_json(rp.to_json()) == rp
    assert json.loads(rp.to_json())["cert_pem"] == pem
    older = RelyingParty.from_json('{"address": "https://rp.example.com/app/", "cert_file": "rp.crt.pem"}')
    assert (older.cert_file, older.cert_pem, older.has_certificate) == ("rp.crt.pem", "", True)
    assert not RelyingParty(address=RP, encrypt=False).has_certificate


NOT_A_CERT = "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n"  # "not a cert"


def test_inline_certificate_refusals(pem: str) -> None:
    cases = [
        (RelyingParty(address=RP, cert_file="rp.crt.pem", cert_pem=pem), "either a truststore file or stored in"),
        (RelyingParty(address=RP, cert_pem=pem + pem), "must be one PEM certificate"),
        (RelyingParty(address=RP, cert_pem="-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
         "must be one PEM certificate"),
        (RelyingParty(address=RP, cert_pem=NOT_A_CERT), "not a valid PEM certificate"),
    ]
    for rp, fragment in cases:
        with pytest.raises(RelyingPartyError, match=fragment):
            validate(rp)
