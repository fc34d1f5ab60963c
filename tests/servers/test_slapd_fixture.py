"""The slapd fixture works with python-ldap the way the directory user stores will use it.

Each test states a fact the product relies on: verified TLS (StartTLS and LDAPS), search-then-bind with RFC 4515
escaped filters, the unauthenticated bind an empty password makes, memberOf back-links and nested groups, and a
directory that goes down or hangs and comes back.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import ldap
import pytest
from ldap.dn import str2dn
from ldap.filter import escape_filter_chars

from tests.servers.certs import write_ca_file
from tests.servers.directory_data import (
    ALICE_GUID,
    BOB_GUID,
    DirectoryTree,
    DnKey,
    active_directory_tree,
    dn_key,
    openldap_tree,
)
from tests.servers.slapd import SlapdServer

pytestmark = pytest.mark.integration

OPENLDAP_FILTER = "(&(objectClass=person)(uid={}))"
AD_FILTER = "(&(objectClass=user)(|(sAMAccountName={0})(userPrincipalName={0})))"
IN_CHAIN = "1.2.840.113556.1.4.1941"  # LDAP_MATCHING_RULE_IN_CHAIN (AD only)
BIT_AND = "1.2.840.113556.1.4.803"  # LDAP_MATCHING_RULE_BIT_AND


Entries = list[tuple[str, dict[str, list[bytes]]]]


def trees(slapd: SlapdServer) -> tuple[DirectoryTree, DirectoryTree]:
    return slapd.openldap, slapd.active_directory


def service(
    slapd: SlapdServer, tree: DirectoryTree, *, url: str | None = None, start_tls: bool = False, timeout: float = 2.0
) -> ldap.ldapobject.LDAPObject:
    """A connection bound as the tree's service account."""
    conn = slapd.connect(url, start_tls=start_tls, timeout=timeout)
    conn.simple_bind_s(tree.service_dn, tree.service_password)
    return conn


def find_users(conn: ldap.ldapobject.LDAPObject, tree: DirectoryTree, name: str) -> Entries:
    """Search step of search-then-bind: the service account looks the login name up with an escaped filter."""
    template = OPENLDAP_FILTER if tree.kind == "openldap" else AD_FILTER
    found = conn.search_ext_s(
        tree.user_search_base, ldap.SCOPE_SUBTREE, template.format(escape_filter_chars(name)), ["memberOf"],
        sizelimit=2,
    )
    return [(dn, attrs) for dn, attrs in found if dn is not None]  # (None, refs) are continuation references


def user_cases() -> list[tuple[str, str]]:
    return [(tree.kind, name) for tree in (openldap_tree(), active_directory_tree()) for name in tree.users]


def tree_of(slapd: SlapdServer, kind: str) -> DirectoryTree:
    return slapd.openldap if kind == "openldap" else slapd.active_directory


# --- TLS -------------------------------------------------------------------------------------------------------


def test_starttls_verified_against_the_test_ca(slapd: SlapdServer) -> None:
    conn = service(slapd, slapd.openldap, url=slapd.ldap_url, start_tls=True)
    assert conn.whoami_s() == f"dn:{slapd.openldap.service_dn}"
    assert conn.get_option(ldap.OPT_X_TLS_VERSION) in {"TLS1.2", "TLS1.3", "TLSv1.2", "TLSv1.3"}  # GnuTLS, OpenSSL


def test_starttls_with_another_ca_fails(slapd: SlapdServer, tmp_path: Path) -> None:
    other = write_ca_file(tmp_path / "other-ca.pem")
    with pytest.raises(ldap.CONNECT_ERROR):
        slapd.connect(slapd.ldap_url, ca_file=other, start_tls=True)


def test_ldaps_verified_against_the_test_ca(slapd: SlapdServer) -> None:
    conn = service(slapd, slapd.active_directory, url=slapd.ldaps_url)
    [(dn, _)] = conn.search_s(slapd.active_directory.service_dn, ldap.SCOPE_BASE, "(objectClass=*)", ["1.1"])
    assert dn_key(dn) == dn_key(slapd.active_directory.service_dn)


def test_the_ad_shaped_tree_refuses_who_am_i_as_samba_does(slapd: SlapdServer) -> None:
    """Samba 4.17 answers "Who am I?" (RFC 4532) with protocolError; this tree refuses it too."""
    with pytest.raises(ldap.UNWILLING_TO_PERFORM):
        service(slapd, slapd.active_directory).whoami_s()
    assert service(slapd, slapd.openldap).whoami_s() == f"dn:{slapd.openldap.service_dn}"


