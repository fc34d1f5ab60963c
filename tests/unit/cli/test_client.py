"""Tests for ``sts request`` and ``sts token inspect`` (sts.cli.client, rst_builder, http_post, inspect_token)."""

from __future__ import annotations

import base64
import copy
import datetime as dt
import email.message
import hashlib
import http.server
import io
import os
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree

from sts import ns
from sts.cli import main as sts_main
from sts.cli.common import CommandError
from sts.cli.rst_builder import RequestOptions, build_request
from sts.crypto import keygen
from sts.crypto.encrypter import EncryptionPolicy, TokenEncrypter
from sts.crypto.keystore import fingerprint
from sts.crypto.signer import AssertionSigner
from sts.wss.header import read_security_header
from sts.wss.username import digest_matches, parse_username_token
from sts.xmlutil import ParserLimits, parse_untrusted

URL = "https://sts.example.com/services/wso2carbon-sts"
RP = "https://rp.example.com/app/"
PASSWORD = 'pa<ss>&"wörd'
EMAIL = "http://wso2.org/claims/emailaddress"
GIVEN = "http://wso2.org/claims/givenname"
NO_PROOF_KEY = "http://schemas.xmlsoap.org/ws/2005/05/identity/NoProofKey"
COMBOS = [("1.1", "1.3"), ("1.1", "2005"), ("1.2", "1.3"), ("1.2", "2005")]
TRUST = {"1.3": ns.WST, "2005": ns.WST05}
SOAP = {"1.1": ns.S11, "1.2": ns.S12}


def _find(element: etree._Element, path: str) -> etree._Element:
    found = element.find(path, namespaces=ns.PREFIXES | {"wst05": ns.WST05, "wsid": ns.WSID, "s": ns.S11})
    assert found is not None, path
    return found


def _parse(body: bytes) -> etree._Element:
    return parse_untrusted(body, ParserLimits())


def _build(soap: str = "1.1", trust: str = "1.3", **kwargs: object) -> tuple[etree._Element, dict[str, str]]:
    options = RequestOptions(url=URL, username="alice", applies_to=RP, soap=soap, trust=trust, **kwargs)  # type: ignore[arg-type]
    built = build_request(options, PASSWORD)
    return _parse(built.body), built.headers


