"""The benchmark's directory: the test suite's slapd (``tests/servers/slapd.py``) with the bench's login users.

The login users (``bench0000`` …) share the instance's password and belong to the group ``admin`` (the role the
STS allows by default); filler entries make the user search run against a populated tree. The directory store's
own cost with the credential cache off is measured in-process here: search + bind (+ the group search) per login,
on loopback, with pooled connections, reported as p50/p99 milliseconds.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

from sts.auth.directory_store import DirectoryUserStore
from sts.auth.users import Principal
from sts.config.loader import load_settings
from tests.servers.directory_data import DirectoryTree, TreeBuilder, active_directory_tree, ssha
from tests.servers.slapd import SlapdServer, running_slapd

BASE = "dc=example,dc=org"
SERVICE_PASSWORD = "bench-service-secret"  # noqa: S105 - a throwaway directory on loopback
DOMAIN = "LDAP"


def bench_tree(logins: list[str], password: str, fillers: int) -> DirectoryTree:
    """``dc=example,dc=org`` with the login users (group ``admin``) and ``fillers`` other users."""
    people, groups, services = f"ou=people,{BASE}", f"ou=groups,{BASE}", f"ou=services,{BASE}"
    b = TreeBuilder(BASE)
    b.add(BASE, objectClass=["dcObject", "organization"], dc="example", o="Example Org")
    for ou in ("people", "groups", "services"):
        b.add(f"ou={ou},{BASE}", objectClass="organizationalUnit", ou=ou)
    service_dn = f"cn=sts-service,{services}"
    b.add(service_dn, objectClass=["applicationProcess", "simpleSecurityObject"], cn="sts-service",
          userPassword=ssha(SERVICE_PASSWORD))
    person = ["inetOrgPerson", "organizationalPerson", "person", "top"]
    names = logins + [f"filler{i:05d}" for i in range(fillers)]
    for name in names:
        attrs = {"objectClass": person, "uid": name, "cn": f"User {name}", "sn": name, "givenName": "Bench",
                 "mail": f"{name}@bench.example.org", "o": "Bench Org"}
        if name in logins:
            b.user(name, password, f"uid={name},{people}", **attrs)
        else:
            b.add(f"uid={name},{people}", **attrs)
    b.group("admin", f"cn=admin,{groups}", [f"uid={name},{people}" for name in logins], objectClass="groupOfNames")
    return DirectoryTree("openldap", BASE, f"cn=admin,{BASE}", "bench-admin-secret", service_dn, SERVICE_PASSWORD,
                         people, groups, "uid", b.finish_users(), b.groups, tuple(b.entries))


@contextlib.contextmanager
def running_directory(work: Path, logins: list[str], password: str, fillers: int = 2000) -> Iterator[SlapdServer]:
    """A slapd on free loopback ports holding :func:`bench_tree`, stopped when the block ends."""
    with running_slapd(work / "slapd", (bench_tree(logins, password, fillers), active_directory_tree())) as server:
        yield server


def store_toml(server: SlapdServer) -> str:
    """The ``[[user_stores]]`` table an operator would write for it (LDAPS, the password from the environment)."""
    tree = server.openldap
    return f"""
[[user_stores]]
domain_name = "{DOMAIN}"
type = "read_only_ldap"
connection_url = "{server.ldaps_url}"
connection_name = "{tree.service_dn}"
user_search_base = "{tree.user_search_base}"
group_search_base = "{tree.group_search_base}"
ca_file = "{server.ca_file}"
"""


def round_trips(config: Path, logins: list[str], password: str, count: int = 400) -> dict[str, float]:
    """p50/p99 milliseconds of one directory login (search, bind, group search) through the product's store."""
    settings = load_settings(config, {"STS_USER_STORE_LDAP_PASSWORD": SERVICE_PASSWORD})
    (store_settings,) = [s for s in settings.user_stores if s.domain_name == DOMAIN]
    store = DirectoryUserStore(store_settings)
    timings = []
    try:
        for index in range(count):
            started = time.perf_counter()
            verdict = store.authenticate(DOMAIN, logins[index % len(logins)], password)
            timings.append((time.perf_counter() - started) * 1000)
            if not isinstance(verdict, Principal):
                raise RuntimeError(f"directory login refused: {verdict}")
    finally:
        store.close()
    timings = timings[len(logins):]  # the first login of each user opens the pooled connections
    quantiles = statistics.quantiles(timings, n=100)
    return {"logins": float(len(timings)), "p50_ms": statistics.median(timings), "p99_ms": quantiles[98]}