def test_ldaps_with_another_ca_fails(slapd: SlapdServer, tmp_path: Path) -> None:
    conn = slapd.connect(slapd.ldaps_url, ca_file=write_ca_file(tmp_path / "other-ca.pem"))
    with pytest.raises(ldap.SERVER_DOWN):
        conn.simple_bind_s(slapd.openldap.service_dn, slapd.openldap.service_password)


# --- search, then bind ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "name"), user_cases())
def test_service_account_finds_each_user_with_an_escaped_filter(slapd: SlapdServer, kind: str, name: str) -> None:
    tree = tree_of(slapd, kind)
    found = find_users(service(slapd, tree), tree, name)
    assert [dn_key(dn) for dn, _ in found] == [dn_key(tree.users[name].dn)]


def test_ad_user_found_by_user_principal_name(slapd: SlapdServer) -> None:
    tree = slapd.active_directory
    found = find_users(service(slapd, tree), tree, "JÜRGEN@corp.example")  # caseIgnoreMatch, as AD
    assert [dn_key(dn) for dn, _ in found] == [dn_key(tree.users["jürgen"].dn)]


def test_unescaped_star_matches_every_user(slapd: SlapdServer) -> None:
    """Why escaping matters: ``uid=*`` is a presence filter, ``uid=\\2a`` is the user named ``*``."""
    conn = service(slapd, slapd.openldap)
    everyone = conn.search_s(slapd.openldap.user_search_base, ldap.SCOPE_SUBTREE, OPENLDAP_FILTER.format("*"))
    assert len(everyone) == len(slapd.openldap.users)
    assert len(find_users(conn, slapd.openldap, "*")) == 1


@pytest.mark.parametrize("name", ["admin)(uid=*", "a\x00b", "alice*", "*)(objectClass=*"])
def test_escaped_injection_attempts_find_only_their_literal_name(slapd: SlapdServer, name: str) -> None:
    tree = slapd.openldap
    found = find_users(service(slapd, tree), tree, name)
    expected = [dn_key(tree.users[name].dn)] if name in tree.users else []
    assert [dn_key(dn) for dn, _ in found] == expected


def test_escape_mode_1_loses_non_ascii_names(slapd: SlapdServer) -> None:
    """escape_filter_chars(mode 1) writes ``ü`` as ``\\fc`` (a code point, not UTF-8): use mode 0."""
    conn = service(slapd, slapd.openldap)
    base = slapd.openldap.user_search_base
    assert conn.search_s(base, ldap.SCOPE_SUBTREE, f"(uid={escape_filter_chars('jürgen', 1)})") == []
    utf8_bytes = "".join(f"\\{byte:02x}" for byte in "jürgen".encode())
    assert len(conn.search_s(base, ldap.SCOPE_SUBTREE, f"(uid={utf8_bytes})")) == 1


def test_service_account_cannot_read_passwords(slapd: SlapdServer) -> None:
    for tree in trees(slapd):
        conn = service(slapd, tree)
        entries = conn.search_s(tree.user_search_base, ldap.SCOPE_SUBTREE, "(objectClass=person)", ["userPassword"])
        assert entries and all("userPassword" not in attrs for _, attrs in entries)


@pytest.mark.parametrize(("kind", "name"), user_cases())
def test_user_bind_with_right_and_wrong_password(slapd: SlapdServer, kind: str, name: str) -> None:
    user = tree_of(slapd, kind).users[name]
    conn = slapd.connect()
    conn.simple_bind_s(user.dn, user.password)
    if kind == "openldap":  # the AD-shaped tree refuses "Who am I?", as Samba does
        assert dn_key(conn.whoami_s().removeprefix("dn:")) == dn_key(user.dn)
    with pytest.raises(ldap.INVALID_CREDENTIALS):
        slapd.connect().simple_bind_s(user.dn, user.password + "x")


