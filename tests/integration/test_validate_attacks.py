"""Hostile Validate targets over HTTP (security-catalogue rows G01-G20, V01-V14, J01-J07).

A real token is issued by gunicorn (2 workers, TLS), decrypted with the demo RP key as the relying party would,
and every hostile variant of :mod:`tests.xsw` built from it is posted in a ``wst:ValidateTarget``. The answer is
the ST-INVALID RSTR (HTTP 200, ``Status/Code …/status/invalid``), byte-identical for every kind of invalidity
apart from the echoed ``Context`` (J07), never ``valid``, never a token, within 1 s.

Three shapes are answered with a fixed fault instead, as the protocol reference and the catalogue define:

* XSW3 and XSW5 need a ``samlp:Response`` document root, so the ValidateTarget child is not an assertion: a
  "foreign target" is ``wst:InvalidRequest`` (wstrust-protocol.md §7, row V14);
* XSW7, XSW8 and the G13 variants carry the same ID value twice; the whole-message unique-ID check
  (``sts.wss.header.check_unique_ids``, row G13) answers ``wsse:InvalidSecurity`` before anyone authenticates.

The server runs with raised body and namespace caps so that the full-size G07 c14n bomb (1 000 namespace
declarations, 300 References, inclusive c14n, ~88 KB) reaches the Validate pre-checks instead of being stopped by
the body and parser caps (with the defaults it is a 413 before parsing, row T01).
"""

from __future__ import annotations

import copy
import datetime as dt
import io
import json
import re
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree

from sts import ns
from sts.crypto.keygen import load_private_key
from sts.crypto.keystore import load_certificate
from sts.crypto.signer import AssertionSigner
from sts.wstrust.tokentypes import SamlVersion
from tests import xsw
from tests.support import (
    S11,
    WSSE,
    WST,
    Instance,
    Server,
    audit_records,
    fault_qname,
    fault_string,
    make_instance,
    rst_envelope,
    start_server,
)
from tests.token_checks import decrypt_with_python_xmlsec

pytestmark = pytest.mark.integration

XENC = "http://www.w3.org/2001/04/xmlenc#"
VALIDATE_ACTION = f"{WST}/RST/Validate"
STATUS_TYPE = f"{WST}/RSTR/Status"
TOKEN_TYPES = {SamlVersion.SAML20: ns.SAML2, SamlVersion.SAML11: ns.SAML1}
MAX_SECONDS = 1.0
# Library or implementation text that must never reach a client (catalogue §1 invariant 2, row A12).
LEAKS = ("Traceback", 'File "/', "lxml", "libxml", "signxml", "xmlsec", "Exception", "Error:", "Python")

INVALID = "invalid"
FOREIGN_TARGET = (WST, "InvalidRequest")
DUPLICATE_ID = (WSSE, "InvalidSecurity")


@dataclass(frozen=True)
class Keys:
    sts_key: rsa.RSAPrivateKey
    sts_signer: AssertionSigner
    rp_signer: AssertionSigner


@dataclass(frozen=True)
class Issued:
    """A real token as the RP holds it (decrypted), and what is needed to forge variants of it."""

    version: SamlVersion
    token_type: str
    plain: etree._Element
    keys: Keys


@pytest.fixture(scope="module")
def va_instance(tmp_path_factory: pytest.TempPathFactory) -> Instance:
    return make_instance(tmp_path_factory.mktemp("validate-attacks") / "var")


@pytest.fixture(scope="module")
def va_server(va_instance: Instance) -> Iterator[Server]:
    caps = {"STS_LIMITS_MAX_BODY_BYTES": "262144", "STS_LIMITS_MAX_NAMESPACES": "1200"}
    server = start_server(va_instance, workers=2, env=caps)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def keys(va_instance: Instance) -> Keys:
    keystore = va_instance.base / "keystore"
    sts_key = load_private_key(keystore / "sts-signing.key.pem", None)
    sts_cert = load_certificate(va_instance.signing_cert)
    rp_key = load_private_key(va_instance.rp_key, None)
    rp_cert: x509.Certificate = load_certificate(va_instance.base / "demo-rp" / "rp.crt.pem")
    return Keys(sts_key, AssertionSigner(sts_key, sts_cert), AssertionSigner(rp_key, rp_cert))


