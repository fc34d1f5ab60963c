"""Roles from directory groups, direct and nested.

Two ways to find every group a user belongs to, through nested groups too:

* ``recursive``: one search per nesting level under ``group_search_base`` for groups whose membership attribute
  holds any DN found at the level before (``(|(member=<user>))``, then ``(|(member=<g1>)(member=<g2>))`` ...), with
  a visited set (group cycles exist) and a depth cap;
* ``in_chain``: Active Directory's LDAP_MATCHING_RULE_IN_CHAIN (OID 1.2.840.113556.1.4.1941, MS-ADTS §3.1.1.3.4.4)
  answers the transitive groups in one search. A server that does not implement the rule treats the filter as
  Undefined and answers *no* entries without an error (OpenLDAP does, RFC 4515 §4), which would silently drop
  every role; so when the user's ``memberOf`` back-links name a group under the search base that the in-chain
  answer lacks, the answer is not trusted and the recursive search is used instead.

In Active Directory a user's *primary group* (``Domain Users`` for most) is not in any ``member`` attribute, so
neither way finds it, nor ``memberOf``: the entry names it by ``primaryGroupID``, its RID in the user's own domain
(MS-ADA3 primaryGroupID). Its SID is the user's ``objectSid`` with the last sub-authority replaced by that RID
([MS-DTYP] §2.4.2.2); the group is searched by that SID and expanded like a direct group.
"""

from __future__ import annotations

import logging
import struct

from sts.auth.ldap_client import DirectoryClient, DnKey, Entry, dn_key
from sts.auth.users import plain_role_name
from sts.config.user_stores import GroupNesting, UserStoreSettings
from sts.ldapfilter import escape_value

_LOG = logging.getLogger("sts.auth")
IN_CHAIN_RULE = "1.2.840.113556.1.4.1941"
_MAX_GROUPS = 2000  # a bound on what one login may pull from the directory
_REFUSED_SEEN: set[str] = set()  # group names already warned about
_MAX_REFUSED_SEEN = 1000
PRIMARY_GROUP_ATTRIBUTES = ("objectSid", "primaryGroupID")  # read with the user entry (Active Directory)


