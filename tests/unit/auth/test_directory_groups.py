"""Tests for sts.auth.directory_groups.GroupResolver: roles from groups, direct and nested, against slapd.

The fixture's groups: ``staff`` ⊂ ``sts-users`` (nesting), ``loop-a`` ↔ ``loop-b`` (a cycle). slapd does not
evaluate AD's in-chain rule (it answers no entries, no error), so the in-chain path must notice and fall back.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from sts.auth.directory_groups import PRIMARY_GROUP_ATTRIBUTES, GroupResolver, primary_group_sid
from sts.auth.ldap_client import DirectoryClient
from sts.config.user_stores import GroupNesting
from tests.servers.directory_data import DOMAIN_USERS_RID, DirectoryTree, sid
from tests.servers.slapd import SlapdServer
from tests.unit.auth.directory_support import SlapdLog, active_directory_table, openldap_table, store_settings

pytestmark = pytest.mark.integration


@pytest.fixture
def clients() -> Iterator[list[DirectoryClient]]:
    made: list[DirectoryClient] = []
    yield made
    for client in made:
        client.close()


def roles(
    slapd: SlapdServer, clients: list[DirectoryClient], kind: str, name: str, primary: bool = False, **overrides: Any
) -> frozenset[str]:
    """The roles of ``name`` found by a resolver over the ``kind`` tree with ``overrides`` (``primary``: the user
    entry carries AD's primary-group attributes, as the store reads it)."""
    table = openldap_table if kind == "openldap" else active_directory_table
    settings = store_settings(table(slapd, **overrides))
    client = DirectoryClient(settings)
    clients.append(client)
    tree: DirectoryTree = slapd.openldap if kind == "openldap" else slapd.active_directory
    attributes = (settings.member_of_attribute,) if settings.member_of_attribute else ()
    attributes += PRIMARY_GROUP_ATTRIBUTES if primary else ()
    [entry] = client.search(tree.users[name].dn, f"({settings.user_name_attribute}=*)", attributes)
    return GroupResolver(settings, client).roles(entry)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("alice", {"staff", "sts-users"}),  # staff ⊂ sts-users
        ("bob", {"sts-users"}),
        ("carol", set()),
        ("dave", {"loop-a", "loop-b"}),  # the cycle ends
        ("*", {"staff", "sts-users"}),
        ("back\\slash", {"staff", "sts-users"}),  # a DN with a backslash, escaped in the member filter
        ("admin)(uid=*", set()),
        ("jürgen", {"staff", "sts-users"}),
    ],
)
def test_recursive_nesting(slapd: SlapdServer, clients: list[DirectoryClient], name: str, expected: set[str]) -> None:
    assert roles(slapd, clients, "openldap", name) == expected == slapd.openldap.transitive_groups(name)


def test_a_cycle_costs_one_search_per_group_not_the_depth_cap(
    slapd: SlapdServer, clients: list[DirectoryClient]
) -> None:
    log = SlapdLog(slapd)
    assert roles(slapd, clients, "openldap", "dave", max_group_depth=32) == {"loop-a", "loop-b"}
    searches = log.searches(slapd.openldap.group_search_base)
    assert len(searches) == 3  # dave → loop-a → loop-b → (loop-a again: already seen) stop
    assert "member=uid=dave," in searches[0]


@pytest.mark.parametrize(("depth", "expected"), [(1, {"staff"}), (2, {"staff", "sts-users"})])
def test_depth_cap(slapd: SlapdServer, clients: list[DirectoryClient], depth: int, expected: set[str]) -> None:
    log = SlapdLog(slapd)
    assert roles(slapd, clients, "openldap", "alice", max_group_depth=depth) == expected
    assert len(log.searches(slapd.openldap.group_search_base)) == depth


def test_group_nesting_none_gives_direct_groups(slapd: SlapdServer, clients: list[DirectoryClient]) -> None:
    assert roles(slapd, clients, "openldap", "alice", group_nesting="none") == {"staff"}
    assert roles(slapd, clients, "active_directory", "alice", group_nesting="none") == {"staff"}


def test_group_name_list_filter_limits_the_groups(slapd: SlapdServer, clients: list[DirectoryClient]) -> None:
    only_staff = "(&(objectClass=groupOfNames)(cn=staff))"
    assert roles(slapd, clients, "openldap", "alice", group_name_list_filter=only_staff) == {"staff"}


def test_other_group_name_attribute(slapd: SlapdServer, clients: list[DirectoryClient]) -> None:
    assert roles(slapd, clients, "active_directory", "jsmith", group_name_attribute="sAMAccountName",
                 group_nesting="recursive") == {"sts-users"}