def issue_plain(server: Server, instance: Instance, username: str, password: str, token_type: str) -> etree._Element:
    """Issue a bearer token over HTTP and decrypt it with the demo RP key: the assertion as the RP holds it."""
    response = server.post(rst_envelope(username, password, token_type=token_type), action=f"{WST}/RST/Issue")
    assert response.status_code == 200, response.content[:1000]
    holder = etree.fromstring(response.content).find(f".//{{{WST}}}RequestedSecurityToken")
    assert holder is not None and len(holder) == 1
    token = holder[0]
    encrypted = token if token.tag == f"{{{XENC}}}EncryptedData" else token[0]
    return etree.fromstring(decrypt_with_python_xmlsec(encrypted, instance.rp_key))


@pytest.fixture(scope="module", params=[SamlVersion.SAML20, SamlVersion.SAML11], ids=["saml20", "saml11"])
def issued(request: pytest.FixtureRequest, va_server: Server, va_instance: Instance, keys: Keys) -> Issued:
    version: SamlVersion = request.param
    token_type = TOKEN_TYPES[version]
    plain = issue_plain(va_server, va_instance, "admin", va_instance.demo_password, token_type)
    return Issued(version, token_type, plain, keys)


# --- requests and answers ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: bytes
    context: str
    seconds: float

    @property
    def root(self) -> etree._Element:
        return etree.fromstring(self.body)

    @property
    def validate_status(self) -> str:
        code = self.root.findtext(f".//{{{WST}}}RequestSecurityTokenResponse/{{{WST}}}Status/{{{WST}}}Code")
        assert code is not None, self.body[:800]
        assert code.startswith(f"{WST}/status/"), code
        return code.rsplit("/", 1)[-1]

    def normalized(self) -> bytes:
        """The body with the echoed Context replaced (J07: nothing else may differ)."""
        return self.body.replace(self.context.encode(), b"CONTEXT")


def validate_body(instance: Instance, target: etree._Element | str, context: str,
                  username: str = "admin", password: str | None = None) -> bytes:
    target_xml = target if isinstance(target, str) else etree.tostring(target).decode()
    body = rst_envelope(
        username,
        instance.demo_password if password is None else password,
        token_type=STATUS_TYPE,
        request_type=f"{WST}/Validate",
        extra_rst=f"<wst:ValidateTarget>{target_xml}</wst:ValidateTarget>",
    )
    opening = f'<wst:RequestSecurityToken xmlns:wst="{WST}">'.encode()
    assert body.count(opening) == 1
    return body.replace(opening, opening[:-1] + f' Context="{context}">'.encode())


def post_validate(server: Server, instance: Instance, target: etree._Element | str) -> Answer:
    context = "urn:uuid:" + str(uuid.uuid4())
    body = validate_body(instance, target, context)
    started = time.monotonic()
    response = server.post(body, action=VALIDATE_ACTION)
    seconds = time.monotonic() - started
    return Answer(response.status_code, response.headers.get("Content-Type", ""), response.content, context, seconds)


def assert_clean(answer: Answer) -> None:
    """Invariants shared by every hostile target: fast, no token, no library text, a parseable SOAP envelope."""
    assert answer.seconds < MAX_SECONDS, f"{answer.seconds:.3f} s"
    root = answer.root
    assert root.tag == f"{{{S11}}}Envelope"
    assert root.find(f".//{{{WST}}}RequestedSecurityToken") is None
    assert b"Assertion" not in answer.body and b"EncryptedData" not in answer.body
    text = answer.body.decode()
    for leak in LEAKS:
        assert leak not in text, leak


def assert_invalid(answer: Answer, reference: bytes) -> None:
    assert_clean(answer)
    assert answer.status == 200, answer.body[:800]
    assert answer.content_type.startswith("text/xml")
    assert answer.root.findtext(f".//{{{WST}}}TokenType") == STATUS_TYPE
    assert answer.root.find(f".//{{{WST}}}RequestSecurityTokenResponse").get("Context") == answer.context
    assert answer.validate_status == INVALID
    assert answer.normalized() == reference, "J07: invalid answers must not differ"


