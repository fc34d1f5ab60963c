"""Property-based mutation fuzzing of the SOAP endpoint, in-process (security-catalogue §6, invariants of §1).

A valid RST envelope (SOAP 1.1 and 1.2, PasswordText and PasswordDigest, Issue and Validate, with and without
WS-Addressing) is parsed into a tree and mutated: children dropped, duplicated, reordered or moved; namespaces,
local names and prefixes swapped; comments, processing instructions and CDATA injected; texts (timestamps,
nonces, AppliesTo, IDs) and attributes rewritten; then the serialized bytes may get a DOCTYPE, an odd XML
declaration, spliced bytes, an entity reference, a UTF-16 re-encoding or a truncation. Each result goes through
:meth:`sts.soap.endpoint.SoapEndpoint.handle` of a service built by :func:`sts.app.build_service` over a temporary
instance, exactly as gunicorn's workers build it.

The base requests carry a WRONG password, so no mutation can ever legitimately earn a token: every answer must be
a well-formed SOAP fault of the request's SOAP version (HTTP 400 or 500, never 200), with one of the fixed fault
strings, no token, no library text, and cost < 1 s of CPU (``test_harness_issues_with_the_right_password`` shows
the same harness does issue tokens, so "no token" means something).

``derandomize=True``: every run tries the same examples. ~60 examples in the normal run; ``STS_FUZZ=1`` (``make
fuzz``) runs ~2 000.

A second property (``test_mutated_accepted_requests_answer_a_token_or_a_fixed_fault``) starts from requests the STS
accepts (the right password; Issue of SAML 1.1 and 2.0 over SOAP 1.1 and 1.2; Validate, Renew and Cancel of a token
just issued; OnBehalfOf and ActAs; an X.509-signed SigOnly request), adds RST children from a catalogue of odd values
to the tree mutations, sends the mutants through the whole WSGI application (``create_app``), and asserts a token or
one of the renderer's fixed (fault code, fault string) pairs, and no "unexpected error" or traceback in the log:
~100 examples normally, ~3 000 with ``STS_FUZZ=1``; targeted mutations (named element texts and attributes)
too.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from lxml import etree

from sts import errors, ns
from sts.app import build_service
from sts.app.callers import parser_limits
from sts.auth.passwords import PasswordHasher
from sts.clock import SystemClock
from sts.config import load_settings
from sts.crypto.keystore import load_keystore
from sts.soap.endpoint import SoapEndpoint, SoapRequest, SoapResponse
from sts.soapenv import SoapVersion
from sts.stores.factory import build_stores
from tests.support import WSA, WSP, WSSE, WST, WSU, Instance, make_instance, rst_envelope

settings.register_profile(
    "sts-fuzz",
    max_examples=60,
    derandomize=True,
    deadline=None,
    database=None,
    print_blob=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
settings.register_profile("sts-fuzz-long", settings.get_profile("sts-fuzz"), max_examples=2000)
PROFILE = "sts-fuzz-long" if os.environ.get("STS_FUZZ") == "1" else "sts-fuzz"

WRONG_PASSWORD = "Wrong-Fuzz-Password-1"
MAX_CPU_SECONDS = 1.0
TOKEN_MARKERS = (b"RequestedSecurityToken", b"RequestSecurityTokenResponse", b"Assertion", b"EncryptedData",
                 b"BinarySecret", b"RequestedProofToken")
LEAKS = (b"Traceback", b'File "', b"lxml", b"libxml", b"xmlsec", b"signxml", b"Exception", b"column",
         WRONG_PASSWORD.encode())


def _fixed_fault_strings() -> frozenset[str]:
    found: set[str] = set()
    pending: list[type[errors.STSError]] = [errors.STSError]
    while pending:
        cls = pending.pop()
        found.add(cls.fault_string)
        pending.extend(cls.__subclasses__())
    return frozenset(found)


FIXED_FAULT_STRINGS = _fixed_fault_strings()


# --- the endpoint over a temporary instance ------------------------------------------------------------------------


@dataclass(frozen=True)
class Harness:
    instance: Instance
    endpoint: SoapEndpoint


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    instance = make_instance(tmp_path_factory.mktemp("fuzz") / "var")
    # No lockout: otherwise the wrong-password examples would soon all meet a locked account instead.
    config = load_settings(instance.config, env={"STS_LOCKOUT_MAX_FAILURES": "1000000000"})
    keystore = load_keystore(config)
    clock, hasher = SystemClock(), PasswordHasher()
    stores = build_stores(config, clock, hasher)
    service = build_service(config, keystore, stores, clock, hasher)
    yield Harness(instance, SoapEndpoint(service, parser_limits(config), config.server.soap12_sender_status))
    stores.close()


def handle(harness: Harness, body: bytes, version: SoapVersion, action: str = "") -> tuple[SoapResponse, float]:
    started = time.process_time()
    response = harness.endpoint.handle(SoapRequest(body, version, action, "127.0.0.1", True))
    return response, time.process_time() - started


# --- base requests -------------------------------------------------------------------------------------------------

STR_TARGET = (
    f'<wst:ValidateTarget><wsse:SecurityTokenReference><wsse:KeyIdentifier ValueType="http://docs.oasis-open.org/wss/'
    f'oasis-wss-saml-token-profile-1.1#SAMLID">_a{"1" * 40}</wsse:KeyIdentifier></wsse:SecurityTokenReference>'
    "</wst:ValidateTarget>"
)
ADDRESSING = (
    f'<wsa:Action xmlns:wsa="{WSA}">{WST}/RST/Issue</wsa:Action><wsa:MessageID xmlns:wsa="{WSA}">urn:uuid:'
    f'0f7e3c1a-1111-4222-8333-944455556666</wsa:MessageID><wsa:ReplyTo xmlns:wsa="{WSA}"><wsa:Address>'
    f"{WSA}/anonymous</wsa:Address></wsa:ReplyTo>"
)


def base_request(kind: str, password: str = WRONG_PASSWORD) -> tuple[bytes, SoapVersion]:
    if kind == "s11-issue":
        return rst_envelope("admin", password), SoapVersion.SOAP11
    if kind == "s12-issue":
        return rst_envelope("admin", password, soap12=True), SoapVersion.SOAP12
    if kind == "s11-digest":
        return rst_envelope("admin", password, digest=True), SoapVersion.SOAP11
    if kind == "s11-validate":
        body = rst_envelope("admin", password, token_type=f"{WST}/RSTR/Status", request_type=f"{WST}/Validate",
                            extra_rst=STR_TARGET)  # the wsse prefix is declared on the Envelope
        return body, SoapVersion.SOAP11
    body = rst_envelope("admin", password, soap12=True)
    return body.replace(b"<s:Header>", b"<s:Header>" + ADDRESSING.encode()), SoapVersion.SOAP12


BASES = ("s11-issue", "s12-issue", "s11-digest", "s11-validate", "s12-addressing")

# --- mutations -----------------------------------------------------------------------------------------------------

NAMESPACES = (ns.S11, ns.S12, WSSE, WSU, WST, ns.WST05, WSA, ns.WSA04, ns.DS, WSP, "urn:evil", WSSE + " ",
              "http://schemas.xmlsoap.org/ws/2002/07/secext", ns.S11.rstrip("/"), "")
LOCAL_NAMES = ("Envelope", "Header", "Body", "Fault", "Security", "UsernameToken", "Username", "Password", "Nonce",
               "Created", "Expires", "Timestamp", "RequestSecurityToken", "RequestSecurityTokenCollection",
               "RequestType", "TokenType", "AppliesTo", "EndpointReference", "Address", "KeyType", "KeySize",
               "ValidateTarget", "Signature", "BinarySecurityToken", "EncryptedData", "Salt", "Iteration", "Lifetime")
ATTRIBUTES = (ns.qn(WSU, "Id"), "ID", "Id", "AssertionID", ns.qn(ns.XML, "id"), ns.qn(ns.S11, "mustUnderstand"),
              ns.qn(ns.S12, "mustUnderstand"), ns.qn(ns.S11, "actor"), ns.qn(ns.S12, "role"), "EncodingType", "Type",
              ns.qn(WSSE, "Type"), "Context", "Algorithm", "URI", "Dialect", "Allow", "OK")
PREFIXES = ("s", "soap", "wsse", "wst", "wsu", "S", "a", "xml2", "p0")


def _instant(offset: int, fmt: str) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=offset)).strftime(fmt)


timestamps = st.builds(
    _instant,
    st.sampled_from([-86400, -301, -299, -1, 0, 59, 61, 3600, 10**7]) | st.integers(-10**6, 10**6),
    st.sampled_from(["%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%S+00:00", "%Y-%m-%dT%H:%M:%S",
                     "%Y-%m-%dT%H:%M:%S+14:00", "%Y-%m-%d", "%d/%m/%Y %H:%M"]),
)
INTERESTING_TEXT = (
    "", " ", "yesterday", "2026-13-45T00:00:00Z", "2026-01-01T23:59:60Z", "0000-01-01T00:00:00Z",
    "2026-01-01T00:00:00.12345Z", "x" * 3000, "!!!", "AA==", base64.b64encode(b"\x00" * 16).decode(),
    base64.b64encode(b"\x01").decode(), base64.b64encode(b"n" * 64).decode(), "admin", "PRIMARY/admin",
    "SECONDARY/admin", "admin\u200b", "ａｄｍｉｎ", "*)(uid=*))(|(uid=*", "' OR '1'='1' --", "https://localhost:8443/demo-rp/",
    "HTTPS://LOCALHOST:8443/demo-rp/", "https://localhost:8443/demo-rp/../admin", "https://localhost:8443@evil.net/",
    "https://evil.example/", f"{WST}/Validate", f"{WST}/Renew", f"{WST}/Cancel", f"{WST}/KET", f"{WST}/SymmetricKey",
    f"{WST}/PublicKey", "urn:oasis:names:tc:SAML:1.0:assertion", "0", "-1", "100000", "abc", "1", "true", " 1 ",
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordText",
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest",
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#HexBinary", "#UT-1", "TS-1",
    "\u00e9\u4e2d\U0001f600", "&amp;", "]]>", "<![CDATA[x]]>",
)
texts = st.sampled_from(INTERESTING_TEXT) | timestamps | st.text(max_size=40)

index = st.integers(min_value=0, max_value=10**6)
tree_ops = st.one_of(
    st.tuples(st.just("drop"), index),
    st.tuples(st.just("duplicate"), index),
    st.tuples(st.just("reorder"), index, st.lists(st.integers(0, 1000), min_size=1, max_size=12)),
    st.tuples(st.just("move"), index, index),
    st.tuples(st.just("namespace"), index, st.sampled_from(NAMESPACES)),
    st.tuples(st.just("rename"), index, st.sampled_from(LOCAL_NAMES)),
    st.tuples(st.just("prefix"), index, st.sampled_from(PREFIXES)),
    st.tuples(st.just("text"), index, texts),
    st.tuples(st.just("attribute"), index, st.sampled_from(ATTRIBUTES), texts),
    st.tuples(st.just("drop-attribute"), index, index),
    st.tuples(st.just("comment"), index, index, st.text(max_size=12)),
    st.tuples(st.just("pi"), index, index),
    st.tuples(st.just("cdata"), index, texts),
    st.tuples(st.just("wrap"), index, st.sampled_from(LOCAL_NAMES), st.sampled_from(NAMESPACES)),
)
DOCTYPES = (
    b'<!DOCTYPE e [<!ENTITY x SYSTEM "file:///etc/passwd">]>',
    b'<!DOCTYPE r [<!ENTITY % p SYSTEM "file:///dev/zero"> %p;]>',
    b'<!DOCTYPE s:Envelope SYSTEM "file:///dev/zero">',
    b"<!DOCTYPE e [<!ATTLIST x ID ID #IMPLIED>]>",
    b"<!DOCTYPE e>",
    b'<!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
    b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>',
)
PROLOGS = (
    b'<?xml version="1.1"?>',
    b'<?xml version="1.0" encoding="UTF-16"?>',
    b'<?xml version="1.0" encoding="UTF-7"?>',
    b'<?xml version="1.0" standalone="yes"?>',
    b'<?xml-stylesheet href="http://127.0.0.1:1/x"?>',
    b'\xef\xbb\xbf<?xml version="1.0" encoding="ISO-8859-1"?>',
    b"\xff\xfe",
)
byte_ops = st.one_of(
    st.tuples(st.just("doctype"), st.sampled_from(DOCTYPES)),
    st.tuples(st.just("prolog"), st.sampled_from(PROLOGS)),
    st.tuples(st.just("truncate"), index),
    st.tuples(st.just("splice"), index, st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("entity"), index, st.sampled_from([b"&x;", b"&lt;", b"&#0;", b"&#x110000;", b"&", b"<"])),
    st.tuples(st.just("utf16"), st.booleans()),
)


def _elements(root: etree._Element) -> list[etree._Element]:
    return [element for element in root.iter() if isinstance(element.tag, str)]


def _rebuilt(element: etree._Element, prefix: str) -> etree._Element:
    """The same element under another prefix (lxml cannot rename a prefix in place)."""
    qname = etree.QName(element)
    nsmap = {prefix: qname.namespace} if qname.namespace else None
    clone = etree.Element(element.tag, dict(element.attrib), nsmap=nsmap)
    clone.text, clone.tail = element.text, element.tail
    clone.extend(list(element))
    return clone


def apply_tree_op(root: etree._Element, op: tuple[Any, ...]) -> etree._Element:
    """Apply one mutation; returns the (possibly new) root. Mutations lxml refuses are skipped."""
    elements = _elements(root)
    kind, position = op[0], int(op[1])
    element = elements[position % len(elements)]
    parent = element.getparent()
    try:
        if kind == "drop" and parent is not None:
            parent.remove(element)
        elif kind == "duplicate" and parent is not None:
            element.addnext(copy.deepcopy(element))
        elif kind == "reorder":
            keys = list(op[2])
            children = list(element)
            ordered = sorted(range(len(children)), key=lambda i: (keys[i % len(keys)], i))
            element[:] = [children[i] for i in ordered]
        elif kind == "move" and parent is not None:
            destination = elements[int(op[2]) % len(elements)]
            if destination is not element and element not in destination.iterancestors():
                destination.append(element)
        elif kind == "namespace":
            local = etree.QName(element).localname
            element.tag = f"{{{op[2]}}}{local}" if op[2] else local
        elif kind == "rename":
            namespace = etree.QName(element).namespace
            element.tag = f"{{{namespace}}}{op[2]}" if namespace else str(op[2])
        elif kind == "prefix":
            clone = _rebuilt(element, str(op[2]))
            if parent is None:
                return clone
            parent.replace(element, clone)
        elif kind == "text":
            element.text = str(op[2])
        elif kind == "attribute":
            element.set(str(op[2]), str(op[3]))
        elif kind == "drop-attribute" and element.attrib:
            names = list(element.attrib)
            del element.attrib[names[int(op[2]) % len(names)]]
        elif kind == "comment":
            element.insert(int(op[2]) % (len(element) + 1), etree.Comment(str(op[3])))
        elif kind == "pi":
            element.insert(int(op[2]) % (len(element) + 1), etree.ProcessingInstruction("x", "y"))
        elif kind == "cdata":
            element.text = etree.CDATA(str(op[2]))
        elif kind == "wrap" and parent is not None:
            wrapper = etree.Element(f"{{{op[3]}}}{op[2]}" if op[3] else str(op[2]))
            parent.replace(element, wrapper)
            wrapper.append(element)
    except (ValueError, TypeError):  # lxml refuses e.g. control characters in text or "--" in a comment
        pass
    return root


def apply_byte_op(body: bytes, op: tuple[Any, ...]) -> bytes:
    kind = op[0]
    if kind == "doctype":
        return bytes(op[1]) + body
    if kind == "prolog":
        return bytes(op[1]) + body
    if kind == "truncate":
        return body[: int(op[1]) % (len(body) + 1)]
    if kind in ("splice", "entity"):
        cut = int(op[1]) % (len(body) + 1)
        return body[:cut] + bytes(op[2]) + body[cut:]
    if kind == "utf16":
        declaration = b'<?xml version="1.0" encoding="UTF-16"?>' if op[1] else b""
        return (declaration + body).decode("utf-8", "replace").encode("utf-16")
    raise AssertionError(kind)


@dataclass(frozen=True)
class Case:
    base: str
    tree: list[tuple[Any, ...]]
    raw: list[tuple[Any, ...]]
    flip_version: bool
    action: str


cases = st.builds(
    Case,
    st.sampled_from(BASES),
    st.lists(tree_ops, max_size=4),
    st.sampled_from([0, 0, 1, 2]).flatmap(lambda size: st.lists(byte_ops, min_size=size, max_size=size)),
    st.sampled_from([False] * 7 + [True]),
    st.sampled_from(["", "", f"{WST}/RST/Issue", f"{WST}/RST/Validate", "urn:evil"]),
)


def mutated(case: Case) -> tuple[bytes, SoapVersion]:
    body, version = base_request(case.base)
    root = etree.fromstring(body)
    for op in case.tree:
        root = apply_tree_op(root, op)
    data = etree.tostring(root)
    for op in case.raw:
        data = apply_byte_op(data, op)
    if case.flip_version:
        version = SoapVersion.SOAP12 if version is SoapVersion.SOAP11 else SoapVersion.SOAP11
    return data, version


# --- the properties ------------------------------------------------------------------------------------------------

_SAFE_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


def answer_version(response: SoapResponse, request: bytes, version: SoapVersion) -> SoapVersion:
    """The SOAP version the answer must be in: the request's media type's, except that a SOAP 1.1 envelope sent as
    application/soap+xml gets a SOAP 1.1 VersionMismatch fault, the one version its sender is known to speak
    (SOAP 1.2 Part 1, Appendix A)."""
    if version is not SoapVersion.SOAP12 or not response.content_type.startswith("text/xml"):
        return version
    try:
        sent = etree.fromstring(request, _SAFE_PARSER).tag
    except (etree.XMLSyntaxError, ValueError):
        return version
    answered = etree.fromstring(response.body, _SAFE_PARSER)
    fault_code = answered.findtext(f"{ns.qn(ns.S11, 'Body')}/{ns.qn(ns.S11, 'Fault')}/faultcode") or ""
    if sent == ns.qn(ns.S11, "Envelope") and fault_code.endswith(":VersionMismatch"):
        return SoapVersion.SOAP11
    return version


def check_fault(response: SoapResponse, version: SoapVersion, cpu_seconds: float) -> str:
    """The §1 invariants for one refused request, answered in ``version``; returns the fault QName for
    statistics."""
    assert cpu_seconds < MAX_CPU_SECONDS, cpu_seconds
    assert response.status in (400, 500), response.status
    assert response.content_type == f"{version.media_type}; charset=utf-8", response.content_type
    for marker in TOKEN_MARKERS:
        assert marker not in response.body, marker
    for leak in LEAKS:
        assert leak not in response.body, leak
    root = etree.fromstring(response.body, _SAFE_PARSER)
    env = version.namespace
    assert root.tag == ns.qn(env, "Envelope")
    children = [child for child in root if isinstance(child.tag, str)]
    assert [child.tag for child in children][-1] == ns.qn(env, "Body")
    body = children[-1]
    assert [child.tag for child in body] == [ns.qn(env, "Fault")]
    fault = body[0]
    if version is SoapVersion.SOAP11:
        code = fault.findtext("faultcode") or ""
        string = fault.findtext("faultstring")
        assert response.status == 500
    else:
        subcode = fault.find(f"{ns.qn(env, 'Code')}/{ns.qn(env, 'Subcode')}/{ns.qn(env, 'Value')}")
        value = fault.findtext(f"{ns.qn(env, 'Code')}/{ns.qn(env, 'Value')}") or ""
        code = subcode.text if subcode is not None and subcode.text else value
        string = fault.findtext(f"{ns.qn(env, 'Reason')}/{ns.qn(env, 'Text')}")
        assert response.status == (400 if value.endswith(":Sender") else 500), (response.status, value)
    assert string in FIXED_FAULT_STRINGS, string
    return code


@given(case=cases)
@example(case=Case("s11-issue", [], [], True, ""))  # a SOAP 1.1 envelope as application/soap+xml: 1.1 VersionMismatch
@settings(settings.get_profile(PROFILE))
def test_mutated_requests_never_yield_a_token(harness: Harness, case: Case) -> None:
    body, version = mutated(case)
    response, cpu_seconds = handle(harness, body, version, case.action)
    code = check_fault(response, answer_version(response, body, version), cpu_seconds)
    event(f"{response.status} {code.rpartition(':')[2]}")


@pytest.mark.parametrize("kind", BASES)
def test_unmutated_bases_are_refused_as_failed_authentication(harness: Harness, kind: str) -> None:
    body, version = base_request(kind)
    response, cpu_seconds = handle(harness, body, version)
    assert check_fault(response, version, cpu_seconds).endswith(":FailedAuthentication")


@pytest.mark.parametrize("kind", BASES)
def test_harness_issues_with_the_right_password(harness: Harness, kind: str) -> None:
    """The same harness answers a token (or a Validate status) to the right password: the property is not vacuous.
    PasswordDigest needs a digest-enrolled user, which ``admin`` is not, so that base is refused either way."""
    body, version = base_request(kind, harness.instance.demo_password)
    response, _ = handle(harness, body, version)
    if kind == "s11-digest":
        assert response.status == 500 and b"FailedAuthentication" in response.body
    elif kind == "s11-validate":
        assert response.status == 200 and b"/status/invalid" in response.body
    else:
        assert response.status == 200 and b"RequestedSecurityToken" in response.body


# === accepted requests, mutated, through the whole WSGI application ================================================
#
# The properties above start from a wrong password, so a mutation can only ever meet the first checks. These start
# from requests the STS ACCEPTS (right password, SOAP 1.1 and 1.2, SAML 1.1 and 2.0, Validate/Renew/Cancel of a
# token it just issued, OnBehalfOf and ActAs of one, an X.509-signed SigOnly request made with its own client
# library), mutate them at the tree and byte level, and send them through ``create_app`` as gunicorn would. A
# mutant may legitimately still earn a token, so the property is: HTTP 200 with an RSTR, or a SOAP fault whose
# (code, string) is one of the pairs the fault renderer can produce for some STSError class; no exception out of
# the WSGI application; no "unexpected error" (nor any record with a traceback, nor any ERROR) in the log; bounded
# wall time. ``STS_FUZZ=1`` runs ~3 000 examples of it, the normal run ~100.

FRONT_RP = "https://front.fuzz.example/"
BACK_RP = "https://back.fuzz.example/"
SIG_ONLY_PATH = "/services/wso2carbon-sts/SigOnly"
UT_PATH = "/services/wso2carbon-sts"
MAX_WALL_SECONDS = 3.0

settings.register_profile("sts-fuzz-accepted", settings.get_profile("sts-fuzz"), max_examples=100)
settings.register_profile("sts-fuzz-accepted-long", settings.get_profile("sts-fuzz"), max_examples=3000)
ACCEPTED_PROFILE = "sts-fuzz-accepted-long" if os.environ.get("STS_FUZZ") == "1" else "sts-fuzz-accepted"


def _fixed_fault_pairs() -> frozenset[tuple[str, str, str]]:
    """Every (code namespace, code local name, fault string) the renderer writes for some STSError class, in both
    SOAP versions and both trust namespaces: what ``tests.support.fault_qname``/``fault_string`` read back."""
    from sts.soap.faults import render_fault
    from tests.support import fault_qname, fault_string

    pairs: set[tuple[str, str, str]] = set()
    pending: list[type[errors.STSError]] = [errors.STSError]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        for version in SoapVersion:
            for trust in (ns.WST, ns.WST05):
                body = render_fault(cls("x"), version, correlation_id="c", trust_ns=trust).body
                pairs.add((*fault_qname(body), fault_string(body)))
    return frozenset(pairs)


FIXED_FAULT_PAIRS = _fixed_fault_pairs()


class _Records(logging.Handler):
    """Every log record written while a request is handled."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@dataclass
