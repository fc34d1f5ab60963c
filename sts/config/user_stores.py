"""``[[user_stores]]``: user-store domains as WSO2 configures them, with WSO2's ``deployment.toml`` key names.

Each table is one domain (``domain_name``) of one ``type``: ``sqlite`` (the built-in store), ``read_only_ldap`` (any
LDAP directory) or ``active_directory`` (read-only Active Directory). The keys are the ones WSO2 operators already
have (``connection_url``, ``connection_name``, ``user_search_base``, ``user_name_search_filter`` with ``?`` for the
user name, ...), so a WSO2 user-store block can be pasted. Settings that would make the STS build a DN from input
(``user_dn_pattern``), bind anonymously, skip certificate validation or skip filter escaping are refused; keys WSO2
has that mean nothing here are accepted and reported as warnings.

The service account's password never has to be in the file: ``connection_password_file``, or the environment
variable ``STS_USER_STORE_<DOMAIN>_PASSWORD`` (non-alphanumerics of the domain written as ``_``).
"""

from __future__ import annotations

import importlib.util
import ipaddress
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sts.config.table_reader import TableReader, shown_value
from sts.ldapfilter import FilterTemplate, FilterTemplateError

WSO2_CLAIMS = "http://wso2.org/claims/"
PRIMARY = "PRIMARY"
_RESERVED_DOMAINS = frozenset({"INTERNAL", "APPLICATION", "WORKFLOW"})  # WSO2's hybrid-role domains
_NETBIOS_MAX = 15
_NETBIOS_DISALLOWED = frozenset('\\/:*?"<>|')


class UserStoreType(StrEnum):
    """The store types (WSO2's ``type`` values; AD is read, never written)."""

    SQLITE = "sqlite"
    READ_ONLY_LDAP = "read_only_ldap"
    ACTIVE_DIRECTORY = "active_directory"


class GroupNesting(StrEnum):
    """How nested groups are expanded into roles."""

    RECURSIVE = "recursive"  # one search per nesting level, a visited set and a depth cap
    IN_CHAIN = "in_chain"  # AD's LDAP_MATCHING_RULE_IN_CHAIN (1.2.840.113556.1.4.1941) in one search
    NONE = "none"  # direct groups only


# WSO2's claim dialect (carbon-kernel claim-config.xml) over the attributes real entries carry.
_COMMON_CLAIMS = {
    "givenname": "givenName",
    "lastname": "sn",
    "emailaddress": "mail",
    "telephone": "telephoneNumber",
    "mobile": "mobile",
    "title": "title",
    "streetaddress": "street",
    "locality": "l",
    "stateorprovince": "st",
    "postalcode": "postalCode",
    "country": "c",
}
_LDAP_CLAIMS = {**_COMMON_CLAIMS, "username": "uid", "fullname": "cn", "organization": "o", "userid": "entryUUID"}
_AD_CLAIMS = {
    **_COMMON_CLAIMS,
    "username": "sAMAccountName",
    "fullname": "displayName",
    "organization": "company",
    "upn": "userPrincipalName",
    "objectguid": "objectGUID",
    "userid": "objectGUID",
}
# Attributes whose values are bytes, base64-encoded when mapped to a claim (Office 365's ImmutableID is the
# base64 of objectGUID).
BINARY_ATTRIBUTES = frozenset(
    a.casefold()
    for a in ("objectGUID", "objectSid", "mS-DS-ConsistencyGuid", "jpegPhoto", "thumbnailPhoto", "userCertificate")
)

_DEFAULTS: dict[UserStoreType, dict[str, Any]] = {
    UserStoreType.READ_ONLY_LDAP: {
        "user_name_attribute": "uid",
        "user_name_search_filter": "(&(objectClass=person)(uid=?))",
        "group_name_attribute": "cn",
        "group_name_list_filter": "(objectClass=groupOfNames)",
        "membership_attribute": "member",
        "member_of_attribute": "",
        "group_nesting": GroupNesting.RECURSIVE,
    },
    UserStoreType.ACTIVE_DIRECTORY: {
        "user_name_attribute": "sAMAccountName",
        # Login by sAMAccountName or userPrincipalName; computer accounts are objectClass=user too.
        "user_name_search_filter": (
            "(&(objectClass=user)(!(objectClass=computer))(|(sAMAccountName=?)(userPrincipalName=?)))"
        ),
        "group_name_attribute": "cn",
        "group_name_list_filter": "(objectClass=group)",
        "membership_attribute": "member",
        "member_of_attribute": "memberOf",
        "group_nesting": GroupNesting.IN_CHAIN,
    },
}

