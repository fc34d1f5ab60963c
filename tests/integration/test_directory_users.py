"""Directory users over HTTP: a real gunicorn (2 workers, TLS) with an OpenLDAP-shaped and an Active-Directory-shaped
user store on the test slapd; tokens carry claims from directory attributes; a directory that is down or hangs
fails requests closed within the configured timeouts and is used again when it returns, without a restart."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from lxml import etree

from tests.servers.delay_proxy import delay_proxy
from tests.servers.slapd import SlapdServer
from tests.support import (
    S11,
    Instance,
    Server,
    audit_records,
    fault_qname,
    fault_string,
    make_instance,
    rst_envelope,
    start_server,
)
from tests.token_checks import decrypt_with_python_xmlsec
from tests.unit.auth.directory_support import SlapdLog

pytestmark = pytest.mark.integration

XENC = "http://www.w3.org/2001/04/xmlenc#"
SAML2 = "urn:oasis:names:tc:SAML:2.0:assertion"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
IMMUTABLE_ID = "http://schemas.microsoft.com/LiveID/Federation/2008/05/ImmutableID"
PHONE = "http://wso2.org/claims/telephone"
EMAIL = "http://wso2.org/claims/emailaddress"
DEMO_RP = "https://localhost:8443/demo-rp/"


def _stores_toml(slapd: SlapdServer) -> str:
    ldap_tree, ad_tree = slapd.openldap, slapd.active_directory
    return f"""
[[user_stores]]
domain_name = "LDAP"
type = "read_only_ldap"
connection_url = "{slapd.ldap_url}"
start_tls = true
connection_name = "{ldap_tree.service_dn}"
user_search_base = "{ldap_tree.user_search_base}"
group_search_base = "{ldap_tree.group_search_base}"
ca_file = "{slapd.ca_file}"
ldap_connection_timeout = 1000
read_timeout = 1000

[[user_stores]]
domain_name = "CORP"
type = "active_directory"
netbios_name = "TEST"
connection_url = ["ldaps://127.0.0.1:1", "{slapd.ldaps_url}"]
connection_name = "{ad_tree.service_dn}"
connection_password_file = "corp.pw"
user_search_base = "{ad_tree.user_search_base}"
group_search_base = "{ad_tree.group_search_base}"
ca_file = "{slapd.ca_file}"
ldap_connection_timeout = 1000
read_timeout = 1000

