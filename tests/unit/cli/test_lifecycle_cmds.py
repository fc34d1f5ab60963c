"""Tests for ``sts validate|renew|cancel`` (sts.cli.lifecycle_cmds) and the holder-of-key options of ``sts request``
(sts.cli.client, rst_builder), against a tiny ``http.server`` on 127.0.0.1."""

from __future__ import annotations

import base64
import email.message
import http.server
import io
import stat
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from lxml import etree

from sts import ns
from sts.cli import main as sts_main
from sts.cli import rst_builder
from sts.crypto import keygen
from sts.wstrust.actions import Operation
from sts.wstrust.keys import p_sha1
from sts.wstrust.rst import parse_rst
from sts.wstrust.version import TrustVersion
from sts.xmlutil import ParserLimits, parse_untrusted

RP = "https://rp.example.com/app/"
PASSWORD = "s3cret-pw"
TRUST = {"1.3": ns.WST, "2005": ns.WST05}
SOAP = {"1.1": ns.S11, "1.2": ns.S12}
OPERATIONS = {"validate": "Validate", "renew": "Renew", "cancel": "Cancel"}
PROFILE_11 = "http://docs.oasis-open.org/wss/oasis-wss-saml-token-profile-1.1"
SAMLID = f"{PROFILE_11}#SAMLID"
SAML_ASSERTION_ID = "http://docs.oasis-open.org/wss/oasis-wss-saml-token-profile-1.0#SAMLAssertionID"
X509V3 = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3"
# wstrust-protocol.md §9 known-answer vector
CLIENT_ENTROPY = bytes(range(0x00, 0x20))
ISSUER_ENTROPY = bytes(range(0x20, 0x40))
PSHA1_KEY = bytes.fromhex("df59132c2af6d230e4337732076a14561694be12838cc00203d63c816653d75b")
RSTR_STATUS_REASON = "The Trust service successfully validated the input"


def _find(element: etree._Element, path: str, trust: str = "1.3") -> etree._Element:
    found = element.find(path, namespaces=ns.PREFIXES | {"wst": TRUST[trust], "wsid": ns.WSID})
    assert found is not None, path
    return found


def _parse(body: bytes) -> etree._Element:
    return parse_untrusted(body, ParserLimits())


# --- the fake STS ---------------------------------------------------------------------------------------------------


@dataclass
class Recorded:
    headers: email.message.Message
    body: bytes


@dataclass
class FakeSts:
    url: str = ""
    status: int = 200
    content_type: str = "text/xml; charset=utf-8"
    body: bytes = b""
    requests: list[Recorded] = field(default_factory=list)

    @property
    def sent(self) -> etree._Element:
        """The one request received, parsed."""
        (request,) = self.requests
        return _parse(request.body)

    def rst(self, soap: str = "1.1") -> etree._Element:
        body = self.sent.find(f"{{{SOAP[soap]}}}Body")
        assert body is not None and len(body) == 1
        return body[0]


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def fake_sts() -> Iterator[FakeSts]:
    fake = FakeSts()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            fake.requests.append(Recorded(self.headers, body))
            self.send_response(fake.status)
            self.send_header("Content-Type", fake.content_type)
            self.send_header("Content-Length", str(len(fake.body)))
            self.end_headers()
            self.wfile.write(fake.body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_port}/services/wso2carbon-sts"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _run(monkeypatch: pytest.MonkeyPatch, command: str, url: str, *extra: str) -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    return sts_main([command, url, "--username", "alice", "--password-stdin", *extra])


def _envelope(trust: str, build: Callable[[etree._Element, str], object], collection: bool = False) -> bytes:
    """A SOAP 1.1 answer holding one RSTR (inside an RSTRC if ``collection``), filled by ``build(rstr, wst)``."""
    wst = TRUST[trust]
    env = etree.Element(f"{{{ns.S11}}}Envelope", nsmap={"s": ns.S11})
    parent = etree.SubElement(env, f"{{{ns.S11}}}Body")
    if collection:
        parent = etree.SubElement(parent, f"{{{wst}}}RequestSecurityTokenResponseCollection", nsmap={"wst": wst})
    rstr = etree.SubElement(parent, f"{{{wst}}}RequestSecurityTokenResponse", nsmap={"wst": wst})
    build(rstr, wst)
    return etree.tostring(env)


