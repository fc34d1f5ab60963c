"""Upgrading an instance made by release 0.1.0 (commit b55a0bf), as README's "Upgrading" section says: its
``sts.toml`` as that release wrote it, its database (the schema 0.1.0 created, migration 0001, with rows copied from
a real 0.1.0 instance: ``upgrade_0_1_0/data.sql``), its relying party's truststore file and a client certificate
in ``keystore/clients`` (where 0.1.0 registered the keys PublicKey tokens could carry). The keys are new ones of
the same layout (``sts init``). Then check-config, ``sts db upgrade``, check-config and the listings."""

from __future__ import annotations

import io
import os
import shutil
import sqlite3
import sys
from pathlib import Path

import pytest

from sts.bootstrap import startup_warnings
from sts.cli import main
from sts.config import load_settings
from sts.crypto.keystore import load_keystore
from sts.stores.migrations import latest, migrations

FIXTURE = Path(__file__).parent / "upgrade_0_1_0"
RP = "https://app.example.com/wstrust/"
RP_FILE = "https-app-example-com-wstrust-ff2406f5.crt.pem"
# keystore/credentials.key of that instance: it sealed SECONDARY/bob's PasswordDigest secret in data.sql
CREDENTIALS_KEY = bytes.fromhex("04985daf5945711730698762b32c9c9e517e202039d6fa3e3869d6085a22cbf1")


@pytest.fixture
def old_instance(tmp_path: Path) -> Path:
    base = tmp_path / "var"
    assert main(["init", "--key-size", "2048", str(base)]) == 0
    (base / "sts.db").unlink()
    conn = sqlite3.connect(base / "sts.db")
    try:
        conn.executescript(migrations("sqlite")[0].sql)
        conn.executescript((FIXTURE / "data.sql").read_text(encoding="utf-8"))
        conn.commit()
    finally:
        conn.close()
    shutil.copy(FIXTURE / "sts.toml", base / "sts.toml")
    (base / "keystore" / "credentials.key").write_bytes(CREDENTIALS_KEY)
    shutil.copy(FIXTURE / RP_FILE, base / "keystore" / "truststore" / RP_FILE)
    shutil.copy(FIXTURE / "client.crt.pem", base / "keystore" / "clients" / "app-client.crt.pem")
    return base