class AppHarness:
    instance: Instance
    app: Any
    client: Any  # tests.x509_support.Client registered to admin
    log: _Records

    def post(self, body: bytes, version: SoapVersion, *, path: str = UT_PATH, action: str = "",
             charset: str | None = "utf-8") -> tuple[int, str, bytes]:
        from io import BytesIO
        from wsgiref.util import setup_testing_defaults

        content_type = version.media_type + (f"; charset={charset}" if charset is not None else "")
        if action and version is SoapVersion.SOAP12:
            content_type += f'; action="{action}"'
        environ: dict[str, Any] = {
            "REQUEST_METHOD": "POST", "PATH_INFO": path, "CONTENT_TYPE": content_type,
            "CONTENT_LENGTH": str(len(body)), "wsgi.input": BytesIO(body), "wsgi.url_scheme": "https",
            "REMOTE_ADDR": "127.0.0.1",
        }
        if action and version is SoapVersion.SOAP11:
            environ["HTTP_SOAPACTION"] = f'"{action}"'
        setup_testing_defaults(environ)
        started: list[tuple[str, list[tuple[str, str]]]] = []

        def start_response(line: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
            started.append((line, headers))

        answer = b"".join(self.app(environ, start_response))
        line, headers = started[-1]
        return int(line.split()[0]), dict(headers).get("Content-Type", ""), answer

    def issue(self, applies_to: str = "https://localhost:8443/demo-rp/", extra: str = "") -> etree._Element:
        body = rst_envelope("admin", self.instance.demo_password, applies_to=applies_to, extra_rst=extra)
        status, _, answer = self.post(body, SoapVersion.SOAP11)
        assert status == 200, answer[:2000]
        return etree.fromstring(answer)


@pytest.fixture(scope="module")
def app_harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppHarness]:
    from sts.app import create_app
    from tests.x509_support import make_cert, rsa_key, write_client

    instance = make_instance(tmp_path_factory.mktemp("fuzz-accepted") / "var")
    key = rsa_key()
    client = write_client(instance.base / "clients", "fuzz", make_cert("fuzz", key), key)
    assert instance.cli("user", "add-cert", "admin", str(client.cert_file)) == 0
    assert instance.cli("rp", "add", FRONT_RP, "--no-encrypt") == 0
    assert instance.cli("rp", "add", BACK_RP, "--no-encrypt") == 0
    assert instance.cli("rp", "update", BACK_RP, "--allow-delegation", "admin", "--delegation-subjects", "any") == 0
    config = load_settings(instance.config, env={"STS_LOCKOUT_MAX_FAILURES": "1000000000",
                                                 "STS_SECURITY_SCENARIOS": "UTOverTransport,SigOnly"})
    records = _Records()
    root_logger = logging.getLogger()
    root_logger.addHandler(records)
    app = create_app(config)
    try:
        yield AppHarness(instance, app, client, records)
    finally:
        root_logger.removeHandler(records)
        app.close()


