"""Tests for sts.auth.users and sts.auth.sqlite_users: the SQLite user store, name normalisation (X20), roles and
claims, and the user-store contract (the store checks the credential)."""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import pytest

from sts.auth.passwords import HashPolicy, PasswordHasher
from sts.auth.sqlite_users import SqliteUserStore
from sts.auth.users import (
    PRIMARY,
    WRONG_PASSWORD,
    DigestSecret,
    Principal,
    Refusal,
    UserStoreError,
    canonical,
    normalize_name,
    normalize_user_name,
    parse_user_name,
    split_qualified,
    valid_user_name,
)
from sts.crypto.secretbox import SecretBox
from sts.stores.sqlite import Database, initialize

CHEAP = HashPolicy(memory_kib=1024, time_cost=1)
EMAIL = "http://wso2.org/claims/emailaddress"
GROUPS = "http://schemas.xmlsoap.org/claims/Group"


@pytest.fixture(scope="module")
def hasher() -> PasswordHasher:
    return PasswordHasher(CHEAP)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    initialize(tmp_path / "sts.db")
    database = Database(tmp_path / "sts.db")
    yield database
    database.close()


@pytest.fixture
def users(db: Database, hasher: PasswordHasher) -> SqliteUserStore:
    store = SqliteUserStore(db, hasher)
    store.add_role("admin")
    store.add_role("Operators")
    return store


def _user_count(db: Database) -> int:
    return int(db.conn.execute("SELECT COUNT(*) FROM users").fetchone()[0])


# --- add / find ---------------------------------------------------------------------------------------------------


def test_add_and_find(users: SqliteUserStore, hasher: PasswordHasher) -> None:
    users.add_user(PRIMARY, "Alice", "pw-alice", roles=["admin"], claims={EMAIL: ["alice@example.com"]})
    found = users.find(PRIMARY, "Alice")
    assert found is not None
    assert found.principal.domain == "PRIMARY"
    assert found.principal.name == "Alice"
    assert found.principal.qualified_name == "PRIMARY/Alice"
    assert found.principal.roles == frozenset({"admin"})
    assert found.principal.claims == {EMAIL: ("alice@example.com",)}
    assert found.principal.enabled is True
    assert found.digest_secret is None
    assert found.password_hash != "pw-alice"
    assert hasher.verify("pw-alice", found.password_hash) == (True, False)


@pytest.mark.parametrize("lookup", ["alice", "ALICE", "aLiCe", " Alice "])
def test_find_is_case_insensitive(users: SqliteUserStore, lookup: str) -> None:
    users.add_user(PRIMARY, "Alice", "pw")
    found = users.find(PRIMARY, lookup)
    assert found is not None
    assert found.principal.name == "Alice"  # stored spelling kept


def test_find_domain_case_insensitive(users: SqliteUserStore) -> None:
    users.add_user("primary", "bob", "pw")
    found = users.find("Primary", "bob")
    assert found is not None and found.principal.domain == "PRIMARY"


def test_find_unknown_user_or_domain(users: SqliteUserStore) -> None:
    users.add_user(PRIMARY, "alice", "pw")
    assert users.find(PRIMARY, "bob") is None
    assert users.find("SECONDARY", "alice") is None
    assert users.find(PRIMARY, "alice\x00") is None  # invalid names never match (A09)
    assert users.find(PRIMARY, "") is None


def test_same_name_in_two_domains(users: SqliteUserStore) -> None:
    users.add_user(PRIMARY, "alice", "pw1")
    users.add_user("PARTNERS", "alice", "pw2")
    primary, partners = users.find(PRIMARY, "alice"), users.find("PARTNERS", "alice")
    assert primary is not None and partners is not None
    assert primary.user_id != partners.user_id


@pytest.mark.parametrize("duplicate", ["alice", "ALICE", " Alice"])
def test_duplicate_user_refused(users: SqliteUserStore, db: Database, duplicate: str) -> None:
    users.add_user(PRIMARY, "Alice", "pw")
    with pytest.raises(UserStoreError, match="already exists"):
        users.add_user(PRIMARY, duplicate, "other")
    assert _user_count(db) == 1


