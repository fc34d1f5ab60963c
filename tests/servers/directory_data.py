"""The users and groups the test directory holds, as dataclasses, and their LDIF.

Two trees, one per slapd database:

* ``dc=example,dc=org`` is OpenLDAP-shaped: ``inetOrgPerson`` users under ``ou=people`` (login name ``uid``),
  ``groupOfNames`` groups under ``ou=groups``, a service account under ``ou=services``.
* ``dc=corp,dc=example`` is Active-Directory-shaped: ``user`` objects named by ``CN=`` under ``cn=Users`` (login
  names ``sAMAccountName`` and ``userPrincipalName``), ``group`` objects under ``cn=Groups``, with the account-state
  attributes of AD (``userAccountControl``, ``pwdLastSet``, ``accountExpires``) and a binary ``objectGUID``. The
  schema for it is :data:`AD_SCHEMA` (AD's own attribute OIDs; no ``instanceType``/``objectCategory`` baggage).

Names exercise escaping: RFC 4515 filter specials (``*``, ``admin)(uid=*``, a backslash), non-ASCII (``jürgen``,
also in a password) and an RFC 4514 DN special (``CN=Smith\\, John``). Group nesting: ``staff`` is a member of
``sts-users``; ``loop-a`` and ``loop-b`` are members of each other (a cycle, for depth caps and visited sets).
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

import ldif
from ldap.dn import escape_dn_chars, str2dn

Entry = tuple[str, dict[str, list[bytes]]]
DnKey = tuple[tuple[tuple[str, str], ...], ...]

# AD's FILETIME "never" (accountExpires) and a moment in the past (2020-01-01T00:00:00Z), in 100 ns since 1601.
AD_NEVER = 9223372036854775807
AD_2020 = 132223104000000000
AD_RECENT = 134000000000000000  # 2025-08-20: a password set recently (pwdLastSet)
UF_NORMAL_ACCOUNT = 0x0200
UF_ACCOUNTDISABLE = 0x0002
UF_DONT_EXPIRE_PASSWD = 0x10000
UF_PASSWORD_EXPIRED = 0x800000  # msDS-User-Account-Control-Computed only

DOMAIN_USERS_RID = 513  # every user's primaryGroupID unless changed; never in any member attribute


def sid(rid: int) -> bytes:
    """The binary objectSid S-1-5-21-1-2-3-``rid`` in the fixture domain ([MS-DTYP] 2.4.2.2: revision,
    sub-authority count, 6-byte authority, little-endian sub-authorities)."""
    return bytes([1, 5, 0, 0, 0, 0, 0, 5]) + b"".join(n.to_bytes(4, "little") for n in (21, 1, 2, 3, rid))


# A measured AD pair: objectGUID bytes (base64, Office 365's ImmutableID) and its mixed-endian string form.
ALICE_GUID = base64.b64decode("lEkYOJwYhUy+4HS+ArsRRA==")
assert str(uuid.UUID(bytes_le=ALICE_GUID)) == "38184994-189c-4c85-bee0-74be02bb1144"
# A GUID holding every byte RFC 4515 §3 requires escaping (NUL * ( ) \): searching by it needs \XX per byte.
BOB_GUID = bytes.fromhex("002a28295c00ff10a1b2c3d4e5f60718")

AD_SCHEMA = """\
# Active-Directory-shaped schema for tests: AD's OIDs and names, OpenLDAP matching rules.
attributetype ( 1.2.840.113556.1.4.221 NAME 'sAMAccountName'
  EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.656 NAME 'userPrincipalName'
  EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.8 NAME 'userAccountControl'
  EQUALITY integerMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.1460 NAME 'msDS-User-Account-Control-Computed'
  EQUALITY integerMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.96 NAME 'pwdLastSet'
  EQUALITY integerMatch ORDERING integerOrderingMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.159 NAME 'accountExpires'
  EQUALITY integerMatch ORDERING integerOrderingMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.2 NAME 'objectGUID'
  EQUALITY octetStringMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.40 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.146 NAME 'objectSid'
  EQUALITY octetStringMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.40 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.98 NAME 'primaryGroupID'
  EQUALITY integerMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )
objectclass ( 1.2.840.113556.1.3.23 NAME 'container' SUP top STRUCTURAL MUST cn )
objectclass ( 1.2.840.113556.1.5.9 NAME 'user' SUP organizationalPerson STRUCTURAL
  MAY ( sAMAccountName $ userPrincipalName $ userAccountControl $ msDS-User-Account-Control-Computed $
        pwdLastSet $ accountExpires $ objectGUID $ objectSid $ primaryGroupID $ givenName $ displayName $ mail ) )