[user_stores.claim_map]
"{IMMUTABLE_ID}" = "objectGUID"
"""


@pytest.fixture(scope="module")
def directory_instance(tmp_path_factory: pytest.TempPathFactory, slapd: SlapdServer) -> Instance:
    instance = make_instance(tmp_path_factory.mktemp("directory") / "var")
    assert instance.cli("rp", "update", DEMO_RP, "--claim", EMAIL, "--claim", PHONE, "--claim", IMMUTABLE_ID) == 0
    with instance.config.open("a") as config:
        config.write(_stores_toml(slapd))
    (instance.base / "corp.pw").write_text(slapd.active_directory.service_password + "\n")
    return instance


@pytest.fixture(scope="module")
def directory_server(directory_instance: Instance, slapd: SlapdServer) -> Iterator[Server]:
    env = {
        "STS_USER_STORE_LDAP_PASSWORD": slapd.openldap.service_password,
        "STS_SECURITY_ALLOWED_ROLES": "admin,sts-users",
        "STS_LOCKOUT_MAX_FAILURES": "3",
        "STS_SECURITY_CLIENT_FAILURE_EXEMPT": "127.0.0.1,::1",
    }
    server = start_server(directory_instance, workers=2, env=env)
    yield server
    server.stop()


def _request(server: Server, user: str, password: str, **kwargs: object) -> requests.Response:
    return server.post(rst_envelope(user, password, **kwargs))  # type: ignore[arg-type]


def _assertion(response: requests.Response, instance: Instance) -> etree._Element:
    assert response.status_code == 200, response.text
    encrypted = etree.fromstring(response.content).find(f".//{{{XENC}}}EncryptedData")
    assert encrypted is not None
    return etree.fromstring(decrypt_with_python_xmlsec(encrypted, instance.rp_key))


def _attributes(assertion: etree._Element) -> dict[str, list[str]]:
    return {
        attribute.get("Name", ""): [value.text or "" for value in attribute.iter(f"{{{SAML2}}}AttributeValue")]
        for attribute in assertion.iter(f"{{{SAML2}}}Attribute")
    }


def _failed_authentication(response: requests.Response) -> bool:
    return response.status_code == 500 and fault_qname(response.content) == (WSSE, "FailedAuthentication")


def _last_reason(server: Server) -> str:
    """The reason of the last authentication event (the tests of this module send one request at a time)."""
    records = [r for r in audit_records(server.log) if r.get("audit_event") == "authentication"]
    return str(records[-1]["reason"])


def test_openldap_user_with_a_nested_role_gets_claims_from_attributes(
    directory_server: Server, directory_instance: Instance
) -> None:
    # alice is in staff, which is a member of sts-users: the allowed role comes through the nesting.
    assertion = _assertion(_request(directory_server, "LDAP/alice", "alice-pw-1"), directory_instance)
    assert assertion.findtext(f".//{{{SAML2}}}NameID") == "LDAP/alice"
    attributes = _attributes(assertion)
    assert attributes[EMAIL] == ["alice@example.org"]
    assert attributes[PHONE] == ["+1 555 0100", "+1 555 0101"]  # a multi-valued attribute stays several values


@pytest.mark.parametrize("login", ["alice", "alice@corp.example", "ALICE"])
def test_active_directory_login_by_sam_account_name_or_upn(
    directory_server: Server, directory_instance: Instance, login: str
) -> None:
    # The first connection_url is a closed port: every login also proves failover to the second one.
    assertion = _assertion(_request(directory_server, f"CORP/{login}", "alice-ad-pw-1"), directory_instance)
    assert assertion.findtext(f".//{{{SAML2}}}NameID") == "CORP/alice"  # the entry's name, not the typed text
    assert _attributes(assertion)[IMMUTABLE_ID] == ["lEkYOJwYhUy+4HS+ArsRRA=="]  # objectGUID, base64


@pytest.mark.parametrize("login", ["CORP/uma@corp.example", "TEST\\uma@corp.example", "CORP/uma.upn@contoso.example"])
def test_active_directory_login_by_implicit_upn(
    directory_server: Server, directory_instance: Instance, login: str
) -> None:
    """uma's explicit UPN has another suffix: uma@corp.example is her implicit UPN, always hers in AD."""
    assertion = _assertion(_request(directory_server, login, "uma-ad-pw-10"), directory_instance)
    assert assertion.findtext(f".//{{{SAML2}}}NameID") == "CORP/uma"


@pytest.mark.parametrize(
    ("user", "password", "reason"),
    [
        ("LDAP/alice", "wrong-password", "wrong_password"),
        ("LDAP/alice", "", "empty_password"),  # refused by the UsernameToken rules, before any store
        ("LDAP/nobody", "whatever-1", "unknown_user"),
        ("LDAP/admin)(uid=*", "alice-pw-1", "wrong_password"),  # one entry, matched literally: its own password
        ("LDAP/*", "alice-pw-1", "wrong_password"),  # '*' is the user named '*', not a wildcard
        ("LDAP/dave", "dave-pw-4", "role_denied"),  # only in loop-a/loop-b: the cycle ends, no allowed role
        ("CORP/dana", "dana-ad-pw-3", "user_disabled"),
        ("CORP/eve", "eve-ad-pw-4", "account_expired"),
        ("CORP/max", "max-ad-pw-5", "must_change_password"),
    ],
)
def test_refusals_are_one_generic_fault_with_a_precise_audit_reason(
    directory_server: Server, user: str, password: str, reason: str
) -> None:
    response = _request(directory_server, user, password)
    assert _failed_authentication(response)
    assert _last_reason(directory_server) == reason


