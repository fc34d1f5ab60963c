"""Tests for sts.config.user_stores: ``[[user_stores]]`` tables with WSO2's key names, validated at start-up.

Every refusal is checked for its exact message: keys that would weaken authentication, unknown keys, transport
without verified TLS, filter templates that do not parse, the service password's sources, domain names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sts.config.loader import foreign_environment, load_settings
from sts.config.settings import config_warnings
from sts.config.user_stores import (
    WSO2_CLAIMS,
    GroupNesting,
    UserStoreSettings,
    UserStoreType,
    down_level_domains,
    env_is_ours,
    parse_user_stores,
    password_variable,
    primary_is_directory,
)
from sts.errors import ConfigError

WHERE = "[[user_stores]] CORP"


@pytest.fixture
def ca_file(tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    path.write_text("-----BEGIN CERTIFICATE-----\n")  # existence is what the parser checks
    return path


def table(ca: Path, /, **overrides: Any) -> dict[str, Any]:
    """A valid WSO2-style LDAP store; ``None`` removes a key."""
    base = {
        "domain_name": "corp",
        "type": "read_only_ldap",
        "connection_url": "ldaps://dc1.corp.example:636",
        "connection_name": "cn=svc,dc=corp,dc=example",
        "connection_password": "inline-secret",
        "user_search_base": "ou=people,dc=corp,dc=example",
        "group_search_base": "ou=groups,dc=corp,dc=example",
        "ca_file": str(ca),
    }
    base.update(overrides)
    return {key: value for key, value in base.items() if value is not None}


def parse(*tables: dict[str, Any], env: dict[str, str] | None = None, base: Path = Path("/")) -> tuple[
    tuple[UserStoreSettings, ...], list[str]
]:
    problems: list[str] = []
    stores = parse_user_stores(list(tables), base, env or {}, problems)
    return stores, problems


def problems_of(*tables: dict[str, Any], env: dict[str, str] | None = None) -> list[str]:
    stores, problems = parse(*tables, env=env)
    assert problems, "expected a problem"
    assert stores == ()
    return problems


def one(*tables: dict[str, Any], env: dict[str, str] | None = None, base: Path = Path("/")) -> UserStoreSettings:
    stores, problems = parse(*tables, env=env, base=base)
    assert problems == []
    (store,) = stores
    return store


# --- a valid store ------------------------------------------------------------------------------------------------


def test_wso2_ldap_table_with_defaults(ca_file: Path) -> None:
    store = one(table(ca_file))
    assert store.domain_name == "CORP"  # upper-cased as WSO2 stores domains
    assert store.type is UserStoreType.READ_ONLY_LDAP and store.is_directory and not store.is_active_directory
    assert store.connection_url == ("ldaps://dc1.corp.example:636",)
    assert store.user_name_attribute == "uid"
    assert store.user_name_search_filter == "(&(objectClass=person)(uid=?))"
    assert store.group_name_list_filter == "(objectClass=groupOfNames)"
    assert store.membership_attribute == "member" and store.member_of_attribute == ""
    assert store.group_nesting is GroupNesting.RECURSIVE and store.max_group_depth == 8
    assert (store.ldap_connection_timeout, store.read_timeout, store.connection_retry_delay) == (3000, 5000, 120)
    assert store.claim_map[WSO2_CLAIMS + "emailaddress"] == "mail"
    assert store.claim_map[WSO2_CLAIMS + "username"] == "uid"
    assert store.warnings == ()
    assert "inline-secret" not in repr(store)


def test_active_directory_defaults(ca_file: Path) -> None:
    store = one(table(ca_file, type="active_directory"))
    assert store.is_active_directory
    assert store.user_name_attribute == "sAMAccountName"
    assert store.user_filter.fill("a*") == (
        "(&(objectClass=user)(!(objectClass=computer))(|(sAMAccountName=a\\2a)(userPrincipalName=a\\2a)))"
    )
    assert store.member_of_attribute == "memberOf"
    assert store.group_nesting is GroupNesting.IN_CHAIN
    assert store.claim_map[WSO2_CLAIMS + "objectguid"] == "objectGUID"
    assert store.claim_map[WSO2_CLAIMS + "upn"] == "userPrincipalName"
    assert "objectguid" in store.binary_attributes


def test_failover_list_and_wso2_space_separated_urls(ca_file: Path) -> None:
    urls = ("ldaps://dc1.corp.example", "ldaps://dc2.corp.example:3269")
    assert one(table(ca_file, connection_url=list(urls))).connection_url == urls
    assert one(table(ca_file, connection_url=" ".join(urls))).connection_url == urls


def test_both_spellings_of_member_of_attribute(ca_file: Path) -> None:
    assert one(table(ca_file, member_of_attribute="memberOf")).member_of_attribute == "memberOf"
    assert one(table(ca_file, memberof_attribute="isMemberOf")).member_of_attribute == "isMemberOf"


def test_sqlite_store_takes_no_directory_keys(ca_file: Path) -> None:
    store = one({"domain_name": "primary", "type": "sqlite"})
    assert (store.domain_name, store.type, store.is_directory) == ("PRIMARY", UserStoreType.SQLITE, False)
    assert problems_of({"domain_name": "local", "type": "sqlite", "connection_url": "ldaps://x"}) == [
        "[[user_stores]] LOCAL: unknown key 'connection_url'"
    ]


def test_primary_is_directory(ca_file: Path) -> None:
    stores, _ = parse(table(ca_file, domain_name="PRIMARY"), {"domain_name": "local", "type": "sqlite"})
    assert primary_is_directory(stores)
    stores, _ = parse(table(ca_file), {"domain_name": "PRIMARY", "type": "sqlite"})
    assert not primary_is_directory(stores)


# --- refused and ignored keys -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "why"),
    [
        ("user_dn_pattern", "uid={0},ou=people,dc=corp,dc=example",
         "builds the bind DN from the typed name; the STS always searches the user first"),
        ("user_dn_pattern", "", "builds the bind DN from the typed name; the STS always searches the user first"),
        ("role_dn_pattern", "cn={0},ou=groups", "builds a DN from input; groups are searched under group_search_base"),
        ("anonymous_bind", True, "anonymous searches are refused: set connection_name and its password"),
        ("ssl_certificate_validation_enabled", False, "the directory's certificate is always verified (ca_file)"),
        ("replace_escape_characters_at_user_login", False, "user names are always escaped in filters (RFC 4515)"),
    ],
)
def test_keys_that_weaken_authentication_are_refused(ca_file: Path, key: str, value: object, why: str) -> None:
    assert problems_of(table(ca_file, **{key: value})) == [f"{WHERE}: {key} is not supported: {why}"]


@pytest.mark.parametrize(
    ("key", "value"),
    [("anonymous_bind", False), ("ssl_certificate_validation_enabled", True),
     ("replace_escape_characters_at_user_login", True)],
)
def test_refused_keys_at_their_safe_value_are_accepted(ca_file: Path, key: str, value: bool) -> None:
    assert one(table(ca_file, **{key: value})).domain_name == "CORP"


def test_unknown_key_refused(ca_file: Path) -> None:
    assert problems_of(table(ca_file, user_name_serch_filter="(uid=?)")) == [
        f"{WHERE}: unknown key 'user_name_serch_filter'"
    ]


def test_ignored_wso2_keys_are_warnings(ca_file: Path, tmp_path: Path) -> None:
    store = one(table(ca_file, password_hash_method="PLAIN_TEXT", scim_enabled=False, connection_pooling_enabled=True))
    assert store.warnings == tuple(
        f"{WHERE}: WSO2 key {key!r} has no effect here"
        for key in ("password_hash_method", "scim_enabled", "connection_pooling_enabled")
    )


# --- transport ----------------------------------------------------------------------------------------------------


def test_plain_ldap_refused(ca_file: Path) -> None:
    url = "ldap://dc1.corp.example:389"
    assert problems_of(table(ca_file, connection_url=url)) == [
        f"{WHERE}: connection_url: {url!r} is plain LDAP: use ldaps://, or start_tls = true "
        "(allow_insecure_ldap = true is for loopback test directories only)"
    ]


@pytest.mark.parametrize("url", ["ldaps://cn=admin:hunter2@dc1.corp.example", "ldaps://svc:hunter2@dc1.corp.example:636",
                                 "ldaps://hunter2@dc1.corp.example"])
@pytest.mark.parametrize("password", ["hunter2", "hun/ter2", "hun?ter2", "hun#ter2"])
def test_credentials_in_the_url_refused_and_never_echoed(ca_file: Path, url: str, password: str) -> None:
    """The bind DN and password are connection_name and connection_password: a URL carrying them would be written
    to the log whenever the directory does not answer, so it is refused, and the problem masks them, whatever the
    password holds (a ``/``, ``?`` or ``#`` typed unencoded ends the URL's authority before its ``@``: with a ``#``
    the URL was even accepted, its password logged whenever the directory did not answer)."""
    (problem,) = problems_of(table(ca_file, connection_url=url.replace("hunter2", password)))
    assert "hun" not in problem and "ter2" not in problem
    assert problem.startswith(f"{WHERE}: connection_url: 'ldaps://***@dc1.corp.example")
    assert problem.endswith(" must not carry a user or password (connection_name, connection_password)")


def test_plain_ldap_with_start_tls_accepted(ca_file: Path) -> None:
    store = one(table(ca_file, connection_url="ldap://dc1.corp.example", start_tls=True))
    assert store.start_tls and not store.allow_insecure_ldap


def test_insecure_ldap_only_on_loopback(ca_file: Path) -> None:
    for host in ("127.0.0.1", "[::1]", "localhost", "127.0.0.2"):
        store = one(table(ca_file, connection_url=f"ldap://{host}:3890", allow_insecure_ldap=True, ca_file=None))
        assert store.allow_insecure_ldap and store.ca_file is None
    url = "ldap://10.0.0.5:389"
    assert problems_of(table(ca_file, connection_url=url, allow_insecure_ldap=True)) == [
        f"{WHERE}: connection_url: {url!r} is plain LDAP: use ldaps://, or start_tls = true "
        "(allow_insecure_ldap = true is for loopback test directories only)"
    ]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://dc1.corp.example", "must be ldaps://HOST[:PORT] or ldap://HOST[:PORT]"),
        ("ldaps://", "must be ldaps://HOST[:PORT] or ldap://HOST[:PORT]"),
        ("ldaps://dc1.corp.example/dc=corp", "must not carry a DN or options"),
        ("ldaps://dc1.corp.example/??sub", "must not carry a DN or options"),
    ],
)
def test_bad_urls_refused(ca_file: Path, url: str, message: str) -> None:
    assert problems_of(table(ca_file, connection_url=url)) == [f"{WHERE}: connection_url: {url!r} {message}"]


def test_connection_url_required(ca_file: Path) -> None:
    assert problems_of(table(ca_file, connection_url=None)) == [
        f"{WHERE}: connection_url: required (one URL or a list, tried in order)"
    ]


def test_ca_file_required_and_must_exist(ca_file: Path, tmp_path: Path) -> None:
    assert problems_of(table(ca_file, ca_file=None)) == [
        f"{WHERE}: ca_file: required (the PEM bundle the directory's certificate must chain to)"
    ]
    missing = tmp_path / "missing.pem"
    assert problems_of(table(ca_file, ca_file=str(missing))) == [f"{WHERE}: ca_file: {missing} does not exist"]


def test_ca_file_relative_to_the_config_directory(ca_file: Path) -> None:
    store = one(table(ca_file, ca_file="ca.pem"), base=ca_file.parent)
    assert store.ca_file == ca_file


def test_loopback_ldaps_with_insecure_flag_still_refuses_a_remote_url_without_ca(ca_file: Path) -> None:
    urls = ["ldap://127.0.0.1:3890", "ldaps://dc1.corp.example"]
    assert problems_of(table(ca_file, connection_url=urls, allow_insecure_ldap=True, ca_file=None)) == [
        f"{WHERE}: ca_file: required (the PEM bundle the directory's certificate must chain to)"
    ]


# --- filters ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "template", "message"),
    [
        ("user_name_search_filter", "(&(objectClass=person)(uid=alice))", "must contain '?' where the user name goes"),
        ("user_name_search_filter", "(&(objectClass=person)(uid=?)", "expected ')' at position 29"),
        ("user_name_search_filter", "uid=?", "expected '(' at position 0"),
        ("user_name_search_filter", "(uid=?)(cn=?)", "not one RFC 4515 filter: unexpected text at position 7"),
        ("group_name_list_filter", "(objectClass=groupOfNames", "expected ')' at position 25"),
    ],
)
def test_bad_filter_templates_refused(ca_file: Path, key: str, template: str, message: str) -> None:
    assert problems_of(table(ca_file, **{key: template})) == [f"{WHERE}: {key}: {message}"]


def test_operator_filters_are_kept_as_written(ca_file: Path) -> None:
    template = "(&(objectClass=inetOrgPerson)(|(uid=?)(mail=?)))"
    store = one(table(ca_file, user_name_search_filter=template, group_name_list_filter="(objectClass=posixGroup)"))
    assert store.user_name_search_filter == template
    assert store.user_filter.fill("x") == "(&(objectClass=inetOrgPerson)(|(uid=x)(mail=x)))"
    assert store.group_name_list_filter == "(objectClass=posixGroup)"


# --- the service password -----------------------------------------------------------------------------------------


def test_password_variable_names() -> None:
    assert password_variable("CORP") == "STS_USER_STORE_CORP_PASSWORD"
    assert password_variable("corp.example-eu") == "STS_USER_STORE_CORP_EXAMPLE_EU_PASSWORD"
    assert env_is_ours("STS_USER_STORE_CORP_PASSWORD")
    assert not env_is_ours("STS_USER_STORE_CORP") and not env_is_ours("STS_SERVER_PASSWORD")


def test_password_precedence_env_then_file_then_inline(ca_file: Path, tmp_path: Path) -> None:
    secret_file = tmp_path / "svc.pw"
    secret_file.write_text("from-file\n")
    env = {"STS_USER_STORE_CORP_PASSWORD": "from-env"}
    both = table(ca_file, connection_password_file=str(secret_file))
    assert one(both, env=env).connection_password == "from-env"
    assert one(both).connection_password == "from-file"  # the trailing newline is not part of it
    assert one(table(ca_file)).connection_password == "inline-secret"
    no_inline = table(ca_file, connection_password=None)
    assert one(no_inline, env=env).connection_password == "from-env"
    assert one(table(ca_file, connection_password=None, connection_password_file="svc.pw"),
               base=tmp_path).connection_password == "from-file"


def test_missing_password_is_a_problem(ca_file: Path) -> None:
    assert problems_of(table(ca_file, connection_password=None)) == [
        f"{WHERE}: no service password: set $STS_USER_STORE_CORP_PASSWORD or connection_password_file"
    ]


def test_unreadable_password_file_is_a_problem(ca_file: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nope.pw"
    assert problems_of(table(ca_file, connection_password=None, connection_password_file=str(missing))) == [
        f"{WHERE}: connection_password_file: cannot read {missing}: No such file or directory"
    ]


def test_a_password_file_that_is_not_utf8_is_a_problem_not_a_traceback(ca_file: Path, tmp_path: Path) -> None:
    """Random bytes as a service password (``head -c 32 /dev/urandom``): a UnicodeDecodeError in gunicorn's
    master before; the bytes are never echoed."""
    binary = tmp_path / "random.pw"
    binary.write_bytes(b"\xffs3cr\xe9t\n")
    assert problems_of(table(ca_file, connection_password=None, connection_password_file=str(binary))) == [
        f"{WHERE}: connection_password_file: {binary} is not UTF-8 text"
    ]


@pytest.mark.parametrize("source", ["env", "file"])
def test_an_empty_service_password_is_refused(ca_file: Path, tmp_path: Path, source: str) -> None:
    """A DN with an empty password is an unauthenticated bind (RFC 4513 §5.1.2) that AD accepts as anonymous:
    an empty variable or password file must not turn the service account into an anonymous search."""
    empty = tmp_path / "empty.pw"
    empty.write_text("\n")
    if source == "env":
        problems = problems_of(table(ca_file, connection_password=None), env={"STS_USER_STORE_CORP_PASSWORD": ""})
    else:
        problems = problems_of(table(ca_file, connection_password=None, connection_password_file=str(empty)))
    assert problems == [f"{WHERE}: no service password: set $STS_USER_STORE_CORP_PASSWORD or connection_password_file"]


# --- domains and shape --------------------------------------------------------------------------------------------


def test_duplicate_domains_refused(ca_file: Path) -> None:
    stores, problems = parse(table(ca_file), table(ca_file, domain_name="Corp"))
    assert [store.domain_name for store in stores] == ["CORP"]
    assert problems == ["[[user_stores]] #2: domain_name CORP is configured twice"]


@pytest.mark.parametrize("domain", ["Internal", "APPLICATION", "workflow"])
def test_reserved_domains_refused(ca_file: Path, domain: str) -> None:
    assert problems_of(table(ca_file, domain_name=domain)) == [
        f"[[user_stores]] #1: domain_name {domain.upper()} is reserved (WSO2's hybrid roles live there)"
    ]


@pytest.mark.parametrize("domain", ["CORP/EU", "corp eu", "-corp", "é"])
def test_bad_domain_names_refused(ca_file: Path, domain: str) -> None:
    assert problems_of(table(ca_file, domain_name=domain)) == [
        f"[[user_stores]] #1: domain_name: letters, digits, '.', '_' and '-' only (got {domain!r})"
    ]


def test_domain_and_type_required(ca_file: Path) -> None:
    assert problems_of(table(ca_file, domain_name=None)) == ["[[user_stores]] #1: domain_name: required"]
    assert problems_of(table(ca_file, type=None)) == ["[[user_stores]] #1: type: required"]
    assert problems_of(table(ca_file, type="read_write_ldap")) == [
        "[[user_stores]] #1: type: must be one of sqlite, read_only_ldap, active_directory"
    ]


def test_required_directory_keys(ca_file: Path) -> None:
    problems = problems_of(table(ca_file, connection_name=None, user_search_base=None, group_search_base=" "))
    assert problems == [
        f"{WHERE}: connection_name: required",
        f"{WHERE}: user_search_base: required",
        f"{WHERE}: group_search_base: required",
    ]


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("ldap_connection_timeout", 50, "ldap_connection_timeout: must be an integer between 100 and 60000"),
        ("read_timeout", True, "read_timeout: must be an integer between 100 and 60000"),
        ("max_group_depth", 0, "max_group_depth: must be an integer between 1 and 32"),
        ("connection_retry_delay", "2m", "connection_retry_delay: must be an integer between 0 and 3600"),
        ("start_tls", "yes", "start_tls: expected true or false"),
        ("group_nesting", "deep", "group_nesting: must be one of recursive, in_chain, none"),
        ("connection_url", 636, "connection_url: expected a list of strings"),
        ("claim_map", "mail", "claim_map: expected a table"),
        ("user_search_base", ["ou=a"], "user_search_base: expected a string"),
    ],
)
def test_bad_values_refused(ca_file: Path, key: str, value: object, message: str) -> None:
    assert f"{WHERE}: {message}" in problems_of(table(ca_file, **{key: value}))


def test_not_an_array_of_tables() -> None:
    problems: list[str] = []
    assert parse_user_stores({"domain_name": "X"}, Path("/"), {}, problems) == ()
    assert problems == ["[[user_stores]] must be an array of tables"]


# --- claim_map ----------------------------------------------------------------------------------------------------


def test_claim_map_overrides_adds_and_removes_defaults(ca_file: Path) -> None:
    immutable_id = "http://schemas.microsoft.com/LiveID/Federation/2008/05/ImmutableID"
    store = one(table(ca_file, claim_map={
        WSO2_CLAIMS + "emailaddress": "userPrincipalName",  # override
        immutable_id: "mS-DS-ConsistencyGuid",  # add
        WSO2_CLAIMS + "telephone": "",  # remove a default
    }))
    assert store.claim_map[WSO2_CLAIMS + "emailaddress"] == "userPrincipalName"
    assert store.claim_map[immutable_id] == "mS-DS-ConsistencyGuid"
    assert WSO2_CLAIMS + "telephone" not in store.claim_map
    assert store.claim_map[WSO2_CLAIMS + "givenname"] == "givenName"  # other defaults stay


@pytest.mark.parametrize(
    ("attribute", "message"),
    [(7, "expected an attribute name"), ("mail)(uid=*", "'mail)(uid=*' is not an LDAP attribute name"),
     ("1mail", "'1mail' is not an LDAP attribute name")],
)
def test_bad_claim_map_entries_refused(ca_file: Path, attribute: object, message: str) -> None:
    uri = WSO2_CLAIMS + "emailaddress"
    assert problems_of(table(ca_file, claim_map={uri: attribute})) == [f"{WHERE}: claim_map.{uri}: {message}"]


def test_extra_binary_attributes(ca_file: Path) -> None:
    store = one(table(ca_file, ldap_binary_attributes="msExchMailboxGuid objectSid"))
    assert {"msexchmailboxguid", "objectsid", "objectguid"} <= store.binary_attributes


# --- load_settings end to end -------------------------------------------------------------------------------------


STS_TOML = """
[security]
allowed_roles = ["sts-users"]
unqualified_login = "chain"

