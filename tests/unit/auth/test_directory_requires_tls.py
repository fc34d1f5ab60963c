"""A directory that takes simple binds only over TLS: the audit reason ``directory_requires_tls``, a log line that
names the fix, and ``sts user-store test`` saying so (not the generic ``directory_error``).

Active Directory and Samba answer a simple bind on plain ``ldap://`` with strongerAuthRequired (8; Samba 4.17:
"BindSimple: Transport encryption required."), OpenLDAP configured with ``security simple_bind=N`` with
confidentialityRequired (13) (RFC 4511 §4.1.9). The integration tests here run a slapd of their own with that
setting (the session's ``slapd`` is left as it is); Samba's code 8 is covered by the mapping tests below and was
checked by hand against a Samba 4.17 AD DC (README, "Directory user stores").
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path

import ldap
import pytest

from sts.auth.directory_store import DirectoryUserStore
from sts.auth.ldap_client import failure_reason
from sts.auth.users import DIRECTORY_REQUIRES_TLS as REQUIRES_TLS
from sts.cli.common import CommandError
from sts.cli.directory_users import directory_call
from sts.errors import ServiceUnavailable
from tests.servers.certs import write_server_tls
from tests.servers.directory_data import active_directory_tree, openldap_tree
from tests.servers.slapd import SlapdServer, running_slapd, write_config
from tests.support import Instance, make_instance
from tests.unit.auth.directory_support import SlapdLog, openldap_table, store_settings

SAMBA_INFO = "BindSimple: Transport encryption required."

# --- the mapping (no server) ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [
        ldap.STRONG_AUTH_REQUIRED({"result": 8, "desc": "Strong(er) authentication required", "info": SAMBA_INFO}),
        ldap.CONFIDENTIALITY_REQUIRED({"result": 13, "desc": "Confidentiality required",
                                       "info": "confidentiality required"}),
    ],
)
def test_a_request_for_encryption_on_a_plain_connection_is_its_own_reason(error: ldap.LDAPError) -> None:
    assert failure_reason(error, plain=True) == REQUIRES_TLS == "directory_requires_tls"


@pytest.mark.parametrize("error_class", [ldap.STRONG_AUTH_REQUIRED, ldap.CONFIDENTIALITY_REQUIRED])
def test_on_an_encrypted_connection_the_same_codes_stay_a_directory_error(error_class: type[ldap.LDAPError]) -> None:
    """Over LDAPS or StartTLS "use TLS" would be wrong advice (the server wants a stronger cipher or SASL)."""
    assert failure_reason(error_class({"desc": "x"}), plain=False) == "directory_error"


@pytest.mark.parametrize(
    "error", [ldap.OPERATIONS_ERROR({"desc": "x"}), ldap.INSUFFICIENT_ACCESS({"desc": "x"}),
              ldap.PROTOCOL_ERROR({"desc": "x"}), ldap.UNWILLING_TO_PERFORM({"desc": "x"})],
)
def test_other_errors_stay_a_directory_error(error: ldap.LDAPError) -> None:
    assert failure_reason(error, plain=True) == "directory_error"


def test_the_command_line_names_the_fix() -> None:
    def refuses() -> None:
        raise ServiceUnavailable("user directory CORP: directory_requires_tls", reason="directory_requires_tls")

    with pytest.raises(CommandError) as caught:
        directory_call(refuses)
    assert str(caught.value) == (
        "the directory refuses simple binds without TLS (directory_requires_tls): use an ldaps:// URL, or"
        " start_tls = true on ldap://"
    )

    def down() -> None:
        raise ServiceUnavailable("user directory CORP: directory_down", reason="directory_down")

    with pytest.raises(CommandError, match=r"^the directory did not answer: directory_down$"):
        directory_call(down)


# --- a real slapd that requires TLS for simple binds ------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_only_slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlapdServer]:
    """A slapd of this module that refuses simple binds below a security strength factor of 128 (slapd.conf(5)
    ``security simple_bind=128``): plain ``ldap://`` has 0, TLS the cipher's key size."""
    with running_slapd(tmp_path_factory.mktemp("slapd-tls-only"), global_config="security simple_bind=128") as server:
        yield server


def _plain_store(server: SlapdServer, **overrides: object) -> DirectoryUserStore:
    table = openldap_table(server, **{"connection_url": server.ldap_url, "allow_insecure_ldap": True, **overrides})
    return DirectoryUserStore(store_settings(table))


@pytest.mark.integration
def test_the_server_refuses_a_plain_simple_bind_with_confidentiality_required(tls_only_slapd: SlapdServer) -> None:
    """What the tests below rely on: slapd's answer, straight from python-ldap."""
    tree = tls_only_slapd.openldap
    conn = tls_only_slapd.connect(tls_only_slapd.ldap_url)
    try:
        with pytest.raises(ldap.CONFIDENTIALITY_REQUIRED):
            conn.simple_bind_s(tree.service_dn, tree.service_password)
    finally:
        conn.unbind_s()
    conn = tls_only_slapd.connect(tls_only_slapd.ldap_url, start_tls=True)
    try:
        conn.simple_bind_s(tree.service_dn, tree.service_password)
    finally:
        conn.unbind_s()


