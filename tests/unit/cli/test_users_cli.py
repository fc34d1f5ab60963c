"""Tests for ``sts user ...`` and ``sts role ...`` (sts.cli.users), run in-process against a fresh instance."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import sqlite3
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sts.auth.passwords import PasswordHasher
from sts.cli import main
from sts.crypto.secretbox import SecretBox
from sts.stores.sqlite import Database
from sts.stores.sqlite_stores import SqliteLockoutStore

EMAIL = "http://wso2.org/claims/emailaddress"
ALICE_PW = "alice-Pa55word!"


@dataclass
class Result:
    code: int
    out: str
    err: str


@dataclass
class Cli:
    """One instance directory and a way to run ``sts --config … ARGS`` in-process."""

    base: Path
    capsys: pytest.CaptureFixture[str]
    monkeypatch: pytest.MonkeyPatch

    @property
    def config(self) -> str:
        return str(self.base / "sts.toml")

    def __call__(self, *args: str, stdin: str = "") -> Result:
        self.capsys.readouterr()
        self.monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        code = main(["--config", self.config, *args])
        captured = self.capsys.readouterr()
        return Result(code, captured.out, captured.err)

    def ok(self, *args: str, stdin: str = "") -> str:
        result = self(*args, stdin=stdin)
        assert result.code == 0, result
        assert result.err == ""
        return result.out

    def fails(self, *args: str, message: str, stdin: str = "") -> Result:
        result = self(*args, stdin=stdin)
        assert result.code == 1, result
        assert result.err.startswith("sts: error: "), result.err
        assert message in result.err, result.err
        assert "Traceback" not in result.err
        return result

    @contextlib.contextmanager
    def db(self) -> Iterator[sqlite3.Connection]:
        # sqlite3.Connection's own context manager commits but does not close (Python 3.13 warns).
        conn = sqlite3.connect(self.base / "sts.db")
        try:
            with conn:
                yield conn
        finally:
            conn.close()

    def stored_hash(self, qualified: str) -> str | None:
        domain, name = qualified.split("/")
        with self.db() as conn:
            row = conn.execute(
                "SELECT password_hash FROM users WHERE domain = ? AND canonical = ?", (domain, name.casefold())
            ).fetchone()
        return None if row is None else str(row[0])

    def add_alice(self) -> None:
        out = self.ok("user", "add", "alice", "--role", "admin", "--claim", f"{EMAIL}=alice@example.com",
                      "--password-stdin", stdin=ALICE_PW + "\n")
        assert out.strip() == "created user PRIMARY/alice"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("instance") / "var"
    assert main(["init", "--key-size", "2048", str(base)]) == 0
    return base


@pytest.fixture
def cli(template: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> Iterator[Cli]:
    for key in [k for k in os.environ if k.startswith("STS_")]:
        monkeypatch.delenv(key)
    base = tmp_path / "var"
    shutil.copytree(template, base)  # paths in sts.toml are relative to the file
    yield Cli(base, capsys, monkeypatch)


def _verifies(stored: str | None, password: str) -> bool:
    assert stored is not None
    return PasswordHasher().verify(password, stored)[0]


# --- user add / show / list ------------------------------------------------------------------------------------


def test_add_and_show(cli: Cli) -> None:
    cli.add_alice()
    shown = cli.ok("user", "show", "alice")
    assert "user:     PRIMARY/alice" in shown
    assert "enabled:  yes" in shown
    assert "digest:   no" in shown
    assert "roles:    admin" in shown
    assert f"claim:    {EMAIL} = alice@example.com" in shown
    assert "failures:" not in shown


def test_add_stores_an_argon2id_hash_of_the_stdin_password(cli: Cli) -> None:
    cli.add_alice()
    stored = cli.stored_hash("PRIMARY/alice")
    assert stored is not None and stored.startswith("$argon2id$")
    assert ALICE_PW not in stored
    assert _verifies(stored, ALICE_PW)
    assert not _verifies(stored, ALICE_PW + "\n")  # the newline ends the password, it is not part of it


def test_add_strips_crlf_only(cli: Cli) -> None:
    cli.ok("user", "add", "bob", "--password-stdin", stdin=" spaced pw \r\nsecond line\n")
    assert _verifies(cli.stored_hash("PRIMARY/bob"), " spaced pw ")


def test_stdout_and_stderr_never_show_the_password(cli: Cli) -> None:
    result = cli("user", "add", "alice", "--role", "admin", "--password-stdin", stdin="CANARY-PW-7f3a\n")
    assert result.code == 0
    assert "CANARY" not in result.out + result.err
    result = cli("user", "show", "alice")
    assert "CANARY" not in result.out + result.err


def test_show_is_case_insensitive_and_accepts_the_domain_prefix(cli: Cli) -> None:
    cli.add_alice()
    for form in ("ALICE", "PRIMARY/alice", "primary/Alice"):
        assert "user:     PRIMARY/alice" in cli.ok("user", "show", form)


def test_list(cli: Cli) -> None:
    assert cli.ok("user", "list") == ""
    cli.add_alice()
    cli.ok("user", "add", "bob", "--password-stdin", stdin="bob-Pa55word!\n")
    cli.ok("user", "add", "dave", "--role", "admin", "--digest", "--password-stdin", stdin="dave-Pa55word!\n")
    cli.ok("user", "disable", "bob")
    assert cli.ok("user", "list").splitlines() == ["PRIMARY/alice", "PRIMARY/bob (disabled)", "PRIMARY/dave (digest)"]


def test_add_with_domain(cli: Cli) -> None:
    cli.ok("user", "add", "erin", "--domain", "secondary", "--role", "admin", "--password-stdin", stdin="erin-pw\n")
    cli.ok("user", "add", "SECONDARY/frank", "--password-stdin", stdin="frank-pw\n")
    assert cli.ok("user", "list").splitlines() == ["SECONDARY/erin", "SECONDARY/frank"]
    assert "user:     SECONDARY/erin" in cli.ok("user", "show", "erin", "--domain", "SECONDARY")
    cli.fails("user", "show", "erin", message="no user PRIMARY/erin")
    cli.fails("user", "show", "SECONDARY/erin", "--domain", "OTHER", message="not both")


def test_add_with_slash_in_domain_refused(cli: Cli) -> None:
    result = cli("user", "add", "bob", "--domain", "a/b", "--password-stdin", stdin="pw-123\n")
    assert result.code == 1
    assert cli.ok("user", "list") == ""


def test_add_with_several_claims_and_roles(cli: Cli) -> None:
    cli.ok("role", "add", "auditor")
    cli.ok("user", "add", "alice", "--role", "admin", "--role", "auditor",
           "--claim", f"{EMAIL}=a@example.com", "--claim", f"{EMAIL}=b@example.com",
           "--claim", "http://wso2.org/claims/givenname=Alice", "--password-stdin", stdin="pw-123456\n")
    shown = cli.ok("user", "show", "alice")
    assert "roles:    admin, auditor" in shown
    claim_lines = [line for line in shown.splitlines() if line.startswith("claim:")]
    assert claim_lines == [
        f"claim:    {EMAIL} = a@example.com",
        f"claim:    {EMAIL} = b@example.com",
        "claim:    http://wso2.org/claims/givenname = Alice",
    ]


def test_add_with_digest_seals_the_secret(cli: Cli) -> None:
    cli.ok("user", "add", "dave", "--role", "admin", "--digest", "--password-stdin", stdin="dave-Pa55word!\n")
    assert "digest:   enrolled" in cli.ok("user", "show", "dave")
    with cli.db() as conn:
        sealed = conn.execute("SELECT digest_secret FROM users WHERE canonical = 'dave'").fetchone()[0]
    assert b"dave-Pa55word!" not in sealed
    box = SecretBox.from_file(cli.base / "keystore" / "credentials.key")
    assert box.open(sealed, "PRIMARY/dave") == "dave-Pa55word!"


# --- duplicates and unknown names ------------------------------------------------------------------------------


def test_duplicate_user_refused(cli: Cli) -> None:
    cli.add_alice()
    before = cli.stored_hash("PRIMARY/alice")
    for name in ("alice", "ALICE", "PRIMARY/Alice"):
        cli.fails("user", "add", name, "--password-stdin", stdin="other-pw\n", message="already exists")
    assert cli.stored_hash("PRIMARY/alice") == before
    assert cli.ok("user", "list").splitlines() == ["PRIMARY/alice"]


def test_same_name_in_another_domain_is_another_user(cli: Cli) -> None:
    cli.add_alice()
    cli.ok("user", "add", "SECONDARY/alice", "--password-stdin", stdin="other-pw\n")
    assert cli.ok("user", "list").splitlines() == ["PRIMARY/alice", "SECONDARY/alice"]


@pytest.mark.parametrize(
    "args",
    [
        ("user", "show", "nobody"),
        ("user", "disable", "nobody"),
        ("user", "enable", "nobody"),
        ("user", "remove", "nobody"),
        ("user", "unlock", "nobody"),
        ("user", "grant", "nobody", "admin"),
        ("user", "revoke", "nobody", "admin"),
    ],
    ids=lambda args: args[1],
)
def test_unknown_user(cli: Cli, args: tuple[str, ...]) -> None:
    cli.fails(*args, message="no user PRIMARY/nobody")


def test_passwd_unknown_user(cli: Cli) -> None:
    cli.fails("user", "passwd", "nobody", "--password-stdin", stdin="new-pw\n", message="no user PRIMARY/nobody")


def test_add_with_unknown_role_creates_nothing(cli: Cli) -> None:
    cli.fails("user", "add", "alice", "--role", "no-such-role", "--password-stdin", stdin="pw-123\n",
              message="unknown role no-such-role")
    assert cli.ok("user", "list") == ""


@pytest.mark.parametrize(
    "claim",
    ["no-equals-sign", "=value", "http://x/ claim=v", f"{EMAIL}=bad\x01value",
     # XML 1.0 §2.2 [2] Char: every Issue for the user would fail inside the server with such a value.
     f"{EMAIL}=Car\uffffol", f"{EMAIL}=Car\ufffeol", "http://x/cl\uffffaim=v"],
    ids=repr,
)
def test_add_with_bad_claim_creates_nothing(cli: Cli, claim: str) -> None:
    result = cli("user", "add", "alice", "--claim", claim, "--password-stdin", stdin="pw-123\n")
    assert result.code == 1
    assert result.err.startswith("sts: error: ")
    assert cli.ok("user", "list") == ""


def test_add_with_control_character_in_claim_uri_refused(cli: Cli) -> None:
    result = cli("user", "add", "alice", "--claim", "http://x/claim\x01=v", "--password-stdin", stdin="pw-123\n")
    assert result.code == 1
    assert cli.ok("user", "list") == ""


@pytest.mark.parametrize("name", ["", "   ", "ali\x00ce", "a" * 257])
def test_add_with_bad_name_refused(cli: Cli, name: str) -> None:
    result = cli("user", "add", name, "--password-stdin", stdin="pw-123\n")
    assert result.code == 1
    assert result.err.startswith("sts: error: ")
    assert cli.ok("user", "list") == ""


# --- passwords are never command-line arguments -----------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ("user", "add", "bob", "secret-on-cmdline"),
        ("user", "add", "bob", "--password", "secret-on-cmdline"),
        ("user", "add", "bob", "--password=secret-on-cmdline"),
        ("user", "add", "bob", "--password-stdin=secret-on-cmdline"),
        ("user", "add", "bob", "--password-stdin", "secret-on-cmdline"),
    ],
)
def test_add_refuses_a_password_argument(cli: Cli, argv: tuple[str, ...]) -> None:
    with pytest.raises(SystemExit) as caught:
        cli(*argv, stdin="from-stdin-pw\n")
    assert caught.value.code == 2
    assert cli.ok("user", "list") == ""


@pytest.mark.parametrize(
    "argv",
    [
        ("user", "passwd", "alice", "secret-on-cmdline"),
        ("user", "passwd", "alice", "--password", "secret-on-cmdline"),
        ("user", "passwd", "alice", "--password-stdin", "secret-on-cmdline"),
    ],
)
def test_passwd_refuses_a_password_argument(cli: Cli, argv: tuple[str, ...]) -> None:
    cli.add_alice()
    before = cli.stored_hash("PRIMARY/alice")
    with pytest.raises(SystemExit) as caught:
        cli(*argv, stdin="from-stdin-pw\n")
    assert caught.value.code == 2
    assert cli.stored_hash("PRIMARY/alice") == before


def test_without_stdin_flag_and_no_terminal_refuses(cli: Cli) -> None:
    cli.fails("user", "add", "bob", stdin="piped-pw\n", message="--password-stdin")
    assert cli.ok("user", "list") == ""


@pytest.mark.parametrize("stdin", ["", "\n", "\r\n"])
def test_empty_password_refused(cli: Cli, stdin: str) -> None:
    cli.fails("user", "add", "bob", "--password-stdin", stdin=stdin, message="empty password")
    assert cli.ok("user", "list") == ""


def test_over_long_password_refused(cli: Cli) -> None:
    result = cli("user", "add", "bob", "--password-stdin", stdin="x" * 1025 + "\n")
    assert result.code == 1
    assert "1024" in result.err
    assert cli.ok("user", "list") == ""


# --- passwd / disable / enable / unlock / remove -----------------------------------------------------------------


def test_passwd(cli: Cli) -> None:
    cli.add_alice()
    out = cli.ok("user", "passwd", "alice", "--password-stdin", stdin="new-Pa55word!\n")
    assert out.strip() == "password changed for PRIMARY/alice"
    stored = cli.stored_hash("PRIMARY/alice")
    assert _verifies(stored, "new-Pa55word!")
    assert not _verifies(stored, ALICE_PW)


def test_passwd_digest_enrols_and_plain_passwd_unenrols(cli: Cli) -> None:
    cli.add_alice()
    cli.ok("user", "passwd", "alice", "--digest", "--password-stdin", stdin="new-Pa55word!\n")
    assert "digest:   enrolled" in cli.ok("user", "show", "alice")
    cli.ok("user", "passwd", "alice", "--password-stdin", stdin="newer-Pa55word!\n")
    assert "digest:   no" in cli.ok("user", "show", "alice")  # no stale secret for the old password


def test_disable_and_enable(cli: Cli) -> None:
    cli.add_alice()
    assert cli.ok("user", "disable", "alice").strip() == "disabled PRIMARY/alice"
    assert "enabled:  no" in cli.ok("user", "show", "alice")
    assert cli.ok("user", "list").splitlines() == ["PRIMARY/alice (disabled)"]
    assert cli.ok("user", "enable", "ALICE").strip() == "enabled PRIMARY/ALICE"
    assert "enabled:  yes" in cli.ok("user", "show", "alice")


def test_unlock(cli: Cli) -> None:
    cli.add_alice()
    db = Database(cli.base / "sts.db")
    lockout = SqliteLockoutStore(db, max_failures=5, duration=300, max_duration=86400)
    try:
        for _ in range(5):
            lockout.record_failure("PRIMARY/alice", time.time())
        assert "failures: 0 (locked until" in cli.ok("user", "show", "alice")
        assert cli.ok("user", "unlock", "Alice").strip() == "unlocked PRIMARY/Alice"
        assert lockout.state("PRIMARY/alice") is None
        assert "failures:" not in cli.ok("user", "show", "alice")
    finally:
        db.close()


def test_remove(cli: Cli) -> None:
    cli.add_alice()
    cli.ok("user", "add", "bob", "--password-stdin", stdin="bob-pw\n")
    assert cli.ok("user", "remove", "alice").strip() == "removed PRIMARY/alice"
    assert cli.ok("user", "list").splitlines() == ["PRIMARY/bob"]
    cli.fails("user", "show", "alice", message="no user PRIMARY/alice")
    cli.fails("user", "remove", "alice", message="no user PRIMARY/alice")
    with cli.db() as conn:  # roles and claims went with the user
        assert conn.execute("SELECT COUNT(*) FROM user_roles").fetchone()[0] == 0
        assert conn.execute("SELECT COUNT(*) FROM user_claims").fetchone()[0] == 0
    assert cli.ok("role", "list").splitlines() == ["admin\t0 user(s)"]


# --- grant / revoke ----------------------------------------------------------------------------------------------


def test_grant_and_revoke(cli: Cli) -> None:
    cli.ok("user", "add", "bob", "--password-stdin", stdin="bob-pw\n")
    assert "roles:    -" in cli.ok("user", "show", "bob")
    assert cli.ok("user", "grant", "bob", "admin").strip() == "granted admin to PRIMARY/bob"
    assert "roles:    admin" in cli.ok("user", "show", "bob")
    cli.ok("user", "grant", "bob", "ADMIN")  # idempotent, case-insensitive role name
    assert cli.ok("role", "list").splitlines() == ["admin\t1 user(s)"]
    assert cli.ok("user", "revoke", "bob", "Admin").strip() == "revoked Admin from PRIMARY/bob"
    assert "roles:    -" in cli.ok("user", "show", "bob")
    cli.fails("user", "revoke", "bob", "admin", message="does not hold role admin")


def test_grant_unknown_role(cli: Cli) -> None:
    cli.add_alice()
    cli.fails("user", "grant", "alice", "nope", message="unknown role nope")
    cli.fails("user", "revoke", "alice", "nope", message="unknown role nope")


# --- roles -------------------------------------------------------------------------------------------------------


def test_role_add_list_remove(cli: Cli) -> None:
    assert cli.ok("role", "list").splitlines() == ["admin\t0 user(s)"]
    assert cli.ok("role", "add", "auditor").strip() == "created role auditor"
    cli.add_alice()
    assert cli.ok("role", "list").splitlines() == ["admin\t1 user(s)", "auditor\t0 user(s)"]
    assert cli.ok("role", "remove", "auditor").strip() == "removed role auditor"
    assert cli.ok("role", "list").splitlines() == ["admin\t1 user(s)"]


def test_role_duplicate_refused(cli: Cli) -> None:
    cli.ok("role", "add", "auditor")
    for name in ("auditor", "AUDITOR", " Auditor "):
        cli.fails("role", "add", name, message="already exists")
    assert cli.ok("role", "list").splitlines() == ["admin\t0 user(s)", "auditor\t0 user(s)"]


def test_role_remove_unknown(cli: Cli) -> None:
    cli.fails("role", "remove", "nope", message="unknown role nope")


def test_role_remove_takes_it_from_holders(cli: Cli) -> None:
    cli.add_alice()
    cli.ok("role", "remove", "ADMIN")
    assert "roles:    -" in cli.ok("user", "show", "alice")
    assert cli.ok("role", "list") == ""


# --- instance problems ---------------------------------------------------------------------------------------------


def test_missing_database_is_a_clear_error(cli: Cli) -> None:
    (cli.base / "sts.db").unlink()
    cli.fails("user", "list", message="database not found")


# --- '/' is the domain separator, never part of a name ----------------------------------------------------------


@pytest.mark.parametrize("name", ["PRIMARY/SECONDARY/carol", "SECONDARY/carol/x", "SECONDARY/carol/"])
def test_add_with_a_separator_in_the_name_refused(cli: Cli, name: str) -> None:
    cli.fails("user", "add", name, "--password-stdin", stdin="pw-123456\n", message="must not contain '/'")
    cli.fails("user", "add", "carol/x", "--domain", "SECONDARY", "--password-stdin", stdin="pw-123456\n",
              message="not both")
    assert cli.ok("user", "list") == ""


def test_a_legacy_name_with_a_separator_is_flagged_and_removable(cli: Cli) -> None:
    with cli.db() as conn:  # as written by a release that accepted PRIMARY/SECONDARY/carol
        conn.execute(
            "INSERT INTO users(domain, name, canonical, password_hash, enabled, created, updated)"
            " VALUES ('PRIMARY', 'SECONDARY/carol', 'secondary/carol', 'x', 1, 0, 0)"
        )
    listed = cli.ok("user", "list").strip()
    assert listed.startswith("PRIMARY/SECONDARY/carol (invalid name")
    cli.fails("user", "show", "PRIMARY/SECONDARY/carol", message="must not contain '/'")
    assert cli.ok("user", "remove", "PRIMARY/SECONDARY/carol").strip() == "removed PRIMARY/SECONDARY/carol"
    assert cli.ok("user", "list") == ""


def test_role_claim_values_are_refused(cli: Cli) -> None:
    """Role claims are issued from membership only; storing one would be a value that is never issued."""
    for uri in ("http://wso2.org/claims/role", "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"):
        cli.fails("user", "add", "alice", "--claim", f"{uri}=admin", "--password-stdin", stdin="pw-123456\n",
                  message="role membership")
    cli.add_alice()
    cli.fails("user", "set-claim", "alice", "http://wso2.org/claims/role=admin", message="role membership")
    cli.ok("user", "set-claim", "alice", "http://wso2.org/claims/role=")  # removing stays possible


# --- input that is not UTF-8 (README: every problem is `sts: error: …`, never a traceback) ---------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ("user", "set-claim", "alice", f"{EMAIL}=a\udcffb"),  # what Python makes of the byte 0xFF (PEP 383)
        ("user", "show", "a\udcff"),
        ("rp", "add", "https://x.example/\udcff/", "--no-encrypt"),
        ("rp", "show", "https://a\udcff/"),
    ],
    ids=repr,
)
def test_an_argument_that_is_not_utf8_is_an_error_not_a_traceback(cli: Cli, argv: tuple[str, ...]) -> None:
    cli.add_alice()
    result = cli.fails(*argv, message="an argument is not UTF-8 text")
    assert result.err == "sts: error: an argument is not UTF-8 text\n"


def test_a_password_on_stdin_that_is_not_utf8_is_refused(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    cli.fails("user", "add", "erin", "--password-stdin", stdin="pass\udcffword\n",
              message="the password on stdin is not UTF-8 text")
    strict = io.TextIOWrapper(io.BytesIO(b"pass\xffword\n"), encoding="utf-8", errors="strict")
    cli.capsys.readouterr()
    monkeypatch.setattr(sys, "stdin", strict)
    assert main(["--config", cli.config, "user", "add", "erin", "--password-stdin"]) == 1
    assert cli.capsys.readouterr().err == "sts: error: the password on stdin is not UTF-8 text\n"
    assert cli.ok("user", "list") == ""


def test_a_file_that_is_not_utf8_is_an_error_not_a_traceback(cli: Cli) -> None:
    """A configuration file that is not UTF-8 is a configuration problem naming the file and the byte (since the
    loader reports it, sts.config.loader), no longer the CLI's generic "not UTF-8" guard, and never a traceback."""
    Path(cli.config).write_bytes(b'[server]\nbind = "a\xff"\n')
    result = cli("check-config")
    assert (result.code, result.err) == (1, ""), result
    assert f"{cli.config}: not valid TOML: not UTF-8 text (byte 19)" in result.out, result.out


def test_the_lock_line_names_the_end_of_a_lock_in_utc_and_says_when_none_holds() -> None:
    from sts.cli.directory_users import lock_line
    from sts.stores.base import LockState

    now = 1_796_611_000.0
    assert lock_line(LockState(0, 1_796_611_964.0), now) == "failures: 0 (locked until 2026-12-07T02:52:44Z)"
    assert lock_line(LockState(3, 0.0), now) == "failures: 3 (not locked)"
    assert lock_line(LockState(2, now - 1), now) == "failures: 2 (not locked)"