# --- the envelope -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("soap", "trust"), COMBOS)
def test_envelope_shape(soap: str, trust: str) -> None:
    root, headers = _build(soap, trust, token_type="saml20")
    env, wst = SOAP[soap], TRUST[trust]
    action = f"{wst}/RST/Issue"
    assert root.tag == f"{{{env}}}Envelope"
    header = root.find(f"{{{env}}}Header")
    assert header is not None
    assert _find(header, "wsa:Action").text == action
    assert _find(header, "wsa:Action").get(f"{{{env}}}mustUnderstand") == "1"
    assert (_find(header, "wsa:MessageID").text or "").startswith("urn:uuid:")
    assert _find(header, "wsa:To").text == URL
    assert _find(header, "wsa:ReplyTo/wsa:Address").text == "http://www.w3.org/2005/08/addressing/anonymous"
    # headers of the HTTP binding
    if soap == "1.1":
        assert headers == {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{action}"'}
    else:
        assert headers == {"Content-Type": f'application/soap+xml; charset=utf-8; action="{action}"'}
    # Timestamp: Created + 5 min
    created = _find(header, "wsse:Security/wsu:Timestamp/wsu:Created").text or ""
    expires = _find(header, "wsse:Security/wsu:Timestamp/wsu:Expires").text or ""
    assert created.endswith("Z") and expires.endswith("Z")
    span = dt.datetime.fromisoformat(expires) - dt.datetime.fromisoformat(created)
    assert span == dt.timedelta(minutes=5)
    # UsernameToken with PasswordText (escaped by lxml, read back exactly)
    token = _find(header, "wsse:Security/wsse:UsernameToken")
    assert _find(token, "wsse:Username").text == "alice"
    assert _find(token, "wsse:Password").get("Type") == ns.PASSWORD_TEXT
    assert _find(token, "wsse:Password").text == PASSWORD
    nonce = _find(token, "wsse:Nonce")
    assert nonce.get("EncodingType") == ns.BASE64_BINARY
    assert len(base64.b64decode(nonce.text or "")) == 16
    assert _find(token, "wsu:Created").text == created
    # Body: the RST, children in order, in the chosen trust namespace
    body = root.find(f"{{{env}}}Body")
    assert body is not None and len(body) == 1
    rst = body[0]
    assert rst.tag == f"{{{wst}}}RequestSecurityToken"
    assert [child.tag for child in rst] == [
        f"{{{wst}}}TokenType",
        f"{{{wst}}}RequestType",
        f"{{{ns.WSP}}}AppliesTo",
        f"{{{wst}}}KeyType",
    ]
    assert rst[0].text == "urn:oasis:names:tc:SAML:2.0:assertion"
    assert rst[1].text == f"{wst}/Issue"
    assert _find(rst, "wsp:AppliesTo/wsa:EndpointReference/wsa:Address").text == RP
    assert rst[3].text == (f"{ns.WST}/Bearer" if trust == "1.3" else NO_PROOF_KEY)


@pytest.mark.parametrize(("soap", "trust"), COMBOS)
def test_digest_matches_the_formula(soap: str, trust: str) -> None:
    root, _ = _build(soap, trust, digest=True)
    token = _find(root, f"{{{SOAP[soap]}}}Header/wsse:Security/wsse:UsernameToken")
    password = _find(token, "wsse:Password")
    assert password.get("Type") == ns.PASSWORD_DIGEST
    nonce = base64.b64decode(_find(token, "wsse:Nonce").text or "")
    created = _find(token, "wsu:Created").text or ""
    expected = base64.b64encode(hashlib.sha1(nonce + created.encode() + PASSWORD.encode("utf-8")).digest()).decode()
    assert password.text == expected
    assert PASSWORD not in etree.tostring(root, encoding="unicode")


def test_digest_known_answer() -> None:
    """wstrust-protocol.md §15 vector with Created written with a Z."""
    options = RequestOptions(url=URL, username="u", applies_to=RP, digest=True)
    built = build_request(
        options, "s3cret", now=dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC), nonce=b"0123456789abcdef"
    )
    root = _parse(built.body)
    assert _find(root, ".//wsu:Created").text == "2026-01-01T12:00:00Z"
    assert _find(root, ".//wsse:Password").text == "ML6Ts/2teq/W5EXcu4lKivgslgM="


@pytest.mark.parametrize("digest", [False, True])
def test_the_sts_parser_accepts_the_token(digest: bool) -> None:
    root, _ = _build(digest=digest)
    security = _find(root, ".//wsse:Security")
    parsed = read_security_header(security)
    assert parsed.timestamp is not None
    credential = parse_username_token(
        parsed.username_tokens[0], bsp_strict=True, min_nonce_bytes=16, max_password_bytes=1024
    )
    assert credential.username == "alice"
    if digest:
        assert digest_matches(credential, PASSWORD)
    else:
        assert credential.password == PASSWORD


@pytest.mark.parametrize("trust", ["1.3", "2005"])
def test_claims(trust: str) -> None:
    root, _ = _build(trust=trust, claims=(EMAIL, GIVEN))
    wst = TRUST[trust]
    claims = _find(root, f".//{{{wst}}}RequestSecurityToken/{{{wst}}}Claims")
    assert claims.get("Dialect") == "http://wso2.org/claims"
    types = claims.findall(f"{{{ns.WSID}}}ClaimType")
    assert [(c.get("Uri"), c.get("Optional")) for c in types] == [(EMAIL, "true"), (GIVEN, "true")]
    other, _ = _build(trust=trust, claims=(EMAIL,), claims_dialect="http://schemas.xmlsoap.org/ws/2005/05/identity")
    assert _find(other, f".//{{{wst}}}Claims").get("Dialect") == "http://schemas.xmlsoap.org/ws/2005/05/identity"


def test_token_types() -> None:
    saml11, _ = _build(token_type="saml11")
    assert _find(saml11, ".//wst:TokenType").text == "urn:oasis:names:tc:SAML:1.0:assertion"
    default, _ = _build()  # no --token-type: no TokenType, the RP's default applies
    assert default.find(f".//{{{ns.WST}}}TokenType") is None
    assert default.find(f".//{{{ns.WST}}}Claims") is None