def test_in_chain_falls_back_when_the_server_ignores_the_rule(
    slapd: SlapdServer, clients: list[DirectoryClient], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="sts.auth")
    log = SlapdLog(slapd)
    tree = slapd.active_directory
    assert roles(slapd, clients, "active_directory", "alice") == {"staff", "sts-users"}
    searches = log.searches(tree.group_search_base)
    assert searches[0] == '"(&(objectClass=group)(?=undefined))"'  # the rule was asked first (slapd: Undefined) ...
    assert len(searches) == 4  # ... then one search per level: staff, sts-users, nothing more
    assert [r.getMessage() for r in caplog.records if r.name == "sts.auth"] == [
        "the directory ignores the in-chain matching rule; expanding nested groups level by level"
    ]


@pytest.mark.parametrize(
    ("nesting", "expected"),
    [("in_chain", {"staff", "sts-users"}), ("recursive", {"staff", "sts-users"}), ("none", {"staff"})],
)
def test_the_primary_group_is_a_direct_group(
    slapd: SlapdServer, clients: list[DirectoryClient], nesting: str, expected: set[str]
) -> None:
    """AD names a user's primary group only by primaryGroupID (pat's is staff, which lists her nowhere)."""
    assert roles(slapd, clients, "active_directory", "pat", group_nesting=nesting) == frozenset()
    assert roles(slapd, clients, "active_directory", "pat", primary=True, group_nesting=nesting) == expected


def test_domain_users_is_a_role_when_the_group_base_holds_it(
    slapd: SlapdServer, clients: list[DirectoryClient]
) -> None:
    base = slapd.active_directory.base_dn
    assert roles(slapd, clients, "active_directory", "alice", primary=True) == {"staff", "sts-users"}
    assert roles(slapd, clients, "active_directory", "alice", primary=True, group_search_base=base) == {
        "Domain Users", "staff", "sts-users"
    }


def test_primary_group_sid() -> None:
    assert primary_group_sid((sid(1101),), "513") == sid(DOMAIN_USERS_RID)
    for user_sid, rid in [((), "513"), ((sid(1101),), ""), ((sid(1101),), "-1"), ((sid(1101),), str(2**32)),
                          ((sid(1101)[:-1],), "513"), ((b"\x01\x00" + bytes(6),), "513")]:
        assert primary_group_sid(user_sid, rid) is None


def test_in_chain_is_trusted_when_there_are_no_back_links_to_contradict_it(
    slapd: SlapdServer, clients: list[DirectoryClient]
) -> None:
    """Without back-links the answer of a server that ignores the rule cannot be checked: no roles. This is why
    ``in_chain`` is the default for Active Directory only, where the rule exists (and memberOf with it)."""
    assert roles(slapd, clients, "active_directory", "alice", member_of_attribute="isMemberOf") == frozenset()


def test_in_chain_with_a_user_in_no_group(slapd: SlapdServer, clients: list[DirectoryClient]) -> None:
    settings = store_settings(active_directory_table(slapd))
    assert settings.group_nesting is GroupNesting.IN_CHAIN
    tree = slapd.active_directory
    client = DirectoryClient(settings)
    clients.append(client)
    [service] = client.search(tree.service_dn, "(objectClass=user)", ("memberOf",))
    assert GroupResolver(settings, client).roles(service) == frozenset()  # svc-sts is in no group


def test_no_group_search_base_no_roles(slapd: SlapdServer, clients: list[DirectoryClient]) -> None:
    settings = store_settings(openldap_table(slapd))
    client = DirectoryClient(settings)
    clients.append(client)
    [entry] = client.search(slapd.openldap.users["alice"].dn, "(uid=*)", ())
    assert GroupResolver(replace(settings, group_search_base=""), client).roles(entry) == frozenset()


@pytest.mark.parametrize("group", ["CORP/sts-users", "CORP／sts-users"])  # ASCII, and a fullwidth look-alike
def test_a_group_named_with_the_domain_separator_is_no_role(
    slapd: SlapdServer, clients: list[DirectoryClient], caplog: pytest.LogCaptureFixture, group: str
) -> None:
    """Qualified by this store's domain, ``CORP/sts-users`` would read as ``LDAP/CORP/sts-users``, and pass an
    ``allowed_roles`` entry meant for CORP's group: such a group is dropped, with a warning."""
    tree = slapd.openldap
    dn = f"cn={group},{tree.group_search_base}"
    admin = slapd.connect(slapd.ldap_url, start_tls=True)
    admin.simple_bind_s(tree.admin_dn, tree.admin_password)
    admin.add_s(dn, [("objectClass", [b"groupOfNames"]), ("cn", [group.encode()]),
                     ("member", [tree.users["bob"].dn.encode()])])
    try:
        with caplog.at_level(logging.WARNING, logger="sts.auth"):
            assert roles(slapd, clients, "openldap", "bob") == {"sts-users"}
        assert any(getattr(r, "group", None) == group for r in caplog.records)
    finally:
        admin.delete_s(dn)
        admin.unbind_s()
