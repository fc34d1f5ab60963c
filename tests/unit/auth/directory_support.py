"""Settings for the test directory's two trees, written as an operator writes ``[[user_stores]]`` tables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sts.config.user_stores import UserStoreSettings, parse_user_stores
from tests.servers.slapd import SlapdServer


def openldap_table(slapd: SlapdServer, **overrides: Any) -> dict[str, Any]:
    """A ``read_only_ldap`` store for ``dc=example,dc=org`` over LDAPS."""
    tree = slapd.openldap
    return {
        "domain_name": "LDAP",
        "type": "read_only_ldap",
        "connection_url": slapd.ldaps_url,
        "connection_name": tree.service_dn,
        "connection_password": tree.service_password,
        "user_search_base": tree.user_search_base,
        "group_search_base": tree.group_search_base,
        "ca_file": str(slapd.ca_file),
        "ldap_connection_timeout": 1000,
        "read_timeout": 1000,
        **overrides,
    }


def active_directory_table(slapd: SlapdServer, **overrides: Any) -> dict[str, Any]:
    """An ``active_directory`` store for ``dc=corp,dc=example`` over StartTLS, with WSO2's AD key names."""
    tree = slapd.active_directory
    return {
        "domain_name": "CORP",
        "type": "active_directory",
        "connection_url": [slapd.ldap_url],
        "start_tls": True,
        "connection_name": tree.service_dn,
        "connection_password": tree.service_password,
        "user_search_base": tree.user_search_base,
        "group_search_base": tree.group_search_base,
        "ca_file": str(slapd.ca_file),
        "ldap_connection_timeout": 1000,
        "read_timeout": 1000,
        **overrides,
    }


def store_settings(table: dict[str, Any], base: Path = Path("/")) -> UserStoreSettings:
    """Parse one table; fail loudly on a problem."""
    problems: list[str] = []
    (settings,) = parse_user_stores([table], base, {}, problems)
    assert problems == []
    return settings