def assert_fault(answer: Answer, qname: tuple[str, str]) -> None:
    assert_clean(answer)
    assert answer.status == 500, answer.body[:800]  # SOAP 1.1 faults are HTTP 500 (WS-I BP R1126)
    assert fault_qname(answer.body) == qname
    assert answer.root.find(f".//{{{WST}}}Status") is None


@pytest.fixture(scope="module")
def reference_invalid(va_server: Server, va_instance: Instance, issued: Issued) -> bytes:
    """J03: a tampered real token (NameID changed) is invalid; its normalized answer is the reference for J07."""
    tampered = copy.deepcopy(issued.plain)
    for name in xsw.names(tampered):
        name.text = "root"
    answer = post_validate(va_server, va_instance, xsw.target(tampered))
    assert answer.status == 200 and answer.validate_status == INVALID
    return answer.normalized()


# --- the hostile variants ----------------------------------------------------------------------------------------

Variant = Callable[[Issued], etree._Element]


def _forged(issued: Issued, signer: AssertionSigner, **window: dt.datetime) -> etree._Element:
    """An assertion built and signed here (for windows and keys an Issue request cannot produce)."""
    return xsw.target(xsw.build_signed(signer, issued.version, xsw.make_content(**window)))


def _v09(issued: Issued) -> etree._Element:
    other = xsw.build(issued.version, xsw.make_content(assertion_id="_b" + "2" * 40))
    return xsw.signature_root_binding(issued.plain, other)


def _expired(issued: Issued) -> etree._Element:
    now = dt.datetime.now(dt.UTC)
    return _forged(issued, issued.keys.sts_signer, now=now - dt.timedelta(hours=1),
                   not_before=now - dt.timedelta(hours=1), not_on_or_after=now - dt.timedelta(minutes=5))


def _not_yet_valid(issued: Issued) -> etree._Element:
    now = dt.datetime.now(dt.UTC)
    return _forged(issued, issued.keys.sts_signer, not_before=now + dt.timedelta(minutes=10),
                   not_on_or_after=now + dt.timedelta(minutes=20))


def _never_expires(issued: Issued) -> etree._Element:
    """Signed with the STS key, Conditions without NotOnOrAfter: SAML lets such an assertion be valid forever, and
    Validate must not vouch for it (the issuer-trust rules refuse it too: token_window_missing)."""
    assertion = xsw.build(issued.version, xsw.make_content())
    conditions = assertion.find(f"{{{TOKEN_TYPES[issued.version]}}}Conditions")
    assert conditions is not None and conditions.get("NotOnOrAfter") is not None
    del conditions.attrib["NotOnOrAfter"]
    return xsw.target(xsw.sign(issued.keys.sts_signer, assertion))


def _signature_attack(label: str) -> Variant:
    return lambda issued: xsw.signature_attack(issued.plain, issued.keys.sts_key, label)


def _xsw(row: str) -> Variant:
    return lambda issued: xsw.XSW[row](issued.plain)


def _duplicate_id(label: str) -> Variant:
    return lambda issued: xsw.duplicate_ids(issued.plain, issued.keys.sts_key)[label]


