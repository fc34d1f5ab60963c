"""Settings for the test directory's two trees, written as an operator writes ``[[user_stores]]`` tables."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sts.config.user_stores import UserStoreSettings, parse_user_stores
from tests.servers.directory_data import dn_key
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
    }  # a None override removes the key


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
    }  # a None override removes the key


def _without_none(table: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in table.items() if value is not None}


def store_settings(table: dict[str, Any], base: Path = Path("/")) -> UserStoreSettings:
    """Parse one table; fail loudly on a problem."""
    problems: list[str] = []
    (settings,) = parse_user_stores([_without_none(table)], base, {}, problems)
    assert problems == []
    return settings


_CLOSED = re.compile(r" fd=\d+ closed( \(|$)")


class SlapdLog:
    """slapd's ``stats`` log from the moment this object was made: slapd writes a line for each connection it
    accepts (``ACCEPT``) and each request it receives (``BIND dn=... method=128``, ``SRCH base=...``) before it
    answers, so once a call returned, the lines of its requests are in the file. Its ``RESULT`` lines and
    connection closes may be written after the client has its answer, so they can belong to a call that returned
    before this object was made: :meth:`lines` leaves them out."""

    def __init__(self, slapd: SlapdServer) -> None:
        self._path = slapd.log_file
        self._offset = self._path.stat().st_size

    def lines(self) -> list[str]:
        """The lines of connections accepted and requests received since this object was made."""
        with self._path.open("rb") as log:
            log.seek(self._offset)
            text = log.read().decode("utf-8", "replace")
        return [line for line in text.splitlines() if " RESULT " not in line and not _CLOSED.search(line)]

    def binds(self, dn: str) -> int:
        """Simple binds received for ``dn`` (compared parsed: slapd logs DNs in its own spelling)."""
        key = dn_key(dn)
        return sum(_bound_dn(line) is not None and dn_key(_bound_dn(line) or "") == key for line in self.lines())

    def bound(self) -> list[str]:
        """The DNs of every simple bind received, in order (the service account's included)."""
        return [dn for dn in map(_bound_dn, self.lines()) if dn is not None]

    def accepted(self) -> int:
        """New connections accepted."""
        return sum(" ACCEPT from " in line for line in self.lines())

    def searches(self, base: str) -> list[str]:
        """The filters of the searches received under ``base``."""
        return [line.partition(" filter=")[2] for line in self.lines() if f'SRCH base="{base}"' in line]


def _bound_dn(line: str) -> str | None:
    """The DN of a ``BIND dn="..." method=128`` log line (a simple bind request), else None."""
    start, end = line.find(' BIND dn="'), line.rfind('" method=128')
    return line[start + len(' BIND dn="') : end] if start >= 0 and end > start else None