def test_values_xml_cannot_carry() -> None:
    with pytest.raises(CommandError):
        build_request(RequestOptions(url=URL, username="a\x00b", applies_to=RP), "pw")


# --- sending, against a tiny local server ---------------------------------------------------------------------------


@dataclass
class Recorded:
    method: str
    path: str
    headers: email.message.Message  # case-insensitive, as HTTP header names are
    body: bytes


@dataclass
class FakeSts:
    url: str
    status: int = 200
    content_type: str = "text/xml; charset=utf-8"
    body: bytes = b""
    extra_headers: dict[str, str] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)


def _serve(fake: FakeSts, tls: ssl.SSLContext | None = None) -> Iterator[FakeSts]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            fake.requests.append(Recorded("POST", self.path, self.headers, body))
            self.send_response(fake.status)
            self.send_header("Content-Type", fake.content_type)
            self.send_header("Content-Length", str(len(fake.body)))
            for name, value in fake.extra_headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(fake.body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    scheme = "https" if tls is not None else "http"
    fake.url = f"{scheme}://127.0.0.1:{server.server_port}/services/wso2carbon-sts"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def fake_sts() -> Iterator[FakeSts]:
    yield from _serve(FakeSts(url=""))


def _run_request(monkeypatch: pytest.MonkeyPatch, url: str, *extra: str, password: str = PASSWORD) -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(password + "\n"))
    return sts_main(["request", url, "--username", "alice", "--password-stdin", "--applies-to", RP, *extra])


def _rstrc(assertion_id: str = "_dummy1") -> bytes:
    wst = ns.WST
    env = etree.Element(f"{{{ns.S11}}}Envelope", nsmap={"s": ns.S11})
    body = etree.SubElement(env, f"{{{ns.S11}}}Body")
    rstrc = etree.SubElement(body, f"{{{wst}}}RequestSecurityTokenResponseCollection", nsmap={"wst": wst})
    rstr = etree.SubElement(rstrc, f"{{{wst}}}RequestSecurityTokenResponse")
    etree.SubElement(rstr, f"{{{wst}}}TokenType").text = "urn:oasis:names:tc:SAML:2.0:assertion"
    holder = etree.SubElement(rstr, f"{{{wst}}}RequestedSecurityToken")
    assertion = etree.SubElement(
        holder, f"{{{ns.SAML2}}}Assertion", nsmap={"saml2": ns.SAML2}, ID=assertion_id, Version="2.0"
    )
    etree.SubElement(assertion, f"{{{ns.SAML2}}}Issuer").text = "https://sts.example.com/"
    lifetime = etree.SubElement(rstr, f"{{{wst}}}Lifetime", nsmap={"wsu": ns.WSU})
    etree.SubElement(lifetime, f"{{{ns.WSU}}}Created").text = "2026-01-01T12:00:00Z"
    etree.SubElement(lifetime, f"{{{ns.WSU}}}Expires").text = "2026-01-01T12:30:00Z"
    return etree.tostring(env)