def test_unknown_role_refused_and_nothing_written(users: SqliteUserStore, db: Database) -> None:
    with pytest.raises(UserStoreError, match="unknown role"):
        users.add_user(PRIMARY, "carol", "pw", roles=["admin", "nosuchrole"])
    assert _user_count(db) == 0
    assert users.find(PRIMARY, "carol") is None
    assert db.conn.execute("SELECT COUNT(*) FROM user_roles").fetchone()[0] == 0


def test_roles_matched_case_insensitively_stored_as_created(users: SqliteUserStore) -> None:
    users.add_user(PRIMARY, "dave", "pw", roles=["ADMIN", "operators"])
    found = users.find(PRIMARY, "dave")
    assert found is not None and found.principal.roles == frozenset({"admin", "Operators"})


def test_duplicate_role_refused(users: SqliteUserStore) -> None:
    with pytest.raises(UserStoreError, match="already exists"):
        users.add_role("ADMIN")


def test_empty_password_refused(users: SqliteUserStore, db: Database) -> None:
    with pytest.raises(UserStoreError, match="empty"):
        users.add_user(PRIMARY, "erin", "")
    assert _user_count(db) == 0


@pytest.mark.parametrize(
    "name",
    ["ali\x00ce", "ali\nce", "al\tice", "alice\u200b", "\u202ealice", "ali\u2028ce", "a\x7f", "", "   ", "x" * 257,
     "ali\uffffce", "ali\ufffece"],
    ids=["nul", "newline-inside", "tab", "zero-width-space", "rtl-override", "line-sep", "del", "empty", "blank",
         "too-long", "uffff", "ufffe"],
)
def test_bad_names_refused(users: SqliteUserStore, db: Database, name: str) -> None:
    with pytest.raises(UserStoreError):
        users.add_user(PRIMARY, name, "pw")
    assert _user_count(db) == 0


def test_name_of_256_characters_accepted(users: SqliteUserStore) -> None:
    users.add_user(PRIMARY, "x" * 256, "pw")
    assert users.find(PRIMARY, "X" * 256) is not None


def test_control_characters_in_role_or_domain_refused(users: SqliteUserStore) -> None:
    with pytest.raises(UserStoreError):
        users.add_role("ad\x00min")
    with pytest.raises(UserStoreError):
        users.add_user("PRI\x01MARY", "frank", "pw")


def test_nfc_normalisation(users: SqliteUserStore) -> None:
    decomposed = "Jose\u0301"  # e + combining acute
    composed = "Jos\u00e9"
    users.add_user(PRIMARY, decomposed, "pw")
    found = users.find(PRIMARY, composed)
    assert found is not None
    assert found.principal.name == composed
    assert unicodedata.is_normalized("NFC", found.principal.name)
    assert users.find(PRIMARY, decomposed.upper()) is not None
    with pytest.raises(UserStoreError, match="already exists"):
        users.add_user(PRIMARY, composed, "pw")


def test_fullwidth_name_is_a_different_user(users: SqliteUserStore) -> None:
    users.add_user(PRIMARY, "alice", "pw")
    assert users.find(PRIMARY, "\uff41\uff4c\uff49\uff43\uff45") is None  # ａｌｉｃｅ (NFC keeps it distinct)


# --- claims ----------------------------------------------------------------------------------------------------


def test_multi_valued_claims_preserved_in_order(users: SqliteUserStore) -> None:
    groups = ["zeta", "alpha", "mu", "alpha-2"]
    users.add_user(PRIMARY, "gina", "pw", claims={GROUPS: groups, EMAIL: ["g@example.com"]})
    found = users.find(PRIMARY, "gina")
    assert found is not None
    assert found.principal.claims[GROUPS] == tuple(groups)
    assert found.principal.claims[EMAIL] == ("g@example.com",)
    assert set(found.principal.claims) == {GROUPS, EMAIL}