SAML11_URN, SAML20_URN = "urn:oasis:names:tc:SAML:1.0:assertion", "urn:oasis:names:tc:SAML:2.0:assertion"
ACCEPTED_BASES = ("issue-s11-saml2", "issue-s11-saml11", "issue-s12-saml2", "issue-s12-saml11", "validate", "renew",
                  "cancel", "onbehalfof", "actas", "signed")


def accepted_request(harness: AppHarness, kind: str) -> tuple[bytes, SoapVersion, str, str]:
    """(body, version, path, action) of a request the STS accepts; Renew/Cancel/OnBehalfOf/ActAs get a fresh token
    each (a Cancel consumes its target)."""
    password = harness.instance.demo_password
    if kind.startswith("issue-"):
        soap12 = "-s12-" in kind
        token_type = SAML11_URN if kind.endswith("saml11") else SAML20_URN
        body = rst_envelope("admin", password, soap12=soap12, token_type=token_type,
                            extra_rst='<wst:Renewing Allow="true"/>')
        return body, SoapVersion.SOAP12 if soap12 else SoapVersion.SOAP11, UT_PATH, f"{WST}/RST/Issue"
    if kind in ("validate", "renew", "cancel"):
        answer = harness.issue(extra='<wst:Renewing Allow="true"/>')
        reference = answer.find(f".//{{{WST}}}RequestedAttachedReference")
        assert reference is not None
        str_text = etree.tostring(reference[0]).decode()
        operation = kind.capitalize()
        token_type = f"{WST}/RSTR/Status" if kind == "validate" else SAML20_URN
        body = rst_envelope("admin", password, token_type=token_type, request_type=f"{WST}/{operation}",
                            extra_rst=f"<wst:{operation}Target>{str_text}</wst:{operation}Target>")
        return body, SoapVersion.SOAP11, UT_PATH, f"{WST}/RST/{operation}"
    if kind in ("onbehalfof", "actas"):
        assertion = harness.issue(applies_to=FRONT_RP).find(f".//{{{SAML20_URN}}}Assertion")
        assert assertion is not None
        text = etree.tostring(assertion).decode()
        extra = (f"<wst:OnBehalfOf>{text}</wst:OnBehalfOf>" if kind == "onbehalfof"
                 else f'<wst14:ActAs xmlns:wst14="{ns.WST14}">{text}</wst14:ActAs>')
        body = rst_envelope("admin", password, applies_to=BACK_RP, extra_rst=extra)
        return body, SoapVersion.SOAP11, UT_PATH, f"{WST}/RST/Issue"
    assert kind == "signed"
    from tests.x509_support import signed_rst

    envelope = signed_rst(f"https://localhost:8443{SIG_ONLY_PATH}", harness.client)
    return etree.tostring(envelope), SoapVersion.SOAP11, SIG_ONLY_PATH, f"{WST}/RST/Issue"


