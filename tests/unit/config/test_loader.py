"""Tests for sts.config.loader: TOML + STS_* overrides → frozen Settings, every problem reported at once."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from sts.config.loader import config_path_from_env, foreign_environment, load_settings
from sts.config.settings import (
    ALL_DOMAINS,
    IssuerSettings,
    LimitSettings,
    ServerSettings,
    Settings,
    TokenSettings,
    config_warnings,
)
from sts.errors import ConfigError

GOOD = """
[server]
bind = "0.0.0.0:8443"
workers = 4
trusted_proxies = ["10.0.0.1", "10.0.0.2"]
allow_insecure_transport = true
soap12_sender_status = 500
tls_cert = "tls/cert.pem"
tls_key = "/etc/sts/tls.key"

[limits]
max_body_bytes = 131072
max_depth = 40

[issuer]
name = "https://sts.example.com/"
signing_key = "keys/sign.key"
signing_cert = "keys/sign.crt"
previous_certs = ["keys/old1.crt", "/abs/old2.crt"]

[tokens]
lifetime = 600
profile = "adfs"

[security]
allowed_roles = ["admin", "sts-users"]
bsp_strict = true

[lockout]
max_failures = 3

[store]
database = "data/sts.db"

[logging]
level = "debug"
format = "text"
file = ""
"""


def _write(tmp_path: Path, text: str, name: str = "sts.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _problems(path: Path, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env=env or {})
    assert str(caught.value) == "\n".join(caught.value.problems)
    return caught.value.problems


# --- a good file ----------------------------------------------------------------------------------------------


def test_good_file(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD)
    settings = load_settings(path, env={})
    assert settings.config_path == path.resolve()
    assert settings.base_dir == tmp_path.resolve()
    assert settings.server.bind == "0.0.0.0:8443"
    assert settings.server.workers == 4
    assert settings.server.trusted_proxies == ("10.0.0.1", "10.0.0.2")
    assert settings.server.allow_insecure_transport is True
    assert settings.server.soap12_sender_status == 500
    assert settings.limits.max_body_bytes == 131072
    assert settings.limits.max_depth == 40
    assert settings.limits.max_elements == 2000  # default kept for a key not given
    assert settings.issuer.name == "https://sts.example.com/"
    assert settings.tokens.lifetime == 600
    assert settings.tokens.profile == "adfs"
    assert settings.security.allowed_roles == ("admin", "sts-users")
    assert settings.security.bsp_strict is True
    assert settings.lockout.max_failures == 3
    assert settings.logging.level == "debug"
    assert settings.logging.format == "text"
    assert settings.logging.file is None  # "" means unset


def test_settings_are_frozen(tmp_path: Path) -> None:
    settings = load_settings(_write(tmp_path, GOOD), env={})
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.server.workers = 8  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.server = ServerSettings()  # type: ignore[misc]


def test_relative_paths_resolve_against_the_config_directory(tmp_path: Path) -> None:
    sub = tmp_path / "etc"
    sub.mkdir()
    settings = load_settings(_write(sub, GOOD), env={})
    base = sub.resolve()
    assert settings.issuer.signing_key == base / "keys/sign.key"
    assert settings.issuer.signing_cert == base / "keys/sign.crt"
    assert settings.issuer.previous_certs == (base / "keys/old1.crt", Path("/abs/old2.crt"))
    assert settings.server.tls_cert == base / "tls/cert.pem"
    assert settings.server.tls_key == Path("/etc/sts/tls.key")
    assert settings.store.database == base / "data/sts.db"


def test_default_relative_paths_resolve_against_the_config_directory(tmp_path: Path) -> None:
    settings = load_settings(_write(tmp_path, ""), env={})
    base = tmp_path.resolve()
    assert settings.issuer.signing_key == base / "keystore/sts-signing.key.pem"
    assert settings.store.truststore == base / "keystore/truststore"
    assert settings.store.database == base / "sts.db"


def test_relative_paths_do_not_depend_on_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, GOOD)
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert load_settings(path, env={}).issuer.signing_key == tmp_path.resolve() / "keys/sign.key"


# --- defaults -------------------------------------------------------------------------------------------------


def test_empty_file_gives_all_defaults(tmp_path: Path) -> None:
    settings = load_settings(_write(tmp_path, ""), env={})
    assert settings.server == ServerSettings()
    assert settings.limits == LimitSettings()
    defaults = IssuerSettings()
    assert settings.issuer.name == defaults.name
    assert settings.issuer.signing_key == tmp_path / defaults.signing_key  # relative to the config file
    assert settings.tokens == TokenSettings()
    assert settings.security.allowed_domains == (ALL_DOMAINS,)
    assert settings.limits.max_body_bytes == 65536
    assert settings.server.soap12_sender_status == 400


def test_missing_table_gives_its_defaults(tmp_path: Path) -> None:
    settings = load_settings(_write(tmp_path, "[server]\nworkers = 2\n"), env={})
    assert settings.server.workers == 2
    assert settings.server.bind == "127.0.0.1:9443"
    assert settings.limits == LimitSettings()
    assert settings.tokens.lifetime == 300


def test_settings_dataclass_defaults_construct() -> None:
    settings = Settings(config_path=Path("/x/sts.toml"))
    assert settings.base_dir == Path("/x")


# --- bad files -----------------------------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    [problem] = _problems(tmp_path / "nope.toml")
    assert "nope.toml" in problem and "not found" in problem


def test_toml_syntax_error(tmp_path: Path) -> None:
    [problem] = _problems(_write(tmp_path, "[server\nbind = 1\n"))
    assert "not valid TOML" in problem


def test_file_that_is_not_utf8_is_a_problem_not_a_traceback(tmp_path: Path) -> None:
    """gunicorn's master loads the settings outside the CLI's UTF-8 guard: the decode error was a traceback."""
    path = tmp_path / "sts.toml"
    path.write_bytes(b'[server]\nbind = "127.0.0.1:\xff"\n')
    [problem] = _problems(path)
    assert problem == f"{path}: not valid TOML: not UTF-8 text (byte 28)"


def test_unknown_table(tmp_path: Path) -> None:
    [problem] = _problems(_write(tmp_path, "[sever]\nbind = 'x:1'\n"))
    assert "unknown table [sever]" in problem


def test_table_that_is_not_a_table(tmp_path: Path) -> None:
    [problem] = _problems(_write(tmp_path, "server = 3\n"))
    assert "[server] must be a table" in problem


def test_unknown_key(tmp_path: Path) -> None:
    [problem] = _problems(_write(tmp_path, "[server]\nworkerz = 2\n"))
    assert "[server] unknown key 'workerz'" in problem


@pytest.mark.parametrize(
    ("toml", "fragment"),
    [
        ('[server]\nworkers = "4"\n', "[server] workers: expected an integer"),
        ("[server]\nbind = 9443\n", "[server] bind: expected a string"),
        ('[server]\nallow_insecure_transport = "yes"\n', "[server] allow_insecure_transport: expected true or false"),
        ('[server]\ntrusted_proxies = "10.0.0.1"\n', "[server] trusted_proxies: expected a list"),
        ("[server]\ntrusted_proxies = [1, 2]\n", "[server] trusted_proxies: expected a string"),
        ("[issuer]\nsigning_key = 5\n", "[issuer] signing_key: expected a path string"),
        ("[limits]\nmax_depth = 32.0\n", "[limits] max_depth: expected an integer"),
    ],
)
def test_wrong_type(tmp_path: Path, toml: str, fragment: str) -> None:
    [problem] = _problems(_write(tmp_path, toml))
    assert fragment in problem


@pytest.mark.parametrize(
    ("toml", "fragment"),
    [
        ("[server]\nworkers = true\n", "[server] workers: expected an integer"),
        ("[limits]\nmax_depth = false\n", "[limits] max_depth: expected an integer"),
    ],
)
def test_bool_given_for_int(tmp_path: Path, toml: str, fragment: str) -> None:
    [problem] = _problems(_write(tmp_path, toml))
    assert fragment in problem


@pytest.mark.parametrize(
    ("toml", "fragment"),
    [
        ("[limits]\nmax_body_bytes = 0\n", "[limits] max_body_bytes: must be between 1 and 1048576 (got 0)"),
        ("[limits]\nmax_body_bytes = 1048577\n", "max_body_bytes: must be between 1 and 1048576"),
        ("[limits]\nmax_depth = 7\n", "[limits] max_depth: must be between 8 and 256 (got 7)"),
        ("[server]\nworkers = -1\n", "[server] workers: must be 0 or more (got -1)"),
        ("[server]\nsoap12_sender_status = 200\n", "soap12_sender_status: must be 400 or 500 (got 200)"),
        ("[server]\nthreads = 0\n", "[server] threads: must be between 1 and 64 (got 0)"),
        ("[server]\nread_timeout = 0\n", "[server] read_timeout: must be between 1 and 300 (got 0)"),
        ("[server]\nworker_connections = 0\n", "[server] worker_connections: must be between 1 and 100000"),
        ('[logging]\naccess_log_format = "xml"\n', "[logging] access_log_format: must be json, text or empty"),
        ('[server]\nbind = "localhost"\n', "[server] bind: must be HOST:PORT"),
        ("[tokens]\nmax_lifetime = 43201\n", "[tokens] max_lifetime: must be between 1 and 43200"),
        ('[tokens]\nprofile = "jwt"\n', "profile: must be strict, wso2, adfs or cxf"),
        ('[issuer]\nname = ""\n', "[issuer] name: must not be empty"),
        ('[logging]\nlevel = "TRACE"\n', "[logging] level: must be DEBUG|INFO|WARNING|ERROR"),
        ('[security]\nscenario = "X509"\n', "[security] scenario: must be UTOverTransport"),
        ("[security]\nmin_nonce_bytes = 4\n", "[security] min_nonce_bytes: must be between 8 and 64"),
    ],
)
def test_out_of_range_value(tmp_path: Path, toml: str, fragment: str) -> None:
    [problem] = _problems(_write(tmp_path, toml))
    assert fragment in problem


@pytest.mark.parametrize(
    "bind", ["127.0.0.1:99999", ":", "127.0.0.1:", ":9443", "127.0.0.1:0", "::1:9443", "[nope]:9443",
             "unix:/run/sts.sock", "127.0.0.1:+80", "host name:80"],
)
@pytest.mark.parametrize("table", ["server", "metrics"])
def test_a_bind_that_is_not_host_port_is_refused(tmp_path: Path, table: str, bind: str) -> None:
    """``:`` alone or a port past 65535 passed, and gunicorn died with OverflowError when serving."""
    [problem] = _problems(_write(tmp_path, f'[{table}]\nbind = "{bind}"\n'))
    assert f"[{table}] bind: must be HOST:PORT (a port from 1 to 65535" in problem


@pytest.mark.parametrize("bind", ["127.0.0.1:1", "0.0.0.0:65535", "[::1]:9443", "[::]:443", "sts.example.com:8443"])
def test_host_port_binds_are_accepted(tmp_path: Path, bind: str) -> None:
    settings = load_settings(_write(tmp_path, f'[server]\nbind = "{bind}"\n[metrics]\nbind = "{bind}"\n'), env={})
    assert (settings.server.bind, settings.metrics.bind) == (bind, bind)


def test_several_problems_reported_together(tmp_path: Path) -> None:
    text = (
        "[sever]\nx = 1\n"
        "[server]\nworkerz = 2\nworkers = true\nbind = 9443\n"
        "[limits]\nmax_depth = 7\n"
        '[tokens]\nprofile = "jwt"\n'
    )
    problems = _problems(_write(tmp_path, text), env={"STS_LIMITS_NOPE": "1", "STS_LIMITS_MAX_ELEMENTS": "many"})
    expected = [
        "unknown table [sever]",
        "[server] unknown key 'workerz'",
        "[server] workers: expected an integer",
        "[server] bind: expected a string",
        "[limits] max_depth: must be between 8 and 256",
        "profile: must be strict, wso2, adfs or cxf",
        "STS_LIMITS_NOPE names no setting",
        "STS_LIMITS_MAX_ELEMENTS: expected an integer",
    ]
    for fragment in expected:
        assert sum(fragment in p for p in problems) == 1, (fragment, problems)
    assert len(problems) == len(expected)


def test_problem_messages_name_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "[server]\nworkerz = 2\n")
    [problem] = _problems(path)
    assert problem.startswith(f"{path.resolve()}: ")


# --- environment overrides -------------------------------------------------------------------------------------------


def test_env_int_override(tmp_path: Path) -> None:
    env = {"STS_LIMITS_MAX_BODY_BYTES": "4096", "STS_SERVER_WORKERS": "2"}
    settings = load_settings(_write(tmp_path, GOOD), env=env)
    assert settings.limits.max_body_bytes == 4096
    assert settings.server.workers == 2


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", True), ("true", True), ("YES", True), (" on ", True), ("0", False), ("false", False), ("No", False),
     ("off", False)],
)
def test_env_bool_override(tmp_path: Path, value: str, expected: bool) -> None:
    settings = load_settings(_write(tmp_path, ""), env={"STS_SECURITY_BSP_STRICT": value})
    assert settings.security.bsp_strict is expected


def test_env_bool_invalid(tmp_path: Path) -> None:
    [problem] = _problems(_write(tmp_path, ""), env={"STS_SECURITY_BSP_STRICT": "maybe"})
    assert "STS_SECURITY_BSP_STRICT" in problem and "expected a boolean" in problem


def test_env_int_invalid(tmp_path: Path) -> None:
    [problem] = _problems(_write(tmp_path, ""), env={"STS_SERVER_WORKERS": "four"})
    assert "environment STS_SERVER_WORKERS: expected an integer" in problem


def test_env_out_of_range(tmp_path: Path) -> None:
    [problem] = _problems(_write(tmp_path, ""), env={"STS_LIMITS_MAX_BODY_BYTES": "2000000"})
    assert "STS_LIMITS_MAX_BODY_BYTES: must be between 1 and 1048576" in problem


def test_env_list_comma_separated(tmp_path: Path) -> None:
    env = {"STS_SERVER_TRUSTED_PROXIES": "10.1.1.1, 10.1.1.2,,", "STS_SECURITY_ALLOWED_ROLES": "ops"}
    settings = load_settings(_write(tmp_path, GOOD), env=env)
    assert settings.server.trusted_proxies == ("10.1.1.1", "10.1.1.2")
    assert settings.security.allowed_roles == ("ops",)


def test_env_empty_list(tmp_path: Path) -> None:
    settings = load_settings(_write(tmp_path, GOOD), env={"STS_SERVER_TRUSTED_PROXIES": ""})
    assert settings.server.trusted_proxies == ()


def test_env_path_override_relative_and_absolute(tmp_path: Path) -> None:
    settings = load_settings(
        _write(tmp_path, GOOD),
        env={"STS_ISSUER_SIGNING_KEY": "other/k.pem", "STS_STORE_DATABASE": "/var/lib/sts/sts.db"},
    )
    assert settings.issuer.signing_key == tmp_path.resolve() / "other/k.pem"
    assert settings.store.database == Path("/var/lib/sts/sts.db")


def test_env_list_of_paths(tmp_path: Path) -> None:
    settings = load_settings(_write(tmp_path, ""), env={"STS_ISSUER_PREVIOUS_CERTS": "a.crt,/b.crt"})
    assert settings.issuer.previous_certs == (tmp_path.resolve() / "a.crt", Path("/b.crt"))


def test_env_optional_path_empty_means_unset(tmp_path: Path) -> None:
    settings = load_settings(_write(tmp_path, GOOD), env={"STS_SERVER_TLS_CERT": ""})
    assert settings.server.tls_cert is None


def test_env_overrides_the_file(tmp_path: Path) -> None:
    settings = load_settings(_write(tmp_path, GOOD), env={"STS_TOKENS_LIFETIME": "120"})
    assert settings.tokens.lifetime == 120


@pytest.mark.parametrize("name", ["STS_SERVER_NOPE", "STS_SERVER", "STS_LIMITS_", "STS_TOKENS_LIFETIMES"])
def test_env_var_naming_one_of_our_tables_but_no_setting_is_a_problem(tmp_path: Path, name: str) -> None:
    """A misspelt key of a table we own is a typo in our configuration: refuse it, as in the file."""
    [problem] = _problems(_write(tmp_path, ""), env={name: "1"})
    assert name in problem and "names no setting" in problem


@pytest.mark.parametrize(
    "name",
    [
        "STS_CONFIG", "STS_SIGNING_KEY_PASSPHRASE", "STS_PIDFILE", "STS_GUNICORN_WORKERS", "OTHER_SERVER_WORKERS",
        "sts_server_workers", "STS_FOO", "STS_NOPE_X", "STS_", "STS_FUZZ", "STS_SERVERS_WORKERS",
    ],
)
def test_env_vars_that_name_none_of_our_tables_are_ignored(tmp_path: Path, name: str) -> None:
    """The environment is shared: an STS_* variable of another program must not break every command."""
    settings = load_settings(_write(tmp_path, ""), env={name: "x", "STS_SERVER_WORKERS": "3"})
    assert settings.server.workers == 3


def test_foreign_environment_lists_what_is_ignored(tmp_path: Path) -> None:
    env = {
        "STS_FOO": "1", "STS_NOPE_X": "1", "STS_CONFIG": "x", "STS_SIGNING_KEY_PASSPHRASE": "x", "STS_PIDFILE": "x",
        "STS_SERVER_WORKERS": "2", "STS_SERVER_NOPE": "1", "PATH": "/bin",
    }
    assert foreign_environment(env) == ["STS_FOO", "STS_NOPE_X"]


def test_env_defaults_to_os_environ(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("STS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("STS_TOKENS_LIFETIME", "77")
    assert load_settings(_write(tmp_path, ""), env=None).tokens.lifetime == 77


# --- config path ----------------------------------------------------------------------------------------------


def test_config_path_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STS_CONFIG", "/etc/sts/sts.toml")
    assert config_path_from_env() == Path("/etc/sts/sts.toml")
    assert config_path_from_env("explicit.toml") == Path("explicit.toml")
    monkeypatch.delenv("STS_CONFIG")
    assert config_path_from_env() == Path("var/sts.toml")


def test_load_settings_uses_sts_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, "[server]\nworkers = 3\n")
    monkeypatch.setenv("STS_CONFIG", str(path))
    assert load_settings(env={}).server.workers == 3


@pytest.mark.parametrize(
    ("toml", "env"),
    [
        ('[server]\ntrusted_proxies = ["*"]\n', {}),
        ('[server]\ntrusted_proxies = ["10.0.0.1", "*"]\n', {}),
        ("", {"STS_SERVER_TRUSTED_PROXIES": "*"}),
        ('[server]\ntrusted_proxies = ["0.0.0.0/0*"]\n', {}),
    ],
    ids=["star", "star-among-others", "star-from-env", "star-in-network"],
)
def test_trusted_proxies_star_refused(tmp_path: Path, toml: str, env: dict[str, str]) -> None:
    """``*`` made every client's X-Forwarded-Proto believed (issue 12, item 13)."""
    [problem] = _problems(_write(tmp_path, toml), env=env)
    assert "trusted_proxies: must list ip addresses or networks" in problem.lower()
    assert "('*' is refused)" in problem


