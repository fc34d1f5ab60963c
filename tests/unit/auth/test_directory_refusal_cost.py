"""What a refused directory login costs the directory, counted in the real slapd's own log.

Every refusal costs the round trips of a wrong password (the search and one user bind) and nothing more, so the
time of the answer does not tell an existing account from an unknown name: a refusal decided before the bind
(unknown, ambiguous, an account state, the STS's lock) binds once as a DN that no entry has, and the user's groups
are searched only after a bind that succeeded. The audit reason stays the real one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import ldap
import pytest

from sts.auth.active_directory import DIRECTORY_LOCKED
from sts.auth.directory_store import AMBIGUOUS_USER, DirectoryUserStore
from sts.auth.users import ACCOUNT_LOCKED, UNKNOWN_USER, USER_DISABLED, WRONG_PASSWORD, Principal, Refusal
from sts.config.user_stores import WSO2_CLAIMS
from tests.servers.directory_data import DirectoryTree, dn_key
from tests.servers.slapd import SlapdServer
from tests.unit.auth.directory_support import SlapdLog, active_directory_table, openldap_table, store_settings

pytestmark = pytest.mark.integration

UF_LOCKOUT = 0x10  # msDS-User-Account-Control-Computed: locked out by AD's own lockout


@pytest.fixture
def stores(slapd: SlapdServer) -> Iterator[dict[str, DirectoryUserStore]]:
    """An OpenLDAP store, one with a filter that matches several entries for ``User``, and an AD-shaped store."""
    made = {
        "LDAP": DirectoryUserStore(store_settings(openldap_table(slapd))),
        "AMBIGUOUS": DirectoryUserStore(store_settings(openldap_table(
            slapd, user_name_search_filter="(&(objectClass=person)(sn=?))"
        ))),
        "CORP": DirectoryUserStore(store_settings(active_directory_table(slapd))),
    }
    yield made
    for store in made.values():
        store.close()


def user_binds(slapd: SlapdServer, log: SlapdLog) -> list[str]:
    """The simple binds the log received other than the service accounts' (each new connection binds as one)."""
    services = {dn_key(slapd.openldap.service_dn), dn_key(slapd.active_directory.service_dn)}
    return [dn for dn in log.bound() if dn_key(dn) not in services]


def no_entry_has(tree: DirectoryTree, dn: str) -> bool:
    """Whether ``dn`` lies right under the user search base and is no entry of the tree."""
    key = dn_key(dn)
    return key[1:] == dn_key(tree.user_search_base) and key not in {dn_key(entry_dn) for entry_dn, _ in tree.entries}


def trees(slapd: SlapdServer, domain: str) -> DirectoryTree:
    return slapd.active_directory if domain == "CORP" else slapd.openldap


# domain, typed name, password (None: the user's own), the lock check's answer, the refusal's reason
REFUSALS = [
    ("LDAP", "nobody", "guess-1", False, UNKNOWN_USER),
    ("LDAP", "bob", "guess-1", False, WRONG_PASSWORD),
    ("LDAP", "alice", None, True, ACCOUNT_LOCKED),  # the STS's lock, the right password
    ("AMBIGUOUS", "User", "guess-1", False, AMBIGUOUS_USER),
    ("CORP", "nobody", "guess-1", False, UNKNOWN_USER),
    ("CORP", "dana", None, False, USER_DISABLED),  # refused by the account state, the right password
    ("CORP", "bob", "guess-1", False, WRONG_PASSWORD),
    ("CORP", "ALICE", None, True, ACCOUNT_LOCKED),
]


@pytest.mark.parametrize(("domain", "name", "password", "locked", "reason"), REFUSALS)
def test_every_refusal_costs_one_search_and_one_bind(
    slapd: SlapdServer, stores: dict[str, DirectoryUserStore], domain: str, name: str, password: str | None,
    locked: bool, reason: str,
) -> None:
    tree = trees(slapd, domain)
    user = tree.users.get(name.casefold())
    secret = password if password is not None else tree.users[name.casefold()].password
    log = SlapdLog(slapd)
    verdict = stores[domain].authenticate(domain, name, secret, locked=lambda _account: locked)
    assert isinstance(verdict, Refusal) and verdict.reason == reason  # the audit keeps the real reason
    assert len(log.searches(tree.user_search_base)) == 1
    (bound,) = user_binds(slapd, log)  # exactly one bind beyond the service account's
    if reason == WRONG_PASSWORD:
        assert user is not None and dn_key(bound) == dn_key(user.dn)
    else:
        assert no_entry_has(tree, bound)  # a name no entry has: no account pays for it
    assert log.searches(tree.group_search_base) == []  # no group search for a refused login