VARIANTS: dict[str, tuple[Variant, str | tuple[str, str]]] = {
    "V01-XSW1": (_xsw("V01"), INVALID),
    "V02-XSW2": (_xsw("V02"), INVALID),
    "V03-XSW3": (_xsw("V03"), FOREIGN_TARGET),
    "V04-XSW4": (_xsw("V04"), INVALID),
    "V05-XSW5": (_xsw("V05"), FOREIGN_TARGET),
    "V06-XSW6": (_xsw("V06"), INVALID),
    "V07-XSW7": (_xsw("V07"), DUPLICATE_ID),
    "V08-XSW8": (_xsw("V08"), DUPLICATE_ID),
    "G01-signature-exclusion": (lambda issued: xsw.signature_exclusion(issued.plain), INVALID),
    "V09-signature-root-binding": (_v09, INVALID),
    "V10-wrong-issuer-key": (lambda issued: _forged(issued, issued.keys.rp_signer), INVALID),
    "V11-expired": (_expired, INVALID),
    "V11-not-yet-valid": (_not_yet_valid, INVALID),
    "V11-never-expires": (_never_expires, INVALID),
    "G04-hmac-key-confusion": (lambda issued: xsw.hmac_signed(xsw.build(issued.version, xsw.make_content())), INVALID),
    "G07-c14n-bomb": (lambda issued: xsw.c14n_bomb(issued.plain), INVALID),
    "G07-c14n-bomb-WithComments": (
        lambda issued: xsw.c14n_bomb(issued.plain, algorithm=xsw.INCLUSIVE_C14N_COMMENTS), INVALID),
    "G07-c14n11-bomb": (lambda issued: xsw.c14n_bomb(issued.plain, algorithm=xsw.C14N_11), INVALID),
    # The 1 MiB SignatureValue cannot be sent at all: over the 1 MiB hard body cap (row T01), so left out here.
    **{label: (_signature_attack(label), INVALID) for label in xsw.SIGNATURE_ATTACKS if label != "G17-1MiB-value"},
    **{f"G13-{label}": (_duplicate_id(label), DUPLICATE_ID)
       for label in ("same-name", "Id", "xml:id", "wsu:Id", "same-name-resigned")},
}


@pytest.mark.parametrize("label", list(VARIANTS))
def test_hostile_validate_target(
    va_server: Server, va_instance: Instance, issued: Issued, reference_invalid: bytes, label: str
) -> None:
    build, expected = VARIANTS[label]
    answer = post_validate(va_server, va_instance, build(issued))
    if expected == INVALID:
        assert_invalid(answer, reference_invalid)
    else:
        assert isinstance(expected, tuple)
        assert_fault(answer, expected)


def test_v13_saml11_signed_over_id_attribute(
    va_server: Server, va_instance: Instance, keys: Keys, reference_invalid: bytes
) -> None:
    plain = issue_plain(va_server, va_instance, "admin", va_instance.demo_password, ns.SAML1)
    answer = post_validate(va_server, va_instance, xsw.saml11_signed_over_id_attribute(plain, keys.sts_key))
    assert_invalid(answer, reference_invalid)


def test_controls_are_valid(va_server: Server, va_instance: Instance, issued: Issued) -> None:
    """J01 and the controls of the forged rows: the untouched token, and an assertion built and signed here with
    the STS key and a current window, are valid, so the invalid answers above come from what each variant
    changed (key, window, structure), not from how the fixtures are made."""
    for target in (xsw.target(copy.deepcopy(issued.plain)), _forged(issued, issued.keys.sts_signer)):
        answer = post_validate(va_server, va_instance, target)
        assert answer.status == 200 and answer.seconds < MAX_SECONDS
        assert answer.validate_status == "valid"


# --- comment injection (G19 / V12) ---------------------------------------------------------------------------------

COMMENT_USER = xsw.COMMENT_NAME  # a real user whose name is the full signed value admin@corp.evil.test
TRUNCATED = re.compile(re.escape(xsw.EVIL_NAME) + r"(?!" + re.escape(COMMENT_USER[len(xsw.EVIL_NAME):]) + ")")


def _add_user(instance: Instance, name: str, password: str, *roles: str) -> None:
    saved = sys.stdin
    sys.stdin = io.StringIO(password + "\n")
    try:
        args = [arg for role in roles for arg in ("--role", role)]
        assert instance.cli("user", "add", name, *args, "--password-stdin") == 0
    finally:
        sys.stdin = saved


@pytest.fixture(scope="module")
def comment_user(va_instance: Instance) -> str:
    password = "Comment-User-Pass-1"
    _add_user(va_instance, COMMENT_USER, password, "admin")
    return password


