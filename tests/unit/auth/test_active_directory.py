"""Tests for Active Directory semantics: sts.auth.active_directory, and DirectoryUserStore over the AD-shaped tree.

The AD-shaped slapd tree stands in for AD (see tests/servers/slapd.py for what it cannot show: bind sub-codes and
computed attributes are only checked as pure functions here). Logins by sAMAccountName and userPrincipalName;
disabled, expired and must-change accounts refused before any bind; objectGUID released as base64.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime

import ldap
import pytest

from sts.auth.active_directory import (
    ACCOUNT_EXPIRED,
    DIRECTORY_LOCKED,
    MUST_CHANGE_PASSWORD,
    PASSWORD_EXPIRED,
    account_refusal,
    bind_refusal,
    dns_domain_name,
    filetime,
    implicit_upn_account,
)
from sts.auth.directory_store import DirectoryUserStore
from sts.auth.users import USER_DISABLED, WRONG_PASSWORD, Principal, Refusal
from sts.config.user_stores import WSO2_CLAIMS
from tests.servers.directory_data import AD_2020, AD_NEVER, AD_RECENT, ALICE_GUID, BOB_GUID, dn_key
from tests.servers.slapd import SlapdServer
from tests.unit.auth.directory_support import SlapdLog, active_directory_table, store_settings

NOW = datetime(2026, 1, 1, tzinfo=UTC)
OBJECT_GUID = WSO2_CLAIMS + "objectguid"


# --- account state and bind sub-codes (pure) ----------------------------------------------------------------------


def test_filetime() -> None:
    assert filetime(AD_2020) == datetime(2020, 1, 1, tzinfo=UTC)
    assert filetime(0) is None and filetime(AD_NEVER) is None and filetime(-5) is None
    assert filetime(116444736000000000) == datetime(1970, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("control", "computed", "pwd_last_set", "expires", "reason"),
    [
        (512, 0, AD_RECENT, AD_NEVER, None),
        (512, 0, AD_RECENT, 0, None),  # accountExpires 0: never
        (512, 0, None, None, None),  # attributes absent
        (514, 0, AD_RECENT, AD_NEVER, USER_DISABLED),
        (512, 0, AD_RECENT, AD_2020, ACCOUNT_EXPIRED),
        (512, 0x10, AD_RECENT, AD_NEVER, DIRECTORY_LOCKED),
        (512, 0, 0, AD_NEVER, MUST_CHANGE_PASSWORD),
        (0x10200, 0, 0, AD_NEVER, None),  # must change, but the password never expires: AD binds it
        (0x40200, 0, 0, AD_NEVER, None),  # smart card required: no password is ever due either
        (512, 0x800000, AD_RECENT, AD_NEVER, PASSWORD_EXPIRED),
        (514, 0x10, 0, AD_2020, USER_DISABLED),  # disabled wins
    ],
)
def test_account_refusal(
    control: int, computed: int, pwd_last_set: int | None, expires: int | None, reason: str | None
) -> None:
    assert account_refusal(control, computed, pwd_last_set, expires, NOW) == reason


def test_account_expiring_in_the_future_is_fine() -> None:
    in_2030 = int((datetime(2030, 1, 1, tzinfo=UTC) - datetime(1601, 1, 1, tzinfo=UTC)).total_seconds()) * 10**7
    assert account_refusal(512, 0, AD_RECENT, in_2030, NOW) is None
    assert account_refusal(512, 0, AD_RECENT, in_2030, datetime(2030, 1, 1, tzinfo=UTC)) == ACCOUNT_EXPIRED


@pytest.mark.parametrize(
    ("code", "reason"),
    [("52e", WRONG_PASSWORD), ("525", "unknown_user"), ("530", "logon_hours"), ("531", "workstation_restricted"),
     ("532", PASSWORD_EXPIRED), ("533", USER_DISABLED), ("701", ACCOUNT_EXPIRED), ("773", MUST_CHANGE_PASSWORD),
     ("775", DIRECTORY_LOCKED), ("", WRONG_PASSWORD), ("999", WRONG_PASSWORD)],
)
def test_bind_sub_codes(code: str, reason: str) -> None:
    assert bind_refusal(code) == reason


# --- against the AD-shaped directory ------------------------------------------------------------------------------


@pytest.fixture
def corp(slapd: SlapdServer) -> Iterator[DirectoryUserStore]:
    store = DirectoryUserStore(store_settings(active_directory_table(slapd)), now=lambda: NOW)
    yield store
    store.close()


def principal(verdict: Principal | Refusal) -> Principal:
    assert isinstance(verdict, Principal), verdict
    return verdict


@pytest.mark.integration
@pytest.mark.parametrize("typed", ["alice", "ALICE", "alice@corp.example", "Alice@CORP.example"])
def test_login_by_sam_account_name_or_user_principal_name(
    slapd: SlapdServer, corp: DirectoryUserStore, typed: str
) -> None:
    found = principal(corp.authenticate("CORP", typed, slapd.active_directory.users["alice"].password))
    assert found.qualified_name == "CORP/alice"  # the sAMAccountName, whatever was typed
    assert found.claims[WSO2_CLAIMS + "upn"] == ("alice@corp.example",)


@pytest.mark.integration
@pytest.mark.parametrize(("name", "reason"), [("dana", USER_DISABLED), ("eve", ACCOUNT_EXPIRED),
                                              ("max", MUST_CHANGE_PASSWORD)])
def test_account_state_refused_before_any_bind(
    slapd: SlapdServer, corp: DirectoryUserStore, name: str, reason: str
) -> None:
    user = slapd.active_directory.users[name]
    log = SlapdLog(slapd)
    for password in (user.password, user.password + "-wrong"):  # right or wrong: the same refusal, no bind
        assert corp.authenticate("CORP", name, password) == Refusal(
            reason, "account state refused by the directory", password_checked=True, account=f"CORP/{name}"
        )
    assert log.binds(user.dn) == 0
    found = corp.find(name)
    assert found is not None and found.refusal == reason and not found.principal.enabled
    looked_up = corp.lookup("CORP", name)
    assert looked_up is not None and not looked_up.enabled


@pytest.mark.parametrize(("base", "dns"), [
    ("CN=Users,DC=corp,DC=example,DC=com", "corp.example.com"),
    ("ou=Staff, dc=Corp ,dc=Example", "corp.example"),
    ("o=corp", ""),
])
def test_the_dns_domain_name_is_the_search_bases_dc_components(base: str, dns: str) -> None:
    assert dns_domain_name(base) == dns


@pytest.mark.parametrize(("typed", "account"), [
    ("uma@corp.example", "uma"),
    ("UMA@CORP.EXAMPLE", "UMA"),
    ("a@b@corp.example", "a@b"),  # the last @ separates the suffix; the filter decides what a@b matches
    ("uma@other.example", None),
    ("uma", None),
    ("@corp.example", None),
])
def test_an_implicit_upn_names_the_account_before_the_domains_dns_name(typed: str, account: str | None) -> None:
    assert implicit_upn_account(typed, "corp.example") == account
    assert implicit_upn_account(typed, "") is None


@pytest.mark.integration
@pytest.mark.parametrize("typed", ["uma", "uma.upn@contoso.example", "uma@corp.example", "UMA@Corp.Example"])
def test_login_by_the_implicit_upn_when_the_explicit_one_has_another_suffix(
    slapd: SlapdServer, corp: DirectoryUserStore, typed: str
) -> None:
    found = principal(corp.authenticate("CORP", typed, slapd.active_directory.users["uma"].password))
    assert found.qualified_name == "CORP/uma"
    assert found.claims[WSO2_CLAIMS + "upn"] == ("uma.upn@contoso.example",)


@pytest.mark.integration
def test_an_implicit_upn_of_another_domain_or_account_is_unknown(slapd: SlapdServer, corp: DirectoryUserStore) -> None:
    for typed in ("uma@contoso.example", "uma@other.example", "nobody@corp.example"):
        refused = corp.authenticate("CORP", typed, slapd.active_directory.users["uma"].password)
        assert isinstance(refused, Refusal) and refused.reason == "unknown_user", typed


@pytest.mark.integration
def test_account_expires_zero_means_never(slapd: SlapdServer, corp: DirectoryUserStore) -> None:
    bob = principal(corp.authenticate("CORP", "bob", slapd.active_directory.users["bob"].password))
    assert bob.enabled and bob.roles == {"CORP/sts-users"}


@pytest.mark.integration
def test_must_change_is_void_when_the_password_never_expires(slapd: SlapdServer, corp: DirectoryUserStore) -> None:
    nora = principal(corp.authenticate("CORP", "nora", slapd.active_directory.users["nora"].password))
    assert nora.enabled and nora.roles == {"CORP/sts-users"}


@pytest.mark.integration
def test_roles_through_the_primary_group(slapd: SlapdServer, corp: DirectoryUserStore) -> None:
    """pat's primary group (primaryGroupID) is staff, nested in sts-users; no member attribute names her."""
    pat = principal(corp.authenticate("CORP", "pat", slapd.active_directory.users["pat"].password))
    assert pat.roles == {"CORP/staff", "CORP/sts-users"}