def test_claim_values_with_markup_round_trip(users: SqliteUserStore) -> None:
    value = "x</saml:AttributeValue><saml:AttributeValue>admin & ]]>"
    users.add_user(PRIMARY, "hank", "pw", claims={EMAIL: [value]})
    found = users.find(PRIMARY, "hank")
    assert found is not None and found.principal.claims[EMAIL] == (value,)


def test_claim_values_with_control_characters_refused(users: SqliteUserStore, db: Database) -> None:
    with pytest.raises(UserStoreError, match="control characters"):
        users.add_user(PRIMARY, "ivan", "pw", claims={EMAIL: ["a\x00b"]})
    assert _user_count(db) == 0


@pytest.mark.parametrize("value", ["Car\uffffol", "Car\ufffeol", "a\udc80b", "a\x0bb"], ids=repr)
def test_claim_values_xml_cannot_carry_refused(users: SqliteUserStore, db: Database, value: str) -> None:
    """XML 1.0 §2.2 [2] Char: such a value would make every token of the user fail to build."""
    with pytest.raises(UserStoreError):
        users.add_user(PRIMARY, "ivan", "pw", claims={EMAIL: [value]})
    assert _user_count(db) == 0
    users.add_user(PRIMARY, "ivan", "pw")
    with pytest.raises(UserStoreError):
        users.set_claims(PRIMARY, "ivan", {EMAIL: [value]})
    with pytest.raises(UserStoreError, match="invalid claim URI"):
        users.set_claims(PRIMARY, "ivan", {f"http://wso2.org/claims/{value}": ["v"]})
    found = users.find(PRIMARY, "ivan")
    assert found is not None and dict(found.principal.claims) == {}


def test_user_without_claims_or_roles(users: SqliteUserStore) -> None:
    users.add_user(PRIMARY, "judy", "pw")
    found = users.find(PRIMARY, "judy")
    assert found is not None
    assert found.principal.roles == frozenset()
    assert dict(found.principal.claims) == {}


# --- password hash updates -----------------------------------------------------------------------------------------


def test_update_password_hash(users: SqliteUserStore, hasher: PasswordHasher) -> None:
    users.add_user(PRIMARY, "kate", "old")
    found = users.find(PRIMARY, "kate")
    assert found is not None
    users.update_password_hash(found.user_id, hasher.hash("new"))
    again = users.find(PRIMARY, "kate")
    assert again is not None
    assert hasher.verify("new", again.password_hash) == (True, False)
    assert hasher.verify("old", again.password_hash) == (False, False)


def test_data_persists_across_connections(tmp_path: Path, users: SqliteUserStore, hasher: PasswordHasher) -> None:
    users.add_user(PRIMARY, "liam", "pw", roles=["admin"])
    other = Database(tmp_path / "sts.db")
    try:
        found = SqliteUserStore(other, hasher).find(PRIMARY, "LIAM")
        assert found is not None and found.principal.roles == frozenset({"admin"})
    finally:
        other.close()


# --- names ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("qualified", "expected"),
    [
        ("PRIMARY/alice", ("PRIMARY", "alice")),
        ("primary/alice", ("PRIMARY", "alice")),
        ("alice", ("PRIMARY", "alice")),
        (" alice ", ("PRIMARY", "alice")),
        ("PARTNERS/Bob", ("PARTNERS", "Bob")),
    ],
)
def test_split_qualified(qualified: str, expected: tuple[str, str]) -> None:
    assert split_qualified(qualified) == expected


def test_split_qualified_default_domain() -> None:
    assert split_qualified("alice", default_domain="LDAP") == ("LDAP", "alice")


@pytest.mark.parametrize("bad", ["/alice", "PRIMARY/", "PRIMARY/\x00", ""])
def test_split_qualified_refuses_empty_parts(bad: str) -> None:
    with pytest.raises(UserStoreError):
        split_qualified(bad)


# --- down-level logon names: NETBIOS\name of a directory that has that netbios_name ---------------------------------