@pytest.mark.parametrize("dn", ["uid=alice,ou=people,dc=example,dc=org", "uid=nobody,ou=people,dc=example,dc=org"])
def test_empty_password_is_an_unauthenticated_bind_that_succeeds(slapd: SlapdServer, dn: str) -> None:
    """RFC 4513 §5.1.2: DN + empty password binds as anonymous, for existing and unknown DNs alike (AD's
    behaviour; slapd here runs with ``allow bind_anon_dn``). A "successful bind" is no proof of a password:
    the product refuses empty passwords before binding."""
    conn = slapd.connect()
    conn.simple_bind_s(dn, "")
    assert conn.whoami_s() == ""  # anonymous
    with pytest.raises(ldap.NO_SUCH_OBJECT):  # anonymous may read nothing: the ACL hides even the base entry
        conn.search_s(slapd.openldap.user_search_base, ldap.SCOPE_SUBTREE, "(uid=alice)")


# --- groups -----------------------------------------------------------------------------------------------------


def member_of(conn: ldap.ldapobject.LDAPObject, dn: str) -> list[str]:
    [(_, attrs)] = conn.search_s(dn, ldap.SCOPE_BASE, "(objectClass=*)", ["memberOf"])
    return [value.decode() for value in attrs.get("memberOf", [])]


def groups_by_recursion(conn: ldap.ldapobject.LDAPObject, user_dn: str, depth_cap: int = 8) -> set[str]:
    """Nested roles from memberOf back-links, following groups' own memberOf with a visited set and depth cap."""
    seen: dict[DnKey, str] = {}
    frontier = [user_dn]
    for _ in range(depth_cap):
        frontier = [g for dn in frontier for g in member_of(conn, dn) if dn_key(g) not in seen]
        for group in frontier:
            seen[dn_key(group)] = group
        if not frontier:
            break
    return {str2dn(dn)[0][0][1] for dn in seen.values()}


@pytest.mark.parametrize(("kind", "name"), user_cases())
def test_member_of_lists_direct_groups(slapd: SlapdServer, kind: str, name: str) -> None:
    tree = tree_of(slapd, kind)
    user = tree.users[name]
    direct = member_of(service(slapd, tree), user.dn)
    assert sorted(map(dn_key, direct)) == sorted(dn_key(tree.groups[g].dn) for g in user.groups)


def test_every_member_link_has_its_back_link(slapd: SlapdServer) -> None:
    """memberOf of every entry, users and groups (the loop-a/loop-b cycle included), mirrors the groups' member."""
    for tree in trees(slapd):
        conn = service(slapd, tree)
        expected: dict[DnKey, set[DnKey]] = {}
        for group in tree.groups.values():
            for member in group.members:
                expected.setdefault(dn_key(member), set()).add(dn_key(group.dn))
        for member, groups in expected.items():
            dn = next(m for g in tree.groups.values() for m in g.members if dn_key(m) == member)
            assert {dn_key(g) for g in member_of(conn, dn)} == groups, dn


@pytest.mark.parametrize(
    ("kind", "name", "expected"),
    [
        ("openldap", "alice", {"staff", "sts-users"}),
        ("openldap", "bob", {"sts-users"}),
        ("openldap", "carol", set()),
        ("openldap", "dave", {"loop-a", "loop-b"}),  # a cycle ends
        ("active_directory", "alice", {"staff", "sts-users"}),
        ("active_directory", "jsmith", {"sts-users"}),
    ],
)
def test_nested_groups_by_recursive_lookup(slapd: SlapdServer, kind: str, name: str, expected: set[str]) -> None:
    tree = tree_of(slapd, kind)
    assert groups_by_recursion(service(slapd, tree), tree.users[name].dn) == expected
    assert tree.transitive_groups(name) == expected


def test_member_filter_finds_direct_groups(slapd: SlapdServer) -> None:
    tree = slapd.openldap
    conn = service(slapd, tree)
    dn = tree.users["back\\slash"].dn
    found = conn.search_s(tree.group_search_base, ldap.SCOPE_SUBTREE, f"(member={escape_filter_chars(dn)})", ["cn"])
    assert [attrs["cn"] for _, attrs in found] == [[b"staff"]]


def test_in_chain_rule_finds_nothing_on_slapd(slapd: SlapdServer) -> None:
    """slapd does not implement AD's rule 1.2.840.113556.1.4.1941: no error, no entries. Tests of the in-chain
    path therefore need a real AD; against slapd the product must use memberOf or recursion."""
    tree = slapd.active_directory
    dn = escape_filter_chars(tree.users["alice"].dn)
    found = service(slapd, tree).search_s(tree.group_search_base, ldap.SCOPE_SUBTREE, f"(member:{IN_CHAIN}:={dn})")
    assert found == []


# --- Active Directory attributes --------------------------------------------------------------------------------