# --- down-level logon names: netbios_name = "TEST" on CORP ----------------------------------------------------------


def _last_login(server: Server) -> tuple[object, ...]:
    """The last login's audit: event, domain, user, and how the caller got in or why not (a success is carried by
    the operation's record, README "Logs"; a failure is an authentication record of its own)."""
    record = [r for r in audit_records(server.log) if r["audit_event"] in ("authentication", "issue")][-1]
    return record["audit_event"], record.get("domain"), record.get("user"), record.get("auth_method", record["reason"])


def test_every_spelling_of_a_login_is_audited_under_the_account_the_directory_named(
    directory_server: Server, directory_instance: Instance
) -> None:
    """The audit's ``user`` is the name as typed on a failure; ``account`` is the account the store found (the
    lockout's key), so a SOC groups TEST\\UMA, uma's implicit UPN and her explicit one under one account."""
    for typed in ("TEST\\UMA", "CORP/uma@corp.example"):
        assert _failed_authentication(_request(directory_server, typed, "not-umas-password"))
        record = [r for r in audit_records(directory_server.log) if r["audit_event"] == "authentication"][-1]
        assert (record["reason"], record["account"]) == ("wrong_password", "CORP/uma"), typed
    assert _request(directory_server, "CORP/uma.upn@contoso.example", "uma-ad-pw-10").status_code == 200
    record = [r for r in audit_records(directory_server.log) if r["audit_event"] == "issue"][-1]
    assert (record["user"], record["account"]) == ("uma", "CORP/uma")
    assert _failed_authentication(_request(directory_server, "CORP/nobody", "whatever-1"))
    record = [r for r in audit_records(directory_server.log) if r["audit_event"] == "authentication"][-1]
    assert record["reason"] == "unknown_user" and "account" not in record  # no account was found


def test_a_down_level_logon_name_gets_the_token_of_the_domain_form(
    directory_server: Server, directory_instance: Instance
) -> None:
    """TEST\\alice (the NetBIOS name is not the domain_name here) is CORP/alice: the same NameID, the same claims
    and the same audit as CORP/alice."""
    tokens, logins = [], []
    for typed in ("CORP/alice", "TEST\\alice", "test\\alice"):
        tokens.append(_assertion(_request(directory_server, typed, "alice-ad-pw-1"), directory_instance))
        logins.append(_last_login(directory_server))
    assert [token.findtext(f".//{{{SAML2}}}NameID") for token in tokens] == ["CORP/alice"] * 3
    assert _attributes(tokens[1]) == _attributes(tokens[2]) == _attributes(tokens[0])
    assert _attributes(tokens[1])[IMMUTABLE_ID] == ["lEkYOJwYhUy+4HS+ArsRRA=="]
    assert logins == [("issue", "CORP", "alice", "password-text")] * 3


@pytest.mark.parametrize(
    ("user", "password", "reason"),
    [
        ("TEST\\eve", "eve-ad-pw-4", "account_expired"),
        ("TEST\\dana", "dana-ad-pw-3", "user_disabled"),
        ("TEST\\bob", "not-bobs-password", "wrong_password"),
        # No store has the NetBIOS name OTHER: the bare PRIMARY name OTHER\alice, as before down-level names.
        ("OTHER\\alice", "alice-ad-pw-1", "unknown_user"),
        ("CORP\\alice", "alice-ad-pw-1", "unknown_user"),  # the domain_name is not the NetBIOS name
        ("TEST\\alice\\x", "alice-ad-pw-1", "bad_username"),
    ],
)
def test_down_level_refusals_are_the_generic_fault_with_their_audit_reason(
    directory_server: Server, user: str, password: str, reason: str
) -> None:
    assert _failed_authentication(_request(directory_server, user, password))
    assert _last_reason(directory_server) == reason


