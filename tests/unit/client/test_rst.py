"""The client's request envelopes (sts.client.rst) and the checks its options make (sts.client.options): built
directly, read back with the STS's own parsers."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives import serialization
from lxml import etree

from sts import ns
from sts.client import ClientError, Connection, IssueOptions, PublicKey, SymmetricKey, TargetOptions
from sts.client.rst import BuiltRequest, build_issue_request, build_target_request
from sts.crypto import keygen
from sts.wss.header import read_security_header
from sts.wss.username import digest_matches, parse_username_token
from sts.wstrust.actions import Operation
from sts.wstrust.model import Renewing
from sts.wstrust.rst import parse_rst
from sts.wstrust.tokentypes import SamlVersion
from sts.wstrust.version import TrustVersion
from tests.fake_sts import SOAP, TRUST, parse, saml2_assertion

URL = "https://sts.example.com/services/wso2carbon-sts"
RP = "https://rp.example.com/app/"
PASSWORD = 'pa<ss>&"wörd'
EMAIL = "http://wso2.org/claims/emailaddress"
GIVEN = "http://wso2.org/claims/givenname"
NO_PROOF_KEY = "http://schemas.xmlsoap.org/ws/2005/05/identity/NoProofKey"
PROFILE_11 = "http://docs.oasis-open.org/wss/oasis-wss-saml-token-profile-1.1"
SAML_ASSERTION_ID = "http://docs.oasis-open.org/wss/oasis-wss-saml-token-profile-1.0#SAMLAssertionID"
X509V3 = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3"
COMBOS = [("1.1", "1.3"), ("1.1", "2005"), ("1.2", "1.3"), ("1.2", "2005")]
TARGET_OPERATIONS = [Operation.VALIDATE, Operation.RENEW, Operation.CANCEL]


def _find(element: etree._Element, path: str, trust: str = "1.3") -> etree._Element:
    found = element.find(path, namespaces=ns.PREFIXES | {"wst": TRUST[trust], "wsid": ns.WSID, "s": ns.S11})
    assert found is not None, path
    return found


def _connection(soap: str = "1.1", trust: str = "1.3", digest: bool = False) -> Connection:
    return Connection(url=URL, username="alice", digest=digest, soap_ns=SOAP[soap], trust_ns=TRUST[trust])


def _issue(
    soap: str = "1.1", trust: str = "1.3", digest: bool = False, **kwargs: object
) -> tuple[etree._Element, BuiltRequest]:
    options = IssueOptions(_connection(soap, trust, digest), applies_to=RP, **kwargs)  # type: ignore[arg-type]
    built = build_issue_request(options, PASSWORD)
    return parse(built.body), built


def _rst(root: etree._Element, soap: str = "1.1") -> etree._Element:
    body = root.find(f"{{{SOAP[soap]}}}Body")
    assert body is not None and len(body) == 1
    return body[0]


# --- Issue ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("soap", "trust"), COMBOS)
def test_envelope_shape(soap: str, trust: str) -> None:
    root, built = _issue(soap, trust, token_type=SamlVersion.SAML20)
    env, wst = SOAP[soap], TRUST[trust]
    action = f"{wst}/RST/Issue"
    assert built.action == action
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
        assert built.headers == {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{action}"'}
    else:
        assert built.headers == {"Content-Type": f'application/soap+xml; charset=utf-8; action="{action}"'}
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
    rst = _rst(root, soap)
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
    assert parse_rst(rst, TrustVersion(wst), Operation.ISSUE).applies_to is not None  # the STS parser accepts it


@pytest.mark.parametrize(("soap", "trust"), COMBOS)
def test_digest_matches_the_formula(soap: str, trust: str) -> None:
    root, _ = _issue(soap, trust, digest=True)
    token = _find(root, f"{{{SOAP[soap]}}}Header/wsse:Security/wsse:UsernameToken")
    password = _find(token, "wsse:Password")
    assert password.get("Type") == ns.PASSWORD_DIGEST
    nonce = base64.b64decode(_find(token, "wsse:Nonce").text or "")
    created = _find(token, "wsu:Created").text or ""
    expected = base64.b64encode(hashlib.sha1(nonce + created.encode() + PASSWORD.encode("utf-8")).digest()).decode()
    assert password.text == expected
    assert PASSWORD not in etree.tostring(root, encoding="unicode")


def test_digest_known_answer() -> None:
    """UsernameToken Profile 1.1 §3.1 digest of a fixed nonce, Created (written with a Z) and password."""
    options = IssueOptions(Connection(url=URL, username="u", digest=True), applies_to=RP)
    built = build_issue_request(
        options, "s3cret", now=dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC), nonce=b"0123456789abcdef"
    )
    root = parse(built.body)
    assert _find(root, ".//wsu:Created").text == "2026-01-01T12:00:00Z"
    assert _find(root, ".//wsse:Password").text == "ML6Ts/2teq/W5EXcu4lKivgslgM="


@pytest.mark.parametrize("digest", [False, True])
def test_the_sts_parser_accepts_the_token(digest: bool) -> None:
    root, _ = _issue(digest=digest)
    parsed = read_security_header(_find(root, ".//wsse:Security"))
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
    root, _ = _issue(trust=trust, claims=(EMAIL, GIVEN))
    wst = TRUST[trust]
    claims = _find(root, f".//{{{wst}}}RequestSecurityToken/{{{wst}}}Claims")
    assert claims.get("Dialect") == "http://wso2.org/claims"
    types = claims.findall(f"{{{ns.WSID}}}ClaimType")
    assert [(c.get("Uri"), c.get("Optional")) for c in types] == [(EMAIL, "true"), (GIVEN, "true")]
    other, _ = _issue(trust=trust, claims=(EMAIL,), claims_dialect="http://schemas.xmlsoap.org/ws/2005/05/identity")
    assert _find(other, f".//{{{wst}}}Claims").get("Dialect") == "http://schemas.xmlsoap.org/ws/2005/05/identity"
    parsed = parse_rst(_rst(root), TrustVersion(wst), Operation.ISSUE)
    assert parsed.claims is not None and [c.uri for c in parsed.claims.claims] == [EMAIL, GIVEN]


def test_token_types() -> None:
    saml11, _ = _issue(token_type=SamlVersion.SAML11)
    assert _find(saml11, ".//wst:TokenType").text == "urn:oasis:names:tc:SAML:1.0:assertion"
    default, _ = _issue()  # no token type: no TokenType, the RP's default applies
    assert default.find(f".//{{{ns.WST}}}TokenType") is None
    assert default.find(f".//{{{ns.WST}}}Claims") is None


def test_values_xml_cannot_carry() -> None:
    with pytest.raises(ClientError, match="^a value contains characters that XML cannot carry$"):
        build_issue_request(IssueOptions(Connection(url=URL, username="a\x00b"), applies_to=RP), "pw")
    with pytest.raises(ClientError, match="^a value contains characters that XML cannot carry$"):
        build_issue_request(IssueOptions(_connection(), applies_to=RP), "p\x01w")


def test_bearer_key_types() -> None:
    for trust, key_type in (("1.3", f"{ns.WST}/Bearer"), ("2005", NO_PROOF_KEY)):
        root, _ = _issue(trust=trust)
        rst = _rst(root)
        wst = TRUST[trust]
        assert [child.tag for child in rst] == [f"{{{wst}}}RequestType", f"{{{ns.WSP}}}AppliesTo", f"{{{wst}}}KeyType"]
        assert rst[2].text == key_type


@pytest.mark.parametrize("trust", ["1.3", "2005"])
def test_symmetric_with_entropy(trust: str) -> None:
    wst = TRUST[trust]
    entropy = bytes(range(32))
    root, _ = _issue(trust=trust, key=SymmetricKey(bits=256, entropy=entropy), renewing=Renewing(allow=True))
    rst = _rst(root)
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
    assert secret.text == "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
    assert _find(rst, "wst:ComputedKeyAlgorithm", trust).text == f"{wst}/CK/PSHA1"
    renewing = _find(rst, "wst:Renewing", trust)
    assert (renewing.get("Allow"), renewing.get("OK")) == ("true", "false")
    parsed = parse_rst(rst, TrustVersion(wst), Operation.ISSUE)
    assert parsed.key_size == 256 and parsed.entropy == entropy
    assert parsed.renewing is not None and parsed.renewing.allow and not parsed.renewing.ok


def test_symmetric_without_entropy_renewable_after_expiry() -> None:
    root, _ = _issue(key=SymmetricKey(), renewing=Renewing(allow=True, ok=True))
    rst = _rst(root)
    assert _find(rst, "wst:KeyType").text == f"{ns.WST}/SymmetricKey"
    for absent in ("KeySize", "Entropy", "ComputedKeyAlgorithm", "UseKey"):
        assert rst.find(f"{{{ns.WST}}}{absent}") is None
    renewing = _find(rst, "wst:Renewing")
    assert (renewing.get("Allow"), renewing.get("OK")) == ("true", "true")


@pytest.mark.parametrize("trust", ["1.3", "2005"])
def test_public_key(trust: str) -> None:
    wst = TRUST[trust]
    cert = keygen.self_signed_certificate(keygen.generate_rsa_key(2048), "client")
    root, _ = _issue(trust=trust, key=PublicKey(cert))
    rst = _rst(root)
    assert _find(rst, "wst:KeyType", trust).text == f"{wst}/PublicKey"
    use_key = _find(rst, "wst:UseKey", trust)
    assert len(use_key) == 1
    token = use_key[0]
    assert token.tag == f"{{{ns.WSSE}}}BinarySecurityToken"
    assert token.get("ValueType") == X509V3
    assert token.get("EncodingType") == ns.BASE64_BINARY
    assert base64.b64decode(token.text or "") == cert.public_bytes(serialization.Encoding.DER)
    assert rst.find(f"{{{wst}}}Renewing") is None
    assert parse_rst(rst, TrustVersion(wst), Operation.ISSUE).use_key is not None


# --- Validate, Renew, Cancel ----------------------------------------------------------------------------------------


def _target(operation: Operation, soap: str = "1.1", trust: str = "1.3", **kwargs: object) -> etree._Element:
    options = TargetOptions(_connection(soap, trust), **kwargs)  # type: ignore[arg-type]
    built = build_target_request(operation, options, PASSWORD)
    assert built.action == f"{TRUST[trust]}/RST/{operation.value}"
    return _rst(parse(built.body), soap)


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


def _saml11_assertion() -> etree._Element:
    assertion = etree.Element(
        f"{{{ns.SAML1}}}Assertion", nsmap={"saml": ns.SAML1}, AssertionID="_s11", MajorVersion="1", MinorVersion="1"
    )
    etree.SubElement(assertion, f"{{{ns.SAML1}}}Conditions")
    return assertion


TOKENS: dict[str, Callable[[], etree._Element]] = {
    "saml2": saml2_assertion,
    "saml11": _saml11_assertion,
    "encrypted-assertion": _encrypted_assertion,
    "encrypted-data": _encrypted_data,
}


def _c14n(element: etree._Element) -> bytes:
    return etree.tostring(element, method="c14n", exclusive=True)


@pytest.mark.parametrize("operation", TARGET_OPERATIONS, ids=lambda op: op.value)
@pytest.mark.parametrize("kind", sorted(TOKENS))
def test_inline_target(operation: Operation, kind: str) -> None:
    token = TOKENS[kind]()
    token.tail = "\n"
    rst = _target(operation, token=token)
    expected = [f"{{{ns.WST}}}RequestType", f"{{{ns.WST}}}{operation.value}Target"]
    if operation is Operation.VALIDATE:
        expected.insert(0, f"{{{ns.WST}}}TokenType")
        assert rst[0].text == f"{ns.WST}/RSTR/Status"
    assert [child.tag for child in rst] == expected
    assert _find(rst, "wst:RequestType").text == f"{ns.WST}/{operation.value}"
    target = _find(rst, f"wst:{operation.value}Target")
    assert len(target) == 1 and target.text is None and target[0].tail is None
    assert _c14n(target[0]) == _c14n(token)  # the token travels exactly as given
    parsed = parse_rst(rst, TrustVersion.TRUST13, operation)  # the STS's own RST parser accepts it
    assert parsed.target is not None and parsed.target.tag == token.tag


@pytest.mark.parametrize("operation", TARGET_OPERATIONS, ids=lambda op: op.value)
@pytest.mark.parametrize(
    ("version", "reference_type", "value_type"),
    [
        (SamlVersion.SAML20, f"{PROFILE_11}#SAMLV2.0", f"{PROFILE_11}#SAMLID"),
        (SamlVersion.SAML11, f"{PROFILE_11}#SAMLV1.1", SAML_ASSERTION_ID),
    ],
)
def test_reference_target(operation: Operation, version: SamlVersion, reference_type: str, value_type: str) -> None:
    target = _find(_target(operation, token_id="_abc123", id_version=version), f"wst:{operation.value}Target")
    assert len(target) == 1
    reference = target[0]
    assert reference.tag == f"{{{ns.WSSE}}}SecurityTokenReference"
    assert reference.get(f"{{{ns.WSSE11}}}TokenType") == reference_type
    assert [child.tag for child in reference] == [f"{{{ns.WSSE}}}KeyIdentifier"]
    assert reference[0].get("ValueType") == value_type
    assert reference[0].get("EncodingType") is None
    assert reference[0].text == "_abc123"


@pytest.mark.parametrize(("soap", "trust"), COMBOS)
@pytest.mark.parametrize("operation", TARGET_OPERATIONS, ids=lambda op: op.value)
def test_target_versions(operation: Operation, soap: str, trust: str) -> None:
    wst = TRUST[trust]
    rst = _target(operation, soap, trust, token_id="_x1")
    assert rst.tag == f"{{{wst}}}RequestSecurityToken"
    assert _find(rst, "wst:RequestType", trust).text == f"{wst}/{operation.value}"
    if operation is Operation.VALIDATE:
        assert _find(rst, "wst:TokenType", trust).text == f"{wst}/RSTR/Status"
    else:
        assert rst.find(f"{{{wst}}}TokenType") is None
    _find(rst, f"wst:{operation.value}Target/wsse:SecurityTokenReference/wsse:KeyIdentifier", trust)


def test_issue_names_no_target() -> None:
    with pytest.raises(ValueError, match="Issue names no target token"):
        build_target_request(Operation.ISSUE, TargetOptions(_connection(), token_id="_a"), PASSWORD)


# --- options --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "name the token either inline or by its ID"),
        ({"token": saml2_assertion(), "token_id": "_a"}, "name the token either inline or by its ID"),
        ({"token": etree.Element("a")}, "the token must be an Assertion, EncryptedAssertion or EncryptedData"),
        ({"token_id": ""}, "the token ID must not be empty or have surrounding white space"),
        ({"token_id": " _a"}, "the token ID must not be empty or have surrounding white space"),
        ({"token_id": "_a\x01"}, "the token ID contains characters that XML cannot carry"),
    ],
)
def test_target_options_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ClientError) as raised:
        TargetOptions(_connection(), **kwargs)  # type: ignore[arg-type]
    assert str(raised.value) == message


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://sts.example.com/", "not an http(s) URL: 'ftp://sts.example.com/'"),
        ("https:///path", "not an http(s) URL: 'https:///path'"),
        (
            "http://sts.example.com/sts",
            "refusing to send a password over plain http to a non-loopback host: use https",
        ),
    ],
)
def test_connection_refuses_urls(url: str, message: str) -> None:
    with pytest.raises(ClientError) as raised:
        Connection(url=url, username="alice")
    assert str(raised.value) == message


@pytest.mark.parametrize("url", ["http://127.0.0.1:9443/sts", "http://[::1]/sts", "http://localhost/sts", URL])
def test_connection_accepts_https_and_loopback_http(url: str) -> None:
    assert Connection(url=url, username="alice").url == url


def test_option_values_checked() -> None:
    with pytest.raises(ValueError, match="not a SOAP envelope namespace"):
        Connection(url=URL, username="alice", soap_ns=ns.WST)
    with pytest.raises(ValueError, match="not a WS-Trust namespace"):
        Connection(url=URL, username="alice", trust_ns=ns.S11)
    for bits in (0, 100, 4104):
        with pytest.raises(ValueError, match="multiple of 8"):
            SymmetricKey(bits=bits)
    with pytest.raises(ValueError, match="empty client entropy"):
        SymmetricKey(entropy=b"")
    with pytest.raises(ClientError, match="AppliesTo address must not be empty"):
        IssueOptions(_connection(), applies_to=" ")
    assert "secret" not in repr(SymmetricKey(entropy=b"secret"))