def _status_answer(valid: bool, trust: str = "1.3") -> bytes:
    def build(rstr: etree._Element, wst: str) -> None:
        etree.SubElement(rstr, f"{{{wst}}}TokenType").text = f"{wst}/RSTR/Status"
        status = etree.SubElement(rstr, f"{{{wst}}}Status")
        etree.SubElement(status, f"{{{wst}}}Code").text = f"{wst}/status/{'valid' if valid else 'invalid'}"
        etree.SubElement(status, f"{{{wst}}}Reason").text = (
            RSTR_STATUS_REASON if valid else "The Trust service did not successfully validate the input"
        )

    return _envelope(trust, build)


def _token_answer(
    trust: str = "1.3",
    assertion_id: str = "_renewed",
    proof: Callable[[etree._Element, str], None] | None = None,
    collection: bool = False,
) -> bytes:
    def build(rstr: etree._Element, wst: str) -> None:
        etree.SubElement(rstr, f"{{{wst}}}TokenType").text = "urn:oasis:names:tc:SAML:2.0:assertion"
        holder = etree.SubElement(rstr, f"{{{wst}}}RequestedSecurityToken")
        holder.append(_saml2_assertion(assertion_id))
        attached = etree.SubElement(rstr, f"{{{wst}}}RequestedAttachedReference")
        reference = etree.SubElement(attached, f"{{{ns.WSSE}}}SecurityTokenReference", nsmap={"wsse": ns.WSSE})
        etree.SubElement(reference, f"{{{ns.WSSE}}}KeyIdentifier", ValueType=SAMLID).text = assertion_id
        lifetime = etree.SubElement(rstr, f"{{{wst}}}Lifetime", nsmap={"wsu": ns.WSU})
        etree.SubElement(lifetime, f"{{{ns.WSU}}}Created").text = "2026-01-01T12:00:00Z"
        etree.SubElement(lifetime, f"{{{ns.WSU}}}Expires").text = "2026-01-01T12:30:00Z"
        if proof is not None:
            proof(rstr, wst)

    return _envelope(trust, build, collection)


def _computed_key_proof(key_size: str | None = "256") -> Callable[[etree._Element, str], None]:
    def build(rstr: etree._Element, wst: str) -> None:
        proof = etree.SubElement(rstr, f"{{{wst}}}RequestedProofToken")
        etree.SubElement(proof, f"{{{wst}}}ComputedKey").text = f"{wst}/CK/PSHA1"
        entropy = etree.SubElement(rstr, f"{{{wst}}}Entropy")
        secret = etree.SubElement(entropy, f"{{{wst}}}BinarySecret", Type=f"{wst}/Nonce")
        secret.text = base64.b64encode(ISSUER_ENTROPY).decode()
        if key_size is not None:
            etree.SubElement(rstr, f"{{{wst}}}KeySize").text = key_size
        etree.SubElement(rstr, f"{{{wst}}}KeyType").text = f"{wst}/SymmetricKey"

    return build


def _binary_secret_proof(key: bytes) -> Callable[[etree._Element, str], None]:
    def build(rstr: etree._Element, wst: str) -> None:
        proof = etree.SubElement(rstr, f"{{{wst}}}RequestedProofToken")
        secret = etree.SubElement(proof, f"{{{wst}}}BinarySecret", Type=f"{wst}/SymmetricKey")
        secret.text = base64.b64encode(key).decode()

    return build


def _cancel_answer(trust: str = "1.3") -> bytes:
    return _envelope(trust, lambda rstr, wst: etree.SubElement(rstr, f"{{{wst}}}RequestedTokenCancelled"))