TOKEN_PROFILE = "http://docs.oasis-open.org/wss/oasis-wss-saml-token-profile-1.1"
_B64_32 = base64.b64encode(b"e" * 32).decode()
_ODD_NUMBERS = ("256", "0", "-256", "+256", " 256 ", "2.5e2", "0x100", "256.0", "\u00b2", "\u0662\u0665\u0666",
                "\uff12\uff15\uff16", "\u2167", "9" * 7, "1_024", "", "abc")
_LIFETIMES = ("", "<wsu:Created>{t0}</wsu:Created>", "<wsu:Expires>{t1}</wsu:Expires>",
              "<wsu:Created>{t1}</wsu:Created><wsu:Expires>{t0}</wsu:Expires>",
              "<wsu:Created>9999-12-31T23:59:59Z</wsu:Created><wsu:Expires>9999-12-31T23:59:59Z</wsu:Expires>",
              "<wsu:Created>0001-01-01T00:00:00Z</wsu:Created>", "<wsu:Expires>2026-02-30T00:00:00Z</wsu:Expires>",
              "<wsu:Expires>\u0662\u0660\u0662\u0666-01-01T00:00:00Z</wsu:Expires>",
              "<wsu:Created>{t0}</wsu:Created><wsu:Created>{t0}</wsu:Created>",
              "<wsu:Expires>2026-01-01T00:00:00-24:00</wsu:Expires>", "<wsu:Expires>2026-01-01T24:00:00Z</wsu:Expires>")
