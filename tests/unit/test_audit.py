"""The audit scope: one record per successful request, the caller's authentication carried by the outcome."""

from __future__ import annotations

import io
import json
import logging

import pytest

from sts.audit import AuditEvent, emit, request_scope
from sts.logging import JsonFormatter


def _records(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    return [
        {key: vars(r).get(key) for key in ("audit_event", "outcome", "user", "auth_method")}
        for r in caplog.records
        if r.name == "sts.audit"
    ]


def _login(event: str, user: str, outcome: str = "success", reason: str = "password-text") -> AuditEvent:
    return AuditEvent(event=event, outcome=outcome, correlation_id="c", user=user, domain="PRIMARY", reason=reason)


def test_the_outcome_record_carries_the_held_authentication(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="sts.audit"), request_scope():
        emit(_login("authentication", "alice"))
        emit(AuditEvent(event="issue", outcome="success", correlation_id="c", reason="issued"))
    assert _records(caplog) == [
        {"audit_event": "issue", "outcome": "success", "user": "alice", "auth_method": "password-text"}
    ]


def test_a_delegated_login_never_carries_the_callers_authentication(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="sts.audit"), request_scope():
        emit(_login("authentication", "service", reason="x509"))
        emit(_login("delegated_authentication", "bob", reason="password"))
        emit(AuditEvent(event="issue", outcome="success", correlation_id="c", user="service", reason="issued"))
    assert _records(caplog) == [
        {"audit_event": "delegated_authentication", "outcome": "success", "user": "bob", "auth_method": None},
        {"audit_event": "issue", "outcome": "success", "user": "service", "auth_method": "x509"},
    ]


def test_an_authentication_nothing_else_recorded_is_written_when_the_scope_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="sts.audit"):
        with request_scope():
            emit(_login("authentication", "alice"))
            assert _records(caplog) == []
        assert _records(caplog) == [
            {"audit_event": "authentication", "outcome": "success", "user": "alice", "auth_method": None}
        ]


def test_outside_a_request_every_event_is_written_at_once(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="sts.audit"):
        emit(_login("authentication", "alice"))
    assert _records(caplog) == [
        {"audit_event": "authentication", "outcome": "success", "user": "alice", "auth_method": None}
    ]


def test_the_fold_keeps_the_events_own_fields_and_the_field_order() -> None:
    """The held login fills only what the event leaves empty, and the JSON line lists the fields in the
    AuditEvent's order whichever came from the login."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    audit_logger = logging.getLogger("sts.audit")
    audit_logger.addHandler(handler)
    audit_logger.setLevel(logging.INFO)
    try:
        with request_scope():
            emit(_login("authentication", "alice"))
            emit(AuditEvent(event="issue", outcome="success", correlation_id="c", domain="OTHER",
                            token_id="_t", reason="issued", duration_ms=1.5))
        with request_scope():
            emit(_login("authentication", "alice"))
            emit(AuditEvent(event="renew", outcome="failure", correlation_id="c", user="bob", auth_method="x509"))
    finally:
        audit_logger.removeHandler(handler)
        audit_logger.setLevel(logging.NOTSET)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    fields = [{key: value for key, value in line.items() if key not in ("time", "level", "logger", "pid")}
              for line in lines]
    assert [list(field.items()) for field in fields] == [
        [("message", "issue success"), ("audit_event", "issue"), ("outcome", "success"), ("correlation_id", "c"),
         ("user", "alice"), ("domain", "OTHER"), ("token_id", "_t"), ("reason", "issued"), ("duration_ms", 1.5),
         ("auth_method", "password-text")],
        [("message", "renew failure"), ("audit_event", "renew"), ("outcome", "failure"), ("correlation_id", "c"),
         ("user", "bob"), ("domain", "PRIMARY"), ("auth_method", "x509")],
    ]


def test_the_account_of_the_held_login_is_carried_by_the_outcome_record(caplog: pytest.LogCaptureFixture) -> None:
    """A login typed as ALICE names the account CORP/alice: the outcome record carries it beside the user."""
    login = AuditEvent(event="authentication", outcome="success", correlation_id="c", user="ALICE", domain="CORP",
                       reason="password-text", account="CORP/alice")
    with caplog.at_level(logging.INFO, logger="sts.audit"), request_scope():
        emit(login)
        emit(AuditEvent(event="issue", outcome="success", correlation_id="c", user="alice", domain="CORP"))
    (record,) = [r for r in caplog.records if r.name == "sts.audit"]
    assert (vars(record)["user"], vars(record)["account"]) == ("alice", "CORP/alice")