DOWN_LEVEL = {"test": "CORP"}  # what down_level_domains() makes of netbios_name = "TEST" on CORP


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("TEST\\alice", ("CORP", "alice", True)),
        ("test\\Alice", ("CORP", "Alice", True)),  # the NetBIOS name without case, as Windows compares it
        (" TEST\\alice ", ("CORP", "alice", True)),
        ("TEST\\alice@corp.example", ("CORP", "alice@corp.example", True)),  # the store's filter decides
        ("OTHER\\alice", ("PRIMARY", "OTHER\\alice", False)),  # no such NetBIOS name: a bare name, as before
        ("\\alice", ("PRIMARY", "\\alice", False)),
        ("TEST\uff3calice", ("PRIMARY", "TEST\uff3calice", False)),  # a fullwidth reverse solidus is no separator
        ("TEST/alice", ("TEST", "alice", True)),  # '/' first: DOMAIN/name means what it always meant
        ("CORP/TEST\\alice", ("CORP", "TEST\\alice", True)),
        ("alice", ("PRIMARY", "alice", False)),
    ],
)
def test_parse_user_name_reads_down_level_names_of_configured_netbios_names(
    typed: str, expected: tuple[str, str, bool]
) -> None:
    assert parse_user_name(typed, down_level=DOWN_LEVEL) == expected


def test_without_netbios_names_a_backslash_is_a_name_character() -> None:
    assert parse_user_name("TEST\\alice") == ("PRIMARY", "TEST\\alice", False)
    assert split_qualified("TEST\\alice") == ("PRIMARY", "TEST\\alice")
    assert split_qualified("TEST\\alice", down_level=DOWN_LEVEL) == ("CORP", "alice")


@pytest.mark.parametrize("typed", ["TEST\\", "TEST\\ ", "TEST\\a\\b", "TEST\\a\x00"])
def test_a_malformed_down_level_name_is_refused(typed: str) -> None:
    with pytest.raises(UserStoreError):
        parse_user_name(typed, down_level=DOWN_LEVEL)


def test_normalize_and_canonical() -> None:
    assert normalize_name("  Jose\u0301 ") == "Jos\u00e9"
    assert canonical("STRASSE") == canonical("stra\u00dfe")  # casefold, not lower
    assert canonical("Alice") == "alice"


def test_surrounding_whitespace_trimmed_in_names(users: SqliteUserStore) -> None:
    users.add_user(PRIMARY, " mona\n", "pw")
    found = users.find(PRIMARY, "mona")
    assert found is not None and found.principal.name == "mona"


@pytest.mark.parametrize(
    "password", ["a\x00b", "x" * 1025, "\u00e9" * 513], ids=["nul", "1025-bytes", "1026-utf8-bytes"]
)
def test_unusable_passwords_refused(users: SqliteUserStore, db: Database, password: str) -> None:
    with pytest.raises(UserStoreError):
        users.add_user(PRIMARY, "nina", password)
    assert _user_count(db) == 0


def test_password_of_1024_bytes_accepted(users: SqliteUserStore) -> None:
    users.add_user(PRIMARY, "otto", "x" * 1024)
    assert users.find(PRIMARY, "otto") is not None


# --- '/' separates the domain: never part of a name (PRIMARY/SECONDARY/carol would be NameID SECONDARY/carol) ------


@pytest.mark.parametrize(
    "qualified",
    ["PRIMARY/SECONDARY/carol", "D/a/b", "SECONDARY/carol/", "a/b/c/d", "PRIMARY/SECONDARY\uff0fcarol", "x\uff0fy"],
    ids=["two_separators", "name_with_slash", "trailing_slash", "many", "fullwidth_solidus", "fullwidth_unqualified"],
)
def test_split_qualified_refuses_a_separator_in_the_name(qualified: str) -> None:
    with pytest.raises(UserStoreError, match="must not contain '/'"):
        split_qualified(qualified)


@pytest.mark.parametrize("name", ["SECONDARY/carol", "carol/", "/carol", "SECONDARY\uff0fcarol"])
def test_store_refuses_a_separator_in_a_new_name(users: SqliteUserStore, db: Database, name: str) -> None:
    with pytest.raises(UserStoreError, match="must not contain '/'"):
        users.add_user(PRIMARY, name, "pw")
    assert _user_count(db) == 0