RST_SNIPPETS = (
    *(f"<wst:KeySize>{value}</wst:KeySize>" for value in _ODD_NUMBERS),
    *(f"<wst:KeyType>{WST}/{kind}</wst:KeyType>" for kind in ("SymmetricKey", "PublicKey", "Bearer", "Nonsense")),
    *(f'<wst:Lifetime xmlns:wsu="{WSU}">{body}</wst:Lifetime>' for body in _LIFETIMES),
    f'<wst:Entropy><wst:BinarySecret Type="{WST}/Nonce">{_B64_32}</wst:BinarySecret></wst:Entropy>',
    f'<wst:Entropy><wst:BinarySecret Type="{WST}/SymmetricKey">{_B64_32}</wst:BinarySecret></wst:Entropy>',
    "<wst:Entropy><wst:BinarySecret>\u0661\u0662==</wst:BinarySecret></wst:Entropy>",
    "<wst:Entropy><wst:BinarySecret>" + "QUFB" * 5000 + "</wst:BinarySecret></wst:Entropy>",
    f"<wst:ComputedKeyAlgorithm>{WST}/CK/PSHA1</wst:ComputedKeyAlgorithm>",
    "<wst:ComputedKeyAlgorithm>urn:evil</wst:ComputedKeyAlgorithm>",
    f'<wst:Claims Dialect="http://schemas.xmlsoap.org/ws/2005/05/identity" xmlns:ic="{ns.WSID}">'
    '<ic:ClaimType Uri="http://wso2.org/claims/emailaddress"/><ic:ClaimType Uri="http://wso2.org/claims/role" '
    'Optional="false"/></wst:Claims>',
    f'<wst:Claims xmlns:ic="{ns.WSID}"><ic:ClaimType Uri="urn:nobody" Optional="false"/></wst:Claims>',
    f'<wst:Claims xmlns:ic="{ns.WSID}"><ic:ClaimType Uri="{"u" * 5000}"/></wst:Claims>',
    '<wst:Renewing Allow="false" OK="true"/>', '<wst:Renewing Allow="\u0661"/>', "<wst:Renewing/>",
    "<wst:UseKey/>", f'<wst:UseKey><wsse:SecurityTokenReference xmlns:wsse="{WSSE}"><wsse:Reference URI="#x"/>'
    "</wsse:SecurityTokenReference></wst:UseKey>",
    "<wst:SecondaryParameters><wst:TokenType>urn:oasis:names:tc:SAML:1.0:assertion</wst:TokenType>"
    f"<wst:KeyType>{WST}/SymmetricKey</wst:KeyType><wst:KeySize>\u00b2</wst:KeySize></wst:SecondaryParameters>",
    f"<wst:OnBehalfOf><wsse:UsernameToken xmlns:wsse=\"{WSSE}\"><wsse:Username>admin</wsse:Username>"
    "</wsse:UsernameToken></wst:OnBehalfOf>",
    f'<wst:OnBehalfOf><wsse:SecurityTokenReference xmlns:wsse="{WSSE}"><wsse:KeyIdentifier>_x</wsse:KeyIdentifier>'
    "</wsse:SecurityTokenReference></wst:OnBehalfOf>",
    "<wst:Participants><wst:Primary/></wst:Participants>", "<wst:AllowPostdating/>",
    "<wst:Delegatable>true</wst:Delegatable>",
    f'<wsp:AppliesTo xmlns:wsp="{ns.WSP15}"><wsa:EndpointReference xmlns:wsa="{ns.WSA04}"><wsa:Address>'
    "https://localhost:8443/demo-rp/</wsa:Address></wsa:EndpointReference></wsp:AppliesTo>",
    f"<wst:TokenType>{TOKEN_PROFILE}#SAMLV1.1</wst:TokenType>",
    f"<wst:TokenType>{TOKEN_PROFILE}#SAMLV2.0</wst:TokenType>",
    f"<wst:TokenType>{WST}/RSTR/Status</wst:TokenType>",
)


