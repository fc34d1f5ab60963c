"""``sts explain`` (a dry run of the pipeline: nothing recorded, counted or issued) and ``sts preview``."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import sqlite3
from pathlib import Path

import pytest
from lxml import etree

from sts.cli import main
from sts.clock import format_instant
from tests.support import WSU, Instance, make_instance, rst_envelope

DEMO_RP = "https://localhost:8443/demo-rp/"


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Instance:
    return make_instance(tmp_path_factory.mktemp("explain") / "var")


def _rows(instance: Instance, table: str) -> int:
    with contextlib.closing(sqlite3.connect(instance.base / "sts.db")) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # noqa: S608 - test table names


def _explain(instance: Instance, body: bytes, tmp_path: Path, *extra: str) -> int:
    request = tmp_path / "request.xml"
    request.write_bytes(body)
    return main(["--config", str(instance.config), "explain", str(request), *extra])


def test_a_good_request_explains_every_check_and_records_nothing(
    instance: Instance, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = {table: _rows(instance, table) for table in ("replay", "tokens")}
    body = rst_envelope("admin", instance.demo_password)
    assert _explain(instance, body, tmp_path) == 0
    assert _explain(instance, body, tmp_path) == 0  # the same nonce again: it was never recorded
    out = capsys.readouterr().out
    for check in ("parse", "timestamp", "password", "nonce", "relying party", "sign", "encrypt", "store"):
        assert f"ok    {check}:" in out, check
    assert f"it would succeed (issue: saml20 token for {DEMO_RP}); nothing was issued or recorded" in out
    assert {table: _rows(instance, table) for table in ("replay", "tokens")} == before


def test_a_wrong_password_names_the_reason_and_counts_no_failure(
    instance: Instance, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _explain(instance, rst_envelope("admin", "not the password"), tmp_path) == 2
    out = capsys.readouterr().out
    assert "ok    lockout:" in out and "FAIL  authentication:" in out
    assert "  FAIL  wrong password\n" in out
    assert "refused with FailedAuthentication (reason code: wrong_password)" in out
    assert _rows(instance, "counters") == 0  # lockout and client-throttle counts


def test_an_unknown_relying_party_is_the_first_failure_after_authentication(
    instance: Instance, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = rst_envelope("admin", instance.demo_password, applies_to="https://unknown.example/")
    assert _explain(instance, body, tmp_path) == 2
    out = capsys.readouterr().out
    assert "ok    request:" in out and "ok    relying party:" not in out
    assert "refused with InvalidScope (reason code: unknown_applies_to)" in out


def test_an_old_request_is_judged_at_its_own_timestamp_unless_now_is_asked(
    instance: Instance, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # An hour from now: the demo certificates were made just now, so a request judged before then could not be
    # encrypted for the RP; judged now, its Timestamp is from the future.
    sent = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(hours=1)
    envelope = etree.fromstring(rst_envelope("admin", instance.demo_password, created=format_instant(sent)))
    timestamp = envelope.find(f".//{{{WSU}}}Timestamp")
    assert timestamp is not None
    timestamp[0].text, timestamp[1].text = format_instant(sent), format_instant(sent + dt.timedelta(minutes=5))
    body = etree.tostring(envelope)
    assert _explain(instance, body, tmp_path, "--now") == 2
    out = capsys.readouterr().out
    assert "ok    security header:" in out and "ok    timestamp:" not in out
    assert _explain(instance, body, tmp_path) == 0
    out = capsys.readouterr().out
    assert f"at {format_instant(sent)} (the request's wsu:Timestamp Created" in out


def test_an_instant_with_an_offset_is_judged_and_shown_in_utc(
    instance: Instance, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--at`` with an offset names the same instant in UTC, and the header says that instant (was: the local time of
    day followed by ``Z``, two hours off for +02:00). A request Created the pipeline would refuse (no zone) sets no
    clock (was: read by a laxer parser as a zone-less time and printed with ``Z``)."""
    sent = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(hours=1)
    envelope = etree.fromstring(rst_envelope("admin", instance.demo_password, created=format_instant(sent)))
    timestamp = envelope.find(f".//{{{WSU}}}Timestamp")
    assert timestamp is not None
    timestamp[0].text, timestamp[1].text = format_instant(sent), format_instant(sent + dt.timedelta(minutes=5))
    at = sent.astimezone(dt.timezone(dt.timedelta(hours=2))).isoformat()
    assert _explain(instance, etree.tostring(envelope), tmp_path, "--at", at) == 0
    assert f"at {format_instant(sent)} (--at)" in capsys.readouterr().out
    timestamp[0].text = sent.strftime("%Y-%m-%dT%H:%M:%S")
    assert _explain(instance, etree.tostring(envelope), tmp_path) == 2
    out = capsys.readouterr().out
    assert "(the current time: the request has no wsu:Timestamp Created the STS would accept)" in out
    assert "refused with InvalidSecurityToken (reason code: bad_created)" in out