@pytest.mark.integration
def test_wrong_password_is_a_wrong_password(slapd: SlapdServer, corp: DirectoryUserStore) -> None:
    verdict = corp.authenticate("CORP", "alice@corp.example", "nope")
    # The failure counts on the account the UPN found, not on the spelling typed.
    assert verdict == Refusal(
        WRONG_PASSWORD, "bind refused (invalidCredentials)", password_checked=True, accounts=("CORP/alice",),
        account="CORP/alice",
    )


@pytest.mark.integration
def test_object_guid_released_as_base64(slapd: SlapdServer, corp: DirectoryUserStore) -> None:
    alice = principal(corp.authenticate("CORP", "alice", slapd.active_directory.users["alice"].password))
    assert alice.claims[OBJECT_GUID] == ("lEkYOJwYhUy+4HS+ArsRRA==",)  # Office 365's ImmutableID form
    assert alice.claims[WSO2_CLAIMS + "userid"] == ("lEkYOJwYhUy+4HS+ArsRRA==",)
    assert base64.b64decode(alice.claims[OBJECT_GUID][0]) == ALICE_GUID
    bob = principal(corp.authenticate("CORP", "bob", slapd.active_directory.users["bob"].password))
    assert bob.claims[OBJECT_GUID] == (base64.b64encode(BOB_GUID).decode(),)  # NUL * ( ) \ bytes intact