class GroupResolver:
    """The role names (``group_name_attribute`` values) of a user entry."""

    def __init__(self, settings: UserStoreSettings, client: DirectoryClient) -> None:
        self._settings = settings
        self._client = client
        self._base_key = dn_key(settings.group_search_base) if settings.group_search_base else ()
        self._in_chain_ignored = False  # learnt once per process: then every login expands level by level

    def roles(self, user: Entry) -> frozenset[str]:
        """Every group of the user, nested groups included (within the depth cap)."""
        settings = self._settings
        if not settings.group_search_base:
            return frozenset()
        primary = self._primary_group(user)
        # The primary group counts as a direct group: nested expansion starts from it as from the user.
        nested = [] if settings.group_nesting is GroupNesting.NONE else primary
        found: list[Entry] | None = None
        if settings.group_nesting is GroupNesting.IN_CHAIN and not self._in_chain_ignored:
            found = self._in_chain(user, nested)
        if found is None:
            depth = 1 if settings.group_nesting is GroupNesting.NONE else settings.max_group_depth
            found = self._recursive([user.dn, *(group.dn for group in nested)], depth)
        return _names([*found, *primary], settings.group_name_attribute)

    def _primary_group(self, user: Entry) -> list[Entry]:
        """The group ``primaryGroupID`` names (Active Directory), if the entry has one and it is under the base."""
        group_sid = primary_group_sid(user.values("objectSid"), user.text("primaryGroupID"))
        if group_sid is None:
            return []
        # Its back-links too: they let _in_chain check the answer for the primary group's parents as well.
        back_links = (self._settings.member_of_attribute,) if self._settings.member_of_attribute else ()
        groups = self._search(f"(objectSid={escape_value(group_sid)})", back_links)
        return groups if len(groups) == 1 else []

    def _in_chain(self, user: Entry, primary: list[Entry]) -> list[Entry] | None:
        """The in-chain answer for the user and its primary group, or None when the server evidently does not
        evaluate the rule."""
        attribute = self._settings.membership_attribute
        starts = [user.dn, *(group.dn for group in primary)]
        rules = "".join(f"({attribute}:{IN_CHAIN_RULE}:={escape_value(dn)})" for dn in starts)
        groups = self._search(rules if len(starts) == 1 else f"(|{rules})")
        found = {dn_key(group.dn) for group in groups}
        direct = self._direct_back_links(user) | set().union(*(self._direct_back_links(g) for g in primary))
        if direct - found:
            self._in_chain_ignored = True
            _LOG.warning(
                "the directory ignores the in-chain matching rule; expanding nested groups level by level",
                extra={"domain": self._settings.domain_name},
            )
            return None
        return groups

    def _direct_back_links(self, entry: Entry) -> set[DnKey]:
        attribute = self._settings.member_of_attribute
        if not attribute:
            return set()
        keys = (dn_key(value.decode("utf-8", "replace")) for value in entry.values(attribute))
        return {key for key in keys if _under(key, self._base_key)}

    def _recursive(self, starts: list[str], depth: int) -> list[Entry]:
        attribute = self._settings.membership_attribute
        seen: dict[DnKey, Entry] = {}
        level = starts
        for _ in range(depth):
            members = "".join(f"({attribute}={escape_value(dn)})" for dn in level)
            found = [g for g in self._search(f"(|{members})") if dn_key(g.dn) not in seen]
            if not found:
                break
            for group in found:
                seen[dn_key(group.dn)] = group
            if len(seen) > _MAX_GROUPS:
                _LOG.warning("group expansion stopped at the bound", extra={"domain": self._settings.domain_name})
                break
            level = [group.dn for group in found]
        return list(seen.values())

    def _search(self, membership: str, also: tuple[str, ...] = ()) -> list[Entry]:
        settings = self._settings
        return self._client.search(
            settings.group_search_base,
            f"(&{settings.group_name_list_filter}{membership})",
            (settings.group_name_attribute, *also),
        )


def _names(groups: list[Entry], attribute: str) -> frozenset[str]:
    """The groups' names as roles; a name holding ``/`` is dropped: qualified by this store's domain it would
    read as another domain's role (``LDAP/CORP/sts-users``), and WSO2 refuses ``/`` in role names too."""
    names = {name for name in (group.text(attribute) for group in groups) if name}
    refused = {name for name in names if not plain_role_name(name)}
    for name in refused - _REFUSED_SEEN:
        if len(_REFUSED_SEEN) < _MAX_REFUSED_SEEN:  # one warning per name and process, bounded
            _REFUSED_SEEN.add(name)
            _LOG.warning("directory group ignored: '/' in its name", extra={"group": name})
    return frozenset(names - refused)


def primary_group_sid(user_sid: tuple[bytes, ...], rid: str) -> bytes | None:
    """The binary SID of the user's primary group: the user's SID ([MS-DTYP] §2.4.2.2: revision, sub-authority
    count, 6-byte authority, then 4-byte little-endian sub-authorities) with its last sub-authority (the user's
    RID) replaced by ``primaryGroupID``; None when either is absent or malformed."""
    if len(user_sid) != 1 or not rid.isdigit() or int(rid) > 0xFFFFFFFF:
        return None
    sid = user_sid[0]
    if len(sid) < 12 or sid[1] < 1 or len(sid) != 8 + 4 * sid[1]:
        return None
    return sid[:-4] + struct.pack("<I", int(rid))


def _under(key: DnKey, base: DnKey) -> bool:
    """Whether a DN lies at or below ``base`` (DN keys list RDNs leaf first)."""
    return len(key) >= len(base) and key[len(key) - len(base) :] == base
