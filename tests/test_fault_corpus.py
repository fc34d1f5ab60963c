"""The named negative corpus (``tests/vectors/invalid``; security-catalogue §1, §3): every hostile input is posted
to a real gunicorn and must get exactly the fault its file name announces.

One file per hostile input, named ``<fault>__<case>.xml``; line 1 is the provenance comment (catalogue row, spec
or paper, optional send directives) and is removed before sending; ``{{...}}`` placeholders are filled at send
time (see ``tests/vectors/invalid/README.md``). For every file the five invariants of catalogue §1 are checked in
one place (:func:`check_answer`): the exact fault QName, the fixed fault string from :mod:`sts.errors`, the HTTP
status, no token, no leak, an answer within 1 s of wall clock, an audit failure record carrying the correlation
id of the fault; the module ends with a valid request that must still get a token.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import http.client
import json
import math
import re
import secrets
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, fields
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from lxml import etree

from sts import errors, ns
from sts.config.settings import SecuritySettings
from sts.soap.faults import STS_FAULT_NS
from tests.support import Instance, Server, audit_records, make_instance, rst_envelope, start_server

pytestmark = pytest.mark.integration

VECTORS = Path(__file__).resolve().parent / "vectors" / "invalid"
FILES = sorted(VECTORS.glob("*.xml"))

# Vectors exposing a bug in sts/: kept in the corpus, expected to fail until the bug is fixed (strict, so a fix
# turns them into failures that ask for this entry to be removed). Key: file stem.
KNOWN_BUGS: dict[str, str] = {}

WALL_CLOCK_LIMIT = 1.0  # seconds per request: invariant 4, not a benchmark
HTTP_REFUSALS = frozenset({400, 405, 413, 415, 431})
DEFAULT_CONTENT_TYPE = "text/xml; charset=utf-8"
SOAP12_MEDIA_TYPE = "application/soap+xml"
TOKEN_MARKERS = (b"RequestSecurityTokenResponse", b"Assertion", b"EncryptedData")
LEAK_MARKERS = (b"Traceback", b"lxml", b"libxml2", b"signxml", b"xmlsec", b'File "/', b"root:x:")
# SOAP 1.2 Code/Value and Subcode of the SOAP-level faults (sts.soap.faults renders the Subcode in its own
# namespace, because a SOAP 1.2 Subcode is never an env: QName).
SOAP12_VALUE = {"Client": "Sender", "Server": "Receiver"}
SOAP12_SUBCODE = {"Client": "InvalidMessage", "Server": "ServiceUnavailable"}

_NAME = re.compile(r"(?P<fault>(?:soap|wsse|wst)-[A-Za-z]+|http-[1-5][0-9]{2})__[a-z0-9_]+")
_PROVENANCE = re.compile(r"<!-- provenance: (?P<rows>[A-Z][0-9]{2}(?:/[A-Z][0-9]{2})*) — (?P<text>.+) -->")
_DIRECTIVE = re.compile(r"(?P<key>content-type|method|header|transport): (?P<value>.*)", re.DOTALL)
# ``transport: plain-http``: sent over plain HTTP to a second server that refuses PasswordText there and lists a
# proxy network the test client (127.0.0.1) is not in, so forwarded headers come from an untrusted peer (T07).
PLAIN_HTTP = "plain-http"
PLAIN_TRUSTED_PROXIES = "192.0.2.0/24"  # TEST-NET-1 (RFC 5737): never the test client
_NOW = re.compile(rb"\{\{NOW([+-][0-9]{1,9})\}\}")
_REPEAT = re.compile(rb"\{\{REPEAT:([0-9]{1,7}):(.*?)\}\}", re.DOTALL)
_LEFTOVER = re.compile(rb"\{\{[A-Z_]+")


# --- reading a vector ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Vector:
    """One corpus file: the fault it expects, its provenance and how to send it."""

    path: Path
    fault: str  # "wsse-MessageExpired", "soap-Client", "http-415", ...
    rows: tuple[str, ...]
    content_type: str | None
    method: str
    headers: tuple[tuple[str, str], ...]
    template: bytes
    plain_http: bool = False

    @property
    def http_status(self) -> int | None:
        family, _, code = self.fault.partition("-")
        return int(code) if family == "http" else None

    @property
    def soap12(self) -> bool:
        """Whether the fault comes back as SOAP 1.2: sent as SOAP 1.2, unless the envelope itself is SOAP 1.1, which
        gets a SOAP/1.1 VersionMismatch (SOAP 1.2 Part 1, Appendix A)."""
        announced = (self.content_type or "").split(";")[0].strip().lower() == SOAP12_MEDIA_TYPE
        return announced and not (self.fault == "soap-VersionMismatch" and _root_namespace(self.template) == ns.S11)


def _root_namespace(template: bytes) -> str | None:
    try:
        return etree.QName(etree.fromstring(template)).namespace
    except etree.XMLSyntaxError:
        return None


def load_vector(path: Path) -> Vector:
    """Parse the file name and the provenance line (line 1, removed before sending)."""
    name = _NAME.fullmatch(path.stem)
    assert name is not None, f"{path.name}: not <fault>__<case>.xml"
    first, newline, template = path.read_bytes().partition(b"\n")
    assert newline, f"{path.name}: no provenance line"
    provenance = _PROVENANCE.fullmatch(first.decode("utf-8").rstrip("\r"))
    assert provenance is not None, f"{path.name}: line 1 is not <!-- provenance: ROW — what -->"
    content_type: str | None = DEFAULT_CONTENT_TYPE
    method, headers, plain_http = "POST", [], False
    directives: list[list[str]] = []
    for segment in provenance["text"].split("; ")[1:]:
        directive = _DIRECTIVE.fullmatch(segment)
        if directive is not None:
            directives.append([directive["key"], directive["value"]])
        elif directives:  # a value holding "; " (media type parameters)
            directives[-1][1] += "; " + segment
    for key, value in directives:
        if key == "content-type":
            content_type = None if value == "none" else value
        elif key == "method":
            method = value
        elif key == "transport":
            assert value == PLAIN_HTTP, f"{path.name}: unknown transport {value!r}"
            plain_http = True
        else:
            header, _, header_value = value.partition(": ")
            headers.append((header, header_value))
    return Vector(
        path, name["fault"], tuple(provenance["rows"].split("/")), content_type, method, tuple(headers), template,
        plain_http,
    )


# --- placeholders ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Context:
    """What placeholders stand for on this server."""

    username: str
    password: str
    applies_to: str
    canary_url: str


def _instant(offset: int, now: dt.datetime) -> bytes:
    """now + offset as xsd:dateTime in whole seconds, rounded away from now (so 61 s ahead stays > 60 s ahead)."""
    moment = now.timestamp() + offset
    seconds = math.ceil(moment) if offset > 0 else math.floor(moment)
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ").encode()


def render(data: bytes, ctx: Context) -> bytes:
    """Fill the placeholders of a template (body or header value) with fresh credentials, nonces and clocks."""
    now = dt.datetime.now(dt.UTC)
    nonce = secrets.token_bytes(16)
    created = _instant(0, now)
    digest = base64.b64encode(hashlib.sha1(nonce + created + ctx.password.encode()).digest())  # noqa: S324 - UT profile
    wrong = ctx.password[:-1] + ("x" if ctx.password[-1] != "x" else "y")
    values = {
        b"{{USERNAME}}": ctx.username.encode(),
        b"{{PASSWORD}}": ctx.password.encode(),
        b"{{WRONG_PASSWORD}}": wrong.encode(),
        b"{{PASSWORD_DIGEST}}": digest,
        b"{{NONCE}}": base64.b64encode(nonce),
        b"{{CREATED}}": created,
        b"{{EXPIRES}}": _instant(300, now),
        b"{{OLD}}": _instant(-301, now),
        b"{{FUTURE}}": _instant(61, now),
        b"{{APPLIES_TO}}": ctx.applies_to.encode(),
        b"{{MESSAGE_ID}}": f"urn:uuid:{uuid.uuid4()}".encode(),
        b"{{CANARY_URL}}": ctx.canary_url.encode(),
    }
    for placeholder, value in values.items():
        data = data.replace(placeholder, value)
    data = _NOW.sub(lambda m: _instant(int(m[1]), now), data)
    data = _REPEAT.sub(lambda m: m[2] * int(m[1]), data)
    leftover = _LEFTOVER.search(data)
    assert leftover is None, f"unknown placeholder {leftover[0]!r}"
    return data


# --- what the file name promises ---------------------------------------------------------------------------------


def _leaf_errors(cls: type[errors.STSError]) -> Iterator[type[errors.STSError]]:
    subclasses = cls.__subclasses__()
    if not subclasses:
        yield cls
    for sub in subclasses:
        yield from _leaf_errors(sub)


FAULT_CLASSES = {cls.fault_qname(): cls for cls in _leaf_errors(errors.STSError)}
assert len(FAULT_CLASSES) == len(list(_leaf_errors(errors.STSError))), "two fault classes share a QName"


def trust_namespace_of(payload: bytes) -> str:
    """The WS-Trust namespace a wst: fault is written in: Feb 2005 when the Body child is a Feb 2005 element."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    try:
        root = etree.fromstring(payload, parser=parser)
    except etree.XMLSyntaxError:
        return ns.WST
    for body in (*root.findall(ns.qn(ns.S11, "Body")), *root.findall(ns.qn(ns.S12, "Body"))):
        for child in body:
            if isinstance(child.tag, str):
                return ns.WST05 if etree.QName(child).namespace == ns.WST05 else ns.WST
    return ns.WST