@pytest.mark.integration
def test_immutable_id_mapped_to_object_guid(slapd: SlapdServer) -> None:
    immutable_id = "http://schemas.microsoft.com/LiveID/Federation/2008/05/ImmutableID"
    upn = "http://schemas.xmlsoap.org/claims/UPN"
    store = DirectoryUserStore(store_settings(active_directory_table(
        slapd, claim_map={immutable_id: "objectGUID", upn: "userPrincipalName", OBJECT_GUID: ""},
    )))
    try:
        alice = principal(store.authenticate("CORP", "alice", slapd.active_directory.users["alice"].password))
    finally:
        store.close()
    assert alice.claims[immutable_id] == ("lEkYOJwYhUy+4HS+ArsRRA==",)
    assert alice.claims[upn] == ("alice@corp.example",)
    assert OBJECT_GUID not in alice.claims


@pytest.mark.integration
def test_a_dn_with_an_rfc_4514_special(slapd: SlapdServer, corp: DirectoryUserStore) -> None:
    """jsmith's DN is ``cn=Smith\\, John,...``: the store binds the DN the search returned, and finds its groups
    with the DN escaped for the filter."""
    user = slapd.active_directory.users["jsmith"]
    log = SlapdLog(slapd)
    found = principal(corp.authenticate("CORP", "jsmith", user.password))
    assert found.roles == {"CORP/sts-users"}
    assert found.claims[WSO2_CLAIMS + "fullname"] == ("Smith, John",)
    assert log.binds(user.dn) == 1
    entry = corp.find("jsmith")
    assert entry is not None and dn_key(entry.dn) == dn_key(user.dn)


@pytest.mark.integration
def test_non_ascii_login_and_password(slapd: SlapdServer, corp: DirectoryUserStore) -> None:
    user = slapd.active_directory.users["jürgen"]
    found = principal(corp.authenticate("CORP", "jürgen@corp.example", user.password))
    assert found.name == "jürgen" and found.roles == {"CORP/staff", "CORP/sts-users"}


# .NET's DateTime.MaxValue as a FILETIME (DateTime.MaxValue.ToFileTimeUtc()): what tools that write an
# AccountExpirationDate of "the end of time" store in accountExpires; and the largest value short of "never".
DOTNET_MAX = 2650467743999999999


@pytest.mark.parametrize("expires", [DOTNET_MAX, DOTNET_MAX + 1, AD_NEVER - 1])
def test_account_expiring_at_the_end_of_time_is_fine(expires: int) -> None:
    """accountExpires is any FILETIME; one at or past the last moment a datetime holds is in the future, not an
    exception that fails every login of the account (and ``sts user show``)."""
    assert account_refusal(512, 0, AD_RECENT, expires, NOW) is None
    assert filetime(DOTNET_MAX) == datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    assert filetime(AD_NEVER - 1) == datetime.max.replace(tzinfo=UTC)


@pytest.mark.integration
def test_a_user_whose_account_expires_at_the_end_of_time_logs_in(slapd: SlapdServer, corp: DirectoryUserStore) -> None:
    tree = slapd.active_directory
    user = tree.users["alice"]
    admin = slapd.connect(slapd.ldap_url, start_tls=True)
    admin.simple_bind_s(tree.admin_dn, tree.admin_password)
    admin.modify_s(user.dn, [(ldap.MOD_REPLACE, "accountExpires", [str(DOTNET_MAX).encode()])])
    try:
        assert principal(corp.authenticate("CORP", "alice", user.password)).qualified_name == "CORP/alice"
    finally:
        admin.modify_s(user.dn, [(ldap.MOD_REPLACE, "accountExpires", [str(AD_NEVER).encode()])])
        admin.unbind_s()