# WSO2 keys refused: each would weaken authentication.
_REFUSED: dict[str, tuple[Any, str]] = {
    "user_dn_pattern": (None, "builds the bind DN from the typed name; the STS always searches the user first"),
    "role_dn_pattern": (None, "builds a DN from input; groups are searched under group_search_base"),
    "anonymous_bind": (True, "anonymous searches are refused: set connection_name and its password"),
    "ssl_certificate_validation_enabled": (False, "the directory's certificate is always verified (ca_file)"),
    "replace_escape_characters_at_user_login": (False, "user names are always escaped in filters (RFC 4515)"),
}
# WSO2 keys with no meaning here: accepted, reported by check-config.
IGNORED_WSO2_KEYS = frozenset({
    "password_hash_method", "username_java_regex", "password_java_regex", "scim_enabled",
    "max_user_name_list_length", "user_roles_cache_enabled", "kdc_enabled", "empty_roles_allowed", "write_groups",
    "display_name_attribute", "user_entry_object_class", "multi_attribute_separator", "connection_pooling_enabled",
    "user_name_list_filter", "user_id_attribute", "user_id_search_filter", "read_groups", "back_links_enabled",
    "membership_attribute_range", "disable", "class", "base_dn", "referral", "user_account_control",
    "group_id_attribute", "group_id_search_filter", "description",
})


@dataclass(frozen=True, slots=True)
class UserStoreSettings:
    """One ``[[user_stores]]`` table, validated; the directory keys are empty for ``sqlite``."""

    domain_name: str
    type: UserStoreType
    connection_url: tuple[str, ...] = ()
    connection_name: str = ""
    connection_password: str = field(default="", repr=False)
    connection_password_file: Path | None = None  # where the password was read (check-config checks its mode)
    user_search_base: str = ""
    user_name_attribute: str = ""
    user_name_search_filter: str = ""
    group_search_base: str = ""
    group_name_attribute: str = "cn"
    group_name_list_filter: str = ""
    membership_attribute: str = "member"
    member_of_attribute: str = ""
    group_nesting: GroupNesting = GroupNesting.RECURSIVE
    max_group_depth: int = 8
    ca_file: Path | None = None
    start_tls: bool = False
    allow_insecure_ldap: bool = False
    ldap_connection_timeout: int = 3000  # ms, TCP connect and TLS handshake
    read_timeout: int = 5000  # ms, each LDAP operation
    connection_retry_delay: int = 120  # s a failed URL is skipped while another one answers
    # Active Directory only: the domain's NetBIOS name, so that the down-level logon name NETBIOS\sam reaches this
    # store; "" (default): no down-level names.
    netbios_name: str = ""
    claim_map: Mapping[str, str] = field(default_factory=dict)
    binary_attributes: frozenset[str] = BINARY_ATTRIBUTES
    warnings: tuple[str, ...] = ()

    @property
    def is_directory(self) -> bool:
        """Whether the store is an LDAP directory (read-only here)."""
        return self.type is not UserStoreType.SQLITE

    @property
    def is_active_directory(self) -> bool:
        """Whether Active Directory account semantics apply (userAccountControl, bind sub-codes)."""
        return self.type is UserStoreType.ACTIVE_DIRECTORY

    @property
    def user_filter(self) -> FilterTemplate:
        """The parsed ``user_name_search_filter``."""
        return FilterTemplate(self.user_name_search_filter)


def password_variable(domain: str) -> str:
    """The environment variable holding a store's service password: ``STS_USER_STORE_<DOMAIN>_PASSWORD``."""
    return "STS_USER_STORE_" + re.sub(r"[^A-Z0-9]", "_", domain.upper()) + "_PASSWORD"