def test_lookalike_slashes_without_a_compatibility_mapping_stay_name_characters() -> None:
    """Only characters whose NFKC form is '/' are the separator's twins; others are plain (X20: no NFKC)."""
    assert normalize_user_name("a\u2215b") == "a\u2215b"  # DIVISION SLASH
    assert valid_user_name("carol") and not valid_user_name("SECONDARY/carol")


def test_legacy_row_with_a_separator_is_no_user(users: SqliteUserStore, db: Database, hasher: PasswordHasher) -> None:
    """A row stored before the rule (or by a store that skipped it) can never be found, so it cannot sign in."""
    db.conn.execute(
        "INSERT INTO users(domain, name, canonical, password_hash, enabled, created, updated)"
        " VALUES ('PRIMARY', 'SECONDARY/carol', 'secondary/carol', ?, 1, 0, 0)",
        (hasher.hash("pw"),),
    )
    assert users.find(PRIMARY, "SECONDARY/carol") is None
    assert users.find("SECONDARY", "carol") is None
    assert ("PRIMARY", "SECONDARY/carol", True, False) in users.list_users()
    users.remove_user(PRIMARY, "SECONDARY/carol")  # it can still be removed
    assert _user_count(db) == 0


def test_a_principal_never_holds_the_separator() -> None:
    with pytest.raises(ValueError, match="separator"):
        Principal("PRIMARY", "SECONDARY/carol", frozenset())
    with pytest.raises(ValueError, match="separator"):
        Principal("PRIMARY/SECONDARY", "carol", frozenset())
    assert Principal("SECONDARY", "carol", frozenset()).qualified_name == "SECONDARY/carol"


# --- the user-store contract: the store checks the credential itself ------------------------------------------------


def test_authenticate_answers_the_principal_or_why_not(users: SqliteUserStore) -> None:
    users.add_user(PRIMARY, "Mona", "pw-mona", roles=["admin"])
    users.add_user(PRIMARY, "ned", "pw-ned")
    users.set_enabled(PRIMARY, "ned", False)
    principal = users.authenticate(PRIMARY, "mona", "pw-mona")
    assert isinstance(principal, Principal) and principal.qualified_name == "PRIMARY/Mona"
    wrong = Refusal(  # on the account, case-folded
        "wrong_password", "wrong password", True, ("PRIMARY/mona",), "PRIMARY/mona"
    )
    assert users.authenticate(PRIMARY, "MONA", "pw-MONA") == wrong
    assert users.authenticate(PRIMARY, "nobody", "pw") == Refusal("unknown_user", "unknown user")
    assert users.authenticate(PRIMARY, "ned", "pw-ned") == Refusal("user_disabled", "user disabled",
                                                                   account="PRIMARY/ned")
    assert users.authenticate("OTHER", "mona", "pw-mona") == Refusal("unknown_user", "unknown user")


def test_only_a_wrong_password_counts_towards_lockout() -> None:
    assert Refusal(WRONG_PASSWORD, "x").wrong_password
    assert not Refusal("unknown_user", "x").wrong_password
    assert not Refusal("digest_unsupported", "x").wrong_password


def test_authenticate_upgrades_an_old_hash(db: Database, hasher: PasswordHasher) -> None:
    weak = SqliteUserStore(db, PasswordHasher(HashPolicy(memory_kib=512, time_cost=1)))
    weak.add_user(PRIMARY, "olga", "pw-olga")
    store = SqliteUserStore(db, hasher)
    assert isinstance(store.authenticate(PRIMARY, "olga", "wrong"), Refusal)
    found = store.find(PRIMARY, "olga")
    assert found is not None and "m=512," in found.password_hash  # a failure never rewrites it
    assert isinstance(store.authenticate(PRIMARY, "olga", "pw-olga"), Principal)
    found = store.find(PRIMARY, "olga")
    assert found is not None and hasher.verify("pw-olga", found.password_hash) == (True, False)