@dataclass(frozen=True)
class Expected:
    """The fault a vector must get."""

    error: type[errors.STSError]
    qname: tuple[str, str]  # as on the wire: faultcode (SOAP 1.1) or Subcode (SOAP 1.2, non-SOAP-level)
    soap_level: bool


def expected_fault(vector: Vector, payload: bytes) -> Expected:
    family, _, local = vector.fault.partition("-")
    if family == "soap":
        return Expected(FAULT_CLASSES[(ns.S11, local)], (ns.S11, local), True)
    if family == "wsse":
        return Expected(FAULT_CLASSES[(ns.WSSE, local)], (ns.WSSE, local), False)
    # Trust faults are classes in the 1.3 namespace; the renderer answers in the request's trust namespace.
    return Expected(FAULT_CLASSES[(ns.WST, local)], (trust_namespace_of(payload), local), False)


# --- the server side ---------------------------------------------------------------------------------------------


class Canary:
    """A loopback HTTP listener hostile inputs point at (XXE, DTD, schema hints, ReplyTo): it must see no hit."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        hits = self.hits

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                hits.append(self.path)
                self.send_response(200)
                self.end_headers()

            do_POST = do_GET  # noqa: N815

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - base signature
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(scope="module")
def corpus_instance(tmp_path_factory: pytest.TempPathFactory) -> Instance:
    return make_instance(tmp_path_factory.mktemp("fault-corpus") / "var")


@pytest.fixture(scope="module")
def corpus_server(corpus_instance: Instance) -> Iterator[Server]:
    env: dict[str, str] = {}
    if "client_failure_limit" in {field.name for field in fields(SecuritySettings)}:
        # Per-client failure throttling (A04) is a cross-request policy tested on its own; here every vector
        # comes from 127.0.0.1 and must get the fault of its own input, so the throttle is switched off.
        env["STS_SECURITY_CLIENT_FAILURE_LIMIT"] = "0"
    server = start_server(corpus_instance, workers=2, tls=True, env=env)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def plain_server(corpus_instance: Instance) -> Iterator[Server]:
    """Plain HTTP, PasswordText refused there, a trusted proxy network that does not hold the test client."""
    env = {
        "STS_SECURITY_CLIENT_FAILURE_LIMIT": "0",
        "STS_SERVER_ALLOW_INSECURE_TRANSPORT": "false",
        "STS_SERVER_TRUSTED_PROXIES": PLAIN_TRUSTED_PROXIES,
    }
    server = start_server(corpus_instance, workers=1, tls=False, env=env)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def canary() -> Iterator[Canary]:
    listener = Canary()
    yield listener
    listener.close()


@pytest.fixture(scope="module")
def context(corpus_instance: Instance, canary: Canary) -> Context:
    demo = json.loads((corpus_instance.base / "demo.json").read_text())
    return Context(demo["username"], corpus_instance.demo_password, demo["applies_to"], canary.url)


@dataclass(frozen=True)
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes
    elapsed: float


def send(server: Server, vector: Vector, payload: bytes, ctx: Context) -> Answer:
    """Send the vector byte-exactly (http.client: no header of ours is rewritten, Content-Length included)."""
    conn: http.client.HTTPConnection
    if server.tls:
        tls = ssl.create_default_context(cafile=str(server.instance.ca_file))
        conn = http.client.HTTPSConnection("127.0.0.1", server.port, context=tls, timeout=10)
    else:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    headers = {"Content-Type": vector.content_type} if vector.content_type is not None else {}
    headers.update({name: render(value.encode(), ctx).decode() for name, value in vector.headers})
    try:
        started = time.perf_counter()
        try:
            conn.request(vector.method, "/services/wso2carbon-sts", body=payload, headers=headers)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before the whole body was read: the answer is still there to read
        response = conn.getresponse()
        body = response.read()
        elapsed = time.perf_counter() - started
    finally:
        conn.close()
    return Answer(response.status, response.headers, body, elapsed)


# --- the one shared assertion (catalogue §1 invariants 1-4) -------------------------------------------------------


def _secrets_of(ctx: Context) -> list[bytes]:
    markers = [ctx.password.encode(), ctx.username.encode()]
    for path in (Path("/etc/passwd"), Path("/etc/hostname")):
        try:
            first = path.read_bytes().splitlines()[0].strip()
        except (OSError, IndexError):
            continue
        if len(first) >= 6:
            markers.append(first)
    return markers


def _qname(element: etree._Element) -> tuple[str, str]:
    prefix, _, local = (element.text or "").strip().partition(":")
    return element.nsmap.get(prefix) or "", local


def check_fault(answer: Answer, vector: Vector, expected: Expected) -> str:
    """Check a SOAP fault: QName, fixed string, status; returns the correlation id of its detail."""
    env_ns = ns.S12 if vector.soap12 else ns.S11
    media = SOAP12_MEDIA_TYPE if vector.soap12 else "text/xml"
    assert answer.headers.get("Content-Type", "").startswith(media), answer.headers
    envelope = etree.fromstring(answer.body)
    assert envelope.tag == ns.qn(env_ns, "Envelope"), answer.body
    fault = envelope.find(f"{ns.qn(env_ns, 'Body')}/{ns.qn(env_ns, 'Fault')}")
    assert fault is not None, answer.body
    error, local = expected.error, expected.qname[1]
    if not vector.soap12:
        code = fault.find("faultcode")
        assert code is not None and _qname(code) == expected.qname, answer.body
        assert fault.findtext("faultstring") == error.fault_string
        assert answer.status == 500, answer.status
        detail = fault.find("detail")
    else:
        value = fault.find(f"{ns.qn(ns.S12, 'Code')}/{ns.qn(ns.S12, 'Value')}")
        subcode = fault.find(f"{ns.qn(ns.S12, 'Code')}/{ns.qn(ns.S12, 'Subcode')}/{ns.qn(ns.S12, 'Value')}")
        assert value is not None and subcode is not None, answer.body
        if expected.soap_level:
            code_value = SOAP12_VALUE.get(local, local)
            assert _qname(subcode) == (STS_FAULT_NS, SOAP12_SUBCODE.get(local, local)), answer.body
        else:
            code_value = "Sender" if error.sender else "Receiver"
            assert _qname(subcode) == expected.qname, answer.body
        assert _qname(value) == (ns.S12, code_value), answer.body
        text = fault.find(f"{ns.qn(ns.S12, 'Reason')}/{ns.qn(ns.S12, 'Text')}")
        assert text is not None and text.text == error.fault_string
        assert text.get(ns.qn(ns.XML, "lang")) == "en"
        assert answer.status == (400 if code_value == "Sender" else 500), answer.status
        detail = fault.find(ns.qn(ns.S12, "Detail"))
    assert detail is not None, answer.body
    correlation_id = detail.findtext(ns.qn(STS_FAULT_NS, "CorrelationId"))
    assert correlation_id, answer.body
    return correlation_id


def check_audit(server: Server, correlation_id: str, expected: Expected) -> None:
    """The audit log holds a failure record for this request, naming the fault it answered."""
    deadline = time.monotonic() + 3
    while True:
        records = [r for r in audit_records(server.log) if r.get("correlation_id") == correlation_id]
        failures = [r for r in records if r.get("audit_event") == "request" and r.get("outcome") == "failure"]
        if failures or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert failures, f"no audit failure record for correlation id {correlation_id}"
    assert failures[0].get("fault") == expected.qname[1], failures[0]
    assert not [r for r in records if r.get("outcome") == "success" and r.get("audit_event") != "authentication"]


def check_answer(server: Server, vector: Vector, payload: bytes, answer: Answer, ctx: Context) -> None:
    """Catalogue §1 invariants 1, 2 and 4 for one answer, and the audit record for SOAP faults."""
    assert answer.elapsed < WALL_CLOCK_LIMIT, f"answered in {answer.elapsed:.3f} s"
    for marker in TOKEN_MARKERS:
        assert marker not in answer.body, f"token material {marker!r} in the answer"
    for marker in (*LEAK_MARKERS, *_secrets_of(ctx)):
        assert marker not in answer.body, f"leak {marker!r} in the answer"
    status = vector.http_status
    if status is not None:
        assert answer.status == status, (answer.status, answer.body[:300])
        if status == 405:
            assert answer.headers.get("Allow") == "POST"
        return
    expected = expected_fault(vector, payload)
    correlation_id = check_fault(answer, vector, expected)
    check_audit(server, correlation_id, expected)


# --- the tests --------------------------------------------------------------------------------------------------


def _params() -> list[object]:
    params: list[object] = []
    for path in FILES:
        marks = [pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[path.stem])] if path.stem in KNOWN_BUGS else []
        params.append(pytest.param(path, id=path.stem, marks=marks))
    return params


def test_corpus_is_complete() -> None:
    assert (VECTORS / "README.md").is_file()
    assert len(FILES) >= 60
    assert set(KNOWN_BUGS) <= {path.stem for path in FILES}, "a KNOWN_BUGS entry names no vector"
    dummy = Context("user", "password", "https://rp.example/", "http://127.0.0.1:9")
    for path in FILES:
        vector = load_vector(path)
        assert all(row[0] in "TXSWIEJVGAO" for row in vector.rows), path.name  # catalogue §3 row families
        render(vector.template, dummy)  # no unknown placeholder
        if vector.http_status is not None:
            assert vector.http_status in HTTP_REFUSALS, path.name
        else:
            expected_fault(vector, b"")  # the prefix names a fault class of sts.errors


@pytest.mark.parametrize("path", _params())
def test_hostile_input_gets_its_fault(
    path: Path, corpus_server: Server, context: Context, canary: Canary, request: pytest.FixtureRequest
) -> None:
    vector = load_vector(path)
    server = request.getfixturevalue("plain_server") if vector.plain_http else corpus_server
    payload = render(vector.template, context)
    answer = send(server, vector, payload, context)
    check_answer(server, vector, payload, answer, context)
    assert canary.hits == [], f"the STS fetched {canary.hits}"


def test_corpus_server_publishes_the_timestamp_rule_its_vectors_rely_on(corpus_server: Server) -> None:
    """The ``*__no_timestamp*`` vectors are hostile because the published policy requires a Timestamp: the server
    they run against must say so in every policy of ``?wsdl`` and ``/mex`` (WS-SecurityPolicy 1.2 §7.3)."""
    assert [path for path in FILES if "__no_timestamp" in path.stem], "the corpus lost its no-Timestamp vectors"
    tls = ssl.create_default_context(cafile=str(corpus_server.instance.ca_file))
    include = {ns.qn(ns.SP, "IncludeTimestamp"), "{http://schemas.xmlsoap.org/ws/2005/07/securitypolicy}IncludeTimestamp"}
    for target in ("/services/wso2carbon-sts?wsdl", "/mex"):
        conn = http.client.HTTPSConnection("127.0.0.1", corpus_server.port, context=tls, timeout=10)
        try:
            conn.request("GET", target)
            document = etree.fromstring(conn.getresponse().read())
        finally:
            conn.close()
        policies = document.findall(ns.qn(ns.WSP, "Policy"))
        assert policies, target
        for policy in policies:
            assert [e for e in policy.iter() if e.tag in include], (target, policy.get(ns.qn(ns.WSU, "Id")))


def test_next_valid_request_still_gets_a_token(corpus_server: Server, context: Context) -> None:
    """Invariant 5, once after the whole corpus: the workers survived and still issue tokens."""
    assert corpus_server.process.poll() is None
    started = time.perf_counter()
    response = corpus_server.post(rst_envelope(context.username, context.password, applies_to=context.applies_to))
    assert response.status_code == 200, response.content[:500]
    assert b"RequestSecurityTokenResponse" in response.content
    assert time.perf_counter() - started < WALL_CLOCK_LIMIT
    with socket.create_connection(("127.0.0.1", corpus_server.port), timeout=5):
        pass  # still listening