def test_request_success_prints_the_token(
    fake_sts: FakeSts, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_sts.body = _rstrc()
    assert _run_request(monkeypatch, fake_sts.url, "--token-type", "saml20", "--claim", EMAIL) == 0
    out, err = capsys.readouterr()
    token = etree.fromstring(out.strip().encode())
    assert token.tag == f"{{{ns.SAML2}}}Assertion" and token.get("ID") == "_dummy1"
    assert "token type: urn:oasis:names:tc:SAML:2.0:assertion" in err
    assert "2026-01-01T12:00:00Z .. 2026-01-01T12:30:00Z" in err
    assert "encrypted:  no" in err
    assert PASSWORD not in out + err
    (request,) = fake_sts.requests
    assert request.path == "/services/wso2carbon-sts"
    assert request.headers["Content-Type"] == "text/xml; charset=utf-8"
    assert request.headers["SOAPAction"] == f'"{ns.WST}/RST/Issue"'
    sent = _parse(request.body)
    assert _find(sent, ".//wsse:Password").text == PASSWORD
    assert _find(sent, ".//wsa:To").text == fake_sts.url
    assert _find(sent, ".//wst:Claims/wsid:ClaimType").get("Uri") == EMAIL


def test_request_out_file(
    fake_sts: FakeSts, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    fake_sts.body = _rstrc("_written")
    out_file = tmp_path / "token.xml"
    assert _run_request(monkeypatch, fake_sts.url, "--out", str(out_file), "--soap", "1.2", "--trust", "2005") == 0
    out, err = capsys.readouterr()
    assert out == ""
    assert f"written to: {out_file}" in err
    assert etree.fromstring(out_file.read_bytes()).get("ID") == "_written"
    (request,) = fake_sts.requests
    action = f"{ns.WST05}/RST/Issue"
    assert request.headers["Content-Type"] == f'application/soap+xml; charset=utf-8; action="{action}"'
    assert "SOAPAction" not in request.headers
    sent = _parse(request.body)
    assert sent.tag == f"{{{ns.S12}}}Envelope"
    assert _find(sent, ".//wst05:RequestSecurityToken/wst05:KeyType").text == NO_PROOF_KEY


def test_request_soap11_fault(
    fake_sts: FakeSts, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_sts.status = 500
    fake_sts.body = (
        f'<s:Envelope xmlns:s="{ns.S11}"><s:Body><s:Fault>'
        f'<faultcode xmlns:wst="{ns.WST}">wst:InvalidScope</faultcode>'
        "<faultstring>The request scope is invalid or unsupported</faultstring>"
        "</s:Fault></s:Body></s:Envelope>"
    ).encode()
    assert _run_request(monkeypatch, fake_sts.url) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert f"sts: fault: wst:InvalidScope ({ns.WST}): The request scope is invalid or unsupported" in err
    assert PASSWORD not in err


def test_request_soap12_fault_with_subcode(
    fake_sts: FakeSts, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_sts.status = 400
    fake_sts.content_type = "application/soap+xml; charset=utf-8"
    fake_sts.body = (
        f'<e:Envelope xmlns:e="{ns.S12}"><e:Body><e:Fault><e:Code><e:Value>e:Sender</e:Value>'
        f'<e:Subcode><e:Value xmlns:wsse="{ns.WSSE}">wsse:FailedAuthentication</e:Value></e:Subcode></e:Code>'
        '<e:Reason><e:Text xml:lang="en">The security token could not be authenticated or authorized</e:Text>'
        "</e:Reason></e:Fault></e:Body></e:Envelope>"
    ).encode()
    assert _run_request(monkeypatch, fake_sts.url, "--soap", "1.2", "--digest") == 2
    _, err = capsys.readouterr()
    assert (
        f"sts: fault: wsse:FailedAuthentication ({ns.WSSE}): "
        "The security token could not be authenticated or authorized"
    ) in err
    (request,) = fake_sts.requests
    assert request.headers["Content-Type"].endswith(f'action="{ns.WST}/RST/Issue"')
    assert PASSWORD.encode() not in request.body  # digest mode: the password itself never travels


def test_request_http_error_page(
    fake_sts: FakeSts, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_sts.status = 404
    fake_sts.content_type = "text/html"
    fake_sts.body = b"<html><body>Not Found</body>"
    assert _run_request(monkeypatch, fake_sts.url) == 1
    assert "sts: error: HTTP 404" in capsys.readouterr().err


def test_request_redirect_not_followed(
    fake_sts: FakeSts, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_sts.status = 307
    fake_sts.extra_headers = {"Location": fake_sts.url + "/elsewhere"}
    assert _run_request(monkeypatch, fake_sts.url) == 1
    assert "HTTP 307" in capsys.readouterr().err
    assert len(fake_sts.requests) == 1


def test_request_200_without_token(
    fake_sts: FakeSts, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_sts.body = f'<s:Envelope xmlns:s="{ns.S11}"><s:Body/></s:Envelope>'.encode()
    assert _run_request(monkeypatch, fake_sts.url) == 1
    assert "no RequestedSecurityToken" in capsys.readouterr().err


def test_request_refuses_plain_http_to_remote_hosts(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run_request(monkeypatch, "http://sts.example.com/services/wso2carbon-sts") == 1
    assert "plain http" in capsys.readouterr().err


def test_request_connection_refused(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert _run_request(monkeypatch, f"http://127.0.0.1:{port}/sts", "--timeout", "5") == 1
    assert "cannot reach" in capsys.readouterr().err


def test_request_over_tls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    key = keygen.generate_rsa_key(2048)
    cert = keygen.self_signed_certificate(
        key, "localhost", dns_names=("localhost",), ip_addresses=("127.0.0.1",), server_auth=True
    )
    keygen.write_private_key(tmp_path / "tls.key", key)
    keygen.write_certificate(tmp_path / "tls.crt", cert)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")
    for fake in _serve(FakeSts(url="", body=_rstrc("_tls")), context):
        # not in the system trust store: refused, and the password was never sent
        assert _run_request(monkeypatch, fake.url) == 1
        assert "not trusted" in capsys.readouterr().err
        assert fake.requests == []
        # trusted through --cafile
        assert _run_request(monkeypatch, fake.url, "--cafile", str(tmp_path / "tls.crt")) == 0
        assert 'ID="_tls"' in capsys.readouterr().out
        assert len(fake.requests) == 1


def test_no_option_disables_tls_verification(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        sts_main(["request", "--help"])
    help_text = capsys.readouterr().out
    assert "--cafile" in help_text
    assert "insecure" not in help_text and "no-verify" not in help_text


# --- token inspect --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Keys:
    sts_key: rsa.RSAPrivateKey
    sts_cert: x509.Certificate
    other_cert: x509.Certificate
    rp_key: rsa.RSAPrivateKey
    rp_cert: x509.Certificate


@pytest.fixture(scope="module")
def keys() -> Keys:
    sts_key, other_key, rp_key = (keygen.generate_rsa_key(2048) for _ in range(3))
    return Keys(
        sts_key,
        keygen.self_signed_certificate(sts_key, "STS signing"),
        keygen.self_signed_certificate(other_key, "someone else"),
        rp_key,
        keygen.self_signed_certificate(rp_key, "relying party"),
    )


def _saml2_assertion() -> etree._Element:
    q = lambda local: f"{{{ns.SAML2}}}{local}"  # noqa: E731
    assertion = etree.Element(
        q("Assertion"), nsmap={"saml2": ns.SAML2}, ID="_abc123", Version="2.0", IssueInstant="2026-01-01T12:00:00Z"
    )
    etree.SubElement(assertion, q("Issuer")).text = "https://sts.example.com/"
    subject = etree.SubElement(assertion, q("Subject"))
    name_id = etree.SubElement(subject, q("NameID"), Format="urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified")
    name_id.text = "alice"
    confirmation = etree.SubElement(subject, q("SubjectConfirmation"), Method="urn:oasis:names:tc:SAML:2.0:cm:bearer")
    etree.SubElement(confirmation, q("SubjectConfirmationData"), Recipient=RP, NotOnOrAfter="2026-01-01T12:30:00Z")
    conditions = etree.SubElement(
        assertion, q("Conditions"), NotBefore="2026-01-01T12:00:00Z", NotOnOrAfter="2026-01-01T12:30:00Z"
    )
    etree.SubElement(etree.SubElement(conditions, q("AudienceRestriction")), q("Audience")).text = RP
    authn = etree.SubElement(assertion, q("AuthnStatement"), AuthnInstant="2026-01-01T12:00:00Z")
    context = etree.SubElement(etree.SubElement(authn, q("AuthnContext")), q("AuthnContextClassRef"))
    context.text = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
    statement = etree.SubElement(assertion, q("AttributeStatement"))
    for name, values in ((EMAIL, ["alice@example.com"]), (GIVEN, ["Alice", "Ally"])):
        attribute = etree.SubElement(statement, q("Attribute"), Name=name)
        for value in values:
            etree.SubElement(attribute, q("AttributeValue")).text = value
    return assertion


def _saml11_assertion() -> etree._Element:
    q = lambda local: f"{{{ns.SAML1}}}{local}"  # noqa: E731
    assertion = etree.Element(
        q("Assertion"),
        nsmap={"saml": ns.SAML1},
        AssertionID="_s11",
        MajorVersion="1",
        MinorVersion="1",
        Issuer="https://sts.example.com/",
        IssueInstant="2026-01-01T12:00:00Z",
    )
    conditions = etree.SubElement(
        assertion, q("Conditions"), NotBefore="2026-01-01T12:00:00Z", NotOnOrAfter="2026-01-01T12:30:00Z"
    )
    etree.SubElement(etree.SubElement(conditions, q("AudienceRestrictionCondition")), q("Audience")).text = RP
    statement = etree.SubElement(assertion, q("AttributeStatement"))
    subject = etree.SubElement(statement, q("Subject"))
    etree.SubElement(subject, q("NameIdentifier")).text = "bob"
    confirmation = etree.SubElement(subject, q("SubjectConfirmation"))
    etree.SubElement(confirmation, q("ConfirmationMethod")).text = "urn:oasis:names:tc:SAML:1.0:cm:bearer"
    attribute = etree.SubElement(
        statement, q("Attribute"), AttributeNamespace="http://wso2.org/claims", AttributeName="emailaddress"
    )
    etree.SubElement(attribute, q("AttributeValue")).text = "bob@example.com"
    return assertion


def _encrypted_saml2(keys: Keys) -> etree._Element:
    """Sign, then encrypt the standalone assertion, then wrap the EncryptedData (as the STS does)."""
    signed = AssertionSigner(keys.sts_key, keys.sts_cert).sign_saml2(_saml2_assertion())
    encrypted = TokenEncrypter(keys.rp_cert, EncryptionPolicy()).encrypt(etree.fromstring(etree.tostring(signed)))
    wrapper = etree.Element(f"{{{ns.SAML2}}}EncryptedAssertion", nsmap={"saml2": ns.SAML2})
    wrapper.append(encrypted)
    return wrapper


def _write(tmp_path: Path, name: str, element: etree._Element) -> Path:
    path = tmp_path / name
    path.write_bytes(etree.tostring(element))
    return path


def _key_files(tmp_path: Path, keys: Keys) -> tuple[Path, Path, Path]:
    rp_key, sts_cert, other_cert = tmp_path / "rp.key.pem", tmp_path / "sts.crt.pem", tmp_path / "other.crt.pem"
    keygen.write_private_key(rp_key, keys.rp_key)
    keygen.write_certificate(sts_cert, keys.sts_cert)
    keygen.write_certificate(other_cert, keys.other_cert)
    return rp_key, sts_cert, other_cert


def test_inspect_encrypted_saml2(tmp_path: Path, keys: Keys, capsys: pytest.CaptureFixture[str]) -> None:
    rp_key, sts_cert, _ = _key_files(tmp_path, keys)
    token = _write(tmp_path, "token.xml", _encrypted_saml2(keys))
    assert b"alice@example.com" not in token.read_bytes()
    assert sts_main(["token", "inspect", str(token), "--rp-key", str(rp_key), "--sts-cert", str(sts_cert)]) == 0
    out = capsys.readouterr().out
    assert f"signature: valid (pinned STS certificate {fingerprint(keys.sts_cert)})" in out
    lines = [" ".join(line.split()) for line in out.splitlines()]
    for expected in (
        "SAML version: 2.0",
        "ID: _abc123",
        "issuer: https://sts.example.com/",
        "issue instant: 2026-01-01T12:00:00Z",
        "subject: alice",
        "subject format: urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified",
        "confirmation: urn:oasis:names:tc:SAML:2.0:cm:bearer",
        f"audience: {RP}",
        "not before: 2026-01-01T12:00:00Z",
        "not on or after: 2026-01-01T12:30:00Z",
        "authn context: urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport",
        f"attribute: {EMAIL} = alice@example.com",
        f"attribute: {GIVEN} = Alice",
        f"attribute: {GIVEN} = Ally",
        "validity: EXPIRED",
    ):
        assert expected in lines, (expected, out)


def test_inspect_whole_rstr(tmp_path: Path, keys: Keys, capsys: pytest.CaptureFixture[str]) -> None:
    rp_key, sts_cert, _ = _key_files(tmp_path, keys)
    rstr = etree.fromstring(_rstrc())
    holder = _find(rstr, ".//wst:RequestedSecurityToken")
    holder.remove(holder[0])
    holder.append(_encrypted_saml2(keys))
    path = _write(tmp_path, "response.xml", rstr)
    assert sts_main(["token", "inspect", str(path), "--rp-key", str(rp_key), "--sts-cert", str(sts_cert)]) == 0
    assert "alice@example.com" in capsys.readouterr().out


def test_inspect_wrong_sts_cert(tmp_path: Path, keys: Keys, capsys: pytest.CaptureFixture[str]) -> None:
    rp_key, _, other_cert = _key_files(tmp_path, keys)
    token = _write(tmp_path, "token.xml", _encrypted_saml2(keys))
    assert sts_main(["token", "inspect", str(token), "--rp-key", str(rp_key), "--sts-cert", str(other_cert)]) == 1
    out = capsys.readouterr().out
    assert "signature: INVALID" in out
    assert "alice@example.com" not in out


def test_inspect_tampered_assertion(tmp_path: Path, keys: Keys, capsys: pytest.CaptureFixture[str]) -> None:
    _, sts_cert, _ = _key_files(tmp_path, keys)
    signed = AssertionSigner(keys.sts_key, keys.sts_cert).sign_saml2(_saml2_assertion())
    tampered = copy.deepcopy(signed)
    _find(tampered, ".//saml2:NameID").text = "mallory"
    path = _write(tmp_path, "token.xml", tampered)
    assert sts_main(["token", "inspect", str(path), "--sts-cert", str(sts_cert)]) == 1
    out = capsys.readouterr().out
    assert "signature: INVALID" in out and "mallory" not in out


def test_inspect_encrypted_without_rp_key(tmp_path: Path, keys: Keys, capsys: pytest.CaptureFixture[str]) -> None:
    _, sts_cert, _ = _key_files(tmp_path, keys)
    token = _write(tmp_path, "token.xml", _encrypted_saml2(keys))
    assert sts_main(["token", "inspect", str(token), "--sts-cert", str(sts_cert)]) == 1
    assert "the token is encrypted: give the relying party's private key with --rp-key" in capsys.readouterr().err


def test_inspect_wrong_rp_key(tmp_path: Path, keys: Keys, capsys: pytest.CaptureFixture[str]) -> None:
    _, sts_cert, _ = _key_files(tmp_path, keys)
    wrong = tmp_path / "wrong.key.pem"
    keygen.write_private_key(wrong, keys.sts_key)
    token = _write(tmp_path, "token.xml", _encrypted_saml2(keys))
    assert sts_main(["token", "inspect", str(token), "--rp-key", str(wrong), "--sts-cert", str(sts_cert)]) == 1
    assert "cannot decrypt" in capsys.readouterr().err


def test_inspect_saml11_with_the_instance_certificate(
    tmp_path: Path, keys: Keys, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _key_files(tmp_path, keys)
    for name in [name for name in os.environ if name.startswith("STS_")]:
        monkeypatch.delenv(name)
    config = tmp_path / "sts.toml"
    config.write_text('[issuer]\nsigning_cert = "sts.crt.pem"\n')
    signed = AssertionSigner(keys.sts_key, keys.sts_cert).sign_saml11(_saml11_assertion())
    path = _write(tmp_path, "token.xml", signed)
    assert sts_main(["--config", str(config), "token", "inspect", str(path)]) == 0
    lines = [" ".join(line.split()) for line in capsys.readouterr().out.splitlines()]
    for expected in (
        "encrypted: no",
        "SAML version: 1.1",
        "ID: _s11",
        "subject: bob",
        "confirmation: urn:oasis:names:tc:SAML:1.0:cm:bearer",
        f"audience: {RP}",
        "attribute: http://wso2.org/claims/emailaddress = bob@example.com",
    ):
        assert expected in lines, (expected, lines)
    assert any(line.startswith("signature: valid (pinned STS certificate") for line in lines)


def test_inspect_not_a_token(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "x.xml"
    path.write_bytes(b"<a><b/></a>")
    assert sts_main(["token", "inspect", str(path), "--sts-cert", str(path)]) == 1
    assert "no Assertion, EncryptedAssertion or EncryptedData" in capsys.readouterr().err
    path.write_bytes(b'<!DOCTYPE a [<!ENTITY e "x">]><a>&e;</a>')
    assert sts_main(["token", "inspect", str(path)]) == 1
    assert "not well-formed XML" in capsys.readouterr().err
