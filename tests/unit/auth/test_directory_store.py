"""Tests for sts.auth.directory_store.DirectoryUserStore over the OpenLDAP-shaped tree of the real slapd.

Search, then bind: names full of RFC 4515 specials find exactly their own entry, an empty password never reaches
a bind (the fixture's slapd would accept it as an anonymous bind), ambiguous and unknown names and wrong passwords
are refused with their own audit reasons, and claims come from the entry's attributes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import ldap
import pytest

from sts.auth.directory_store import (
    AMBIGUOUS_USER,
    DIGEST_NOT_SUPPORTED,
    EMPTY_PASSWORD,
    TOO_MANY_GROUPS,
    UNUSABLE_NAME,
    DirectoryUserStore,
)
from sts.auth.ldap_client import DirectoryClient
from sts.auth.users import UNKNOWN_USER, WRONG_PASSWORD, Principal, Refusal, account_key
from sts.config.user_stores import WSO2_CLAIMS
from tests.servers.directory_data import DirectoryTree, dn_key
from tests.servers.slapd import SlapdServer, running_slapd
from tests.unit.auth.directory_support import SlapdLog, active_directory_table, openldap_table, store_settings

pytestmark = pytest.mark.integration

StoreFactory = Callable[..., DirectoryUserStore]


@pytest.fixture
def make_store(slapd: SlapdServer) -> Iterator[StoreFactory]:
    """Stores over the OpenLDAP tree (``table`` overrides as keyword arguments), closed after the test."""
    made: list[DirectoryUserStore] = []

    def make(**overrides: Any) -> DirectoryUserStore:
        store = DirectoryUserStore(store_settings(openldap_table(slapd, **overrides)))
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


@pytest.fixture
def store(make_store: StoreFactory) -> DirectoryUserStore:
    return make_store()


def principal(verdict: Principal | Refusal) -> Principal:
    assert isinstance(verdict, Principal), verdict
    return verdict


@pytest.mark.parametrize("name", ["alice", "*", "admin)(uid=*", "back\\slash", "jürgen"])
def test_each_user_logs_in_with_its_password(slapd: SlapdServer, store: DirectoryUserStore, name: str) -> None:
    user = slapd.openldap.users[name]
    log = SlapdLog(slapd)
    found = principal(store.authenticate("LDAP", name, user.password))
    assert (found.domain, found.name, found.enabled) == ("LDAP", name, True)
    assert found.claims[WSO2_CLAIMS + "username"] == (name,)
    assert log.binds(user.dn) == 1  # the DN the search returned, bound once


def test_typed_name_case_and_the_canonical_name(slapd: SlapdServer, store: DirectoryUserStore) -> None:
    """uid matches without case; the principal is named by the entry's uid, not by what was typed."""
    found = principal(store.authenticate("LDAP", "ALICE", slapd.openldap.users["alice"].password))
    assert found.qualified_name == "LDAP/alice"
    assert principal(store.authenticate("LDAP", "JÜRGEN", slapd.openldap.users["jürgen"].password)).name == "jürgen"


@pytest.mark.parametrize("name", ["*", "admin)(uid=*", "back\\slash"])
def test_a_special_name_is_no_other_users_key(slapd: SlapdServer, store: DirectoryUserStore, name: str) -> None:
    """``*`` with alice's password is ``*``'s wrong password, never a wildcard that finds alice."""
    verdict = store.authenticate("LDAP", name, slapd.openldap.users["alice"].password)
    key = account_key("LDAP", name)
    refused = Refusal(WRONG_PASSWORD, "bind refused (invalidCredentials)", True, (key,), key)
    assert verdict == refused


@pytest.mark.parametrize("name", ["a\x00b", "alice*", "*)(uid=alice", "admin", "nobody"])
def test_unknown_and_injected_names_find_nobody(slapd: SlapdServer, store: DirectoryUserStore, name: str) -> None:
    log = SlapdLog(slapd)
    unknown = Refusal(UNKNOWN_USER, "unknown user", password_checked=True)
    assert store.authenticate("LDAP", name, "alice-pw-1") == unknown
    assert store.find(name) is None and store.lookup("LDAP", name) is None
    assert not any("BIND dn=\"uid=" in line for line in log.lines())  # no user bind at all