def test_disabled_account_found_by_the_bitwise_and_rule(slapd: SlapdServer) -> None:
    tree = slapd.active_directory
    conn = service(slapd, tree)
    found = conn.search_s(tree.user_search_base, ldap.SCOPE_SUBTREE, f"(userAccountControl:{BIT_AND}:=2)",
                          ["sAMAccountName", "userAccountControl"])
    assert [(attrs["sAMAccountName"], attrs["userAccountControl"]) for _, attrs in found] == [([b"dana"], [b"514"])]


def test_object_guid_is_binary_and_searchable_by_escaped_bytes(slapd: SlapdServer) -> None:
    tree = slapd.active_directory
    conn = service(slapd, tree)
    [(_, alice)] = conn.search_s(tree.users["alice"].dn, ldap.SCOPE_BASE, "(objectClass=user)", ["objectGUID"])
    assert alice["objectGUID"] == [ALICE_GUID]
    escaped = "".join(f"\\{byte:02x}" for byte in BOB_GUID)
    found = conn.search_s(tree.user_search_base, ldap.SCOPE_SUBTREE, f"(objectGUID={escaped})", ["sAMAccountName"])
    assert [attrs["sAMAccountName"] for _, attrs in found] == [[b"bob"]]


def test_account_state_attributes(slapd: SlapdServer) -> None:
    tree = slapd.active_directory
    conn = service(slapd, tree)
    attrs = ["pwdLastSet", "accountExpires", "msDS-User-Account-Control-Computed"]
    state = {
        name: conn.search_s(tree.users[name].dn, ldap.SCOPE_BASE, "(objectClass=user)", attrs)[0][1]
        for name in ("alice", "eve", "max")
    }
    assert state["alice"]["accountExpires"] == [b"9223372036854775807"]
    assert state["eve"]["accountExpires"] == [b"132223104000000000"]
    assert state["max"]["pwdLastSet"] == [b"0"]
    assert state["max"]["msDS-User-Account-Control-Computed"] == [b"8388608"]


# --- down and hanging -------------------------------------------------------------------------------------------


def test_stop_then_start_on_the_same_ports(slapd: SlapdServer) -> None:
    ports, old_pid = (slapd.ldap_port, slapd.ldaps_port), slapd.pid
    with slapd.stopped():
        assert slapd.pid is None
        with pytest.raises(ldap.SERVER_DOWN):
            slapd.connect().simple_bind_s(slapd.openldap.service_dn, slapd.openldap.service_password)
    assert (slapd.ldap_port, slapd.ldaps_port) == ports and slapd.pid not in {None, old_pid}
    conn = service(slapd, slapd.openldap, url=slapd.ldap_url, start_tls=True)
    assert member_of(conn, slapd.openldap.users["alice"].dn) == [slapd.openldap.groups["staff"].dn]


def test_paused_directory_times_out_within_the_operation_timeout_and_recovers(slapd: SlapdServer) -> None:
    """OPT_TIMEOUT bounds each operation on an open connection and the StartTLS request of a new one."""
    timeout, tree = 1.0, slapd.openldap
    bound = service(slapd, tree, timeout=timeout)
    with slapd.paused():
        started = time.monotonic()
        with pytest.raises(ldap.TIMEOUT):
            bound.search_s(tree.user_search_base, ldap.SCOPE_SUBTREE, "(uid=alice)")
        assert time.monotonic() - started < timeout + 1.0
        started = time.monotonic()
        with pytest.raises(ldap.TIMEOUT):  # the kernel accepts the TCP connection; the extended operation waits
            slapd.connect(slapd.ldap_url, start_tls=True, timeout=timeout)
        assert time.monotonic() - started < timeout + 1.0
    # after a TIMEOUT the old connection has an unanswered message outstanding: a new one is used
    fresh = service(slapd, tree, timeout=timeout)
    assert len(find_users(fresh, tree, "alice")) == 1