objectclass ( 1.2.840.113556.1.3.30 NAME 'computer' SUP user STRUCTURAL )
objectclass ( 1.2.840.113556.1.5.8 NAME 'group' SUP top STRUCTURAL MUST cn
  MAY ( member $ sAMAccountName $ objectGUID $ objectSid $ description ) )
"""


def dn_key(dn: str | bytes) -> DnKey:
    """A DN for comparison: parsed (RFC 4514) and case-folded. slapd returns DNs in its own spelling
    (``uid=admin)(uid\\=*`` comes back as ``uid=admin)(uid\\3D*``), so never compare DN strings."""
    text = dn.decode() if isinstance(dn, bytes) else dn
    return tuple(tuple((attr.casefold(), value.casefold()) for attr, value, _ in rdn) for rdn in str2dn(text))


def ssha(password: str) -> bytes:
    """An RFC 2307-style ``{SSHA}`` userPassword value (what slapd's default ``password-hash`` produces)."""
    salt = os.urandom(8)
    digest = hashlib.sha1(password.encode() + salt).digest()
    return b"{SSHA}" + base64.b64encode(digest + salt)


@dataclass(frozen=True)
class DirectoryUser:
    """One user: the login name, its password (known to the tests), its DN and direct groups (by ``cn``)."""

    name: str
    password: str
    dn: str
    groups: tuple[str, ...]
    attributes: Mapping[str, tuple[bytes, ...]]

    def first(self, attribute: str) -> bytes:
        """The first stored value of ``attribute``."""
        return self.attributes[attribute][0]


@dataclass(frozen=True)
class DirectoryGroup:
    """One group: its ``cn``, DN and the DNs in its ``member`` attribute (users and groups)."""

    name: str
    dn: str
    members: tuple[str, ...]


@dataclass(frozen=True)
class DirectoryTree:
    """One suffix of the test directory with its accounts, users and groups."""

    kind: str  # "openldap" or "active_directory"
    base_dn: str
    admin_dn: str  # the database's rootdn (writes, for tests that change entries)
    admin_password: str
    service_dn: str  # the search account (WSO2 ``ConnectionName``)
    service_password: str
    user_search_base: str
    group_search_base: str
    user_name_attribute: str
    users: Mapping[str, DirectoryUser]
    groups: Mapping[str, DirectoryGroup]
    entries: tuple[Entry, ...] = field(repr=False)

    def transitive_groups(self, name: str) -> frozenset[str]:
        """``cn`` of every group ``name`` belongs to directly or through nested groups (cycles end)."""
        by_member: dict[str, set[str]] = {}
        for group in self.groups.values():
            for member in group.members:
                by_member.setdefault(member.lower(), set()).add(group.name)
        seen: set[str] = set()
        todo = [self.users[name].dn.lower()]
        while todo:
            for group_name in by_member.get(todo.pop(), ()):
                if group_name not in seen:
                    seen.add(group_name)
                    todo.append(self.groups[group_name].dn.lower())
        return frozenset(seen)

    def ldif(self) -> str:
        """The entries as LDIF content records (RFC 2849), in the order they must be added."""
        out = io.StringIO()
        writer = ldif.LDIFWriter(out)
        for dn, attrs in self.entries:
            writer.unparse(dn, attrs)
        return out.getvalue()


def _values(attrs: Mapping[str, object]) -> dict[str, list[bytes]]:
    def encode(value: object) -> bytes:
        return value if isinstance(value, bytes) else str(value).encode()

    return {key: [encode(v) for v in (value if isinstance(value, list) else [value])] for key, value in attrs.items()}


def _mail_local_part(name: str) -> str:
    """``mail`` is IA5String (RFC 4524): ASCII letters and digits only here (``jürgen`` → ``juergen``)."""
    ascii_name = name.replace("ü", "ue")
    return "".join(c for c in ascii_name if c.isascii() and c.isalnum()) or "star"


class TreeBuilder:
    """Collects entries in add order and the user/group records that describe them."""

    def __init__(self, base_dn: str) -> None:
        self.base_dn = base_dn
        self.entries: list[Entry] = []
        self.users: dict[str, DirectoryUser] = {}
        self.groups: dict[str, DirectoryGroup] = {}
        self._user_groups: dict[str, list[str]] = {}

    def add(self, dn: str, **attrs: object) -> None:
        self.entries.append((dn, _values(attrs)))

    def user(self, name: str, password: str, dn: str, **attrs: object) -> None:
        values = _values(attrs)
        self.entries.append((dn, {**values, "userPassword": [ssha(password)]}))
        self.users[name] = DirectoryUser(name, password, dn, (), {k: tuple(v) for k, v in values.items()})

    def group(self, name: str, dn: str, members: list[str], **attrs: object) -> None:
        self.add(dn, cn=name, member=members, **attrs)
        self.groups[name] = DirectoryGroup(name, dn, tuple(members))
        for user in self.users.values():
            if user.dn in members:
                self._user_groups.setdefault(user.name, []).append(name)

    def finish_users(self) -> dict[str, DirectoryUser]:
        return {
            name: DirectoryUser(u.name, u.password, u.dn, tuple(self._user_groups.get(name, ())), u.attributes)
            for name, u in self.users.items()
        }


def openldap_tree() -> DirectoryTree:
    """``dc=example,dc=org``: inetOrgPerson users, groupOfNames groups (nested and cyclic), a service account."""
    base = "dc=example,dc=org"
    people, groups, services = f"ou=people,{base}", f"ou=groups,{base}", f"ou=services,{base}"
    b = TreeBuilder(base)
    b.add(base, objectClass=["dcObject", "organization"], dc="example", o="Example Org")
    for ou in ("people", "groups", "services"):
        b.add(f"ou={ou},{base}", objectClass="organizationalUnit", ou=ou)
    service_dn, service_password = f"cn=sts-service,{services}", "service-secret-1"
    b.add(service_dn, objectClass=["applicationProcess", "simpleSecurityObject"], cn="sts-service",
          userPassword=ssha(service_password))
    person = ["inetOrgPerson", "organizationalPerson", "person", "top"]
    specs = [  # uid, password, cn, sn, givenName, extra attributes
        ("alice", "alice-pw-1", "Alice Anders", "Anders", "Alice",
         {"telephoneNumber": ["+1 555 0100", "+1 555 0101"]}),
        ("bob", "bob-pw-2", "Bob Brown", "Brown", "Bob", {}),
        ("carol", "carol-pw-3", "Carol Clark", "Clark", "Carol", {}),
        ("dave", "dave-pw-4", "Dave Davis", "Davis", "Dave", {}),
        ("*", "star-pw-5", "Star User", "User", "Star", {}),
        ("admin)(uid=*", "paren-pw-6", "Paren User", "User", "Paren", {}),
        ("back\\slash", "backslash-pw-7", "Back Slash", "Slash", "Back", {}),
        ("jürgen", "pässwört-jü-8", "Jürgen Müller", "Müller", "Jürgen", {}),
    ]
    for uid, password, cn, sn, given, extra in specs:
        mail = f"{_mail_local_part(uid)}@example.org"
        b.user(uid, password, f"uid={escape_dn_chars(uid)},{people}", objectClass=person, uid=uid, cn=cn, sn=sn,
               givenName=given, mail=mail, **extra)
    u = {name: user.dn for name, user in b.users.items()}
    b.group("staff", f"cn=staff,{groups}", [u["alice"], u["*"], u["back\\slash"], u["jürgen"]],
            objectClass="groupOfNames")
    b.group("sts-users", f"cn=sts-users,{groups}", [u["bob"], f"cn=staff,{groups}"], objectClass="groupOfNames")
    b.group("loop-a", f"cn=loop-a,{groups}", [u["dave"], f"cn=loop-b,{groups}"], objectClass="groupOfNames")
    b.group("loop-b", f"cn=loop-b,{groups}", [f"cn=loop-a,{groups}"], objectClass="groupOfNames")
    return DirectoryTree(
        "openldap", base, f"cn=admin,{base}", "admin-secret-org", service_dn, service_password, people, groups,
        "uid", b.finish_users(), b.groups, tuple(b.entries),
    )


def active_directory_tree() -> DirectoryTree:
    """``dc=corp,dc=example``: AD-shaped users (enabled, disabled, expired, must-change) and nested groups."""
    base = "dc=corp,dc=example"
    users, groups = f"cn=Users,{base}", f"cn=Groups,{base}"
    b = TreeBuilder(base)
    b.add(base, objectClass=["dcObject", "organization"], dc="corp", o="Corp")
    for container in ("Users", "Groups"):
        b.add(f"cn={container},{base}", objectClass="container", cn=container)
    user_classes = ["top", "person", "organizationalPerson", "user"]
    normal = UF_NORMAL_ACCOUNT
    specs = [  # sAMAccountName, password, cn, sn, givenName, extra attributes
        ("svc-sts", "service-secret-2", "STS Service", "Service", "STS", {}),
        ("alice", "alice-ad-pw-1", "Alice Anders", "Anders", "Alice", {"objectGUID": ALICE_GUID}),
        ("bob", "bob-ad-pw-2", "Bob Brown", "Brown", "Bob", {"objectGUID": BOB_GUID, "accountExpires": 0}),
        ("dana", "dana-ad-pw-3", "Dana Disabled", "Disabled", "Dana",
         {"userAccountControl": normal | UF_ACCOUNTDISABLE}),
        ("eve", "eve-ad-pw-4", "Eve Expired", "Expired", "Eve", {"accountExpires": AD_2020}),
        ("max", "max-ad-pw-5", "Max Mustchange", "Mustchange", "Max",
         {"pwdLastSet": 0, "msDS-User-Account-Control-Computed": UF_PASSWORD_EXPIRED}),
        # "Must change" and "password never expires" both set: AD (Samba 4.17 measured) binds her, no data 773, and
        # computes no PASSWORD_EXPIRED.
        ("nora", "nora-ad-pw-8", "Nora Neverexpires", "Neverexpires", "Nora",
         {"pwdLastSet": 0, "userAccountControl": normal | UF_DONT_EXPIRE_PASSWD}),
        ("jürgen", "pässwört-ad-jü-6", "Jürgen Müller", "Müller", "Jürgen", {}),
        ("jsmith", "smith-ad-pw-7", "Smith, John", "Smith", "John", {}),
        # Primary group "staff" (primaryGroupID = its RID): AD then lists her in no member attribute of it.
        ("pat", "pat-ad-pw-9", "Pat Primary", "Primary", "Pat", {"primaryGroupID": 1201}),
        # An explicit UPN under another suffix (an alternative UPN suffix of the forest): uma@corp.example is then
        # her implicit UPN only.
        ("uma", "uma-ad-pw-10", "Uma Upn", "Upn", "Uma", {"userPrincipalName": "uma.upn@contoso.example"}),
    ]
    for rid, (sam, password, cn, sn, given, extra) in enumerate(specs, start=1101):
        attrs: dict[str, object] = {
            "objectClass": user_classes, "cn": cn, "sn": sn, "givenName": given, "displayName": cn,
            "sAMAccountName": sam, "userPrincipalName": f"{sam}@corp.example",
            "mail": f"{_mail_local_part(sam)}@corp.example",
            "userAccountControl": normal, "pwdLastSet": AD_RECENT, "accountExpires": AD_NEVER,
            "objectGUID": uuid.uuid5(uuid.NAMESPACE_DNS, f"{sam}.corp.example").bytes_le,
            "objectSid": sid(rid), "primaryGroupID": DOMAIN_USERS_RID,
        }
        b.user(sam, password, f"cn={escape_dn_chars(cn)},{users}", **{**attrs, **extra})
    u = {name: user.dn for name, user in b.users.items()}
    # Where AD keeps it, in cn=Users: outside group_search_base, so no role unless the base is the domain.
    b.group("Domain Users", f"cn=Domain Users,{users}", [], objectClass=["top", "group"],
            sAMAccountName="Domain Users", objectSid=sid(DOMAIN_USERS_RID))
    b.group("staff", f"cn=staff,{groups}", [u["alice"], u["jürgen"]], objectClass=["top", "group"],
            sAMAccountName="staff", objectSid=sid(1201))
    b.group("sts-users", f"cn=sts-users,{groups}",
            [u["bob"], u["dana"], u["eve"], u["max"], u["nora"], u["jsmith"], u["uma"], f"cn=staff,{groups}"],
            objectClass=["top", "group"], sAMAccountName="sts-users", objectSid=sid(1202))
    service = b.users["svc-sts"]
    return DirectoryTree(
        "active_directory", base, f"cn=admin,{base}", "admin-secret-corp", service.dn, service.password, users,
        groups, "sAMAccountName", {k: v for k, v in b.finish_users().items() if k != "svc-sts"}, b.groups,
        tuple(b.entries),
    )