def test_search_filter_sent_escaped(slapd: SlapdServer, store: DirectoryUserStore) -> None:
    log = SlapdLog(slapd)
    store.authenticate("LDAP", "admin)(uid=*", "x")
    store.authenticate("LDAP", "a\x00b", "x")
    filters = log.searches(slapd.openldap.user_search_base)
    assert filters == ['"(&(objectClass=person)(uid=admin\\29\\28uid=\\2A))"', '"(&(objectClass=person)(uid=a\\00b))"']


def test_wrong_password(slapd: SlapdServer, store: DirectoryUserStore) -> None:
    user = slapd.openldap.users["bob"]
    log = SlapdLog(slapd)
    verdict = store.authenticate("LDAP", "bob", user.password + "x")
    assert verdict == Refusal(WRONG_PASSWORD, "bind refused (invalidCredentials)", True, ("LDAP/bob",), "LDAP/bob")
    assert isinstance(verdict, Refusal) and verdict.wrong_password  # counts towards lockout
    assert log.binds(user.dn) == 1


def test_the_fixture_accepts_an_empty_password_as_an_anonymous_bind(slapd: SlapdServer) -> None:
    """The danger the store guards against: this slapd (``allow bind_anon_dn``, as AD) answers "success"."""
    conn = slapd.connect()
    try:
        conn.simple_bind_s(slapd.openldap.users["alice"].dn, "")
        assert conn.whoami_s() == ""
    finally:
        conn.unbind_s()


def test_empty_password_refused_before_any_bind_or_search(slapd: SlapdServer, store: DirectoryUserStore) -> None:
    log = SlapdLog(slapd)
    assert store.authenticate("LDAP", "alice", "") == Refusal(
        EMPTY_PASSWORD, "empty password refused before binding", password_checked=True
    )
    assert log.lines() == []  # the directory was not even asked
    # and the client itself refuses to send such a bind
    client = DirectoryClient(store.settings)
    with pytest.raises(ValueError, match="refusing an unauthenticated bind"):
        client.bind(slapd.openldap.users["alice"].dn, "")
    client.close()
    assert log.binds(slapd.openldap.users["alice"].dn) == 0


def test_ambiguous_filter_refused(slapd: SlapdServer, make_store: StoreFactory) -> None:
    """sn=User matches two entries (``*`` and ``admin)(uid=*``): neither is chosen nor bound (the one bind is the
    refusal's bind as no entry, tests/unit/auth/test_directory_refusal_cost.py)."""
    store = make_store(user_name_search_filter="(&(objectClass=person)(sn=?))")
    log = SlapdLog(slapd)
    assert store.authenticate("LDAP", "User", "star-pw-5") == Refusal(
        AMBIGUOUS_USER, "the user filter matches several entries", password_checked=True
    )
    assert store.find("User") is None
    assert log.binds(slapd.openldap.users["*"].dn) == log.binds(slapd.openldap.users["admin)(uid=*"].dn) == 0
    assert principal(store.authenticate("LDAP", "Davis", "dave-pw-4")).name == "dave"  # one entry: fine


def test_entry_without_the_user_name_attribute_is_refused(slapd: SlapdServer, make_store: StoreFactory) -> None:
    store = make_store(user_name_attribute="employeeNumber")  # not on any entry
    verdict = store.authenticate("LDAP", "alice", slapd.openldap.users["alice"].password)
    assert verdict == Refusal("unusable_user_name", "entry without a usable user name", password_checked=True)


def test_digest_is_refused(store: DirectoryUserStore) -> None:
    assert store.digest_secret("LDAP", "alice") == Refusal(
        DIGEST_NOT_SUPPORTED, "PasswordDigest cannot be checked against a directory"
    )