def parse_user_stores(
    raw: Any, base: Path, env: Mapping[str, str], problems: list[str]
) -> tuple[UserStoreSettings, ...]:
    """Validate every ``[[user_stores]]`` table; problems are appended, prefixed with the store's place."""
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(table, dict) for table in raw):
        problems.append("[[user_stores]] must be an array of tables")
        return ()
    stores: list[UserStoreSettings] = []
    seen: set[str] = set()
    variables: dict[str, str] = {}  # password variable -> domain: CORP.EU and CORP_EU would read the same one
    for index, table in enumerate(raw):
        where = f"[[user_stores]] #{index + 1}"
        before = len(problems)
        store = _parse_one(table, base, env, where, problems)
        if store is None or len(problems) > before:
            continue
        if store.domain_name in seen:
            problems.append(f"{where}: domain_name {store.domain_name} is configured twice")
            continue
        variable = password_variable(store.domain_name)
        if store.is_directory and variable in variables:
            problems.append(f"{where}: {store.domain_name} and {variables[variable]} would share ${variable}")
            continue
        variables[variable] = store.domain_name
        seen.add(store.domain_name)
        stores.append(store)
    problems.extend(netbios_conflicts(stores))
    return tuple(stores)


def _parse_one(
    table: dict[str, Any], base: Path, env: Mapping[str, str], where: str, problems: list[str]
) -> UserStoreSettings | None:
    reader = TableReader(table, where, problems)
    domain = _domain(reader.text("domain_name", required=True), where, problems)
    kind = reader.choice("type", UserStoreType, required=True)
    if domain is None or kind is None:
        return None
    where = f"[[user_stores]] {domain}"
    reader.where = where
    if kind is UserStoreType.SQLITE:
        reader.finish({"domain_name", "type"}, _REFUSED, IGNORED_WSO2_KEYS)
        return UserStoreSettings(domain, kind)
    return _directory(domain, kind, reader, base, env)


def _domain(text: str, where: str, problems: list[str]) -> str | None:
    """Upper-cased as WSO2 stores domains; the user-store router applies the full name rules again."""
    if not text:
        return None
    domain = unicodedata.normalize("NFC", text).strip().upper()
    if not re.fullmatch(r"[A-Z0-9][A-Z0-9._-]{0,63}", domain):
        problems.append(f"{where}: domain_name: letters, digits, '.', '_' and '-' only (got {text!r})")
        return None
    if domain in _RESERVED_DOMAINS:
        problems.append(f"{where}: domain_name {domain} is reserved (WSO2's hybrid roles live there)")
        return None
    return domain


def _directory(
    domain: str, kind: UserStoreType, reader: TableReader, base: Path, env: Mapping[str, str]
) -> UserStoreSettings:
    defaults = _DEFAULTS[kind]
    if importlib.util.find_spec("ldap") is None:
        reader.problem("directory stores need python-ldap: pip install 'wstrust-sts[ldap]' (make run installs it)")
    urls = reader.urls()
    ca_file = reader.path("ca_file", base)
    start_tls = reader.boolean("start_tls", False)
    insecure = reader.boolean("allow_insecure_ldap", False)
    _check_transport(urls, ca_file, start_tls, insecure, reader)
    user_filter = reader.text("user_name_search_filter") or defaults["user_name_search_filter"]
    group_filter = reader.text("group_name_list_filter") or defaults["group_name_list_filter"]
    for key, template, placeholder in (("user_name_search_filter", user_filter, True),
                                       ("group_name_list_filter", group_filter, False)):
        try:
            FilterTemplate(template, needs_placeholder=placeholder)
        except FilterTemplateError as exc:
            reader.problem(f"{key}: {exc}")
    reader.text("group_name_search_filter")  # WSO2's single-group filter: accepted, not needed for roles
    password_file = reader.path("connection_password_file", base)
    settings = UserStoreSettings(
        domain_name=domain,
        type=kind,
        connection_url=urls,
        connection_name=reader.text("connection_name", required=True),
        connection_password=_password(domain, reader, password_file, env),
        connection_password_file=password_file,
        user_search_base=reader.text("user_search_base", required=True),
        user_name_attribute=reader.text("user_name_attribute") or defaults["user_name_attribute"],
        user_name_search_filter=user_filter,
        group_search_base=reader.text("group_search_base", required=True),
        group_name_attribute=reader.text("group_name_attribute") or defaults["group_name_attribute"],
        group_name_list_filter=group_filter,
        membership_attribute=reader.text("membership_attribute") or defaults["membership_attribute"],
        member_of_attribute=_member_of(reader, defaults["member_of_attribute"]),
        group_nesting=reader.choice("group_nesting", GroupNesting) or defaults["group_nesting"],
        max_group_depth=reader.integer("max_group_depth", 8, 1, 32),
        ca_file=ca_file,
        start_tls=start_tls,
        allow_insecure_ldap=insecure,
        ldap_connection_timeout=reader.integer("ldap_connection_timeout", 3000, 100, 60000),
        read_timeout=reader.integer("read_timeout", 5000, 100, 60000),
        connection_retry_delay=reader.integer("connection_retry_delay", 120, 0, 3600),
        netbios_name=_netbios_name(kind, reader),
        claim_map=_claim_map(kind, reader),
        binary_attributes=BINARY_ATTRIBUTES | {a.casefold() for a in reader.strings("ldap_binary_attributes")},
    )
    ignored = reader.finish(_KNOWN_DIRECTORY_KEYS, _REFUSED, IGNORED_WSO2_KEYS)
    return _with_warnings(settings, ignored)


