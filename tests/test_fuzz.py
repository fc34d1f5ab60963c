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
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
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
