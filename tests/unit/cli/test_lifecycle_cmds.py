"""``sts validate|renew|cancel`` (sts.cli.lifecycle_cmds): options, output and exit codes, against a fake STS on
127.0.0.1. The envelopes themselves are tested on the library in tests/unit/client/test_rst.py."""

from __future__ import annotations

import io
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from lxml import etree

from sts import ns
from sts.cli import main as sts_main
from tests.fake_sts import (
    INVALID_REASON,
    SAMLID,
    SOAP,
    TRUST,
    VALID_REASON,
    FakeSts,
    binary_secret_proof,
    cancel_answer,
    envelope,
    saml2_assertion,
    soap11_fault,
    status_answer,
    token_answer,
)

PASSWORD = "s3cret-pw"
OPERATIONS = {"validate": "Validate", "renew": "Renew", "cancel": "Cancel"}
SAML_ASSERTION_ID = "http://docs.oasis-open.org/wss/oasis-wss-saml-token-profile-1.0#SAMLAssertionID"
ANSWERS: dict[str, Callable[[str], bytes]] = {
    "validate": lambda trust: status_answer(True, trust),
    "renew": lambda trust: token_answer(trust),
    "cancel": cancel_answer,
}


def _run(monkeypatch: pytest.MonkeyPatch, command: str, url: str, *extra: str) -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    return sts_main([command, url, "--username", "alice", "--password-stdin", *extra])


def _find(element: etree._Element, path: str, trust: str = "1.3") -> etree._Element:
    found = element.find(path, namespaces=ns.PREFIXES | {"wst": TRUST[trust]})
    assert found is not None, path
    return found


def _c14n(element: etree._Element) -> bytes:
    return etree.tostring(element, method="c14n", exclusive=True)