@pytest.mark.integration
def test_a_login_over_plain_ldap_is_refused_as_directory_requires_tls(
    tls_only_slapd: SlapdServer, caplog: pytest.LogCaptureFixture
) -> None:
    tree = tls_only_slapd.openldap
    store = _plain_store(tls_only_slapd)
    log = SlapdLog(tls_only_slapd)
    try:
        with caplog.at_level(logging.WARNING, logger="sts.auth.ldap"), pytest.raises(ServiceUnavailable) as caught:
            store.authenticate("LDAP", "alice", tree.users["alice"].password)
    finally:
        store.close()
    assert caught.value.reason == "directory_requires_tls"
    assert caught.value.fault_string == "Service unavailable"  # the client still gets the one generic fault
    assert log.binds(tree.users["alice"].dn) == 0  # the service account was refused: the user's bind never went out
    (record,) = [r for r in caplog.records if r.getMessage().startswith("the directory refuses simple binds")]
    assert "use an ldaps:// URL, or start_tls = true" in record.getMessage()
    assert (record.levelname, record.url, record.ldap_error) == (  # type: ignore[attr-defined]
        "ERROR", tls_only_slapd.ldap_url, "CONFIDENTIALITY_REQUIRED"
    )
    for secret in (tree.service_password, tree.users["alice"].password):
        assert secret not in caplog.text
    assert "directory operation failed" not in caplog.text and "cannot connect" not in caplog.text


@pytest.mark.integration
@pytest.mark.parametrize("tls_only_first", [True, False])
def test_with_a_second_url_down_the_reason_is_still_the_one_to_act_on(
    tls_only_slapd: SlapdServer, tls_only_first: bool
) -> None:
    """Every URL failed: the reason was the last URL's, so a closed port after the directory that wants TLS said
    directory_down, and the operator looked for a server that was up all along."""
    urls = [tls_only_slapd.ldap_url, "ldap://127.0.0.1:1"]
    store = _plain_store(tls_only_slapd, connection_url=urls if tls_only_first else urls[::-1])
    try:
        with pytest.raises(ServiceUnavailable) as caught:
            store.authenticate("LDAP", "alice", tls_only_slapd.openldap.users["alice"].password)
    finally:
        store.close()
    assert caught.value.reason == "directory_requires_tls"


@pytest.mark.integration
def test_the_same_directory_with_start_tls_or_ldaps_logs_in(tls_only_slapd: SlapdServer) -> None:
    tree = tls_only_slapd.openldap
    for store in (
        _plain_store(tls_only_slapd, start_tls=True, allow_insecure_ldap=None),
        DirectoryUserStore(store_settings(openldap_table(tls_only_slapd))),  # ldaps://
    ):
        try:
            verdict = store.authenticate("LDAP", "alice", tree.users["alice"].password)
        finally:
            store.close()
        assert getattr(verdict, "name", None) == "alice", verdict


@pytest.fixture(scope="module")
def tls_only_instance(tmp_path_factory: pytest.TempPathFactory, tls_only_slapd: SlapdServer) -> Instance:
    instance = make_instance(tmp_path_factory.mktemp("tls-only") / "var")
    tree = tls_only_slapd.openldap
    with instance.config.open("a") as config:
        config.write(f"""
[[user_stores]]
domain_name = "LDAP"
type = "read_only_ldap"
connection_url = "{tls_only_slapd.ldap_url}"
allow_insecure_ldap = true
connection_name = "{tree.service_dn}"
connection_password_file = "ldap.pw"
user_search_base = "{tree.user_search_base}"
group_search_base = "{tree.group_search_base}"
ca_file = "{tls_only_slapd.ca_file}"
ldap_connection_timeout = 1000
read_timeout = 1000
""")
    (instance.base / "ldap.pw").write_text(tree.service_password + "\n")
    return instance


@pytest.mark.integration
def test_user_store_test_says_the_directory_requires_tls(
    tls_only_instance: Instance, tls_only_slapd: SlapdServer, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    expected = (
        "the directory refuses simple binds without TLS (directory_requires_tls): use an ldaps:// URL, or"
        " start_tls = true on ldap://"
    )
    assert tls_only_instance.cli("user-store", "test", "LDAP") == 1
    assert expected in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO(tls_only_slapd.openldap.users["alice"].password + "\n"))
    assert tls_only_instance.cli("user-store", "test", "LDAP", "--user", "alice", "--password-stdin") == 1
    err = capsys.readouterr().err
    assert expected in err and tls_only_slapd.openldap.users["alice"].password not in err


def test_the_session_slapd_gets_no_security_line(tmp_path: Path) -> None:
    """The dedicated server's setting comes through running_slapd's ``global_config``, which the session fixture
    does not pass: the configuration it writes has no ``security`` line."""

    def config(name: str, **kwargs: str) -> str:
        directory = tmp_path / name
        directory.mkdir()
        trees = (openldap_tree(), active_directory_tree())
        return write_config(directory, write_server_tls(directory), trees, **kwargs).read_text()

    assert "\nsecurity " not in config("default")
    assert "\nsecurity simple_bind=128\n" in config("tls-only", global_config="security simple_bind=128")