def test_digest_secret_of_an_enrolled_user_only(db: Database, hasher: PasswordHasher) -> None:
    box = SecretBox(os.urandom(32))
    store = SqliteUserStore(db, hasher, box)
    store.add_user(PRIMARY, "pia", "pw-pia", digest=True)
    store.add_user(PRIMARY, "quinn", "pw-quinn")
    secret = store.digest_secret(PRIMARY, "PIA")
    assert isinstance(secret, DigestSecret)
    assert (secret.principal.qualified_name, secret.secret) == ("PRIMARY/pia", "pw-pia")
    assert "pw-pia" not in repr(secret)
    not_enrolled = Refusal("digest_unsupported", "user not enrolled for PasswordDigest")
    assert store.digest_secret(PRIMARY, "quinn") == not_enrolled
    assert store.digest_secret(PRIMARY, "nobody") == Refusal("unknown_user", "unknown user")
    assert SqliteUserStore(db, hasher).digest_secret(PRIMARY, "pia") == not_enrolled  # no credential key
    other_key = SqliteUserStore(db, hasher, SecretBox(os.urandom(32)))
    assert other_key.digest_secret(PRIMARY, "pia") == Refusal("digest_secret_broken", "digest secret unusable")


def test_lookup_answers_disabled_users_too(users: SqliteUserStore) -> None:
    users.add_user(PRIMARY, "rita", "pw-rita", roles=["admin"])
    users.set_enabled(PRIMARY, "rita", False)
    principal = users.lookup(PRIMARY, "RITA")
    assert principal is not None and principal.enabled is False and principal.roles == frozenset({"admin"})
    assert users.lookup(PRIMARY, "nobody") is None
    assert users.lookup(PRIMARY, "a/b") is None  # a name the rule refuses is no user


def test_roles_are_held_without_regard_to_case() -> None:
    principal = Principal(PRIMARY, "sam", frozenset({"Operators"}))
    assert principal.holds_any_role(frozenset({"operators", "admin"}))
    assert not principal.holds_any_role(frozenset({"admin"}))
    assert not principal.holds_any_role(frozenset())


@pytest.mark.parametrize(
    ("roles", "allowed", "held"),
    [
        ({"CORP/sts-users"}, {"corp/sts-users"}, True),  # qualified, without regard to case
        ({"CORP/sts-users"}, {"sts-users"}, True),  # a plain allowed role admits the group in any domain
        ({"CORP/sts-users"}, {"ldap/sts-users"}, False),  # a qualified one only in its own domain
        ({"CORP/sts-users"}, {"corp"}, False),
        ({"CORP/sts-users"}, {"users"}, False),
        ({"sts-users"}, {"corp/sts-users"}, False),  # a PRIMARY role is not CORP's
        ({"sts-users"}, {"sts-users"}, True),
        ({"CORP/staff", "CORP/sts-users"}, {"admin", "sts-users"}, True),
    ],
)
def test_roles_qualified_by_their_domain(roles: set[str], allowed: set[str], held: bool) -> None:
    principal = Principal("CORP", "alice", frozenset(roles))
    assert principal.holds_any_role(frozenset(allowed)) is held


@pytest.mark.parametrize(
    ("domain", "role", "allowed"),
    [
        ("LDAP", "LDAP/CORP/sts-users", "corp/sts-users"),  # a group named "CORP/sts-users" in LDAP's directory
        ("LDAP", "LDAP/CORP/sts-users", "ldap/corp/sts-users"),
        (PRIMARY, "CORP/sts-users", "corp/sts-users"),  # the same group in a PRIMARY directory: a bare role
        ("LDAP", "CORP/sts-users", "corp/sts-users"),  # qualified by a domain that is not the principal's
        ("LDAP", "LDAP/CORP／sts-users", "corp／sts-users"),  # a fullwidth look-alike of the separator
        (PRIMARY, "sts／users", "sts／users"),
    ],
)
def test_no_role_passes_for_another_domains(domain: str, role: str, allowed: str) -> None:
    principal = Principal(domain, "carol", frozenset({role}))
    assert not principal.holds_any_role(frozenset({allowed}))