@pytest.mark.parametrize("command", sorted(OPERATIONS))
def test_inline_target(command: str, fake_sts: FakeSts, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    token = saml2_assertion()
    path = tmp_path / "token.xml"
    path.write_bytes(etree.tostring(token))  # what `sts request --out` writes: the bare token
    fake_sts.body = ANSWERS[command]("1.3")
    assert _run(monkeypatch, command, fake_sts.url, "--token", str(path)) == 0
    operation = OPERATIONS[command]
    (request,) = fake_sts.requests
    assert request.headers["SOAPAction"] == f'"{ns.WST}/RST/{operation}"'
    assert _find(fake_sts.sent, "s11:Header/wsse:Security/wsse:UsernameToken/wsse:Username").text == "alice"
    target = _find(fake_sts.rst(), f"wst:{operation}Target")
    assert _c14n(target[0]) == _c14n(token)  # the token travels exactly as stored


@pytest.mark.parametrize("command", sorted(OPERATIONS))
@pytest.mark.parametrize(
    ("token_type", "value_type"), [(None, SAMLID), ("saml20", SAMLID), ("saml11", SAML_ASSERTION_ID)]
)
def test_reference_target(
    command: str, token_type: str | None, value_type: str, fake_sts: FakeSts, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_sts.body = ANSWERS[command]("1.3")
    extra = ["--token-type", token_type] if token_type else []
    assert _run(monkeypatch, command, fake_sts.url, "--id", "_abc123", *extra) == 0
    path = f"wst:{OPERATIONS[command]}Target/wsse:SecurityTokenReference/wsse:KeyIdentifier"
    identifier = _find(fake_sts.rst(), path)
    assert (identifier.text, identifier.get("ValueType")) == ("_abc123", value_type)


@pytest.mark.parametrize(("soap", "trust"), [("1.1", "2005"), ("1.2", "1.3"), ("1.2", "2005")])
@pytest.mark.parametrize("command", sorted(OPERATIONS))
def test_versions(command: str, soap: str, trust: str, fake_sts: FakeSts, monkeypatch: pytest.MonkeyPatch) -> None:
    wst, operation = TRUST[trust], OPERATIONS[command]
    fake_sts.body = ANSWERS[command](trust)
    assert _run(monkeypatch, command, fake_sts.url, "--id", "_x1", "--soap", soap, "--trust", trust, "--digest") == 0
    (request,) = fake_sts.requests
    action = f"{wst}/RST/{operation}"
    if soap == "1.1":
        assert request.headers["SOAPAction"] == f'"{action}"'
    else:
        assert request.headers["Content-Type"] == f'application/soap+xml; charset=utf-8; action="{action}"'
    assert fake_sts.sent.tag == f"{{{SOAP[soap]}}}Envelope"
    assert PASSWORD.encode() not in request.body
    assert fake_sts.rst(soap).tag == f"{{{wst}}}RequestSecurityToken"


def transformed_answer(valid: bool) -> bytes:
    """A Validate answer with a new token (WS-Trust 1.3 §7): Status and, when valid, the token."""

    def build(rstr: etree._Element, wst: str) -> None:
        etree.SubElement(rstr, f"{{{wst}}}TokenType").text = "urn:oasis:names:tc:SAML:1.0:assertion"
        status = etree.SubElement(rstr, f"{{{wst}}}Status")
        etree.SubElement(status, f"{{{wst}}}Code").text = f"{wst}/status/{'valid' if valid else 'invalid'}"
        etree.SubElement(status, f"{{{wst}}}Reason").text = VALID_REASON if valid else INVALID_REASON
        if valid:
            etree.SubElement(rstr, f"{{{wst}}}RequestedSecurityToken").append(saml2_assertion("_new"))

    return envelope("1.3", build)


@pytest.mark.parametrize(
    ("token_type", "uri"),
    [("saml11", "urn:oasis:names:tc:SAML:1.0:assertion"), (None, "urn:oasis:names:tc:SAML:2.0:assertion")],
)
def test_validate_with_transformation(
    token_type: str | None,
    uri: str,
    fake_sts: FakeSts,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """--applies-to asks for a new token (TokenType and AppliesTo in the RST); the token goes to --out, the status
    to stderr."""
    path = tmp_path / "token.xml"
    path.write_bytes(etree.tostring(saml2_assertion()))
    fake_sts.body = transformed_answer(True)
    out = tmp_path / "new.xml"
    extra = ["--token-type", token_type] if token_type else []
    args = ("--token", str(path), "--applies-to", "https://rp-b.example/", "--out", str(out), *extra)
    assert _run(monkeypatch, "validate", fake_sts.url, *args) == 0
    rst = fake_sts.rst()
    assert _find(rst, "wst:TokenType").text == uri
    assert _find(rst, "wsp:AppliesTo/wsa:EndpointReference/wsa:Address").text == "https://rp-b.example/"
    assert etree.fromstring(out.read_bytes()).get("ID") == "_new"
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "status: valid" in captured.err


def test_validate_with_transformation_of_an_invalid_token(
    fake_sts: FakeSts, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "token.xml"
    path.write_bytes(etree.tostring(saml2_assertion()))
    fake_sts.body = transformed_answer(False)
    out = tmp_path / "new.xml"
    args = ("--token", str(path), "--applies-to", "https://rp-b.example/", "--out", str(out))
    assert _run(monkeypatch, "validate", fake_sts.url, *args) == 3
    assert capsys.readouterr().out.startswith("status: invalid\n")
    assert not out.exists()


# --- results and exit codes -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("trust", ["1.3", "2005"])
def test_validate_valid(
    trust: str, fake_sts: FakeSts, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_sts.body = status_answer(True, trust)
    assert _run(monkeypatch, "validate", fake_sts.url, "--id", "_a", "--trust", trust) == 0
    assert capsys.readouterr().out == f"status: valid\nreason: {VALID_REASON}\n"


def test_validate_invalid(
    fake_sts: FakeSts, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_sts.body = status_answer(False)
    assert _run(monkeypatch, "validate", fake_sts.url, "--id", "_a") == 3
    assert capsys.readouterr().out == f"status: invalid\nreason: {INVALID_REASON}\n"

    for reason, printed in (("bad\u202e", "bad\\u202e"), ("  ", "-")):

        def build(rstr: etree._Element, wst: str, reason: str = reason) -> None:
            status = etree.SubElement(rstr, f"{{{wst}}}Status")
            etree.SubElement(status, f"{{{wst}}}Code").text = f"{wst}/status/invalid"
            etree.SubElement(status, f"{{{wst}}}Reason").text = reason

        fake_sts.body = envelope("1.3", build)
        assert _run(monkeypatch, "validate", fake_sts.url, "--id", "_a") == 3
        assert capsys.readouterr().out == f"status: invalid\nreason: {printed}\n"


@pytest.mark.parametrize("command", sorted(OPERATIONS))
def test_fault_exits_2(
    command: str, fake_sts: FakeSts, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_sts.status = 500
    fake_sts.body = soap11_fault()
    assert _run(monkeypatch, command, fake_sts.url, "--id", "_a") == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"sts: fault: wst:InvalidRequest ({ns.WST}): The request was invalid or malformed\n"


def test_unusable_answers_exit_1(
    fake_sts: FakeSts, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_sts.body = status_answer(True, "2005")  # answered in the other trust namespace
    assert _run(monkeypatch, "validate", fake_sts.url, "--id", "_a") == 1
    assert capsys.readouterr().err == (
        "sts: error: the response holds no RequestSecurityTokenResponse in the request's trust namespace\n"
    )
    fake_sts.body = envelope("1.3", lambda rstr, wst: None)
    assert _run(monkeypatch, "validate", fake_sts.url, "--id", "_a") == 1
    assert capsys.readouterr().err == "sts: error: the response has no known Status/Code: (none)\n"
    fake_sts.status, fake_sts.content_type, fake_sts.body = 404, "text/html", b"<html><body>Not Found</body>"
    assert _run(monkeypatch, "cancel", fake_sts.url, "--id", "_a") == 1
    assert capsys.readouterr().err == f"sts: error: HTTP 404 Not Found from {fake_sts.url}\n"


def test_cancel(fake_sts: FakeSts, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    fake_sts.body = cancel_answer()
    assert _run(monkeypatch, "cancel", fake_sts.url, "--id", "_a") == 0
    assert capsys.readouterr().out == "cancelled\n"
    fake_sts.body = status_answer(True)  # an RSTR without RequestedTokenCancelled
    assert _run(monkeypatch, "cancel", fake_sts.url, "--id", "_a") == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == "sts: error: the response does not confirm the cancellation (no RequestedTokenCancelled)\n"


def test_renew_prints_and_writes(
    fake_sts: FakeSts, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    fake_sts.body = token_answer(assertion_id="_new1")
    assert _run(monkeypatch, "renew", fake_sts.url, "--id", "_old") == 0
    out, err = capsys.readouterr()
    assert etree.fromstring(out.strip().encode()).get("ID") == "_new1"
    assert "lifetime:   2026-01-01T12:00:00Z .. 2026-01-01T12:30:00Z\n" in err
    assert "token id:   _new1 (for --id)" in err
    token_out, key_out = tmp_path / "new.xml", tmp_path / "new.key"
    key = bytes(range(100, 132))
    fake_sts.body = token_answer(assertion_id="_new2", proof=binary_secret_proof(key))
    args = ("--id", "_new1", "--out", str(token_out), "--proof-key-out", str(key_out))
    assert _run(monkeypatch, "renew", fake_sts.url, *args) == 0
    out, err = capsys.readouterr()
    assert out == ""
    assert etree.fromstring(token_out.read_bytes()).get("ID") == "_new2"
    assert key_out.read_bytes() == key
    assert stat.S_IMODE(key_out.stat().st_mode) == 0o600
    assert err == (
        "token type: urn:oasis:names:tc:SAML:2.0:assertion\n"
        "lifetime:   2026-01-01T12:00:00Z .. 2026-01-01T12:30:00Z\n"
        "encrypted:  no\n"
        f"written to: {token_out}\n"
        "token id:   _new2 (for --id)\n"
        f"proof key:  256 bits (BinarySecret), written to {key_out}\n"
    )


def test_renew_without_token(
    fake_sts: FakeSts, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_sts.body = cancel_answer()
    assert _run(monkeypatch, "renew", fake_sts.url, "--id", "_a") == 1
    assert capsys.readouterr().err == "sts: error: the response holds no RequestedSecurityToken\n"


def test_renewed_token_can_be_validated(fake_sts: FakeSts, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The file `renew --out` writes is a valid `--token` for the next command."""
    fake_sts.body = token_answer(assertion_id="_chain")
    token_out = tmp_path / "t.xml"
    assert _run(monkeypatch, "renew", fake_sts.url, "--id", "_old", "--out", str(token_out)) == 0
    fake_sts.requests.clear()
    fake_sts.body = status_answer(True)
    assert _run(monkeypatch, "validate", fake_sts.url, "--token", str(token_out)) == 0
    assert _find(fake_sts.rst(), "wst:ValidateTarget/saml2:Assertion").get("ID") == "_chain"


# --- usage errors ---------------------------------------------------------------------------------------------------


def test_target_usage_errors(
    fake_sts: FakeSts, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "token.xml"
    path.write_bytes(etree.tostring(saml2_assertion()))
    with pytest.raises(SystemExit):  # exactly one of --token / --id
        _run(monkeypatch, "validate", fake_sts.url, "--token", str(path), "--id", "_a")
    with pytest.raises(SystemExit):
        _run(monkeypatch, "validate", fake_sts.url)
    capsys.readouterr()
    response = tmp_path / "response.xml"
    response.write_bytes(token_answer())
    (tmp_path / "dtd.xml").write_bytes(b'<!DOCTYPE a [<!ENTITY e "x">]><a>&e;</a>')
    cases = [
        (
            ("validate", "--token", str(path), "--token-type", "saml11"),
            "--token-type goes with --id or --applies-to (an inline token says what it is)",
        ),
        (
            ("validate", "--id", "_a", "--applies-to", "https://rp.example/"),
            "--applies-to needs the token itself (--token), not its ID",
        ),
        (("validate", "--token", str(path), "--out", str(tmp_path / "o.xml")), "--out goes with --applies-to"),
        (
            ("renew", "--token", str(response)),
            f"{response}: the first element is Envelope, not an Assertion, EncryptedAssertion or EncryptedData",
        ),
        (("cancel", "--token", str(tmp_path / "missing.xml")), f"cannot read {tmp_path / 'missing.xml'}: "),
        (("cancel", "--token", str(tmp_path / "dtd.xml")), f"{tmp_path / 'dtd.xml'}: not well-formed XML"),
        (("cancel", "--id", " _a"), "the token ID must not be empty or have surrounding white space"),
        (("cancel", "--id", "_a\x01"), "the token ID contains characters that XML cannot carry"),
        (("cancel", "--id", "_a", "--timeout", "-1"), "--timeout must be positive"),
    ]
    for (command, *args), message in cases:
        assert _run(monkeypatch, command, fake_sts.url, *args) == 1
        assert capsys.readouterr().err.startswith(f"sts: error: {message}"), (args, message)
    assert fake_sts.requests == []  # nothing was sent