def connect_with_deadline(slapd: SlapdServer, deadline: float) -> ldap.ldapobject.LDAPObject:
    """TCP connect, StartTLS and bind on a socket we own, shut down by a timer at ``deadline``: every step is
    bounded, the TLS handshake included (libldap's own timeouts do not cover it, see below)."""
    sock = socket.create_connection(("127.0.0.1", slapd.ldap_port), timeout=deadline)
    sock.settimeout(None)  # libldap expects a blocking socket
    guard = socket.socket(fileno=os.dup(sock.fileno()))
    timer = threading.Timer(deadline, guard.shutdown, (socket.SHUT_RDWR,))
    timer.start()
    try:
        conn = ldap.initialize(slapd.ldap_url, fileno=sock.fileno())
        sock.detach()  # the LDAPObject owns the descriptor now
        conn.set_option(ldap.OPT_REFERRALS, 0)
        conn.set_option(ldap.OPT_X_TLS_CACERTFILE, str(slapd.ca_file))
        conn.set_option(ldap.OPT_X_TLS_REQUIRE_CERT, ldap.OPT_X_TLS_DEMAND)
        conn.set_option(ldap.OPT_X_TLS_NEWCTX, 0)
        conn.start_tls_s()
        conn.simple_bind_s(slapd.openldap.service_dn, slapd.openldap.service_password)
        return conn
    finally:
        timer.cancel()
        guard.close()


def test_own_socket_with_a_watchdog_bounds_a_new_connection_to_a_paused_directory(slapd: SlapdServer) -> None:
    assert connect_with_deadline(slapd, 2.0).whoami_s() == f"dn:{slapd.openldap.service_dn}"
    with slapd.paused():
        started = time.monotonic()
        with pytest.raises(ldap.SERVER_DOWN):
            connect_with_deadline(slapd, 1.0)
        assert time.monotonic() - started < 2.0
    assert connect_with_deadline(slapd, 2.0).whoami_s() == f"dn:{slapd.openldap.service_dn}"


LDAPS_PROBE = """
import sys, ldap
conn = ldap.initialize(sys.argv[1])
for option, value in ((ldap.OPT_NETWORK_TIMEOUT, 1.0), (ldap.OPT_TIMEOUT, 1.0),
                      (ldap.OPT_X_TLS_CACERTFILE, sys.argv[2]), (ldap.OPT_X_TLS_REQUIRE_CERT, ldap.OPT_X_TLS_DEMAND),
                      (ldap.OPT_X_TLS_NEWCTX, 0)):
    conn.set_option(option, value)
try:
    conn.simple_bind_s()
except ldap.LDAPError as exc:
    print(type(exc).__name__)
"""


@pytest.mark.skipif(ldap.VENDOR_VERSION >= 20600, reason="libldap 2.6 bounds the TLS handshake by OPT_NETWORK_TIMEOUT")
def test_new_ldaps_connection_to_a_paused_directory_is_not_bounded_by_libldap_2_5(slapd: SlapdServer) -> None:
    """Debian 12's libldap 2.5 is built without LDAP_USE_NON_BLOCKING_TLS: the LDAPS handshake with a server
    that accepted the TCP connection but does not answer loops (busy) past OPT_NETWORK_TIMEOUT and OPT_TIMEOUT.
    The product must not open LDAPS connections on the request path without its own deadline (see above and
    docs/decisions/ldap-client.md). Run in a child process, killed after 3 s."""
    with slapd.paused():
        probe = subprocess.Popen([sys.executable, "-c", LDAPS_PROBE, slapd.ldaps_url, str(slapd.ca_file)],
                                 stdout=subprocess.DEVNULL)
        try:
            with pytest.raises(subprocess.TimeoutExpired):
                probe.wait(timeout=3.0)
        finally:
            probe.kill()
            probe.wait()


ASYNC_PROBE = """
import sys, time, ldap
url, ca_file, start_tls, rounds = sys.argv[1], sys.argv[2], sys.argv[3] == "1", int(sys.argv[4])
for _ in range(rounds):
    conn = ldap.initialize(url)
    for option, value in ((ldap.OPT_CONNECT_ASYNC, int(sys.argv[7])), (ldap.OPT_NETWORK_TIMEOUT, 1.0),
                          (ldap.OPT_TIMEOUT, 1.0), (ldap.OPT_X_TLS_CACERTFILE, ca_file),
                          (ldap.OPT_X_TLS_REQUIRE_CERT, ldap.OPT_X_TLS_DEMAND),
                          (ldap.OPT_X_TLS_NEWCTX, 0)):
        conn.set_option(option, value)
    started = time.monotonic()
    try:
        if start_tls:
            conn.start_tls_s()
        conn.simple_bind_s(sys.argv[5], sys.argv[6])
        print("bound", conn.whoami_s(), flush=True)
    except ldap.LDAPError as exc:
        elapsed = time.monotonic() - started
        when = "at-once" if elapsed < 0.9 else "at-timeout" if elapsed < 2.5 else f"after-{elapsed:.1f}s"
        print(type(exc).__name__, when, flush=True)
"""