def test_claims_from_attributes(slapd: SlapdServer, store: DirectoryUserStore) -> None:
    found = principal(store.authenticate("LDAP", "alice", slapd.openldap.users["alice"].password))
    claims = dict(found.claims)
    assert len(claims.pop(WSO2_CLAIMS + "userid")[0]) == 36  # entryUUID
    assert claims == {
        WSO2_CLAIMS + "givenname": ("Alice",),
        WSO2_CLAIMS + "lastname": ("Anders",),
        WSO2_CLAIMS + "emailaddress": ("alice@example.org",),
        WSO2_CLAIMS + "telephone": ("+1 555 0100", "+1 555 0101"),  # multi-valued stays several values
        WSO2_CLAIMS + "username": ("alice",),
        WSO2_CLAIMS + "fullname": ("Alice Anders",),
    }
    assert principal(store.authenticate("LDAP", "jürgen", slapd.openldap.users["jürgen"].password)).claims[
        WSO2_CLAIMS + "lastname"
    ] == ("Müller",)


def test_claim_map_overrides_and_removals(slapd: SlapdServer, make_store: StoreFactory) -> None:
    store = make_store(claim_map={
        WSO2_CLAIMS + "emailaddress": "cn",
        WSO2_CLAIMS + "telephone": "",
        WSO2_CLAIMS + "userid": "",
        "urn:example:surname": "sn",
        "urn:example:absent": "title",  # not on the entry: no claim
    })
    found = principal(store.authenticate("LDAP", "alice", slapd.openldap.users["alice"].password))
    assert found.claims[WSO2_CLAIMS + "emailaddress"] == ("Alice Anders",)
    assert found.claims["urn:example:surname"] == ("Anders",)
    assert WSO2_CLAIMS + "telephone" not in found.claims
    assert WSO2_CLAIMS + "userid" not in found.claims
    assert "urn:example:absent" not in found.claims


def test_find_and_lookup(slapd: SlapdServer, store: DirectoryUserStore) -> None:
    user = slapd.openldap.users["back\\slash"]
    found = store.find("back\\slash")
    assert found is not None and dn_key(found.dn) == dn_key(user.dn) and found.refusal is None
    assert found.principal.roles == {"LDAP/staff", "LDAP/sts-users"}
    assert store.lookup("LDAP", "back\\slash") == found.principal
    assert store.read_only and store.domain == "LDAP"


def test_roles_of_a_primary_directory_are_bare(slapd: SlapdServer, make_store: StoreFactory) -> None:
    store = make_store(domain_name="PRIMARY")
    found = principal(store.authenticate("PRIMARY", "alice", slapd.openldap.users["alice"].password))
    assert found.qualified_name == "PRIMARY/alice"
    assert found.roles == {"staff", "sts-users"}


def test_a_user_bind_never_changes_the_service_connection(slapd: SlapdServer, store: DirectoryUserStore) -> None:
    """After user binds, the next search still runs as the service account (users bind on their own
    connections): a user's identity would not be allowed to read other entries."""
    assert principal(store.authenticate("LDAP", "alice", slapd.openldap.users["alice"].password))
    assert principal(store.authenticate("LDAP", "bob", slapd.openldap.users["bob"].password))
    assert store.find("carol") is not None


def test_an_active_directory_style_store_over_ldaps_and_starttls(slapd: SlapdServer) -> None:
    for url, start_tls in ((slapd.ldaps_url, False), (slapd.ldap_url, True)):
        store = DirectoryUserStore(store_settings(active_directory_table(slapd, connection_url=url,
                                                                         start_tls=start_tls)))
        try:
            found = principal(store.authenticate("CORP", "alice", slapd.active_directory.users["alice"].password))
            assert found.qualified_name == "CORP/alice"
        finally:
            store.close()


def test_plain_ldap_on_loopback_when_allowed(slapd: SlapdServer, make_store: StoreFactory) -> None:
    store = make_store(connection_url=slapd.ldap_url, allow_insecure_ldap=True, ca_file=None)
    assert principal(store.authenticate("LDAP", "carol", slapd.openldap.users["carol"].password)).name == "carol"


