"""The client's four calls (sts.client.operations) against canned answers on 127.0.0.1: what they send, what
they return, and exactly how they refuse answers they cannot use."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

import pytest
from lxml import etree

from sts import ns
from sts.client import (
    ClientError,
    Connection,
    Fault,
    FaultReceived,
    IssueOptions,
    ProofKey,
    SymmetricKey,
    TargetOptions,
    cancel_token,
    new_client_entropy,
    renew_token,
    request_token,
    validate_token,
)
from sts.client.operations import CLIENT_ENTROPY_BYTES
from sts.client.transport import MAX_RESPONSE_BYTES
from sts.crypto import keygen
from sts.wstrust.keys import p_sha1
from sts.wstrust.tokentypes import SamlVersion
from tests.fake_sts import (
    CLIENT_ENTROPY,
    INVALID_REASON,
    ISSUER_ENTROPY,
    PSHA1_KEY,
    TRUST,
    VALID_REASON,
    FakeSts,
    binary_secret_proof,
    cancel_answer,
    computed_key_proof,
    envelope,
    parse,
    serving,
    soap11_fault,
    soap12_fault,
    status_answer,
    token_answer,
)

RP = "https://rp.example.com/app/"
PASSWORD = "s3cret-pw"


def _connection(url: str, trust: str = "1.3", **kwargs: object) -> Connection:
    return Connection(url=url, username="alice", trust_ns=TRUST[trust], **kwargs)  # type: ignore[arg-type]


def _issue(fake: FakeSts, trust: str = "1.3", key: SymmetricKey | None = None, **kwargs: object) -> IssueOptions:
    return IssueOptions(_connection(fake.url, trust, **kwargs), applies_to=RP, key=key)


def _by_id(fake: FakeSts, trust: str = "1.3") -> TargetOptions:
    return TargetOptions(_connection(fake.url, trust), token_id="_a")


# --- Issue ----------------------------------------------------------------------------------------------------------


def test_request_token(fake_sts: FakeSts) -> None:
    fake_sts.body = token_answer(assertion_id="_issued")
    options = IssueOptions(
        _connection(fake_sts.url), applies_to=RP, token_type=SamlVersion.SAML20, claims=("urn:claim",)
    )
    issued = request_token(options, PASSWORD)
    assert issued.token.tag == f"{{{ns.SAML2}}}Assertion" and issued.token.get("ID") == "_issued"
    assert issued.token_type == "urn:oasis:names:tc:SAML:2.0:assertion"
    assert (issued.created, issued.expires) == ("2026-01-01T12:00:00Z", "2026-01-01T12:30:00Z")
    assert issued.token_id == "_issued"
    assert not issued.encrypted
    assert issued.proof_key is None and issued.proof_key_problem == ""
    (request,) = fake_sts.requests
    assert request.path == "/services/wso2carbon-sts"
    assert request.headers["Content-Type"] == "text/xml; charset=utf-8"
    assert request.headers["SOAPAction"] == f'"{ns.WST}/RST/Issue"'
    sent = fake_sts.sent
    assert sent.findtext(f".//{{{ns.WSSE}}}Password") == PASSWORD
    assert sent.findtext(f".//{{{ns.WSA}}}To") == fake_sts.url


@pytest.mark.parametrize(("trust", "collection"), [("1.3", True), ("2005", False)])
def test_computed_proof_key_known_answer(fake_sts: FakeSts, trust: str, collection: bool) -> None:
    """P_SHA1(client entropy, issuer entropy) of the vector, whether the RSTR is bare or in an RSTRC."""
    fake_sts.body = token_answer(trust, proof=computed_key_proof(), collection=collection)
    issued = request_token(_issue(fake_sts, trust, SymmetricKey(entropy=CLIENT_ENTROPY)), PASSWORD)
    assert issued.proof_key is not None
    assert issued.proof_key.key == PSHA1_KEY and issued.proof_key.computed and issued.proof_key.bits == 256
    assert PSHA1_KEY.hex() not in repr(issued)


def test_computed_key_truncated_to_key_size(fake_sts: FakeSts) -> None:
    key = SymmetricKey(bits=128, entropy=CLIENT_ENTROPY)
    fake_sts.body = token_answer(proof=computed_key_proof("128"))
    assert request_token(_issue(fake_sts, key=key), PASSWORD).proof_key == _proof(PSHA1_KEY[:16])
    fake_sts.body = token_answer(proof=computed_key_proof(None))  # no KeySize in the answer: the size asked for
    assert request_token(_issue(fake_sts, key=key), PASSWORD).proof_key == _proof(PSHA1_KEY[:16])
    fake_sts.body = token_answer(proof=computed_key_proof(None))  # nor in the request: 256 bits
    issued = request_token(_issue(fake_sts, key=SymmetricKey(entropy=CLIENT_ENTROPY)), PASSWORD)
    assert issued.proof_key == _proof(PSHA1_KEY)


def _proof(key: bytes) -> ProofKey:
    return ProofKey(key, computed=True)


def test_binary_secret_proof_key(fake_sts: FakeSts) -> None:
    fake_sts.body = token_answer(proof=binary_secret_proof(b"k" * 16))
    issued = request_token(_issue(fake_sts, key=SymmetricKey()), PASSWORD)
    assert issued.proof_key is not None
    assert (issued.proof_key.key, issued.proof_key.computed, issued.proof_key.bits) == (b"k" * 16, False, 128)


def _with_proof_token(content: str, *siblings: str) -> bytes:
    """An RSTR with a token, ``RequestedProofToken`` holding ``content``, then ``siblings`` (``wst:`` elements)."""

    def build(rstr: etree._Element, wst: str) -> None:
        holder = etree.SubElement(rstr, f"{{{wst}}}RequestedSecurityToken")
        holder.append(etree.Element(f"{{{ns.SAML2}}}Assertion", ID="_t"))
        declarations = f'xmlns:wst="{wst}" xmlns:xenc="{ns.XENC}"'
        rstr.append(etree.fromstring(f"<wst:RequestedProofToken {declarations}>{content}</wst:RequestedProofToken>"))
        for sibling in etree.fromstring(f"<siblings {declarations}>{''.join(siblings)}</siblings>"):
            rstr.append(sibling)

    return envelope("1.3", build)


_PSHA1 = f"<wst:ComputedKey>{ns.WST}/CK/PSHA1</wst:ComputedKey>"
_ENTROPY = "<wst:Entropy><wst:BinarySecret>AAAA</wst:BinarySecret></wst:Entropy>"
UNUSABLE_PROOF_KEYS = [
    (
        token_answer(proof=computed_key_proof()),
        None,
        "the STS returned a computed key, but this request sent no client entropy",
    ),
    (_with_proof_token(""), CLIENT_ENTROPY, "RequestedProofToken must hold exactly one element"),
    (
        _with_proof_token("<xenc:EncryptedKey/>"),
        None,
        "the proof key is encrypted (xenc:EncryptedKey): this client cannot decrypt it",
    ),
    (_with_proof_token("<wst:Other/>"), None, "unsupported RequestedProofToken content Other"),
    (
        _with_proof_token("<wst:ComputedKey>urn:x\u202e</wst:ComputedKey>"),
        CLIENT_ENTROPY,
        "unsupported ComputedKey algorithm urn:x\\u202e",
    ),
    (_with_proof_token("<wst:BinarySecret>!!</wst:BinarySecret>"), None, "the proof-key BinarySecret is not base64"),
    (_with_proof_token("<wst:BinarySecret/>"), None, "the proof-key BinarySecret is empty"),
    (_with_proof_token(_PSHA1), CLIENT_ENTROPY, "the response has a ComputedKey but no Entropy/BinarySecret"),
    (
        _with_proof_token(_PSHA1, "<wst:Entropy><wst:BinarySecret>!</wst:BinarySecret></wst:Entropy>"),
        CLIENT_ENTROPY,
        "the issuer entropy is not base64",
    ),
    (
        _with_proof_token(_PSHA1, _ENTROPY, "<wst:KeySize>100</wst:KeySize>"),
        CLIENT_ENTROPY,
        "unusable KeySize in the response: 100",
    ),
    (  # str.isdigit is true of "²", which int() refuses: a ValueError out of request_token before the fix
        _with_proof_token(_PSHA1, _ENTROPY, "<wst:KeySize>\u00b2</wst:KeySize>"),
        CLIENT_ENTROPY,
        "unusable KeySize in the response: \u00b2",
    ),
    (  # other scripts' digits, which int() converts: not an xsd:unsignedInt
        _with_proof_token(_PSHA1, _ENTROPY, "<wst:KeySize>\u0662\u0665\u0666</wst:KeySize>"),
        CLIENT_ENTROPY,
        "unusable KeySize in the response: \u0662\u0665\u0666",
    ),
]


@pytest.mark.parametrize(("body", "entropy", "problem"), UNUSABLE_PROOF_KEYS)
def test_unusable_proof_keys(fake_sts: FakeSts, body: bytes, entropy: bytes | None, problem: str) -> None:
    """The token is still returned; the proof key is None and the problem is said (escaped)."""
    fake_sts.body = body
    issued = request_token(_issue(fake_sts, key=SymmetricKey(entropy=entropy)), PASSWORD)
    assert issued.token.tag == f"{{{ns.SAML2}}}Assertion"
    assert issued.proof_key is None
    assert issued.proof_key_problem == problem


def test_new_client_entropy() -> None:
    first, second = new_client_entropy(), new_client_entropy()
    assert len(first) == CLIENT_ENTROPY_BYTES == 32 and first != second
    assert p_sha1(first, ISSUER_ENTROPY, 32) != p_sha1(second, ISSUER_ENTROPY, 32)


# --- faults and unusable answers ------------------------------------------------------------------------------------


def test_soap11_fault(fake_sts: FakeSts) -> None:
    fake_sts.status = 500
    fake_sts.body = soap11_fault("InvalidScope", "The request scope is invalid or unsupported")
    with pytest.raises(FaultReceived) as raised:
        request_token(_issue(fake_sts), PASSWORD)
    fault = raised.value.fault
    assert (fault.code, fault.namespace, fault.reason) == (
        "wst:InvalidScope",
        ns.WST,
        "The request scope is invalid or unsupported",
    )
    assert str(raised.value) == f"wst:InvalidScope ({ns.WST}): The request scope is invalid or unsupported"


def test_soap12_fault_innermost_subcode(fake_sts: FakeSts) -> None:
    fake_sts.status = 400
    fake_sts.content_type = "application/soap+xml; charset=utf-8"
    fake_sts.body = soap12_fault()
    with pytest.raises(FaultReceived) as raised:
        validate_token(_by_id(fake_sts), PASSWORD)
    fault = raised.value.fault
    assert (fault.code, fault.namespace) == ("wsse:FailedAuthentication", ns.WSSE)
    assert fault.reason == "The security token could not be authenticated or authorized"


def test_fault_text_is_escaped() -> None:
    assert Fault("a:\x1b[2J", "urn:\u202e", "r\x07").describe() == "a:\\x1b[2J (urn:\\u202e): r\\x07"
    assert Fault("?", "", "").describe() == "? (no namespace): "


_EMPTY_BODY = f'<s:Envelope xmlns:s="{ns.S11}"><s:Body/></s:Envelope>'.encode()


@pytest.mark.parametrize(
    ("status", "content_type", "body", "message"),
    [
        (404, "text/html", b"<html><body>Not Found</body>", "HTTP 404 Not Found from {url}"),
        (200, "text/xml", b"<a>&e;</a>", "the response is not well-formed XML (or exceeds the parser limits)"),
        (200, "text/xml", _EMPTY_BODY, "the response holds no RequestedSecurityToken"),
        (503, "text/xml", _EMPTY_BODY, "HTTP 503 Service Unavailable from {url}"),
    ],
)
def test_unusable_answers(fake_sts: FakeSts, status: int, content_type: str, body: bytes, message: str) -> None:
    fake_sts.status, fake_sts.content_type, fake_sts.body = status, content_type, body
    with pytest.raises(ClientError) as raised:
        request_token(_issue(fake_sts), PASSWORD)
    assert not isinstance(raised.value, FaultReceived)
    assert str(raised.value) == message.format(url=fake_sts.url)


def test_oversized_answer(fake_sts: FakeSts) -> None:
    fake_sts.body = b" " * (MAX_RESPONSE_BYTES + 1)
    with pytest.raises(ClientError, match=f"^the response is larger than {MAX_RESPONSE_BYTES} bytes$"):
        request_token(_issue(fake_sts), PASSWORD)


def test_redirect_not_followed(fake_sts: FakeSts) -> None:
    fake_sts.status = 307
    fake_sts.extra_headers = {"Location": fake_sts.url + "/elsewhere"}
    with pytest.raises(ClientError, match="^HTTP 307 "):
        request_token(_issue(fake_sts), PASSWORD)
    assert len(fake_sts.requests) == 1


def test_connection_refused() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/sts"
    with pytest.raises(ClientError, match=f"^cannot reach {url}: "):
        request_token(IssueOptions(Connection(url=url, username="a", timeout=5), applies_to=RP), PASSWORD)


def test_timeout_must_be_positive(fake_sts: FakeSts) -> None:
    with pytest.raises(ClientError, match="^the timeout must be positive$"):
        request_token(_issue(fake_sts, timeout=0), PASSWORD)
    assert fake_sts.requests == []


def test_over_tls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    key = keygen.generate_rsa_key(2048)
    cert = keygen.self_signed_certificate(
        key, "localhost", dns_names=("localhost",), ip_addresses=("127.0.0.1",), server_auth=True
    )
    keygen.write_private_key(tmp_path / "tls.key", key)
    keygen.write_certificate(tmp_path / "tls.crt", cert)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")
    with serving(FakeSts(body=token_answer(assertion_id="_tls")), context) as fake:
        # not in the system trust store: refused, and the password was never sent
        with pytest.raises(ClientError, match=f"^TLS certificate of {fake.url} not trusted: "):
            request_token(_issue(fake), PASSWORD)
        assert fake.requests == []
        with pytest.raises(ClientError, match=f"^cannot load CA file {tmp_path / 'missing.pem'}: "):
            request_token(_issue(fake, cafile=tmp_path / "missing.pem"), PASSWORD)
        # trusted through cafile
        assert request_token(_issue(fake, cafile=tmp_path / "tls.crt"), PASSWORD).token.get("ID") == "_tls"
        assert len(fake.requests) == 1


# --- Validate, Renew, Cancel ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("trust", ["1.3", "2005"])
def test_validate_token(fake_sts: FakeSts, trust: str) -> None:
    fake_sts.body = status_answer(True, trust)
    status = validate_token(_by_id(fake_sts, trust), PASSWORD)
    assert (status.valid, status.reason) == (True, VALID_REASON)
    fake_sts.body = status_answer(False, trust)
    status = validate_token(_by_id(fake_sts, trust), PASSWORD)
    assert (status.valid, status.reason) == (False, INVALID_REASON)
    for request in fake_sts.requests:
        rst = parse(request.body).find(f".//{{{TRUST[trust]}}}RequestSecurityToken")
        assert rst is not None and rst.findtext(f"{{{TRUST[trust]}}}RequestType") == f"{TRUST[trust]}/Validate"


def test_validate_unknown_status(fake_sts: FakeSts) -> None:
    fake_sts.body = status_answer(True, "2005")  # answered in the other trust namespace
    with pytest.raises(ClientError) as raised:
        validate_token(_by_id(fake_sts), PASSWORD)
    assert str(raised.value) == "the response holds no RequestSecurityTokenResponse in the request's trust namespace"

    def build(rstr: etree._Element, wst: str) -> None:
        status = etree.SubElement(rstr, f"{{{wst}}}Status")
        etree.SubElement(status, f"{{{wst}}}Code").text = "urn:x:\u202egnp"

    fake_sts.body = envelope("1.3", build)
    with pytest.raises(ClientError) as raised:
        validate_token(_by_id(fake_sts), PASSWORD)
    assert str(raised.value) == "the response has no known Status/Code: urn:x:\\u202egnp"
    fake_sts.body = envelope("1.3", lambda rstr, wst: None)
    with pytest.raises(ClientError) as raised:
        validate_token(_by_id(fake_sts), PASSWORD)
    assert str(raised.value) == "the response has no known Status/Code: (none)"


def test_renew_token(fake_sts: FakeSts) -> None:
    fake_sts.body = token_answer(assertion_id="_new", proof=binary_secret_proof(bytes(range(32))))
    issued = renew_token(_by_id(fake_sts), PASSWORD)
    assert issued.token.get("ID") == "_new" and issued.token_id == "_new"
    assert issued.proof_key is not None and issued.proof_key.key == bytes(range(32))
    assert fake_sts.requests[0].headers["SOAPAction"] == f'"{ns.WST}/RST/Renew"'
    fake_sts.body = cancel_answer()
    with pytest.raises(ClientError, match="^the response holds no RequestedSecurityToken$"):
        renew_token(_by_id(fake_sts), PASSWORD)
    fake_sts.body = token_answer("2005")
    with pytest.raises(ClientError, match="no RequestSecurityTokenResponse in the request's trust namespace"):
        renew_token(_by_id(fake_sts), PASSWORD)


def test_cancel_token(fake_sts: FakeSts) -> None:
    fake_sts.body = cancel_answer()
    cancel_token(_by_id(fake_sts), PASSWORD)
    assert fake_sts.requests[0].headers["SOAPAction"] == f'"{ns.WST}/RST/Cancel"'
    fake_sts.body = status_answer(True)  # an RSTR without RequestedTokenCancelled
    with pytest.raises(ClientError) as raised:
        cancel_token(_by_id(fake_sts), PASSWORD)
    assert str(raised.value) == "the response does not confirm the cancellation (no RequestedTokenCancelled)"


def test_target_faults(fake_sts: FakeSts) -> None:
    fake_sts.status = 500
    fake_sts.body = soap11_fault()
    for call in (validate_token, renew_token, cancel_token):
        with pytest.raises(FaultReceived) as raised:
            call(_by_id(fake_sts), PASSWORD)  # type: ignore[operator]
        assert raised.value.fault.code == "wst:InvalidRequest"


def test_plain_http_never_goes_through_a_proxy(fake_sts: FakeSts, monkeypatch: pytest.MonkeyPatch) -> None:
    """A loopback http:// request carries the password in clear: $http_proxy must not see it."""
    fake_sts.body = token_answer(assertion_id="_direct")
    with serving(FakeSts()) as proxy:
        for name in ("no_proxy", "NO_PROXY"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("http_proxy", proxy.url)
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        issued = request_token(IssueOptions(_connection(fake_sts.url), applies_to=RP), PASSWORD)
        assert proxy.requests == []
    assert issued.token is not None and len(fake_sts.requests) == 1