def test_a_down_level_name_meets_the_lock_of_the_account(
    directory_server: Server, directory_instance: Instance, slapd: SlapdServer, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Wrong passwords by TEST\\jsmith, CORP/jsmith and the UPN count on one account (max_failures 3); locked, the
    right password by any spelling, cached or not, never reaches a bind; `sts user unlock TEST\\jsmith` unlocks it."""
    dn = slapd.active_directory.users["jsmith"].dn
    log = SlapdLog(slapd)
    assert _request(directory_server, "TEST\\jsmith", "smith-ad-pw-7").status_code == 200  # cached from now on
    for typed in ("TEST\\jsmith", "CORP/jsmith", "CORP/jsmith@corp.example"):
        assert _failed_authentication(_request(directory_server, typed, "not-the-password"))
        typed_name = typed.replace("TEST\\", "").replace("CORP/", "")  # the name part, as for every spelling
        assert _last_login(directory_server) == ("authentication", "CORP", typed_name, "wrong_password")
    assert log.binds(dn) == 4  # the first login and each wrong password: the directory's verdicts
    for typed in ("TEST\\jsmith", "TEST\\JSMITH", "CORP/jsmith"):
        assert _failed_authentication(_request(directory_server, typed, "smith-ad-pw-7"))
        assert _last_reason(directory_server) == "account_locked"
    assert log.binds(dn) == 4
    monkeypatch.setenv("STS_USER_STORE_LDAP_PASSWORD", slapd.openldap.service_password)
    assert directory_instance.cli("user", "unlock", "TEST\\jsmith") == 0
    assert capsys.readouterr().out.strip() == "unlocked CORP/jsmith"
    assert _request(directory_server, "TEST\\jsmith", "smith-ad-pw-7").status_code == 200


def test_filter_specials_in_names_reach_exactly_their_own_entry(
    directory_server: Server, directory_instance: Instance
) -> None:
    for user, password in (("LDAP/*", "star-pw-5"), ("LDAP/back\\slash", "backslash-pw-7")):
        response = _request(directory_server, user, password)
        assert response.status_code == 200, (user, response.text)
    # Its own password binds (the entry was found literally); the user holds no group, hence no allowed role.
    assert _failed_authentication(_request(directory_server, "LDAP/admin)(uid=*", "paren-pw-6"))
    assert _last_reason(directory_server) == "role_denied"


def test_password_digest_cannot_be_checked_against_a_directory(directory_server: Server) -> None:
    response = _request(directory_server, "LDAP/bob", "bob-pw-2", digest=True)
    assert _failed_authentication(response)
    assert _last_reason(directory_server) == "digest_not_supported_by_directory_store"


def test_local_lockout_stops_logins_before_the_directory_is_asked(
    directory_server: Server, slapd: SlapdServer
) -> None:
    for _ in range(3):
        assert _failed_authentication(_request(directory_server, "LDAP/carol", "not-carols-password"))
    binds_before = _binds(slapd, "uid=carol,")
    response = _request(directory_server, "LDAP/carol", "carol-pw-3")  # the right password, but locked here
    assert _failed_authentication(response)
    assert _last_reason(directory_server) == "account_locked"
    assert _binds(slapd, "uid=carol,") == binds_before  # the directory never saw the attempt


def _binds(slapd: SlapdServer, dn_prefix: str) -> int:
    return sum(f'BIND dn="{dn_prefix}' in line for line in slapd.log_file.read_text(errors="replace").splitlines())


def test_a_stopped_directory_fails_closed_and_recovers_without_a_restart(
    directory_server: Server, directory_instance: Instance, slapd: SlapdServer
) -> None:
    with slapd.stopped():
        started = time.monotonic()
        response = _request(directory_server, "LDAP/bob", "bob-pw-2-not-cached")
        assert time.monotonic() - started < 5
        assert response.status_code == 500
        assert fault_qname(response.content) == (S11, "Server")
        assert fault_string(response.content) == "Service unavailable"
    assert _request(directory_server, "LDAP/bob", "bob-pw-2").status_code == 200


def test_a_hung_directory_fails_closed_within_the_timeouts(
    directory_server: Server, slapd: SlapdServer
) -> None:
    with slapd.paused():
        for user, password in (("LDAP/jürgen", "pässwört-jü-8"), ("CORP/bob", "bob-ad-pw-2")):
            started = time.monotonic()
            response = _request(directory_server, user, password)
            # connect (1 s) + operations (1 s each), per URL tried: a few seconds, never the worker timeout.
            assert time.monotonic() - started < 8, user
            assert fault_string(response.content) == "Service unavailable", user
    assert _request(directory_server, "CORP/bob", "bob-ad-pw-2").status_code == 200


def test_user_store_commands(directory_instance: Instance, slapd: SlapdServer, capsys: pytest.CaptureFixture[str],
                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STS_USER_STORE_LDAP_PASSWORD", slapd.openldap.service_password)
    assert directory_instance.cli("user-store", "list") == 0
    listing = capsys.readouterr().out
    assert "LDAP" in listing and "read_only_ldap" in listing and "active_directory" in listing
    monkeypatch.setattr("sys.stdin", io.StringIO("alice-ad-pw-1\n"))
    assert directory_instance.cli("user-store", "test", "CORP", "--user", "alice", "--password-stdin") == 0
    out = capsys.readouterr().out
    assert "cn=Alice Anders,cn=Users,dc=corp,dc=example" in out
    assert "CORP/staff, CORP/sts-users" in out
    assert "password: binds" in out
    monkeypatch.setattr("sys.stdin", io.StringIO("wrong\n"))
    assert directory_instance.cli("user-store", "test", "CORP", "--user", "alice", "--password-stdin") == 1
    assert "password: refused (wrong_password)" in capsys.readouterr().out
    for typed in ("TEST\\alice", "CORP/alice", "alice@corp.example"):  # as a login reads them
        assert directory_instance.cli("user-store", "test", "CORP", "--user", typed) == 0
        assert "cn=Alice Anders,cn=Users,dc=corp,dc=example" in capsys.readouterr().out
    assert directory_instance.cli("user-store", "test", "CORP", "--user", "LDAP/alice") == 1
    assert "names a user of domain LDAP, not CORP" in capsys.readouterr().err
    # TEST is CORP's NetBIOS name: on LDAP it names CORP's user, as at login, not an LDAP entry called "TEST\alice".
    assert directory_instance.cli("user-store", "test", "LDAP", "--user", "TEST\\alice") == 1
    assert "names a user of domain CORP, not LDAP" in capsys.readouterr().err
    assert directory_instance.cli("user", "show", "CORP/dana") == 0
    assert "enabled:  no (user_disabled)" in capsys.readouterr().out
    assert directory_instance.cli("user", "disable", "CORP/alice") == 1
    assert "read-only directory" in capsys.readouterr().err


def test_show_and_unlock_name_the_account_the_directory_finds(
    directory_instance: Instance, slapd: SlapdServer, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The STS's lock belongs to CORP/alice whether the admin types her account name or her UPN."""
    from sts.cli.common import open_stores
    from sts.config import load_settings

    monkeypatch.setenv("STS_USER_STORE_LDAP_PASSWORD", slapd.openldap.service_password)
    settings = load_settings(directory_instance.config)
    with open_stores(settings) as stores:
        for _ in range(settings.lockout.max_failures):
            stores.lockout.record_failure("CORP/alice", time.time())
    assert directory_instance.cli("user", "show", "CORP/alice@corp.example") == 0
    assert "failures: 0 (locked until" in capsys.readouterr().out
    assert directory_instance.cli("user", "unlock", "CORP/alice@corp.example") == 0
    assert capsys.readouterr().out.strip() == "unlocked CORP/alice"
    with open_stores(settings) as stores:
        assert stores.lockout.state("CORP/alice") is None


def test_user_commands_read_down_level_names(
    directory_instance: Instance, slapd: SlapdServer, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`sts user` reads NAME as a login does: TEST\\dana is CORP/dana, and TEST\\carl no built-in user. A built-in
    PRIMARY user named TEST\\carl (only as PRIMARY/TEST\\carl) is what check-config warns about."""
    monkeypatch.setenv("STS_USER_STORE_LDAP_PASSWORD", slapd.openldap.service_password)
    assert directory_instance.cli("user", "show", "TEST\\dana") == 0
    assert "user:     CORP/dana" in capsys.readouterr().out
    monkeypatch.setattr("sys.stdin", io.StringIO("Carls-pw-1\n"))
    assert directory_instance.cli("user", "add", "TEST\\carl", "--password-stdin") == 1
    assert "user store CORP is a read-only directory" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("Carls-pw-1\n"))
    assert directory_instance.cli("user", "add", "PRIMARY/TEST\\carl", "--password-stdin") == 0
    try:
        from sts.cli import main

        main(["--config", str(directory_instance.config), "check-config"])
        assert ("user PRIMARY/TEST\\carl: the bare name now reads as a down-level logon name (a [[user_stores]]"
                " netbios_name); that user signs in as PRIMARY/TEST\\carl") in capsys.readouterr().out
    finally:
        assert directory_instance.cli("user", "remove", "PRIMARY/TEST\\carl") == 0


def test_check_config_refuses_a_dn_pattern(directory_instance: Instance, capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch, slapd: SlapdServer) -> None:
    monkeypatch.setenv("STS_USER_STORE_LDAP_PASSWORD", slapd.openldap.service_password)
    text = directory_instance.config.read_text()
    broken = directory_instance.base / "broken.toml"
    broken.write_text(text.replace('type = "read_only_ldap"', 'type = "read_only_ldap"\nuser_dn_pattern = "uid={0}"'))
    from sts.cli import main

    assert main(["--config", str(broken), "check-config"]) == 1
    assert "LDAP: user_dn_pattern is not supported" in capsys.readouterr().out


def test_a_slow_directory_fails_the_login_within_one_budget_not_a_sum_of_timeouts(
    tmp_path: Path, slapd: SlapdServer
) -> None:
    """Each round trip answers within read_timeout, but a login is several (search, bind, a search per level of
    group nesting): all of them together get ldap_connection_timeout + 2 x read_timeout (here 1 + 2 x 2 s), so the
    request fails closed in time and gunicorn (timeout 7 s) never kills the worker that serves it."""
    instance = make_instance(tmp_path / "var")
    with delay_proxy(slapd.ldaps_port) as proxy:
        ldap_tree = slapd.openldap
        with instance.config.open("a") as config:
            config.write(f"""
[[user_stores]]
domain_name = "LDAP"
type = "read_only_ldap"
connection_url = "ldaps://127.0.0.1:{proxy.port}"
connection_name = "{ldap_tree.service_dn}"
user_search_base = "{ldap_tree.user_search_base}"
group_search_base = "{ldap_tree.group_search_base}"
ca_file = "{slapd.ca_file}"
ldap_connection_timeout = 1000
read_timeout = 2000
""")
        env = {
            "STS_USER_STORE_LDAP_PASSWORD": ldap_tree.service_password,
            "STS_SECURITY_ALLOWED_ROLES": "sts-users",
            "STS_SECURITY_CREDENTIAL_CACHE_TTL": "0",  # every login asks the directory
            "STS_SERVER_TIMEOUT": "7",
        }
        server = start_server(instance, workers=1, env=env)
        try:
            assert _request(server, "LDAP/alice", "alice-pw-1").status_code == 200  # pooled connections
            proxy.delay = 0.9  # each round trip 1.8 s: within read_timeout, four or more of them are not
            for _ in range(2):
                started = time.monotonic()
                response = _request(server, "LDAP/alice", "alice-pw-1")
                assert time.monotonic() - started < 5 + 0.8
                assert fault_string(response.content) == "Service unavailable"
                assert _last_reason(server) in ("directory_timeout", "directory_down")  # where the budget ran out
            proxy.delay = 0
            assert _request(server, "LDAP/alice", "alice-pw-1").status_code == 200
        finally:
            server.stop()
        assert "WORKER TIMEOUT" not in server.log.read_text(errors="replace")
