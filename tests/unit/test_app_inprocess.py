"""``create_app`` in-process, without gunicorn: the whole WSGI application under a frozen clock.

The clock is frozen ten minutes ahead of the wall clock (the demo certificates are valid then), so a part that
read the wall clock instead of the clock given to ``create_app`` shows: the request's Timestamp, made at the frozen
instant, would be refused as from the future, and the token's IssueInstant would not be the frozen instant.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest
from lxml import etree

from sts.app import create_app
from sts.clock import FrozenClock, format_instant
from sts.config import load_settings
from sts.soap.transport import Transport
from tests.support import WSSE, WST, WSU, Instance, fault_qname, make_instance, rst_envelope
from tests.token_checks import decrypt_with_python_xmlsec

SAML2 = "urn:oasis:names:tc:SAML:2.0:assertion"


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Instance:
    return make_instance(tmp_path_factory.mktemp("inprocess") / "var")


@pytest.fixture
def frozen() -> datetime:
    return (datetime.now(UTC) + timedelta(minutes=10)).replace(microsecond=0)


def _app(instance: Instance, clock: FrozenClock) -> Transport:
    return create_app(load_settings(instance.config, env={}), clock=clock)


def _request(instance: Instance, at: datetime, password: str | None = None) -> bytes:
    """The demo user's Issue request, every instant in it (Timestamp, UsernameToken Created) at ``at``."""
    envelope = etree.fromstring(rst_envelope("admin", password or instance.demo_password, created=format_instant(at)))
    timestamp = envelope.find(f".//{{{WSU}}}Timestamp")
    assert timestamp is not None
    timestamp[0].text, timestamp[1].text = format_instant(at), format_instant(at + timedelta(minutes=5))
    return bytes(etree.tostring(envelope))


def _post(app: Transport, body: bytes) -> tuple[str, bytes]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/services/wso2carbon-sts",
        "CONTENT_TYPE": "text/xml; charset=utf-8",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": BytesIO(body),
        "wsgi.url_scheme": "https",
        "REMOTE_ADDR": "127.0.0.1",
    }
    setup_testing_defaults(environ)
    status: list[str] = []

    def start_response(line: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        status.append(line)

    response = b"".join(app(environ, start_response))
    return status[0], response


def test_a_token_issued_in_process_carries_the_frozen_time(instance: Instance, frozen: datetime) -> None:
    app = _app(instance, FrozenClock(frozen))
    status, body = _post(app, _request(instance, frozen))
    assert status == "200 OK", body[:2000]
    root = etree.fromstring(body)
    skewed = format_instant(frozen - timedelta(seconds=60))  # validity starts [tokens] clock_skew before issuance
    assert root.findtext(f".//{{{WST}}}Lifetime/{{{WSU}}}Created") == skewed
    holder = root.find(f".//{{{WST}}}RequestedSecurityToken")
    assert holder is not None
    assertion = etree.fromstring(decrypt_with_python_xmlsec(holder[0][0], instance.rp_key))
    assert assertion.tag == f"{{{SAML2}}}Assertion"
    assert assertion.get("IssueInstant") == format_instant(frozen)
    conditions = assertion.find(f"{{{SAML2}}}Conditions")
    assert conditions is not None and conditions.get("NotBefore") == skewed


def test_freshness_is_judged_on_the_frozen_clock(instance: Instance, frozen: datetime) -> None:
    app = _app(instance, FrozenClock(frozen))
    status, body = _post(app, _request(instance, datetime.now(UTC).replace(microsecond=0)))  # the wall clock's now
    assert status == "500 Internal Server Error"
    assert fault_qname(body) == (WSSE, "MessageExpired")


def test_a_replayed_request_is_refused_in_process(instance: Instance, frozen: datetime) -> None:
    clock = FrozenClock(frozen)
    app = _app(instance, clock)
    request = _request(instance, frozen)
    assert _post(app, request)[0] == "200 OK"
    status, body = _post(app, request)
    assert (status, fault_qname(body)) == ("500 Internal Server Error", (WSSE, "InvalidSecurity"))


def _audit_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "sts.audit"]


def test_a_successful_request_is_one_audit_record_naming_how_the_caller_authenticated(
    instance: Instance, frozen: datetime, caplog: pytest.LogCaptureFixture
) -> None:
    app = _app(instance, FrozenClock(frozen))
    with caplog.at_level(logging.INFO, logger="sts.audit"):
        status, body = _post(app, _request(instance, frozen))
    assert status == "200 OK", body[:2000]
    [record] = _audit_records(caplog)
    fields = vars(record)
    assert (fields["audit_event"], fields["outcome"], fields["user"], fields["auth_method"]) == (
        "issue", "success", "admin", "password-text"
    )


def test_a_request_refused_after_authentication_names_the_authenticated_caller(
    instance: Instance, frozen: datetime, caplog: pytest.LogCaptureFixture
) -> None:
    app = _app(instance, FrozenClock(frozen))
    envelope = _request(instance, frozen).replace(b"https://localhost:8443/demo-rp/", b"https://nobody.example/")
    with caplog.at_level(logging.INFO, logger="sts.audit"):
        status, body = _post(app, envelope)
    assert fault_qname(body) == (WST, "InvalidScope"), body[:2000]
    [record] = _audit_records(caplog)
    fields = vars(record)
    assert (fields["audit_event"], fields["outcome"], fields["fault"], fields["user"], fields["auth_method"]) == (
        "request", "failure", "InvalidScope", "admin", "password-text"
    )


def test_a_failed_authentication_is_still_its_own_record(
    instance: Instance, frozen: datetime, caplog: pytest.LogCaptureFixture
) -> None:
    app = _app(instance, FrozenClock(frozen))
    with caplog.at_level(logging.INFO, logger="sts.audit"):
        _post(app, _request(instance, frozen, password="not-the-password"))
    kinds = [(vars(r)["audit_event"], vars(r)["outcome"], vars(r).get("auth_method")) for r in _audit_records(caplog)]
    assert kinds == [("authentication", "failure", None), ("request", "failure", None)]


def test_a_stored_claim_value_xml_cannot_carry_is_a_clean_fault_not_an_internal_error(
    tmp_path: Path, frozen: datetime, caplog: pytest.LogCaptureFixture
) -> None:
    """A value outside XML 1.0 §2.2 Char (stored by an earlier release, or read from a directory) fails the Issue
    with wst:RequestFailed and its own audit reason, not lxml's ValueError caught as an unexpected error."""
    instance = make_instance(tmp_path / "var")
    with contextlib.closing(sqlite3.connect(instance.base / "sts.db")) as conn, conn:
        changed = conn.execute(
            "UPDATE user_claims SET value = ? WHERE uri = ?", ("Car\uffffol", "http://wso2.org/claims/givenname")
        ).rowcount
    assert changed == 1
    app = _app(instance, FrozenClock(frozen))
    with caplog.at_level(logging.INFO):
        status, body = _post(app, _request(instance, frozen))
    assert fault_qname(body) == (WST, "RequestFailed"), body[:2000]
    assert [vars(r)["reason"] for r in _audit_records(caplog)] == ["claim_not_xml_text"]
    assert not [r for r in caplog.records if r.getMessage() == "unexpected error"]
