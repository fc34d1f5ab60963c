"""Client-supplied values in the logs, against a real gunicorn: with ``[logging] format = "text"`` an audit line
names what the JSON record names (the correlation id a fault carries, the reason code) and a client-supplied
value cannot write a line of its own; ``sts explain --correlation-id`` prints such a value from the JSON log
escaped too."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lxml import etree

from sts.ns import STS_FAULT
from tests.support import WST, Instance, fault_qname, rst_envelope, start_server

pytestmark = pytest.mark.integration

FORGED = "2026-01-01 00:00:00,000 INFO sts.audit: issue success user=admin reason=forged"
# A token reference as a client may write it: a line feed, a carriage return and NEL (U+0085, a line break to
# Python's str.splitlines and to many log viewers) in an attribute-free text node.
VALIDATE_TARGET = (
    '<wst:ValidateTarget><wsse:SecurityTokenReference><wsse:KeyIdentifier ValueType="http://docs.oasis-open.org/'
    f'wss/oasis-wss-saml-token-profile-1.1#SAMLID">_abc&#10;{FORGED}&#13;&#133;x</wsse:KeyIdentifier>'
    "</wsse:SecurityTokenReference></wst:ValidateTarget>"
)


def _correlation_id(body: bytes) -> str:
    return etree.fromstring(body).findtext(f".//{{{STS_FAULT}}}CorrelationId") or ""


def test_text_log_lines_carry_the_audit_fields_and_nothing_forged(instance: Instance) -> None:
    server = start_server(instance, workers=1, tls=False, env={"STS_LOGGING_FORMAT": "text"})
    try:
        refused = server.post(rst_envelope("admin", "not-the-password"))
        validated = server.post(rst_envelope(
            "admin", instance.demo_password, request_type=f"{WST}/Validate", token_type=f"{WST}/RSTR/Status",
            extra_rst=VALIDATE_TARGET,
        ))
    finally:
        server.stop()
    assert fault_qname(refused.content)[1] == "FailedAuthentication"
    assert validated.status_code == 200, validated.text
    lines = server.log.read_text().splitlines()
    correlation = _correlation_id(refused.content)
    login, refusal = [line for line in lines if f"correlation_id={correlation}" in line]
    assert " WARNING sts.audit: authentication failure audit_event=authentication " in login
    assert "user=admin" in login and "reason=wrong_password" in login
    assert " WARNING sts.audit: request failure audit_event=request " in refusal
    assert "fault=FailedAuthentication reason=wrong_password" in refusal
    assert instance.demo_password not in server.log.read_text()
    # The reference is in the validate record, escaped on its one line; no line starts with the forged text.
    assert not [line for line in lines if line.startswith(FORGED)]
    (validate,) = [line for line in lines if "audit_event=validate" in line]
    assert f'token_id="_abc\\x0a{FORGED}\\x0d\\x85x"' in validate


def test_explain_prints_a_client_value_from_the_json_log_escaped(
    instance: Instance, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "sts.log"
    server = start_server(instance, workers=1, tls=False, env={"STS_LOGGING_FILE": str(log)})
    try:
        validated = server.post(rst_envelope(
            "admin", instance.demo_password, request_type=f"{WST}/Validate", token_type=f"{WST}/RSTR/Status",
            extra_rst=VALIDATE_TARGET,
        ))
    finally:
        server.stop()
    assert validated.status_code == 200, validated.text
    records = [json.loads(line) for line in log.read_text().splitlines() if '"audit_event": "validate"' in line]
    (record,) = records
    assert record["token_id"] == f"_abc\n{FORGED}\r\x85x"  # as the client sent it (JSON escapes it)
    capsys.readouterr()
    assert instance.cli("explain", "--correlation-id", str(record["correlation_id"]), "--log", str(log)) == 0
    out = capsys.readouterr().out
    assert "\r" not in out and "\x85" not in out
    first, _note = out.splitlines()
    assert f'token_id="_abc\\x0a{FORGED}\\x0d\\x85x"' in first
