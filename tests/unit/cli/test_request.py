"""``sts request`` (sts.cli.request): options, output and exit codes, against a fake STS on 127.0.0.1. What the
request holds and how answers are read is tested on the library in tests/unit/client/."""

from __future__ import annotations

import base64
import io
import socket
import stat
from pathlib import Path

import pytest
from lxml import etree

from sts import ns
from sts.cli import main as sts_main
from sts.crypto import keygen
from sts.wstrust.keys import p_sha1
from tests.fake_sts import (
    ISSUER_ENTROPY,
    TRUST,
    FakeSts,
    binary_secret_proof,
    computed_key_proof,
    soap11_fault,
    soap12_fault,
    token_answer,
)

RP = "https://rp.example.com/app/"
PASSWORD = 'pa<ss>&"wörd'
EMAIL = "http://wso2.org/claims/emailaddress"
NO_PROOF_KEY = "http://schemas.xmlsoap.org/ws/2005/05/identity/NoProofKey"


def _request(monkeypatch: pytest.MonkeyPatch, url: str, *extra: str) -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    return sts_main(["request", url, "--username", "alice", "--password-stdin", "--applies-to", RP, *extra])


def _find(element: etree._Element, path: str, trust: str = "1.3") -> etree._Element:
    found = element.find(path, namespaces=ns.PREFIXES | {"wst": TRUST[trust], "wsid": ns.WSID})
    assert found is not None, path
    return found