def sts(base: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    capsys.readouterr()
    saved, sys.stdin = sys.stdin, io.StringIO("")
    try:
        code = main(["--config", str(base / "sts.toml"), *args])
    finally:
        sys.stdin = saved
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_the_documented_steps_upgrade_a_0_1_0_instance(old_instance: Path, capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [name for name in os.environ if name.startswith("STS_")]:
        monkeypatch.delenv(name)
    code, out = sts(old_instance, capsys, "check-config")
    assert code == 1
    assert f"has schema version 1; this release needs version {latest('sqlite')}: run `sts db upgrade`" in out
    code, out = sts(old_instance, capsys, "db", "upgrade")
    assert (code, out.strip()) == (0, f"schema upgraded from version 1 to {latest('sqlite')}")

    code, out = sts(old_instance, capsys, "check-config")
    assert code == 1  # the relying party's `openssl req -x509` certificate, as README says
    assert f"relying party {RP}: a CA certificate" in out
    # 0.1.0 let any caller bind a key of keystore/clients; now only keys registered to the caller: say so
    clients = old_instance / "keystore" / "clients"
    assert (
        f"warning: security.trusted_client_certs: {clients} holds 1 client certificate(s) (app-client.crt.pem) that"
        " unsigned PublicKey requests no longer bind (wst:InvalidRequest): register each to its user with"
        " `sts user add-cert USER FILE`, then remove it from this folder"
    ) in out

    code, out = sts(old_instance, capsys, "user", "list")
    assert code == 0
    assert {"PRIMARY/admin", "PRIMARY/alice", "PRIMARY/carol (disabled)", "SECONDARY/bob (digest)"} <= set(
        out.splitlines()
    )
    code, out = sts(old_instance, capsys, "user", "show", "SECONDARY/bob")
    assert code == 0 and "digest:   enrolled" in out and "roles:    admin, auditors" in out
    code, out = sts(old_instance, capsys, "rp", "show", RP)
    assert code == 0 and "token type:             saml11 (set)" in out
    claims = [line.split()[-1] for line in out.splitlines() if line.startswith("  claim: ")]
    assert claims == ["http://wso2.org/claims/emailaddress", "http://wso2.org/claims/role"]

    settings = load_settings(old_instance / "sts.toml", env={})
    keystore = load_keystore(settings)
    try:
        assert any("app-client.crt.pem" in warning for warning in startup_warnings(settings, keystore))
    finally:
        keystore.close()


def test_client_certificates_are_no_warning_with_the_legacy_rule(old_instance: Path) -> None:
    settings = load_settings(old_instance / "sts.toml", env={"STS_SECURITY_LEGACY_UNPROVEN_USE_KEY": "true"})
    keystore = load_keystore(settings)
    try:
        assert not any("trusted_client_certs" in warning for warning in startup_warnings(settings, keystore))
    finally:
        keystore.close()


def test_users_0_1_0_stored_under_names_now_refused_are_named_with_the_remedy(
    old_instance: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """0.1.0 accepted ``sts user add PRIMARY/SECONDARY/carol`` and ``SECONDARY/x/y``; such a user cannot sign in
    now. ``sts user list`` flagged them, but check-config said "configuration OK": it names each, with the fix."""
    assert sts(old_instance, capsys, "db", "upgrade")[0] == 0
    code, out = sts(old_instance, capsys, "check-config")
    separator = "user names must not contain '/': it separates the domain (DOMAIN/NAME)"
    for user in ("PRIMARY/SECONDARY/carol", "SECONDARY/x/y", "PRIMARY/a\uff0fb"):
        assert (
            f"warning: user {user}: an earlier release stored this name, which is now refused ({separator}): the"
            f" user cannot sign in; remove it (`sts user remove '{user}'`) and add the account under a valid name"
        ) in out
        assert sts(old_instance, capsys, "user", "remove", user) == (0, f"removed {user}\n")
    code, out = sts(old_instance, capsys, "check-config")
    assert "an earlier release stored this name" not in out
    assert "invalid name" not in sts(old_instance, capsys, "user", "list")[1]


def test_user_list_says_why_a_stored_name_is_refused(old_instance: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert sts(old_instance, capsys, "db", "upgrade")[0] == 0
    conn = sqlite3.connect(old_instance / "sts.db")
    try:  # 0.1.0 let `sts user add` store U+FFFF, which XML (and so a NameID) cannot carry
        conn.execute("UPDATE users SET name = 'car\uffffol', canonical = 'car\uffffol' WHERE name = 'carol'")
        conn.commit()
    finally:
        conn.close()
    listed = sts(old_instance, capsys, "user", "list")[1].splitlines()
    assert "PRIMARY/car\uffffol (disabled) (invalid name: names must not contain control or format characters;" \
        " cannot sign in; remove it)" in listed  # it said "'/' in the name part"
    assert "PRIMARY/SECONDARY/carol (invalid name: user names must not contain '/': it separates the domain" \
        " (DOMAIN/NAME); cannot sign in; remove it)" in listed
    out = sts(old_instance, capsys, "check-config")[1]
    assert "warning: user PRIMARY/car\uffffol: an earlier release stored this name, which is now refused (names must" \
        " not contain control or format characters): the user cannot sign in; add the account under a valid name" in out


def test_role_claims_0_1_0_issued_from_stored_values_are_named_with_the_remedy(
    old_instance: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """0.1.0 issued a role claim's stored values instead of the user's roles (dan: superuser, a member of admin
    only); now roles come from membership, so dan's tokens say admin. check-config names that, and its remedy works;
    the demo admin's stored role=admin is its membership, so nothing changed for it."""
    role = "http://wso2.org/claims/role"
    assert sts(old_instance, capsys, "db", "upgrade")[0] == 0
    out = sts(old_instance, capsys, "check-config")[1]
    assert (
        f"warning: user PRIMARY/dan: {role} is stored as superuser, which earlier releases issued instead of the"
        " user's roles; tokens now carry the roles (admin): grant the roles its relying parties expect"
        " (`sts role add ROLE`, `sts user grant 'PRIMARY/dan' ROLE`), then remove the stored value"
        f" (`sts user set-claim 'PRIMARY/dan' {role}=`)"
    ) in out
    assert "user PRIMARY/admin:" not in out
    preview = ("preview", "--user", "dan", "--rp", RP, "--claims", role)
    assert f"  {role} = admin\n" in sts(old_instance, capsys, *preview)[1]

    assert sts(old_instance, capsys, "role", "add", "superuser")[0] == 0
    assert sts(old_instance, capsys, "user", "grant", "dan", "superuser")[0] == 0
    assert sts(old_instance, capsys, "user", "set-claim", "PRIMARY/dan", f"{role}=")[0] == 0
    assert "is stored as" not in sts(old_instance, capsys, "check-config")[1]
    assert f"  {role} = admin, superuser\n" in sts(old_instance, capsys, *preview)[1]