def _join_groups(slapd: SlapdServer, tree: DirectoryTree, user: str, count: int, group_class: str) -> None:
    admin = slapd.connect(slapd.ldap_url, start_tls=True)
    admin.simple_bind_s(tree.admin_dn, tree.admin_password)
    try:
        member = tree.users[user].dn.encode()
        for i in range(count):
            admin.add_s(f"cn=bulk-{i},{tree.group_search_base}",
                        [("objectClass", [group_class.encode()]), ("cn", [f"bulk-{i}".encode()]), ("member", [member])])
    finally:
        admin.unbind_s()


def test_groups_are_read_page_by_page_past_the_servers_answer_limit(tmp_path: Path) -> None:
    """The AD-shaped tree answers at most 1000 entries to a search, as Active Directory's MaxPageSize does, and
    any number page by page (RFC 2696): a user in 1100 groups logs in with all of them."""
    with running_slapd(tmp_path / "slapd") as slapd:
        tree = slapd.active_directory
        _join_groups(slapd, tree, "alice", 1100, "group")
        store = DirectoryUserStore(store_settings(active_directory_table(slapd)))
        try:
            user = principal(store.authenticate("CORP", "alice", tree.users["alice"].password))
            assert {f"CORP/bulk-{i}" for i in range(1100)} <= user.roles
        finally:
            store.close()


def test_more_groups_than_the_server_will_page_through_is_a_refusal(tmp_path: Path) -> None:
    """slapd's default limit (500 in all, paged too) cuts the group search short: no roles from a partial list,
    an audited refusal instead of an unexpected error."""
    with running_slapd(tmp_path / "slapd") as slapd:
        tree = slapd.openldap
        _join_groups(slapd, tree, "bob", 510, "groupOfNames")
        store = DirectoryUserStore(store_settings(openldap_table(slapd)))
        try:
            assert store.authenticate("LDAP", "bob", tree.users["bob"].password) == Refusal(
                TOO_MANY_GROUPS, "the user's groups could not all be read", password_checked=True
            )
        finally:
            store.close()


def test_a_second_user_name_on_an_entry_never_names_another_user(slapd: SlapdServer, store: DirectoryUserStore) -> None:
    """``uid`` (like ``cn``) is multi-valued in OpenLDAP's schema: carol's entry given a second uid ``bob``, listed
    first, must not turn carol's login into a principal ``LDAP/bob`` (bob's NameID, bob's lockout key). The
    principal is named by the value the login matched; an entry whose several names none of which was typed is
    refused."""
    tree = slapd.openldap
    carol = tree.users["carol"]
    admin = slapd.connect(slapd.ldap_url, start_tls=True)
    admin.simple_bind_s(tree.admin_dn, tree.admin_password)
    admin.modify_s(carol.dn, [(ldap.MOD_REPLACE, "uid", [b"bob", b"carol"])])
    try:
        [entry] = store._client.search(carol.dn, "(uid=*)", ("uid",))
        assert entry.values("uid") == (b"bob", b"carol")  # the server lists the other name first
        for typed in ("carol", "CAROL"):
            found = principal(store.authenticate("LDAP", typed, carol.password))
            assert found.qualified_name == "LDAP/carol"
        with_mail = make_mail_store(slapd)
        try:
            assert with_mail.authenticate("LDAP", "carol@example.org", carol.password) == Refusal(
                UNUSABLE_NAME, "entry with several user names, none of them the one typed", password_checked=True
            )
            assert principal(
                with_mail.authenticate("LDAP", "alice@example.org", tree.users["alice"].password)
            ).qualified_name == "LDAP/alice"  # one name: whatever matched, the entry's name
        finally:
            with_mail.close()
    finally:
        admin.modify_s(carol.dn, [(ldap.MOD_REPLACE, "uid", [b"carol"])])
        admin.unbind_s()


def make_mail_store(slapd: SlapdServer) -> DirectoryUserStore:
    return DirectoryUserStore(store_settings(openldap_table(
        slapd, user_name_search_filter="(&(objectClass=person)(|(uid=?)(mail=?)))"
    )))