def test_prints_the_token(
    fake_sts: FakeSts, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_sts.body = token_answer(assertion_id="_dummy1")
    assert _request(monkeypatch, fake_sts.url, "--token-type", "saml20", "--claim", EMAIL) == 0
    out, err = capsys.readouterr()
    token = etree.fromstring(out.strip().encode())
    assert token.tag == f"{{{ns.SAML2}}}Assertion" and token.get("ID") == "_dummy1"
    assert err == (
        "token type: urn:oasis:names:tc:SAML:2.0:assertion\n"
        "lifetime:   2026-01-01T12:00:00Z .. 2026-01-01T12:30:00Z\n"
        "encrypted:  no\n"
        "token id:   _dummy1 (for --id)\n"
    )
    assert PASSWORD not in out + err
    rst = fake_sts.rst()
    assert _find(rst, "wst:TokenType").text == "urn:oasis:names:tc:SAML:2.0:assertion"
    assert _find(rst, "wst:Claims/wsid:ClaimType").get("Uri") == EMAIL
    assert _find(fake_sts.sent, ".//wsse:Password").text == PASSWORD


def test_out_file_and_versions(
    fake_sts: FakeSts, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    fake_sts.body = token_answer(assertion_id="_written")
    out_file = tmp_path / "token.xml"
    assert _request(monkeypatch, fake_sts.url, "--out", str(out_file), "--soap", "1.2", "--trust", "2005") == 0
    out, err = capsys.readouterr()
    assert out == ""
    assert f"written to: {out_file}" in err
    assert etree.fromstring(out_file.read_bytes()).get("ID") == "_written"
    (request,) = fake_sts.requests
    action = f"{ns.WST05}/RST/Issue"
    assert request.headers["Content-Type"] == f'application/soap+xml; charset=utf-8; action="{action}"'
    assert "SOAPAction" not in request.headers
    assert _find(fake_sts.rst("1.2"), "wst:KeyType", "2005").text == NO_PROOF_KEY


def test_soap11_fault_exits_2(
    fake_sts: FakeSts, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_sts.status = 500
    fake_sts.body = soap11_fault("InvalidScope", "The request scope is invalid or unsupported")
    assert _request(monkeypatch, fake_sts.url) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"sts: fault: wst:InvalidScope ({ns.WST}): The request scope is invalid or unsupported\n"


@pytest.mark.parametrize("soap", ["1.1", "1.2"])
def test_fault_names_its_correlation_id(
    fake_sts: FakeSts, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], soap: str
) -> None:
    """The correlation id in the fault's detail is printed: the key of the refusal's audit record."""
    fake_sts.status = 500
    detail = f'<sts:CorrelationId xmlns:sts="{ns.STS_FAULT}">0123abcd\u202e</sts:CorrelationId>'
    if soap == "1.1":
        fake_sts.body = soap11_fault().replace(b"</faultstring>", f"</faultstring><detail>{detail}</detail>".encode())
    else:
        fake_sts.content_type = "application/soap+xml; charset=utf-8"
        fake_sts.body = soap12_fault().replace(b"</e:Reason>", f"</e:Reason><e:Detail>{detail}</e:Detail>".encode())
    assert _request(monkeypatch, fake_sts.url, "--soap", soap) == 2
    _, err = capsys.readouterr()
    assert err.endswith(" [correlation id 0123abcd\\u202e]\n")  # escaped for the terminal


def test_soap12_fault_with_digest(
    fake_sts: FakeSts, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_sts.status = 400
    fake_sts.content_type = "application/soap+xml; charset=utf-8"
    fake_sts.body = soap12_fault()
    assert _request(monkeypatch, fake_sts.url, "--soap", "1.2", "--digest") == 2
    _, err = capsys.readouterr()
    assert err == (
        f"sts: fault: wsse:FailedAuthentication ({ns.WSSE}): "
        "The security token could not be authenticated or authorized\n"
    )
    (request,) = fake_sts.requests
    assert request.headers["Content-Type"].endswith(f'action="{ns.WST}/RST/Issue"')
    assert PASSWORD.encode() not in request.body  # digest mode: the password itself never travels


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (404, b"<html><body>Not Found</body>", "sts: error: HTTP 404 Not Found from {url}\n"),
        (
            200,
            f'<s:Envelope xmlns:s="{ns.S11}"><s:Body/></s:Envelope>'.encode(),
            "sts: error: the response holds no RequestedSecurityToken\n",
        ),
    ],
)
def test_unusable_answers_exit_1(
    status: int,
    body: bytes,
    message: str,
    fake_sts: FakeSts,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake_sts.status, fake_sts.body = status, body
    assert _request(monkeypatch, fake_sts.url) == 1
    assert capsys.readouterr().err == message.format(url=fake_sts.url)


def test_transport_errors_exit_1(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert _request(monkeypatch, "http://sts.example.com/services/wso2carbon-sts") == 1
    assert capsys.readouterr().err == (
        "sts: error: refusing to send a password over plain http to a non-loopback host: use https\n"
    )
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert _request(monkeypatch, f"http://127.0.0.1:{port}/sts", "--timeout", "5") == 1
    assert capsys.readouterr().err.startswith(f"sts: error: cannot reach http://127.0.0.1:{port}/sts: ")
    assert _request(monkeypatch, f"http://127.0.0.1:{port}/sts", "--timeout", "0") == 1
    assert capsys.readouterr().err == "sts: error: --timeout must be positive\n"


def test_no_option_disables_tls_verification(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        sts_main(["request", "--help"])
    help_text = capsys.readouterr().out
    assert "--cafile" in help_text
    assert "insecure" not in help_text and "no-verify" not in help_text


# --- holder-of-key --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("trust", ["1.3", "2005"])
def test_computed_proof_key_written(
    trust: str,
    fake_sts: FakeSts,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """``--entropy`` sends fresh client entropy; the key written is P_SHA1(that entropy, the issuer's), mode 0600
    even over an existing world-readable file, and never printed."""
    fake_sts.body = token_answer(trust, proof=computed_key_proof())
    key_out = tmp_path / "proof.key"
    key_out.write_bytes(b"old contents, world-readable")
    key_out.chmod(0o644)
    args = ("--trust", trust, "--key-type", "symmetric", "--entropy", "--key-size", "256", "--renewable")
    assert _request(monkeypatch, fake_sts.url, *args, "--proof-key-out", str(key_out)) == 0
    rst = fake_sts.rst()
    sent_entropy = base64.b64decode(_find(rst, "wst:Entropy/wst:BinarySecret", trust).text or "")
    assert len(sent_entropy) == 32
    assert _find(rst, "wst:KeySize", trust).text == "256"
    assert _find(rst, "wst:Renewing", trust).get("OK") == "false"
    expected = p_sha1(sent_entropy, ISSUER_ENTROPY, 32)
    assert key_out.read_bytes() == expected
    assert stat.S_IMODE(key_out.stat().st_mode) == 0o600
    out, err = capsys.readouterr()
    assert etree.fromstring(out.strip().encode()).get("ID") == "_renewed"
    assert f"proof key:  256 bits (computed with PSHA1), written to {key_out}" in err
    assert expected.hex() not in out + err


def test_proof_key_notes(
    fake_sts: FakeSts, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    key_out = tmp_path / "proof.key"
    fake_sts.body = token_answer(proof=binary_secret_proof(b"k" * 16))
    assert _request(monkeypatch, fake_sts.url, "--key-type", "symmetric", "--renewable-after-expiry") == 0
    assert "proof key:  128 bits (BinarySecret), not saved (use --proof-key-out FILE)" in capsys.readouterr().err
    assert _find(fake_sts.rst(), "wst:Renewing").get("OK") == "true"
    # a computed key, but no entropy was sent: an error with --proof-key-out, a note without
    fake_sts.body = token_answer(proof=computed_key_proof())
    assert _request(monkeypatch, fake_sts.url, "--key-type", "symmetric", "--proof-key-out", str(key_out)) == 1
    out, err = capsys.readouterr()
    assert err == "sts: error: the STS returned a computed key, but this request sent no client entropy\n"
    assert out == "" and not key_out.exists()
    assert _request(monkeypatch, fake_sts.url, "--key-type", "symmetric") == 0
    out, err = capsys.readouterr()
    assert "_renewed" in out
    assert "proof key:  unusable (the STS returned a computed key, but this request sent no client entropy)" in err
    # no proof token at all
    fake_sts.body = token_answer()
    assert _request(monkeypatch, fake_sts.url, "--key-type", "symmetric", "--proof-key-out", str(key_out)) == 1
    assert capsys.readouterr().err == "sts: error: the response holds no RequestedProofToken: no proof key to write\n"
    assert not key_out.exists()


def test_public_key(fake_sts: FakeSts, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cert = keygen.self_signed_certificate(keygen.generate_rsa_key(2048), "client")
    path = tmp_path / "client.crt.pem"
    keygen.write_certificate(path, cert)
    fake_sts.body = token_answer()
    assert _request(monkeypatch, fake_sts.url, "--key-type", "public", "--use-key", str(path)) == 0
    assert _find(fake_sts.rst(), "wst:KeyType").text == f"{ns.WST}/PublicKey"
    assert _find(fake_sts.rst(), "wst:UseKey/wsse:BinarySecurityToken").text == base64.b64encode(
        keygen.certificate_der(cert)
    ).decode()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--key-size", "256"), "--key-size needs --key-type symmetric"),
        (("--entropy",), "--entropy needs --key-type symmetric"),
        (("--key-type", "public", "--proof-key-out", "k"), "--proof-key-out needs --key-type symmetric"),
        (("--key-type", "public"), "--key-type public needs --use-key CERT.pem"),
        (("--key-type", "symmetric", "--use-key", "c.pem"), "--use-key needs --key-type public"),
        (("--key-type", "symmetric", "--key-size", "100"), "--key-size must be a multiple of 8 between 8 and 4096"),
        (("--key-type", "public", "--use-key", "/nonexistent/c.pem"), "cannot read /nonexistent/c.pem: "),
        (("--key-type", "symmetric", "--key-size", "100", "--timeout", "0"), "--key-size must be a multiple of 8"),
    ],
)
def test_usage_errors(
    args: tuple[str, ...],
    message: str,
    fake_sts: FakeSts,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _request(monkeypatch, fake_sts.url, *args) == 1
    assert capsys.readouterr().err.startswith(f"sts: error: {message}")
    assert fake_sts.requests == []


def test_empty_applies_to(
    fake_sts: FakeSts, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert sts_main(["request", fake_sts.url, "--username", "a", "--password-stdin", "--applies-to", " "]) == 1
    assert capsys.readouterr().err == "sts: error: --applies-to must not be empty\n"
    assert fake_sts.requests == []


def _wso2_style_saml11_answer(reference_id: str) -> bytes:
    """A SAML 1.1 assertion in an RSTR whose TokenType says #SAMLV2.0, as WSO2 answers whatever it issued
    (wst protocol reference R45), with ``reference_id`` in its RequestedAttachedReference."""
    body = etree.fromstring(token_answer(assertion_id=reference_id))
    holder = body.find(f".//{{{ns.WST}}}RequestedSecurityToken")
    token_type = body.find(f".//{{{ns.WST}}}TokenType")
    assert holder is not None and token_type is not None
    token_type.text = "http://docs.oasis-open.org/wss/oasis-wss-saml-token-profile-1.1#SAMLV2.0"
    holder.remove(holder[0])
    assertion = etree.SubElement(
        holder, f"{{{ns.SAML1}}}Assertion", MajorVersion="1", MinorVersion="1", AssertionID="_s11", Issuer="sts"
    )
    assert assertion is not None
    return etree.tostring(body)


def test_token_type_is_the_tokens_own(
    fake_sts: FakeSts, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The summary names what the token is, not what the RSTR claims, and how to name it by ID (a SAML 1.1
    AssertionID needs --token-type saml11 with --id)."""
    fake_sts.body = _wso2_style_saml11_answer("_s11")
    assert _request(monkeypatch, fake_sts.url, "--token-type", "saml11") == 0
    err = capsys.readouterr().err
    assert (
        "token type: urn:oasis:names:tc:SAML:1.0:assertion "
        "(the RSTR says http://docs.oasis-open.org/wss/oasis-wss-saml-token-profile-1.1#SAMLV2.0)\n"
    ) in err
    assert "token id:   _s11 (for --id --token-type saml11)\n" in err


def test_token_id_is_the_assertions_own(
    fake_sts: FakeSts, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unencrypted token's ID is read from the token, not from an RSTR reference that names another."""
    body = etree.fromstring(token_answer(assertion_id="_claimed"))
    assertion = body.find(f".//{{{ns.SAML2}}}Assertion")
    assert assertion is not None
    assertion.set("ID", "_actual")
    fake_sts.body = etree.tostring(body)
    assert _request(monkeypatch, fake_sts.url) == 0
    err = capsys.readouterr().err
    assert "token id:   _actual (for --id)\n" in err
    assert "_claimed" not in err