def test_g19_comment_injection_keeps_the_full_signed_subject(
    va_server: Server, va_instance: Instance, issued: Issued, comment_user: str
) -> None:
    """A genuine token for ``admin@corp.evil.test`` served as ``admin@corp<!---->.evil.test``: exc-c14n drops
    the comment, so the signature still holds and the token is what the STS issued. Validate answers exactly as
    for the untouched token (valid), and nothing in the log ever names the truncated ``admin@corp``."""
    plain = issue_plain(va_server, va_instance, COMMENT_USER, comment_user, issued.token_type)
    assert {name.text for name in xsw.names(plain)} == {COMMENT_USER}
    untouched = post_validate(va_server, va_instance, xsw.target(copy.deepcopy(plain)))
    injected_target = xsw.comment_injection(plain)
    assert any(isinstance(node, etree._Comment) for node in injected_target.iter())
    injected = post_validate(va_server, va_instance, injected_target)
    assert injected.status == untouched.status == 200
    assert injected.validate_status == untouched.validate_status == "valid"
    assert injected.normalized() == untouched.normalized()
    assert injected.seconds < MAX_SECONDS
    # The audit log: no field of any record is the truncated subject, and no line names it.
    log_text = va_server.log.read_text()
    assert not TRUNCATED.search(log_text)
    for record in audit_records(va_server.log):
        assert xsw.EVIL_NAME not in {value for value in record.values() if isinstance(value, str)}
    validations = [r for r in audit_records(va_server.log) if r.get("audit_event") == "validate"]
    token_id = plain.get("ID") or plain.get("AssertionID")
    assert [r["outcome"] for r in validations if r.get("token_id") == token_id] == ["valid", "valid"]


# --- J02: Validate without credentials ------------------------------------------------------------------------------


def _strip(body: bytes, pattern: bytes) -> bytes:
    stripped = re.sub(pattern, b"", body, flags=re.S)
    assert stripped != body
    return stripped


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("no-security-header", (WSSE, "InvalidSecurity")),
        ("timestamp-only", (WSSE, "FailedAuthentication")),
        ("wrong-password", (WSSE, "FailedAuthentication")),
        ("unknown-user", (WSSE, "FailedAuthentication")),
    ],
)
def test_j02_validate_without_credentials_is_a_wsse_fault(
    va_server: Server, va_instance: Instance, issued: Issued, case: str, expected: tuple[str, str]
) -> None:
    """A valid token to validate, but no usable caller credentials: a WS-Security fault, never a Status."""
    target = xsw.target(copy.deepcopy(issued.plain))
    body = validate_body(va_instance, target, "ctx-j02")
    if case == "no-security-header":
        body = _strip(body, rb"<s:Header>.*</s:Header>")
    elif case == "timestamp-only":
        body = _strip(body, rb"<wsse:UsernameToken .*</wsse:UsernameToken>")
    elif case == "wrong-password":
        body = validate_body(va_instance, target, "ctx-j02", password="not-the-password")
    else:
        body = validate_body(va_instance, target, "ctx-j02", username="nobody-here")
    started = time.monotonic()
    response = va_server.post(body, action=VALIDATE_ACTION)
    answer = Answer(response.status_code, response.headers.get("Content-Type", ""), response.content, "ctx-j02",
                    time.monotonic() - started)
    assert_clean(answer)
    assert answer.status == 500
    assert fault_qname(answer.body) == expected
    assert answer.root.find(f".//{{{WST}}}Status") is None
    assert b"ctx-j02" not in answer.body
    if expected[1] == "FailedAuthentication":
        assert fault_string(answer.body) == "The security token could not be authenticated or authorized"


def test_server_survives_the_corpus(va_server: Server, va_instance: Instance, issued: Issued) -> None:
    """Invariant 5: after all of the above the workers still answer a normal Validate; no worker was replaced."""
    answer = post_validate(va_server, va_instance, xsw.target(copy.deepcopy(issued.plain)))
    assert answer.status == 200 and answer.validate_status == "valid"
    log_text = va_server.log.read_text()
    assert "WORKER TIMEOUT" not in log_text and "Traceback" not in log_text
    for line in log_text.splitlines():
        if line.startswith("{"):
            assert json.loads(line).get("level") != "ERROR", line
    assert requests.get(va_server.url + "?wsdl", verify=va_server.verify, timeout=10).status_code == 200