def _fault() -> bytes:
    return (
        f'<s:Envelope xmlns:s="{ns.S11}"><s:Body><s:Fault>'
        f'<faultcode xmlns:wst="{ns.WST}">wst:InvalidRequest</faultcode>'
        "<faultstring>The request was invalid or malformed</faultstring>"
        "</s:Fault></s:Body></s:Envelope>"
    ).encode()


_ANSWERS: dict[str, Callable[[str], bytes]] = {
    "validate": lambda trust: _status_answer(True, trust),
    "renew": lambda trust: _token_answer(trust),
    "cancel": _cancel_answer,
}


# --- token files ----------------------------------------------------------------------------------------------------


def _saml2_assertion(assertion_id: str = "_abc123") -> etree._Element:
    assertion = etree.Element(f"{{{ns.SAML2}}}Assertion", nsmap={"saml2": ns.SAML2}, ID=assertion_id, Version="2.0")
    etree.SubElement(assertion, f"{{{ns.SAML2}}}Issuer").text = "https://sts.example.com/"
    return assertion


def _saml11_assertion() -> etree._Element:
    assertion = etree.Element(
        f"{{{ns.SAML1}}}Assertion", nsmap={"saml": ns.SAML1}, AssertionID="_s11", MajorVersion="1", MinorVersion="1"
    )
    etree.SubElement(assertion, f"{{{ns.SAML1}}}Conditions")
    return assertion


def _encrypted_data() -> etree._Element:
    data = etree.Element(f"{{{ns.XENC}}}EncryptedData", nsmap={"xenc": ns.XENC}, Type=f"{ns.XENC}Element")
    etree.SubElement(data, f"{{{ns.XENC}}}EncryptionMethod", Algorithm="http://www.w3.org/2009/xmlenc11#aes256-gcm")
    cipher = etree.SubElement(etree.SubElement(data, f"{{{ns.XENC}}}CipherData"), f"{{{ns.XENC}}}CipherValue")
    cipher.text = base64.b64encode(b"\x01" * 48).decode()
    return data


def _encrypted_assertion() -> etree._Element:
    wrapper = etree.Element(f"{{{ns.SAML2}}}EncryptedAssertion", nsmap={"saml2": ns.SAML2})
    wrapper.append(_encrypted_data())
    return wrapper


TOKEN_FILES: dict[str, Callable[[], etree._Element]] = {
    "saml2": _saml2_assertion,
    "saml11": _saml11_assertion,
    "encrypted-assertion": _encrypted_assertion,
    "encrypted-data": _encrypted_data,
}


def _token_file(tmp_path: Path, kind: str) -> tuple[Path, etree._Element]:
    token = TOKEN_FILES[kind]()
    path = tmp_path / f"{kind}.xml"
    path.write_bytes(etree.tostring(token))  # what `sts request --out` writes: the bare token
    return path, token


def _c14n(element: etree._Element) -> bytes:
    return etree.tostring(element, method="c14n", exclusive=True)


# --- Validate / Renew / Cancel envelopes ----------------------------------------------------------------------------