[[user_stores]]
domain_name = "CORP"
type = "active_directory"
connection_url = ["ldaps://dc1.corp.example:636", "ldaps://dc2.corp.example:636"]
connection_name = "CN=svc-sts,CN=Users,DC=corp,DC=example"
user_search_base = "CN=Users,DC=corp,DC=example"
group_search_base = "CN=Groups,DC=corp,DC=example"
ca_file = "corp-ca.pem"
password_hash_method = "PLAIN_TEXT"

[[user_stores]]
domain_name = "ldap"
type = "read_only_ldap"
connection_url = "ldap://127.0.0.1:3890"
allow_insecure_ldap = true
connection_name = "cn=svc,dc=example,dc=org"
connection_password_file = "ldap.pw"
user_search_base = "ou=people,dc=example,dc=org"
group_search_base = "ou=groups,dc=example,dc=org"

[user_stores.claim_map]
"http://wso2.org/claims/telephone" = ""
"""


def test_load_settings_with_user_stores(tmp_path: Path) -> None:
    (tmp_path / "corp-ca.pem").write_text("pem")
    (tmp_path / "ldap.pw").write_text("ldap-secret\n")
    path = tmp_path / "sts.toml"
    path.write_text(STS_TOML)
    env = {"STS_USER_STORE_CORP_PASSWORD": "corp-secret", "STS_USER_STORE_LDAP_PASSWORD_X": "stray"}
    settings = load_settings(path, env)
    corp, ldap_store = settings.user_stores
    assert (corp.domain_name, corp.connection_password) == ("CORP", "corp-secret")
    assert corp.ca_file == tmp_path / "corp-ca.pem"
    assert corp.connection_url == ("ldaps://dc1.corp.example:636", "ldaps://dc2.corp.example:636")
    assert (ldap_store.domain_name, ldap_store.connection_password) == ("LDAP", "ldap-secret")
    assert WSO2_CLAIMS + "telephone" not in ldap_store.claim_map
    assert WSO2_CLAIMS + "telephone" in corp.claim_map
    assert settings.security.unqualified_login == "chain"
    warnings = config_warnings(settings)
    assert "[[user_stores]] CORP: WSO2 key 'password_hash_method' has no effect here" in warnings
    assert any(w.startswith('security.unqualified_login = "chain"') for w in warnings)
    # the password variables are ours, not foreign; a near miss is foreign
    assert foreign_environment(env) == ["STS_USER_STORE_LDAP_PASSWORD_X"]


def test_load_settings_reports_store_problems_with_the_others(tmp_path: Path) -> None:
    path = tmp_path / "sts.toml"
    path.write_text(STS_TOML.replace('ca_file = "corp-ca.pem"', 'user_dn_pattern = "uid={0}"') + "\n[bogus]\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, {})
    assert caught.value.problems == [
        f"{path}: unknown table [bogus]",
        f"{WHERE}: ca_file: required (the PEM bundle the directory's certificate must chain to)",
        f"{WHERE}: no service password: set $STS_USER_STORE_CORP_PASSWORD or connection_password_file",
        f"{WHERE}: user_dn_pattern is not supported: builds the bind DN from the typed name; "
        "the STS always searches the user first",
        f"[[user_stores]] LDAP: connection_password_file: cannot read {tmp_path / 'ldap.pw'}: "
        "No such file or directory",
    ]


def test_unqualified_login_must_be_primary_or_chain(tmp_path: Path) -> None:
    path = tmp_path / "sts.toml"
    path.write_text('[security]\nunqualified_login = "all"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(path, {})
    assert caught.value.problems == [
        f"{path}: [security] unqualified_login: must be primary or chain (got 'all')"
    ]


def test_two_domains_that_would_read_one_password_variable_are_refused(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not read here")
    tables = [
        {"domain_name": name, "type": "read_only_ldap", "connection_url": "ldaps://127.0.0.1", "ca_file": str(ca),
         "connection_name": "cn=svc", "connection_password": "pw", "user_search_base": "ou=p",
         "group_search_base": "ou=g"}
        for name in ("CORP.EU", "CORP_EU")
    ]
    problems: list[str] = []
    stores = parse_user_stores(tables, tmp_path, {}, problems)
    assert [s.domain_name for s in stores] == ["CORP.EU"]
    assert problems == [
        "[[user_stores]] #2: CORP_EU and CORP.EU would share $STS_USER_STORE_CORP_EU_PASSWORD"
    ]


# --- netbios_name: the NetBIOS name of an Active Directory domain (down-level logon names NETBIOS\user) ------------


def ad(ca: Path, /, **overrides: Any) -> dict[str, Any]:
    """A valid ``active_directory`` table."""
    return table(ca, type="active_directory", **overrides)


def test_netbios_name_is_optional_and_kept_upper_case(ca_file: Path) -> None:
    assert one(ad(ca_file)).netbios_name == ""
    assert one(ad(ca_file, netbios_name=" test ")).netbios_name == "TEST"
    assert one(ad(ca_file, netbios_name="CORP")).netbios_name == "CORP"  # its own domain_name: the usual case
    assert one(ad(ca_file, netbios_name="A" * 15)).netbios_name == "A" * 15
    assert one(ad(ca_file, netbios_name="CORP-EU.1")).netbios_name == "CORP-EU.1"  # a period, not leading


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("A" * 16, "1 to 15 characters"),
        *((f"TE{ch}ST", 'none of \\ / : * ? " < > | nor control characters') for ch in '\\/:*?"<>|'),
        ("TE\x07ST", 'none of \\ / : * ? " < > | nor control characters'),
        (".TEST", "must not start with a period"),
    ],
)
def test_netbios_names_follow_microsofts_rules(ca_file: Path, value: str, message: str) -> None:
    assert problems_of(ad(ca_file, netbios_name=value)) == [f"{WHERE}: netbios_name: {message} (got {value!r})"]


def test_netbios_name_must_be_a_string(ca_file: Path) -> None:
    assert problems_of(ad(ca_file, netbios_name=7)) == [f"{WHERE}: netbios_name: expected a string"]


def test_netbios_name_only_for_active_directory(ca_file: Path) -> None:
    assert problems_of(table(ca_file, netbios_name="TEST")) == [
        f'{WHERE}: netbios_name: only for type = "active_directory" (down-level names are AD\'s)'
    ]
    assert problems_of({"domain_name": "local", "type": "sqlite", "netbios_name": "TEST"}) == [
        "[[user_stores]] LOCAL: unknown key 'netbios_name'"
    ]


def test_two_stores_with_one_netbios_name_are_a_problem(ca_file: Path) -> None:
    stores, problems = parse(ad(ca_file, netbios_name="TEST"), ad(ca_file, domain_name="EU", netbios_name="test"))
    assert problems == ["[[user_stores]] EU: netbios_name TEST is also the NetBIOS name of CORP"]
    assert len(stores) == 2  # the loader refuses the file on any problem


@pytest.mark.parametrize("other", ["EU", "PRIMARY"])
def test_a_netbios_name_that_is_another_domain_is_a_problem(ca_file: Path, other: str) -> None:
    """TEST\\alice and TEST/alice would be two different users."""
    _, problems = parse(ad(ca_file, netbios_name=other), {"domain_name": "EU", "type": "sqlite"})
    assert problems == [f"[[user_stores]] CORP: netbios_name {other} is the domain_name of another store ({other})"]


def test_down_level_domains_maps_folded_netbios_names_to_domains(ca_file: Path) -> None:
    stores, problems = parse(ad(ca_file, netbios_name="TEST"), ad(ca_file, domain_name="EU"), table(ca_file,
                             domain_name="LDAP"))
    assert problems == []
    assert down_level_domains(stores) == {"test": "CORP"}


def test_check_config_reports_a_bad_netbios_name(tmp_path: Path) -> None:
    (tmp_path / "corp-ca.pem").write_text("pem")
    (tmp_path / "ldap.pw").write_text("ldap-secret\n")
    path = tmp_path / "sts.toml"
    path.write_text(STS_TOML.replace('type = "active_directory"', 'type = "active_directory"\nnetbios_name = "T:1"'))
    with pytest.raises(ConfigError) as caught:
        load_settings(path, {"STS_USER_STORE_CORP_PASSWORD": "corp-secret"})
    assert caught.value.problems == [f"{WHERE}: netbios_name: none of \\ / : * ? \" < > | nor control characters"
                                     " (got 'T:1')"]