def _with_warnings(settings: UserStoreSettings, ignored: list[str]) -> UserStoreSettings:
    warnings = [f"[[user_stores]] {settings.domain_name}: WSO2 key {key!r} has no effect here" for key in ignored]
    return replace(settings, warnings=tuple(warnings))


def _member_of(reader: TableReader, default: str) -> str:
    # The issue text once spelled it memberof_attribute; WSO2 writes member_of_attribute. Accept both.
    spelled = reader.text("member_of_attribute") or reader.text("memberof_attribute")
    return spelled or default


def _netbios_name(kind: UserStoreType, reader: TableReader) -> str:
    """``netbios_name``, upper-cased as Windows shows NetBIOS names; only Active Directory domains have one."""
    text = reader.text("netbios_name")
    if not text:
        return ""
    if kind is not UserStoreType.ACTIVE_DIRECTORY:
        reader.problem('netbios_name: only for type = "active_directory" (down-level names are AD\'s)')
        return ""
    problem = netbios_problem(text)
    if problem is not None:
        reader.problem(f"netbios_name: {problem} (got {text!r})")
        return ""
    return text.upper()


def netbios_problem(name: str) -> str | None:
    """Why ``name`` is no NetBIOS domain name, or None.

    Microsoft's rules for NetBIOS domain names ("Naming conventions in Active Directory for computers, domains,
    sites, and OUs", KB 909264): 1 to 15 characters (the 16th byte of a NetBIOS name is its service suffix), none
    of ``\\ / : * ? " < > |``, no leading period; control characters are refused as in every name here.
    """
    if not 1 <= len(name) <= _NETBIOS_MAX:
        return f"1 to {_NETBIOS_MAX} characters"
    if any(ch in _NETBIOS_DISALLOWED or unicodedata.category(ch)[0] == "C" for ch in name):
        return 'none of \\ / : * ? " < > | nor control characters'
    if name.startswith("."):
        return "must not start with a period"
    return None


def netbios_conflicts(stores: Sequence[UserStoreSettings]) -> list[str]:
    """Configuration problems of the stores' NetBIOS names taken together.

    Two stores with one NetBIOS name (Windows compares them without case) would make ``NAME\\user`` ambiguous; a
    NetBIOS name that is another store's ``domain_name`` would make ``NAME\\user`` and ``NAME/user`` two different
    users, which no operator reading an audit log expects (PRIMARY is a domain even without a table).
    """
    problems: list[str] = []
    owners: dict[str, str] = {}
    domains = {PRIMARY.casefold(): PRIMARY} | {store.domain_name.casefold(): store.domain_name for store in stores}
    for store in stores:
        folded = store.netbios_name.casefold()
        if not folded:
            continue
        where = f"[[user_stores]] {store.domain_name}: netbios_name {store.netbios_name}"
        if folded in owners:
            problems.append(f"{where} is also the NetBIOS name of {owners[folded]}")
        elif domains.get(folded, store.domain_name) != store.domain_name:
            problems.append(f"{where} is the domain_name of another store ({domains[folded]})")
        owners.setdefault(folded, store.domain_name)
    return problems


def down_level_domains(stores: Sequence[UserStoreSettings]) -> dict[str, str]:
    """The case-folded NetBIOS name of each store that has one, to its ``domain_name``: what turns the down-level
    logon name ``NETBIOS\\user`` into ``DOMAIN/user`` (:func:`sts.auth.users.parse_user_name`)."""
    return {store.netbios_name.casefold(): store.domain_name for store in stores if store.netbios_name}