@pytest.mark.parametrize(
    "entry", ["proxy.example.com", "10.0.0.1/8", "10.0.0.256", "", "10.0.0.0/33", "127.0.0.1:8080"]
)
def test_trusted_proxies_must_be_addresses_or_networks(tmp_path: Path, entry: str) -> None:
    [problem] = _problems(_write(tmp_path, f'[server]\ntrusted_proxies = ["{entry}"]\n'))
    assert "[server] trusted_proxies: must list IP addresses or networks" in problem


def test_client_failure_exempt_must_be_addresses_or_networks(tmp_path: Path) -> None:
    [problem] = _problems(_write(tmp_path, '[security]\nclient_failure_exempt = ["localhost"]\n'))
    assert "[security] client_failure_exempt: must list IP addresses or networks" in problem


def test_trusted_proxies_networks_accepted(tmp_path: Path) -> None:
    toml = '[server]\ntrusted_proxies = ["127.0.0.0/8", "::1", "10.0.0.5", "fd00::/8"]\n'
    settings = load_settings(_write(tmp_path, toml), env={})
    assert settings.server.trusted_proxies == ("127.0.0.0/8", "::1", "10.0.0.5", "fd00::/8")


# What `sts init` wrote before the compatibility profiles (commit e314361): the [tokens] table of such a sts.toml.
OLD_TOKENS_TABLE = '[tokens]\nlifetime = 300\ndefault_token_type = "{value}"\ndefault_relying_party = ""\n'