@pytest.mark.parametrize("command", sorted(OPERATIONS))
@pytest.mark.parametrize("kind", sorted(TOKEN_FILES))
def test_inline_target(
    command: str, kind: str, fake_sts: FakeSts, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path, token = _token_file(tmp_path, kind)
    fake_sts.body = _ANSWERS[command]("1.3")
    assert _run(monkeypatch, command, fake_sts.url, "--token", str(path)) == 0
    operation = OPERATIONS[command]
    (request,) = fake_sts.requests
    assert request.headers["SOAPAction"] == f'"{ns.WST}/RST/{operation}"'
    sent = fake_sts.sent
    assert _find(sent, "s11:Header/wsa:Action").text == f"{ns.WST}/RST/{operation}"
    assert _find(sent, "s11:Header/wsse:Security/wsse:UsernameToken/wsse:Username").text == "alice"
    rst = fake_sts.rst()
    expected = [f"{{{ns.WST}}}RequestType", f"{{{ns.WST}}}{operation}Target"]
    if command == "validate":
        expected.insert(0, f"{{{ns.WST}}}TokenType")
        assert rst[0].text == f"{ns.WST}/RSTR/Status"
    assert [child.tag for child in rst] == expected
    assert _find(rst, "wst:RequestType").text == f"{ns.WST}/{operation}"
    target = _find(rst, f"wst:{operation}Target")
    assert len(target) == 1 and target.text is None and target[0].tail is None
    assert target[0].tag == token.tag
    assert _c14n(target[0]) == _c14n(token)  # the token travels exactly as stored
    parsed = parse_rst(rst, TrustVersion.TRUST13, Operation(operation))  # the STS's own RST parser accepts it
    assert parsed.target is not None and parsed.target.tag == token.tag


@pytest.mark.parametrize("command", sorted(OPERATIONS))
@pytest.mark.parametrize(
    ("token_type", "reference_type", "value_type"),
    [
        (None, f"{PROFILE_11}#SAMLV2.0", SAMLID),
        ("saml20", f"{PROFILE_11}#SAMLV2.0", SAMLID),
        ("saml11", f"{PROFILE_11}#SAMLV1.1", SAML_ASSERTION_ID),
    ],
)
def test_reference_target(
    command: str,
    token_type: str | None,
    reference_type: str,
    value_type: str,
    fake_sts: FakeSts,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_sts.body = _ANSWERS[command]("1.3")
    extra = ["--token-type", token_type] if token_type else []
    assert _run(monkeypatch, command, fake_sts.url, "--id", "_abc123", *extra) == 0
    operation = OPERATIONS[command]
    target = _find(fake_sts.rst(), f"wst:{operation}Target")
    assert len(target) == 1
    reference = target[0]
    assert reference.tag == f"{{{ns.WSSE}}}SecurityTokenReference"
    assert reference.get(f"{{{ns.WSSE11}}}TokenType") == reference_type
    assert [child.tag for child in reference] == [f"{{{ns.WSSE}}}KeyIdentifier"]
    assert reference[0].get("ValueType") == value_type
    assert reference[0].get("EncodingType") is None
    assert reference[0].text == "_abc123"


@pytest.mark.parametrize(("soap", "trust"), [("1.1", "2005"), ("1.2", "1.3"), ("1.2", "2005")])
@pytest.mark.parametrize("command", sorted(OPERATIONS))
def test_versions(command: str, soap: str, trust: str, fake_sts: FakeSts, monkeypatch: pytest.MonkeyPatch) -> None:
    wst, operation = TRUST[trust], OPERATIONS[command]
    fake_sts.body = _ANSWERS[command](trust)
    assert _run(monkeypatch, command, fake_sts.url, "--id", "_x1", "--soap", soap, "--trust", trust, "--digest") == 0
    (request,) = fake_sts.requests
    action = f"{wst}/RST/{operation}"
    if soap == "1.1":
        assert request.headers["SOAPAction"] == f'"{action}"'
    else:
        assert request.headers["Content-Type"] == f'application/soap+xml; charset=utf-8; action="{action}"'
    sent = fake_sts.sent
    assert sent.tag == f"{{{SOAP[soap]}}}Envelope"
    assert PASSWORD.encode() not in request.body
    rst = fake_sts.rst(soap)
    assert rst.tag == f"{{{wst}}}RequestSecurityToken"
    assert _find(rst, "wst:RequestType", trust).text == f"{wst}/{operation}"
    if command == "validate":
        assert _find(rst, "wst:TokenType", trust).text == f"{wst}/RSTR/Status"
    else:
        assert rst.find(f"{{{wst}}}TokenType") is None
    _find(rst, f"wst:{operation}Target/wsse:SecurityTokenReference/wsse:KeyIdentifier", trust)


# --- results and exit codes -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("trust", ["1.3", "2005"])
def test_validate_valid(
    trust: str, fake_sts: FakeSts, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_sts.body = _status_answer(True, trust)
    assert _run(monkeypatch, "validate", fake_sts.url, "--id", "_a", "--trust", trust) == 0
    assert capsys.readouterr().out == f"status: valid\nreason: {RSTR_STATUS_REASON}\n"


def test_validate_invalid(
    fake_sts: FakeSts, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_sts.body = _status_answer(False)
    assert _run(monkeypatch, "validate", fake_sts.url, "--id", "_a") == 3
    out = capsys.readouterr().out
    assert out == "status: invalid\nreason: The Trust service did not successfully validate the input\n"


@pytest.mark.parametrize("command", sorted(OPERATIONS))
def test_fault_exits_2(
    command: str, fake_sts: FakeSts, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_sts.status = 500
    fake_sts.body = _fault()
    assert _run(monkeypatch, command, fake_sts.url, "--id", "_a") == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert f"sts: fault: wst:InvalidRequest ({ns.WST}): The request was invalid or malformed" in err


def test_validate_unknown_status(
    fake_sts: FakeSts, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_sts.body = _status_answer(True, "2005")  # answered in the other trust namespace
    assert _run(monkeypatch, "validate", fake_sts.url, "--id", "_a") == 1
    assert "no RequestSecurityTokenResponse" in capsys.readouterr().err

    def build(rstr: etree._Element, wst: str) -> None:
        status = etree.SubElement(rstr, f"{{{wst}}}Status")
        etree.SubElement(status, f"{{{wst}}}Code").text = "urn:x:\u202egnp"

    fake_sts.requests.clear()
    fake_sts.body = _envelope("1.3", build)
    assert _run(monkeypatch, "validate", fake_sts.url, "--id", "_a") == 1
    err = capsys.readouterr().err
    assert "no known Status/Code: urn:x:\\u202egnp" in err and "\u202e" not in err


def test_http_error(fake_sts: FakeSts, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    fake_sts.status = 404
    fake_sts.content_type = "text/html"
    fake_sts.body = b"<html><body>Not Found</body>"
    assert _run(monkeypatch, "cancel", fake_sts.url, "--id", "_a") == 1
    assert "sts: error: HTTP 404" in capsys.readouterr().err


def test_cancel(fake_sts: FakeSts, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    fake_sts.body = _cancel_answer()
    assert _run(monkeypatch, "cancel", fake_sts.url, "--id", "_a") == 0
    assert capsys.readouterr().out == "cancelled\n"
    fake_sts.body = _status_answer(True)  # an RSTR without RequestedTokenCancelled
    assert _run(monkeypatch, "cancel", fake_sts.url, "--id", "_a") == 1
    assert "does not confirm the cancellation" in capsys.readouterr().err


def test_renew_prints_and_writes(
    fake_sts: FakeSts, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    fake_sts.body = _token_answer(assertion_id="_new1")
    assert _run(monkeypatch, "renew", fake_sts.url, "--id", "_old") == 0
    out, err = capsys.readouterr()
    assert etree.fromstring(out.strip().encode()).get("ID") == "_new1"
    assert "2026-01-01T12:00:00Z .. 2026-01-01T12:30:00Z" in err
    assert "token id:   _new1 (for --id)" in err
    token_out, key_out = tmp_path / "new.xml", tmp_path / "new.key"
    key = bytes(range(100, 132))
    fake_sts.body = _token_answer(assertion_id="_new2", proof=_binary_secret_proof(key))
    args = ("--id", "_new1", "--out", str(token_out), "--proof-key-out", str(key_out))
    assert _run(monkeypatch, "renew", fake_sts.url, *args) == 0
    out, err = capsys.readouterr()
    assert out == ""
    assert etree.fromstring(token_out.read_bytes()).get("ID") == "_new2"
    assert key_out.read_bytes() == key
    assert stat.S_IMODE(key_out.stat().st_mode) == 0o600
    assert f"proof key:  256 bits (BinarySecret), written to {key_out}" in err


def test_renew_without_token(
    fake_sts: FakeSts, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_sts.body = _cancel_answer()
    assert _run(monkeypatch, "renew", fake_sts.url, "--id", "_a") == 1
    assert "no RequestedSecurityToken" in capsys.readouterr().err


def test_renewed_token_can_be_validated(fake_sts: FakeSts, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The file `renew --out` writes is a valid `--token` for the next command."""
    fake_sts.body = _token_answer(assertion_id="_chain")
    token_out = tmp_path / "t.xml"
    assert _run(monkeypatch, "renew", fake_sts.url, "--id", "_old", "--out", str(token_out)) == 0
    fake_sts.requests.clear()
    fake_sts.body = _status_answer(True)
    assert _run(monkeypatch, "validate", fake_sts.url, "--token", str(token_out)) == 0
    assert _find(fake_sts.rst(), "wst:ValidateTarget/saml2:Assertion").get("ID") == "_chain"


# --- usage errors ---------------------------------------------------------------------------------------------------


def test_target_usage_errors(
    fake_sts: FakeSts, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path, _ = _token_file(tmp_path, "saml2")
    with pytest.raises(SystemExit):  # exactly one of --token / --id
        _run(monkeypatch, "validate", fake_sts.url, "--token", str(path), "--id", "_a")
    with pytest.raises(SystemExit):
        _run(monkeypatch, "validate", fake_sts.url)
    capsys.readouterr()
    assert _run(monkeypatch, "validate", fake_sts.url, "--token", str(path), "--token-type", "saml11") == 1
    assert "--token-type goes with --id" in capsys.readouterr().err
    response = tmp_path / "response.xml"
    response.write_bytes(_token_answer())
    assert _run(monkeypatch, "renew", fake_sts.url, "--token", str(response)) == 1
    assert "the first element is Envelope" in capsys.readouterr().err
    assert _run(monkeypatch, "cancel", fake_sts.url, "--token", str(tmp_path / "missing.xml")) == 1
    assert "cannot read" in capsys.readouterr().err
    (tmp_path / "dtd.xml").write_bytes(b'<!DOCTYPE a [<!ENTITY e "x">]><a>&e;</a>')
    assert _run(monkeypatch, "cancel", fake_sts.url, "--token", str(tmp_path / "dtd.xml")) == 1
    assert "not well-formed XML" in capsys.readouterr().err
    assert _run(monkeypatch, "cancel", fake_sts.url, "--id", " _a") == 1
    assert "surrounding white space" in capsys.readouterr().err
    assert _run(monkeypatch, "cancel", fake_sts.url, "--id", "_a\x01") == 1
    assert "characters that XML cannot carry" in capsys.readouterr().err
    assert fake_sts.requests == []  # nothing was sent


# --- sts request: holder-of-key options -----------------------------------------------------------------------------


def _request(monkeypatch: pytest.MonkeyPatch, url: str, *extra: str) -> int:
    return _run(monkeypatch, "request", url, "--applies-to", RP, *extra)


@pytest.fixture(scope="module")
def use_key_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    key = keygen.generate_rsa_key(2048)
    cert = keygen.self_signed_certificate(key, "client")
    path = tmp_path_factory.mktemp("cert") / "client.crt.pem"
    keygen.write_certificate(path, cert)
    return path, cert.public_bytes(serialization.Encoding.DER)


def test_bearer_unchanged(fake_sts: FakeSts, monkeypatch: pytest.MonkeyPatch) -> None:
    for trust, key_type in (("1.3", f"{ns.WST}/Bearer"), ("2005", f"{ns.WSID}/NoProofKey")):
        fake_sts.requests.clear()
        fake_sts.body = _token_answer(trust)
        assert _request(monkeypatch, fake_sts.url, "--trust", trust, "--key-type", "bearer") == 0
        rst = fake_sts.rst()
        wst = TRUST[trust]
        assert [child.tag for child in rst] == [
            f"{{{wst}}}RequestType",
            f"{{{ns.WSP}}}AppliesTo",
            f"{{{wst}}}KeyType",
        ]
        assert rst[2].text == key_type


@pytest.mark.parametrize("trust", ["1.3", "2005"])
def test_symmetric_with_entropy_envelope(
    trust: str, fake_sts: FakeSts, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    wst = TRUST[trust]
    fake_sts.body = _token_answer(trust, proof=_computed_key_proof())
    args = ("--trust", trust, "--key-type", "symmetric", "--key-size", "256", "--entropy")
    assert _request(monkeypatch, fake_sts.url, *args, "--renewable") == 0
    rst = fake_sts.rst()
    assert [child.tag for child in rst] == [
        f"{{{wst}}}RequestType",
        f"{{{ns.WSP}}}AppliesTo",
        f"{{{wst}}}KeyType",
        f"{{{wst}}}KeySize",
        f"{{{wst}}}Entropy",
        f"{{{wst}}}ComputedKeyAlgorithm",
        f"{{{wst}}}Renewing",
    ]
    assert _find(rst, "wst:KeyType", trust).text == f"{wst}/SymmetricKey"
    assert _find(rst, "wst:KeySize", trust).text == "256"
    secret = _find(rst, "wst:Entropy/wst:BinarySecret", trust)
    assert secret.get("Type") == f"{wst}/Nonce"
    assert len(base64.b64decode(secret.text or "")) == 32
    assert _find(rst, "wst:ComputedKeyAlgorithm", trust).text == f"{wst}/CK/PSHA1"
    renewing = _find(rst, "wst:Renewing", trust)
    assert (renewing.get("Allow"), renewing.get("OK")) == ("true", "false")
    parsed = parse_rst(rst, TrustVersion(wst), Operation.ISSUE)
    assert parsed.key_size == 256 and parsed.entropy == base64.b64decode(secret.text or "")
    assert parsed.renewing is not None and parsed.renewing.allow and not parsed.renewing.ok


def test_symmetric_without_entropy_and_renewable_after_expiry(
    fake_sts: FakeSts, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_sts.body = _token_answer(proof=_binary_secret_proof(b"k" * 16))
    assert _request(monkeypatch, fake_sts.url, "--key-type", "symmetric", "--renewable-after-expiry") == 0
    rst = fake_sts.rst()
    assert _find(rst, "wst:KeyType").text == f"{ns.WST}/SymmetricKey"
    for absent in ("KeySize", "Entropy", "ComputedKeyAlgorithm", "UseKey"):
        assert rst.find(f"{{{ns.WST}}}{absent}") is None
    renewing = _find(rst, "wst:Renewing")
    assert (renewing.get("Allow"), renewing.get("OK")) == ("true", "true")


@pytest.mark.parametrize("trust", ["1.3", "2005"])
def test_public_key_envelope(
    trust: str, use_key_cert: tuple[Path, bytes], fake_sts: FakeSts, monkeypatch: pytest.MonkeyPatch
) -> None:
    wst = TRUST[trust]
    path, der = use_key_cert
    fake_sts.body = _token_answer(trust)
    assert _request(monkeypatch, fake_sts.url, "--trust", trust, "--key-type", "public", "--use-key", str(path)) == 0
    rst = fake_sts.rst()
    assert _find(rst, "wst:KeyType", trust).text == f"{wst}/PublicKey"
    use_key = _find(rst, "wst:UseKey", trust)
    assert len(use_key) == 1
    token = use_key[0]
    assert token.tag == f"{{{ns.WSSE}}}BinarySecurityToken"
    assert token.get("ValueType") == X509V3
    assert token.get("EncodingType") == ns.BASE64_BINARY
    assert base64.b64decode(token.text or "") == der
    assert rst.find(f"{{{wst}}}Renewing") is None
    assert parse_rst(rst, TrustVersion(wst), Operation.ISSUE).use_key is not None


def test_psha1_known_answer() -> None:
    assert p_sha1(CLIENT_ENTROPY, ISSUER_ENTROPY, 32) == PSHA1_KEY


@pytest.mark.parametrize(("trust", "collection"), [("1.3", True), ("2005", False)])
def test_computed_proof_key_written(
    trust: str,
    collection: bool,
    fake_sts: FakeSts,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """wstrust-protocol.md §9 vector: client entropy 0x00..0x1f forced, issuer entropy 0x20..0x3f in the RSTR."""
    monkeypatch.setattr(rst_builder, "client_entropy", lambda: CLIENT_ENTROPY)
    fake_sts.body = _token_answer(trust, proof=_computed_key_proof(), collection=collection)
    key_out = tmp_path / "proof.key"
    key_out.write_bytes(b"old contents, world-readable")
    key_out.chmod(0o644)
    args = ("--trust", trust, "--key-type", "symmetric", "--entropy", "--proof-key-out", str(key_out))
    assert _request(monkeypatch, fake_sts.url, *args) == 0
    assert key_out.read_bytes() == PSHA1_KEY
    assert stat.S_IMODE(key_out.stat().st_mode) == 0o600
    secret = _find(fake_sts.rst(), "wst:Entropy/wst:BinarySecret", trust)
    assert secret.text == "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
    out, err = capsys.readouterr()
    assert etree.fromstring(out.strip().encode()).get("ID") == "_renewed"
    assert f"proof key:  256 bits (computed with PSHA1), written to {key_out}" in err
    assert PSHA1_KEY.hex() not in out + err


def test_computed_key_truncated_to_key_size(fake_sts: FakeSts, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(rst_builder, "client_entropy", lambda: CLIENT_ENTROPY)
    fake_sts.body = _token_answer(proof=_computed_key_proof("128"))
    key_out = tmp_path / "proof.key"
    args = ("--key-type", "symmetric", "--key-size", "128", "--entropy", "--proof-key-out", str(key_out))
    assert _request(monkeypatch, fake_sts.url, *args) == 0
    assert key_out.read_bytes() == PSHA1_KEY[:16]
    # no KeySize in the answer: the size asked for
    fake_sts.body = _token_answer(proof=_computed_key_proof(None))
    assert _request(monkeypatch, fake_sts.url, *args) == 0
    assert key_out.read_bytes() == PSHA1_KEY[:16]


def test_proof_key_problems(
    fake_sts: FakeSts, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    key_out = tmp_path / "proof.key"
    # a computed key, but no entropy was sent
    fake_sts.body = _token_answer(proof=_computed_key_proof())
    assert _request(monkeypatch, fake_sts.url, "--key-type", "symmetric", "--proof-key-out", str(key_out)) == 1
    out, err = capsys.readouterr()
    assert "sent no client entropy" in err and out == ""
    assert not key_out.exists()
    # without --proof-key-out the token is still printed, the problem noted
    assert _request(monkeypatch, fake_sts.url, "--key-type", "symmetric") == 0
    out, err = capsys.readouterr()
    assert "_renewed" in out and "proof key:  unusable" in err
    # no proof token at all
    fake_sts.body = _token_answer()
    assert _request(monkeypatch, fake_sts.url, "--key-type", "symmetric", "--proof-key-out", str(key_out)) == 1
    assert "no RequestedProofToken" in capsys.readouterr().err
    assert not key_out.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--key-size", "256"), "--key-size needs --key-type symmetric"),
        (("--entropy",), "--entropy needs --key-type symmetric"),
        (("--key-type", "public", "--proof-key-out", "k"), "--proof-key-out needs --key-type symmetric"),
        (("--key-type", "public"), "--key-type public needs --use-key"),
        (("--key-type", "symmetric", "--use-key", "c.pem"), "--use-key needs --key-type public"),
        (("--key-type", "symmetric", "--key-size", "100"), "--key-size must be a multiple of 8"),
        (("--key-type", "public", "--use-key", "/nonexistent/c.pem"), "cannot read /nonexistent/c.pem"),
    ],
)
def test_holder_of_key_usage_errors(
    args: tuple[str, ...],
    message: str,
    fake_sts: FakeSts,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _request(monkeypatch, fake_sts.url, *args) == 1
    assert message in capsys.readouterr().err
    assert fake_sts.requests == []