def _password(domain: str, reader: TableReader, path: Path | None, env: Mapping[str, str]) -> str:
    inline = reader.text("connection_password")
    variable = password_variable(domain)
    if variable in env:
        password = env[variable]
    elif path is not None:
        try:
            password = path.read_text(encoding="utf-8").strip("\r\n")
        except OSError as exc:
            reader.problem(f"connection_password_file: cannot read {path}: {exc.strerror}")
            return ""
        except UnicodeDecodeError:  # the bytes are never echoed: they may be the password
            reader.problem(f"connection_password_file: {path} is not UTF-8 text")
            return ""
    else:
        password = inline
    if not password:
        # An empty variable or file too: a DN with an empty password is an unauthenticated bind (RFC 4513
        # §5.1.2), which Active Directory accepts as anonymous.
        reader.problem(f"no service password: set ${variable} or connection_password_file")
    return password


def _claim_map(kind: UserStoreType, reader: TableReader) -> dict[str, str]:
    defaults = _AD_CLAIMS if kind is UserStoreType.ACTIVE_DIRECTORY else _LDAP_CLAIMS
    claims = {WSO2_CLAIMS + name: attribute for name, attribute in defaults.items()}
    raw = reader.table("claim_map")
    for uri, attribute in raw.items():
        if not isinstance(attribute, str):
            reader.problem(f"claim_map.{uri}: expected an attribute name")
        elif not attribute:
            claims.pop(uri, None)  # "" removes a default mapping
        elif not re.fullmatch(r"[A-Za-z][A-Za-z0-9-]*(;[A-Za-z0-9-]+)*", attribute):
            reader.problem(f"claim_map.{uri}: {attribute!r} is not an LDAP attribute name")
        else:
            claims[uri] = attribute
    return claims


def _check_transport(
    urls: tuple[str, ...], ca_file: Path | None, start_tls: bool, insecure: bool, reader: TableReader
) -> None:
    for url in urls:
        parts = urlsplit(url)
        shown = shown_value(url)
        if parts.scheme not in ("ldap", "ldaps") or not parts.hostname:
            reader.problem(f"connection_url: {shown} must be ldaps://HOST[:PORT] or ldap://HOST[:PORT]")
        elif "@" in url:
            # The bind DN and password are connection_name and connection_password; a URL is logged when the
            # directory does not answer, so it must not carry them. Anywhere in the URL: a password typed unencoded
            # with a "#", "?" or "/" in it puts its "@" after the authority (ldaps://svc:pa#ss@dc1 parses as the
            # host svc and the fragment ss@dc1).
            reader.problem(f"connection_url: {shown} must not carry a user or password (connection_name,"
                           " connection_password)")
        elif parts.path not in ("", "/") or parts.query or parts.fragment:
            reader.problem(f"connection_url: {shown} must not carry a DN or options")
        elif parts.scheme == "ldap" and not start_tls and not (insecure and _loopback(parts.hostname)):
            reader.problem(
                f"connection_url: {shown} is plain LDAP: use ldaps://, or start_tls = true "
                "(allow_insecure_ldap = true is for loopback test directories only)"
            )
    if ca_file is None and any(not (insecure and _loopback(urlsplit(u).hostname or "")) for u in urls):
        reader.problem("ca_file: required (the PEM bundle the directory's certificate must chain to)")
    elif ca_file is not None and not ca_file.is_file():
        reader.problem(f"ca_file: {ca_file} does not exist")


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


_KNOWN_DIRECTORY_KEYS = frozenset({
    "domain_name", "type", "connection_url", "connection_name", "connection_password", "connection_password_file",
    "user_search_base", "user_name_attribute", "user_name_search_filter", "group_search_base",
    "group_name_attribute", "group_name_search_filter", "group_name_list_filter", "membership_attribute",
    "member_of_attribute", "memberof_attribute", "group_nesting", "max_group_depth", "ca_file", "start_tls",
    "allow_insecure_ldap", "ldap_connection_timeout", "read_timeout", "connection_retry_delay", "claim_map",
    "ldap_binary_attributes", "netbios_name",
})


def primary_is_directory(stores: tuple[UserStoreSettings, ...]) -> bool:
    """Whether a directory owns the PRIMARY domain."""
    return any(store.domain_name == PRIMARY and store.is_directory for store in stores)


def env_is_ours(key: str) -> bool:
    """Whether an environment variable is a user-store password variable (not a foreign ``STS_*`` name)."""
    return key.startswith("STS_USER_STORE_") and key.endswith("_PASSWORD")