def test_preview_shows_subject_claims_lifetime_and_encryption(
    instance: Instance, capsys: pytest.CaptureFixture[str]
) -> None:
    email = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress"
    args = ["--config", str(instance.config), "preview", "--user", "admin", "--rp", DEMO_RP, "--claims", email]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "token type:    urn:oasis:names:tc:SAML:2.0:assertion" in out
    assert "subject:       PRIMARY/admin" in out and "lifetime:      300 s" in out
    assert "confirmation:  bearer" in out and "encryption:    aes256-gcm" in out
    assert f"  {email} = admin@example.com" in out
    assert _rows(instance, "tokens") == 0


def test_preview_of_an_unknown_relying_party_says_why(
    instance: Instance, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--config", str(instance.config), "preview", "--user", "admin", "--rp", "https://unknown.example/"]
    assert main(args) == 2
    assert "refused: InvalidScope (reason code: unknown_applies_to)" in capsys.readouterr().out
    assert main(["--config", str(instance.config), "preview", "--user", "nobody", "--rp", DEMO_RP]) == 1


def test_preview_of_a_user_issue_would_refuse_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A user Issue refuses as a caller (no allowed role, disabled) is shown, then refused with exit 2."""
    own = make_instance(tmp_path / "var")
    config = ["--config", str(own.config)]
    preview = [*config, "preview", "--rp", DEMO_RP, "--user"]
    assert main([*config, "role", "add", "staff"]) == 0
    assert main([*config, "user", "grant", "admin", "staff"]) == 0
    assert main([*config, "user", "revoke", "admin", "admin"]) == 0
    capsys.readouterr()
    assert main([*preview, "admin"]) == 2
    out = capsys.readouterr().out
    assert "allowed role:  NO" in out and "refused: FailedAuthentication (reason code: role_denied)" in out
    assert main([*config, "user", "grant", "admin", "admin"]) == 0
    assert main([*config, "user", "disable", "admin"]) == 0
    capsys.readouterr()
    assert main([*preview, "admin"]) == 2
    assert "refused: FailedAuthentication (reason code: user_disabled)" in capsys.readouterr().out
    assert main([*config, "user", "enable", "admin"]) == 0
    assert main([*preview, "admin"]) == 0


def test_a_correlation_id_is_looked_up_in_the_audit_log(
    instance: Instance, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "sts.log"
    log.write_text(
        '{"message": "authentication failure", "correlation_id": "abc", "reason": "wrong_password"}\n'
        "not json\n"
        '{"message": "request failure", "correlation_id": "other", "fault": "InvalidScope"}\n'
    )
    assert main(["--config", str(instance.config), "explain", "--correlation-id", "abc", "--log", str(log)]) == 0
    out = capsys.readouterr().out
    assert "authentication failure: reason=wrong_password" in out and "InvalidScope" not in out
    assert main(["--config", str(instance.config), "explain", "--correlation-id", "nope", "--log", str(log)]) == 1


@pytest.mark.parametrize("breaking", ["\n", "\r", "\x85", "\x9b2J", "\u2028"])
def test_audit_values_from_clients_are_printed_escaped(
    instance: Instance, tmp_path: Path, capsys: pytest.CaptureFixture[str], breaking: str
) -> None:
    """A client-supplied value (a Validate's token reference) with a line break, a carriage return or an 8-bit
    CSI neither prints a forged record nor drives the operator's terminal; nor can it pass for another field."""
    forged = "validate valid: audit_event=validate, outcome=valid, reason=valid"
    record = {"message": "validate invalid", "correlation_id": "abc", "outcome": "invalid",
              "token_id": f"_x{breaking}{forged}", "reason": "unknown_token", "client_address": "a, reason=valid"}
    log = tmp_path / "sts.log"
    log.write_text(json.dumps(record) + "\n")
    assert main(["--config", str(instance.config), "explain", "--correlation-id", "abc", "--log", str(log)]) == 0
    out = capsys.readouterr().out
    assert breaking == "\n" or breaking not in out  # a line feed: the count of lines below
    first, note = out.splitlines()  # the record's line, then the note on request bodies
    assert first.startswith("validate invalid: outcome=invalid, token_id=\"_x\\")
    assert first.endswith(f'{forged}", reason=unknown_token, client_address="a, reason=valid"')
    assert note.startswith("(request bodies are never logged")