@pytest.mark.parametrize(("name", "reason"), [
    ("nobody@corp.example", UNKNOWN_USER),
    ("bob@corp.example", WRONG_PASSWORD),  # bob's explicit UPN: it matches as typed
    ("uma@corp.example", WRONG_PASSWORD),  # uma's implicit UPN only: found by her account name
])
def test_an_implicit_upn_costs_the_same_searches_whether_it_exists(
    slapd: SlapdServer, stores: dict[str, DirectoryUserStore], name: str, reason: str
) -> None:
    """A name at the domain's DNS name may be an implicit UPN: its account part is searched too, whether or not
    the name matched as typed, so an existing UPN does not answer a round trip sooner than an unknown one."""
    tree = slapd.active_directory
    log = SlapdLog(slapd)
    verdict = stores["CORP"].authenticate("CORP", name, "guess-1")
    assert isinstance(verdict, Refusal) and verdict.reason == reason
    assert len(log.searches(tree.user_search_base)) == 2
    assert len(user_binds(slapd, log)) == 1 and log.searches(tree.group_search_base) == []


def test_a_locked_active_directory_account_costs_what_a_wrong_password_costs(
    slapd: SlapdServer, stores: dict[str, DirectoryUserStore]
) -> None:
    """AD's own lockout (computed LOCKOUT) refuses before the bind: the bind still happens, as no one."""
    tree = slapd.active_directory
    jsmith = tree.users["jsmith"]
    with _computed(slapd, tree, jsmith.dn, UF_LOCKOUT):
        log = SlapdLog(slapd)
        verdict = stores["CORP"].authenticate("CORP", "jsmith", jsmith.password)
        assert isinstance(verdict, Refusal) and verdict.reason == DIRECTORY_LOCKED
        (bound,) = user_binds(slapd, log)
        assert no_entry_has(tree, bound) and log.searches(tree.group_search_base) == []
        assert len(log.searches(tree.user_search_base)) == 1
    wrong = SlapdLog(slapd)
    assert isinstance(stores["CORP"].authenticate("CORP", "jsmith", "guess-1"), Refusal)
    assert [dn_key(dn) for dn in user_binds(slapd, wrong)] == [dn_key(jsmith.dn)]
    assert len(wrong.searches(tree.user_search_base)) == 1 and wrong.searches(tree.group_search_base) == []


def test_each_refusal_binds_the_same_decoy_name(slapd: SlapdServer, stores: dict[str, DirectoryUserStore]) -> None:
    """One name per store, generated when the store is made: unguessable, and recognisable in the directory's log."""
    log = SlapdLog(slapd)
    for name in ("nobody", "somebody-else"):
        stores["LDAP"].authenticate("LDAP", name, "guess-1")
    first, second = user_binds(slapd, log)
    assert first == second and first.startswith("cn=sts-no-such-user-")
    assert len(first.partition(",")[0]) == len("cn=sts-no-such-user-") + 32


@pytest.mark.parametrize("domain", ["LDAP", "CORP"])
def test_a_success_reads_the_groups_after_its_bind(
    slapd: SlapdServer, stores: dict[str, DirectoryUserStore], domain: str
) -> None:
    tree = trees(slapd, domain)
    alice = tree.users["alice"]
    log = SlapdLog(slapd)
    found = stores[domain].authenticate(domain, "alice", alice.password)
    assert isinstance(found, Principal)
    assert found.roles == {f"{domain}/{group}" for group in tree.transitive_groups("alice")} != set()
    assert found.claims[WSO2_CLAIMS + "givenname"] == ("Alice",)
    lines = log.lines()
    bind = next(i for i, line in enumerate(lines) if f'BIND dn="{alice.dn}"'.casefold() in line.casefold())
    groups = [i for i, line in enumerate(lines) if f'SRCH base="{tree.group_search_base}"' in line]
    assert groups and min(groups) > bind  # the groups were searched, and only once the password was proven


@contextmanager
def _computed(slapd: SlapdServer, tree: DirectoryTree, dn: str, value: int) -> Iterator[None]:
    """``msDS-User-Account-Control-Computed`` set on an entry for the block (what AD computes for a lockout)."""
    attribute = "msDS-User-Account-Control-Computed"
    admin = slapd.connect(slapd.ldap_url, start_tls=True)
    admin.simple_bind_s(tree.admin_dn, tree.admin_password)
    admin.modify_s(dn, [(ldap.MOD_REPLACE, attribute, [str(value).encode()])])
    try:
        yield
    finally:
        admin.modify_s(dn, [(ldap.MOD_DELETE, attribute, None)])
        admin.unbind_s()