def rst_snippet(text: str) -> etree._Element:
    """One RST child of the catalogue, with its instants filled in."""
    now = dt.datetime.now(dt.UTC)
    filled = text.replace("{t0}", now.strftime("%Y-%m-%dT%H:%M:%SZ"))
    filled = filled.replace("{t1}", (now + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"))
    return etree.fromstring(f'<w xmlns:wst="{WST}">{filled}</w>')[0]


ODD_VALUES = ("", " ", "x" * 70000, "\u202e\u0000"[:1] + "evil", "\ud7ff\ue000\ufffd", "\U0010ffff", "#", "#" * 5000,
              "a b", "\t\n", "-1", "99999999999999999999999999", "NaN", "1e309", "urn:x", "#TS-1", "#UT-1")
extra_tree_ops = st.one_of(
    st.tuples(st.just("swap"), index, index),
    st.tuples(st.just("odd-attribute"), index, index, st.sampled_from(ODD_VALUES)),
    st.tuples(st.just("odd-text"), index, st.sampled_from(ODD_VALUES)),
    st.tuples(st.just("rst-insert"), index, st.sampled_from(RST_SNIPPETS), st.booleans()),
)
ENCODINGS = ("utf-8-sig", "utf-16-le-bom", "utf-16-be-bom", "utf-16-le", "utf-32", "latin-1", "utf-8-decl-latin1")
extra_byte_ops = st.one_of(
    st.tuples(st.just("encode"), st.sampled_from(ENCODINGS)),
    st.tuples(st.just("insert-bytes"), index, st.sampled_from([b"\x00", b"\xef\xbb\xbf", b"\xff\xfe", b"\xc3",
                                                                b"\xed\xa0\x80", b"&#xD800;", b"&#1;", b"\r",
                                                                b"<!--x-->", b"<?pi x?>", b"<![CDATA[]]>",
                                                                b"&amp;", b"&lt;"])),
)

NAMED = ("Username", "Password", "Nonce", "Created", "Expires", "KeyIdentifier", "Address", "TokenType",
         "RequestType", "KeyType", "BinarySecurityToken", "X509SerialNumber", "X509IssuerName", "DigestValue",
         "SignatureValue", "Action", "MessageID", "To", "NameID", "Audience", "Issuer")
NAMED_VALUES = (*ODD_VALUES, "\u0662\u0660\u0662\u0666-01-01T00:00:00Z", "2026-01-01T00:00:00\u00b2Z", "\u00b2",
                "\u0661\u0662\u0663", "1_000", "\u00a0admin", "ADMIN", "admin ", "PRIMARY/ADMIN", "/admin", "admin/",
                "\\admin", "admin@PRIMARY", "CN=fuzz,O=sts tests", "CN=fuzz, O=sts tests", "CN=\\,", "=", "+",
                "AAAA" * 300, "====", "QQ", " Q Q = = ", f"{WST}/Issue ", "#", "#TS-1", "cid:x", "http://x/#a")
named_ops = st.tuples(st.just("named-text"), st.sampled_from(NAMED), st.sampled_from(NAMED_VALUES), index)
named_attribute_ops = st.tuples(st.just("named-attribute"), st.sampled_from(("URI", "ValueType", "EncodingType", "Type",
                                                                             "Id", "ID", "Algorithm", "Allow", "OK")),
                                st.sampled_from(NAMED_VALUES), index)
rst_inserts = st.tuples(st.just("rst-insert"), index, st.sampled_from(RST_SNIPPETS), st.booleans())

EXTRA_TREE_OPS = frozenset({"swap", "odd-attribute", "odd-text", "rst-insert", "named-text", "named-attribute"})


def apply_extra_tree_op(root: etree._Element, op: tuple[Any, ...]) -> etree._Element:
    elements = _elements(root)
    element = elements[int(op[1]) % len(elements)] if isinstance(op[1], int) else root
    try:
        if op[0] == "swap":  # swap the content (text and children) of two unrelated elements
            other = elements[int(op[2]) % len(elements)]
            if other is element or other in element.iterancestors() or element in other.iterancestors():
                return root
            mine, theirs = (element.text, list(element)), (other.text, list(other))
            element.text, other.text = theirs[0], mine[0]
            element[:], other[:] = theirs[1], mine[1]
        elif op[0] == "odd-attribute" and element.attrib:
            names = list(element.attrib)
            element.set(names[int(op[2]) % len(names)], str(op[3]))
        elif op[0] == "odd-text":
            element.text = str(op[2])
        elif op[0] in ("named-text", "named-attribute"):  # op[1] names the element (or attribute) to change
            if op[0] == "named-text":
                named = [e for e in elements if etree.QName(e).localname == op[1]]
                if named:
                    target = named[int(op[3]) % len(named)]
                    target[:] = []
                    target.text = str(op[2])
            else:
                carriers = [e for e in elements if any(etree.QName(a).localname == op[1] for a in e.attrib)]
                if carriers:
                    target = carriers[int(op[3]) % len(carriers)]
                    for name in [a for a in target.attrib if etree.QName(a).localname == op[1]]:
                        target.set(name, str(op[2]))
        elif op[0] == "rst-insert":  # into the RST (or a SecondaryParameters), replacing a namesake or added
            holders = [e for e in elements if etree.QName(e).localname in ("RequestSecurityToken",
                                                                            "SecondaryParameters")]
            if not holders:
                return root
            holder = holders[int(op[1]) % len(holders)]
            child = rst_snippet(str(op[2]))
            namesakes = [c for c in holder if c.tag == child.tag]
            if namesakes and op[3]:
                holder.replace(namesakes[0], child)
            else:
                holder.insert(int(op[1]) % (len(holder) + 1), child)
    except (ValueError, TypeError):
        pass
    return root


def apply_extra_byte_op(body: bytes, op: tuple[Any, ...]) -> bytes:
    if op[0] == "insert-bytes":
        cut = int(op[1]) % (len(body) + 1)
        return body[:cut] + bytes(op[2]) + body[cut:]
    text = body.decode("utf-8", "replace")
    encoding = str(op[1])
    if encoding == "utf-8-sig":
        return b"\xef\xbb\xbf" + body
    if encoding == "utf-16-le-bom":
        return b"\xff\xfe" + text.encode("utf-16-le")
    if encoding == "utf-16-be-bom":
        return b"\xfe\xff" + text.encode("utf-16-be")
    if encoding == "utf-16-le":
        return text.encode("utf-16-le")
    if encoding == "utf-32":
        return text.encode("utf-32")
    if encoding == "latin-1":
        return ('<?xml version="1.0" encoding="ISO-8859-1"?>' + text).encode("latin-1", "replace")
    return b'<?xml version="1.0" encoding="ISO-8859-1"?>' + body  # UTF-8 bytes declared Latin-1


@dataclass(frozen=True)
class AcceptedCase:
    base: str
    tree: list[tuple[Any, ...]]
    raw: list[tuple[Any, ...]]
    charset: str | None


accepted_cases = st.builds(
    AcceptedCase,
    st.sampled_from(ACCEPTED_BASES),
    st.lists(st.one_of(tree_ops, extra_tree_ops, rst_inserts, named_ops, named_attribute_ops), min_size=1, max_size=3),
    st.sampled_from([0, 0, 0, 1]).flatmap(
        lambda size: st.lists(st.one_of(byte_ops, extra_byte_ops), min_size=size, max_size=size)),
    st.sampled_from(["utf-8"] * 6 + [None, "utf-16", "iso-8859-1", "bogus", ""]),
)


def check_accepted_answer(status: int, content_type: str, answer: bytes, version: SoapVersion,
                          request: bytes) -> str:
    """200 with an RSTR, or one of the fixed fault pairs; returns a label for statistics."""
    from tests.support import fault_qname, fault_string

    for leak in LEAKS[:-1]:
        assert leak not in answer, (leak, answer[:3000])
    if status in (400, 413, 415) and not content_type.startswith(("text/xml", "application/soap+xml")):
        return f"{status} http"  # refused by the HTTP layer (a charset it cannot take, ...): a fixed HTTP error
    root = etree.fromstring(answer, _SAFE_PARSER)
    if status == 200:
        body = root[-1]
        assert etree.QName(body[0]).localname in ("RequestSecurityTokenResponseCollection",
                                                  "RequestSecurityTokenResponse"), answer[:2000]
        return "200"
    assert status in (400, 500), (status, answer[:2000])
    pair = (*fault_qname(answer), fault_string(answer))
    assert pair in FIXED_FAULT_PAIRS, pair
    return f"{status} {pair[1]}"


@given(case=accepted_cases)
@settings(settings.get_profile(ACCEPTED_PROFILE))
def test_mutated_accepted_requests_answer_a_token_or_a_fixed_fault(app_harness: AppHarness,
                                                                   case: AcceptedCase) -> None:
    body, version, path, action = accepted_request(app_harness, case.base)
    root = etree.fromstring(body)
    for op in case.tree:
        root = apply_extra_tree_op(root, op) if op[0] in EXTRA_TREE_OPS else apply_tree_op(root, op)
    data = etree.tostring(root)
    for op in case.raw:
        data = apply_byte_op(data, op) if op[0] not in ("encode", "insert-bytes") else apply_extra_byte_op(data, op)
    app_harness.log.records.clear()
    started = time.perf_counter()
    status, content_type, answer = app_harness.post(data, version, path=path, action=action, charset=case.charset)
    elapsed = time.perf_counter() - started
    bad = [r for r in app_harness.log.records
           if r.exc_info or r.levelno >= logging.ERROR or r.getMessage() == "unexpected error"
           or getattr(r, "reason", "") == "internal_error"]
    assert not bad, [(r.name, r.getMessage(), getattr(r, "reason", None)) for r in bad]
    assert elapsed < MAX_WALL_SECONDS, elapsed
    event(f"{case.base}: {check_accepted_answer(status, content_type, answer, version, data)}")


@pytest.mark.parametrize("kind", ACCEPTED_BASES)
def test_unmutated_accepted_bases_are_accepted(app_harness: AppHarness, kind: str) -> None:
    """The bases of the property above earn a token (or a Validate status): mutants start from acceptance."""
    body, version, path, action = accepted_request(app_harness, kind)
    status, _, answer = app_harness.post(body, version, path=path, action=action)
    assert status == 200, answer[:2000]