def test_retired_default_token_type_with_its_default_value_still_loads(tmp_path: Path) -> None:
    settings = load_settings(_write(tmp_path, OLD_TOKENS_TABLE.format(value="saml20")), env={})
    assert settings.tokens.profile == "strict"
    [notice] = settings.notices
    assert "default_token_type = 'saml20' is no longer read" in notice
    assert notice in config_warnings(settings)


def test_retired_default_token_type_saml11_is_a_problem_naming_the_replacement(tmp_path: Path) -> None:
    [problem] = _problems(_write(tmp_path, OLD_TOKENS_TABLE.format(value="saml11")))
    assert "[tokens] default_token_type = 'saml11' is no longer read" in problem
    assert 'profile = "wso2"' in problem
    assert "--token-type saml11" in problem


def test_a_config_path_that_is_a_directory_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    """``--config`` naming a directory (or an instance directory instead of its sts.toml) raised IsADirectoryError
    through every command: check-config with a traceback, reload with an UnboundLocalError."""
    [problem] = _problems(tmp_path)
    assert str(tmp_path.resolve()) in problem and "is a directory" in problem


@pytest.mark.parametrize("command", [["check-config"], ["reload", "--pid-file", "/nonexistent/sts.pid"]])
def test_commands_given_a_directory_as_config_report_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    from sts.cli import main

    assert main(["--config", str(tmp_path), *command]) == 1
    captured = capsys.readouterr()
    assert "is a directory" in captured.out + captured.err