def async_probe(slapd: SlapdServer, url: str, *, ca_file: Path | None = None, start_tls: bool = False,
                rounds: int = 1, connect_async: bool = True) -> list[str]:
    """Run ASYNC_PROBE in a child process killed after 10 s (a hang must fail the test, not block it)."""
    tree = slapd.openldap
    args = [url, str(ca_file or slapd.ca_file), "1" if start_tls else "0", str(rounds), tree.service_dn,
            tree.service_password, "1" if connect_async else "0"]
    done = subprocess.run([sys.executable, "-c", ASYNC_PROBE, *args], capture_output=True, text=True, timeout=10.0,
                          check=True)
    return done.stdout.splitlines()


@pytest.mark.skipif(ldap.VENDOR_VERSION >= 20600, reason="libldap 2.5 only: on 2.6 the product does not set it")
def test_connect_async_bounds_the_ldaps_handshake_by_the_network_timeout(slapd: SlapdServer, tmp_path: Path) -> None:
    """With ``OPT_CONNECT_ASYNC = 1`` libldap 2.5 applies OPT_NETWORK_TIMEOUT to the LDAPS handshake too: a new
    connection to a paused slapd fails with SERVER_DOWN after the 1 s timeout (measured 1.0 s), every time, instead
    of spinning (above).
    LDAPS and StartTLS still work, and a certificate from another CA is still refused. sts/auth/ldap_client.py
    relies on this (docs/decisions/ldap-client.md, rule 2)."""
    bound = f"bound dn:{slapd.openldap.service_dn}"
    assert async_probe(slapd, slapd.ldaps_url) == [bound]
    assert async_probe(slapd, slapd.ldap_url, start_tls=True) == [bound]
    other = write_ca_file(tmp_path / "other-ca.pem")
    assert async_probe(slapd, slapd.ldaps_url, ca_file=other) == ["SERVER_DOWN at-once"]
    assert async_probe(slapd, slapd.ldap_url, ca_file=other, start_tls=True) == ["CONNECT_ERROR at-once"]
    with slapd.paused():
        assert async_probe(slapd, slapd.ldaps_url, rounds=3) == ["SERVER_DOWN at-timeout"] * 3
        assert async_probe(slapd, slapd.ldap_url, start_tls=True) == ["TIMEOUT at-timeout"]
    assert async_probe(slapd, slapd.ldaps_url) == [bound]


@pytest.mark.skipif(ldap.VENDOR_VERSION < 20600, reason="libldap 2.6 (Debian 13, built with OpenSSL)")
def test_libldap_2_6_bounds_the_ldaps_handshake_without_connect_async(slapd: SlapdServer, tmp_path: Path) -> None:
    """libldap 2.6 bounds the LDAPS handshake by OPT_NETWORK_TIMEOUT by itself: against a paused slapd a new
    connection fails with SERVER_DOWN after the 1 s timeout. With OPT_CONNECT_ASYNC = 1 the same handshake never ends
    (the probe is killed), which is why sts/auth/ldap_client.py sets that option on libldap 2.5 only."""
    bound = f"bound dn:{slapd.openldap.service_dn}"
    assert async_probe(slapd, slapd.ldaps_url, connect_async=False) == [bound]
    assert async_probe(slapd, slapd.ldap_url, start_tls=True, connect_async=False) == [bound]
    other = write_ca_file(tmp_path / "other-ca.pem")
    assert async_probe(slapd, slapd.ldaps_url, ca_file=other, connect_async=False) == ["SERVER_DOWN at-once"]
    assert async_probe(slapd, slapd.ldap_url, ca_file=other, start_tls=True, connect_async=False) == [
        "CONNECT_ERROR at-once"]
    with slapd.paused():
        assert async_probe(slapd, slapd.ldaps_url, rounds=3, connect_async=False) == ["SERVER_DOWN at-timeout"] * 3
        assert async_probe(slapd, slapd.ldap_url, start_tls=True, connect_async=False) == ["TIMEOUT at-timeout"]
        with pytest.raises(subprocess.TimeoutExpired):
            async_probe(slapd, slapd.ldaps_url)  # OPT_CONNECT_ASYNC = 1: the handshake hangs
    assert async_probe(slapd, slapd.ldaps_url, connect_async=False) == [bound]
