"""``sts request`` and ``sts token inspect``: the sample client (replaces WSO2's sample STS client).

``sts request URL --username U --applies-to ADDR`` sends a WS-Trust Issue request with a UsernameToken
(PasswordText, or PasswordDigest with ``--digest``) over HTTPS and prints the issued token; the password comes
from stdin (``--password-stdin``) or a prompt, never from the command line. TLS certificates are always verified
(``--cafile`` or the system trust store); plain ``http://`` is only allowed to a loopback address.
Exit codes: 0 token received, 1 HTTP/TLS/usage error, 2 SOAP fault.

``sts token inspect FILE`` decrypts (``--rp-key``) and verifies (``--sts-cert``, else the instance's signing
certificate) a token or a whole response, then shows what the *signed* assertion says. Exit 1 if the signature
is invalid.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import ipaddress
import os
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree

from sts import ns
from sts.cli.common import CommandError, SubParsers, read_secret, settings_from
from sts.clock import format_instant
from sts.crypto.decrypter import DecryptionRejected, TokenDecrypter
from sts.crypto.keygen import load_private_key
from sts.crypto.keystore import fingerprint, load_certificate
from sts.crypto.verifier import SignatureRejected, verify_enveloped
from sts.errors import InvalidSecurityToken, MalformedMessage
from sts.wss.timestamp import parse_xsd_datetime
from sts.wss.username import compute_password_digest
from sts.xmlutil import ParserLimits, element_children, parse_untrusted, serialize, text_of

TOKEN_TYPES: dict[str, str] = {
    "saml20": "urn:oasis:names:tc:SAML:2.0:assertion",
    "saml11": "urn:oasis:names:tc:SAML:1.0:assertion",
}
TRUST_VERSIONS: dict[str, str] = {"1.3": ns.WST, "2005": ns.WST05}
SOAP_VERSIONS: dict[str, str] = {"1.1": ns.S11, "1.2": ns.S12}
NO_PROOF_KEY = f"{ns.WSID}/NoProofKey"
WSA_ANONYMOUS = f"{ns.WSA}/anonymous"
TIMESTAMP_TTL = dt.timedelta(minutes=5)
NONCE_BYTES = 16
DEFAULT_TIMEOUT = 30.0
MAX_RESPONSE_BYTES = 8 << 20
MAX_TOKEN_FILE_BYTES = 8 << 20
# Responses and token files are untrusted input too; tokens are bigger than requests, hence larger caps.
RESPONSE_LIMITS = ParserLimits(max_text_bytes=1 << 20, max_elements=20000, max_depth=64)


def register(commands: SubParsers) -> None:
    """Add the ``request`` and ``token`` commands."""
    _register_request(commands)
    _register_token(commands)


def _register_request(commands: SubParsers) -> None:
    parser = commands.add_parser(
        "request",
        help="ask an STS for a token (sample WS-Trust client)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("url", metavar="URL", help="STS endpoint, e.g. https://host:9443/services/wso2carbon-sts")
    parser.add_argument("--username", required=True, help="user name (DOMAIN/NAME for a secondary store)")
    parser.add_argument("--password-stdin", action="store_true", help="read the password from stdin (first line)")
    parser.add_argument("--applies-to", required=True, metavar="ADDR", help="relying-party address (AppliesTo)")
    parser.add_argument(
        "--token-type", choices=sorted(TOKEN_TYPES), help="token type to ask for (default: the RP's configured type)"
    )
    parser.add_argument("--claim", action="append", default=[], metavar="URI", help="claim to request (repeatable)")
    parser.add_argument(
        "--claims-dialect", default=ns.WSO2_CLAIMS, metavar="URI", help=f"claims dialect (default {ns.WSO2_CLAIMS})"
    )
    parser.add_argument("--cafile", type=Path, metavar="FILE", help="CA certificates (PEM) to verify the server with")
    parser.add_argument("--digest", action="store_true", help="send a PasswordDigest instead of PasswordText")
    parser.add_argument("--out", type=Path, metavar="FILE", help="write the token here instead of to stdout")
    parser.add_argument("--soap", choices=sorted(SOAP_VERSIONS), default="1.1", help="SOAP version (default 1.1)")
    parser.add_argument("--trust", choices=sorted(TRUST_VERSIONS), default="1.3", help="WS-Trust version (default 1.3)")
    parser.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS", help="network timeout (default 30)"
    )
    parser.set_defaults(handler=_request)


def _register_token(commands: SubParsers) -> None:
    token = commands.add_parser("token", help="work with issued tokens")
    sub = token.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    inspect = sub.add_parser(
        "inspect",
        help="decrypt, verify and show a token",
        description="Decrypt (--rp-key) and verify a token, then show what the signed assertion says. FILE holds "
        "an Assertion, EncryptedAssertion or EncryptedData, or a whole RSTR / SOAP response.",
    )
    inspect.add_argument("file", type=Path, metavar="FILE", help="token or response file")
    inspect.add_argument("--rp-key", type=Path, metavar="KEY", help="relying-party private key (PEM) to decrypt with")
    inspect.add_argument(
        "--sts-cert", type=Path, metavar="CERT", help="STS signing certificate (default: the instance's, from --config)"
    )
    inspect.set_defaults(handler=_inspect)


# --- building the request ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RequestOptions:
    """What ``sts request`` asks for."""

    url: str
    username: str
    applies_to: str
    token_type: str | None = None  # a key of TOKEN_TYPES; None: no TokenType, the RP's default applies
    claims: tuple[str, ...] = ()
    claims_dialect: str = ns.WSO2_CLAIMS
    digest: bool = False
    soap: str = "1.1"
    trust: str = "1.3"


@dataclass(frozen=True, slots=True)
class BuiltRequest:
    """A serialized request and the HTTP headers that go with it."""

    body: bytes = field(repr=False)  # holds the password
    action: str
    headers: dict[str, str]


def issue_action(trust: str) -> str:
    """The RST/Issue action of a trust version key (``1.3`` or ``2005``)."""
    return f"{TRUST_VERSIONS[trust]}/RST/Issue"


def bearer_key_type(trust: str) -> str:
    """The Bearer key type URI: ``{wst}/Bearer`` for 1.3, ``wsid`` NoProofKey for Feb 2005."""
    return f"{ns.WST}/Bearer" if trust == "1.3" else NO_PROOF_KEY


def build_request(
    options: RequestOptions, password: str, *, now: dt.datetime | None = None, nonce: bytes | None = None
) -> BuiltRequest:
    """Build the SOAP envelope (every value set through lxml, never through a string template)."""
    soap_ns = SOAP_VERSIONS[options.soap]
    trust_ns = TRUST_VERSIONS[options.trust]
    action = issue_action(options.trust)
    now = now or dt.datetime.now(dt.UTC)
    nonce = nonce if nonce is not None else os.urandom(NONCE_BYTES)
    created = format_instant(now)
    nsmap: dict[str, str] = {
        "soap": soap_ns,
        "wsa": ns.WSA,
        "wsse": ns.WSSE,
        "wsu": ns.WSU,
        "wst": trust_ns,
        "wsp": ns.WSP,
    }
    if options.claims:
        nsmap["wsid"] = ns.WSID
    try:
        envelope = etree.Element(ns.qn(soap_ns, "Envelope"), nsmap=nsmap)
        header = etree.SubElement(envelope, ns.qn(soap_ns, "Header"))
        must_understand = ns.qn(soap_ns, "mustUnderstand")
        _sub(header, ns.WSA, "Action", action).set(must_understand, "1")
        _sub(header, ns.WSA, "MessageID", uuid.uuid4().urn)
        _sub(header, ns.WSA, "To", options.url).set(must_understand, "1")
        _sub(etree.SubElement(header, ns.qn(ns.WSA, "ReplyTo")), ns.WSA, "Address", WSA_ANONYMOUS)
        security = etree.SubElement(header, ns.qn(ns.WSSE, "Security"))
        security.set(must_understand, "1")
        timestamp = etree.SubElement(security, ns.qn(ns.WSU, "Timestamp"))
        timestamp.set(ns.qn(ns.WSU, "Id"), f"TS-{uuid.uuid4()}")
        _sub(timestamp, ns.WSU, "Created", created)
        _sub(timestamp, ns.WSU, "Expires", format_instant(now + TIMESTAMP_TTL))
        token = etree.SubElement(security, ns.qn(ns.WSSE, "UsernameToken"))
        token.set(ns.qn(ns.WSU, "Id"), f"UT-{uuid.uuid4()}")
        _sub(token, ns.WSSE, "Username", options.username)
        if options.digest:
            password_el = _sub(token, ns.WSSE, "Password", compute_password_digest(nonce, created, password))
            password_el.set("Type", ns.PASSWORD_DIGEST)
        else:
            _sub(token, ns.WSSE, "Password", password).set("Type", ns.PASSWORD_TEXT)
        _sub(token, ns.WSSE, "Nonce", base64.b64encode(nonce).decode("ascii")).set("EncodingType", ns.BASE64_BINARY)
        _sub(token, ns.WSU, "Created", created)
        body = etree.SubElement(envelope, ns.qn(soap_ns, "Body"))
        rst = etree.SubElement(body, ns.qn(trust_ns, "RequestSecurityToken"))
        if options.token_type is not None:
            _sub(rst, trust_ns, "TokenType", TOKEN_TYPES[options.token_type])
        _sub(rst, trust_ns, "RequestType", f"{trust_ns}/Issue")
        applies_to = etree.SubElement(rst, ns.qn(ns.WSP, "AppliesTo"))
        reference = etree.SubElement(applies_to, ns.qn(ns.WSA, "EndpointReference"))
        _sub(reference, ns.WSA, "Address", options.applies_to)
        _sub(rst, trust_ns, "KeyType", bearer_key_type(options.trust))
        if options.claims:
            claims = etree.SubElement(rst, ns.qn(trust_ns, "Claims"))
            claims.set("Dialect", options.claims_dialect)
            for uri in options.claims:
                claim = etree.SubElement(claims, ns.qn(ns.WSID, "ClaimType"))
                claim.set("Uri", uri)
                claim.set("Optional", "true")
    except ValueError:  # lxml refuses NUL and other characters XML cannot carry
        raise CommandError("a value contains characters that XML cannot carry") from None
    data = etree.tostring(envelope, encoding="utf-8", xml_declaration=True)
    if options.soap == "1.1":
        headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{action}"'}
    else:
        headers = {"Content-Type": f'application/soap+xml; charset=utf-8; action="{action}"'}
    return BuiltRequest(data, action, headers)


def _sub(parent: etree._Element, namespace: str, local: str, text: str) -> etree._Element:
    child = etree.SubElement(parent, ns.qn(namespace, local))
    child.text = text
    return child


# --- sending -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    """Status, content type and body of the server's answer."""

    status: int
    reason: str
    content_type: str
    body: bytes


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Never follow redirects: a request carrying a password goes to the URL given, nowhere else."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def check_url(url: str) -> None:
    """Accept https URLs, and plain http only to a loopback host (the password would travel in clear)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise CommandError(f"not an http(s) URL: {url!r}")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise CommandError("refusing to send a password over plain http to a non-loopback host: use https")


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def send(url: str, request: BuiltRequest, *, cafile: Path | None, timeout: float) -> HttpAnswer:
    """POST the request; the TLS certificate is always verified (``cafile``, else the system trust store)."""
    check_url(url)
    try:
        context = ssl.create_default_context(cafile=str(cafile) if cafile is not None else None)
    except (OSError, ssl.SSLError) as exc:
        raise CommandError(f"cannot load CA file {cafile}: {exc}") from None
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context), _NoRedirect())
    http_request = urllib.request.Request(  # noqa: S310 - the scheme is checked to be http(s) above
        url, data=request.body, headers=request.headers, method="POST"
    )
    try:
        with opener.open(http_request, timeout=timeout) as response:
            return HttpAnswer(
                response.status, response.reason, response.headers.get("Content-Type", ""), _read(response)
            )
    except urllib.error.HTTPError as exc:
        with exc:
            body = _read(exc) if exc.fp is not None else b""
            return HttpAnswer(exc.code, str(exc.reason), exc.headers.get("Content-Type", ""), body)
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, ssl.SSLCertVerificationError):
            raise CommandError(f"TLS certificate of {url} not trusted: {reason.verify_message}") from None
        if isinstance(reason, ssl.SSLError):
            raise CommandError(f"TLS error with {url}: {reason}") from None
        if isinstance(reason, TimeoutError):
            raise CommandError(f"{url}: timed out after {timeout:g} s") from None
        raise CommandError(f"cannot reach {url}: {reason}") from None
    except TimeoutError:
        raise CommandError(f"{url}: timed out after {timeout:g} s") from None
    except ssl.SSLError as exc:
        raise CommandError(f"TLS error with {url}: {exc}") from None
    except OSError as exc:  # connection reset while reading, etc.
        raise CommandError(f"{url}: {exc.strerror or exc}") from None


def _read(stream: IO[bytes]) -> bytes:
    data = stream.read(MAX_RESPONSE_BYTES + 1)
    if len(data) > MAX_RESPONSE_BYTES:
        raise CommandError(f"the response is larger than {MAX_RESPONSE_BYTES} bytes")
    return data


# --- reading the answer --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fault:
    """A SOAP fault: the code as written (``prefix:local``), its namespace and the fault string."""

    code: str
    namespace: str
    reason: str

    def describe(self) -> str:
        return f"{clean(self.code)} ({clean(self.namespace) or 'no namespace'}): {clean(self.reason)}"


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """The token of an RSTR and what the RSTR says about it."""

    token: etree._Element
    token_type: str
    created: str
    expires: str

    @property
    def encrypted(self) -> bool:
        return self.token.tag in (ns.qn(ns.SAML2, "EncryptedAssertion"), ns.qn(ns.XENC, "EncryptedData"))


def find_fault(root: etree._Element) -> Fault | None:
    """The SOAP 1.1 or 1.2 fault in an envelope, or None."""
    for soap_ns in (ns.S11, ns.S12):
        fault = root.find(f"{ns.qn(soap_ns, 'Body')}/{ns.qn(soap_ns, 'Fault')}")
        if fault is None:
            continue
        if soap_ns == ns.S11:
            code = fault.find("faultcode")
            reason = fault.find("faultstring")
        else:
            code = fault.find(f"{ns.qn(ns.S12, 'Code')}/{ns.qn(ns.S12, 'Value')}")
            subcode = fault.find(ns.qn(ns.S12, "Code"))
            while subcode is not None:  # the innermost Subcode is the most specific
                subcode = subcode.find(ns.qn(ns.S12, "Subcode"))
                value = subcode.find(ns.qn(ns.S12, "Value")) if subcode is not None else None
                if value is not None:
                    code = value
            reason = fault.find(f"{ns.qn(ns.S12, 'Reason')}/{ns.qn(ns.S12, 'Text')}")
        code_text = text_of(code).strip() if code is not None else ""
        prefix, sep, _local = code_text.partition(":")
        namespace = ""
        if code is not None:
            namespace = code.nsmap.get(prefix if sep else None) or ""
        return Fault(code_text or "?", namespace, text_of(reason).strip() if reason is not None else "")
    return None


def find_issued_token(root: etree._Element) -> IssuedToken | None:
    """The first token in a ``RequestedSecurityToken`` of either trust version, with its RSTR's details."""
    for trust_ns in (ns.WST, ns.WST05):
        for holder in root.iter(ns.qn(trust_ns, "RequestedSecurityToken")):
            children = element_children(holder)
            if not children:
                continue
            rstr = holder.getparent()
            token_type = created = expires = ""
            if rstr is not None:
                token_type = _child_text(rstr, trust_ns, "TokenType")
                lifetime = rstr.find(ns.qn(trust_ns, "Lifetime"))
                if lifetime is not None:
                    created = _child_text(lifetime, ns.WSU, "Created")
                    expires = _child_text(lifetime, ns.WSU, "Expires")
            return IssuedToken(children[0], token_type, created, expires)
    return None


def _child_text(parent: etree._Element, namespace: str, local: str) -> str:
    child = parent.find(ns.qn(namespace, local))
    return text_of(child).strip() if child is not None else ""


def clean(text: str) -> str:
    """Untrusted text made safe for a terminal: control and format characters are escaped."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" if ord(c) < 256 else f"\\u{ord(c):04x}" for c in text)


def _request(args: argparse.Namespace) -> int:
    options = RequestOptions(
        url=args.url,
        username=args.username,
        applies_to=args.applies_to,
        token_type=args.token_type,
        claims=tuple(args.claim),
        claims_dialect=args.claims_dialect,
        digest=args.digest,
        soap=args.soap,
        trust=args.trust,
    )
    check_url(options.url)
    if not options.applies_to.strip():
        raise CommandError("--applies-to must not be empty")
    if args.timeout <= 0:
        raise CommandError("--timeout must be positive")
    password = read_secret(f"Password for {options.username}: ", args.password_stdin)
    request = build_request(options, password)
    answer = send(options.url, request, cafile=args.cafile, timeout=args.timeout)
    root = _parse_answer(answer)
    fault = find_fault(root) if root is not None else None
    if fault is not None:
        print(f"sts: fault: {fault.describe()}", file=sys.stderr)
        return 2
    if answer.status != 200:
        raise CommandError(f"HTTP {answer.status} {clean(answer.reason)} from {options.url}")
    issued = find_issued_token(root) if root is not None else None
    if issued is None:
        raise CommandError("the response holds no RequestedSecurityToken")
    token_bytes = serialize(issued.token)
    if args.out is not None:
        try:
            args.out.write_bytes(token_bytes)
        except OSError as exc:
            raise CommandError(f"cannot write {args.out}: {exc.strerror or exc}") from None
    else:
        sys.stdout.write(token_bytes.decode("ascii") + "\n")
        sys.stdout.flush()
    _summary(issued, args.out)
    return 0


def _parse_answer(answer: HttpAnswer) -> etree._Element | None:
    """The parsed answer; None for a non-XML error page, an error for a 200 that is not XML."""
    try:
        return parse_untrusted(answer.body, RESPONSE_LIMITS)
    except MalformedMessage:
        if answer.status == 200:
            raise CommandError("the response is not well-formed XML (or exceeds the parser limits)") from None
        return None


def _summary(issued: IssuedToken, out: Path | None) -> None:
    token_type = issued.token_type or etree.QName(issued.token).localname
    lines = [f"token type: {clean(token_type)}"]
    if issued.created or issued.expires:
        lines.append(f"lifetime:   {clean(issued.created or '?')} .. {clean(issued.expires or '?')}")
    kind = etree.QName(issued.token).localname
    lines.append(f"encrypted:  {'yes (' + kind + ')' if issued.encrypted else 'no'}")
    if out is not None:
        lines.append(f"written to: {out}")
    print("\n".join(lines), file=sys.stderr)


# --- token inspect -------------------------------------------------------------------------------------------------

_ASSERTIONS = {ns.qn(ns.SAML2, "Assertion"): "ID", ns.qn(ns.SAML1, "Assertion"): "AssertionID"}
_ENCRYPTED = (ns.qn(ns.SAML2, "EncryptedAssertion"), ns.qn(ns.XENC, "EncryptedData"))


def _inspect(args: argparse.Namespace) -> int:
    root = _read_token_file(args.file)
    token = _locate_token(root)
    if token is None:
        raise CommandError(f"{args.file}: no Assertion, EncryptedAssertion or EncryptedData found")
    encrypted = token.tag in _ENCRYPTED
    if encrypted:
        token = _decrypt(token, args.rp_key)
    id_attribute = _ASSERTIONS.get(token.tag)
    if id_attribute is None:
        raise CommandError(f"not a SAML assertion: {clean(str(token.tag))}")
    cert = _sts_certificate(args)
    print(f"encrypted: {'yes (decrypted with ' + str(args.rp_key) + ')' if encrypted else 'no'}")
    try:
        signed = verify_enveloped(token, id_attribute, (cert,))
    except SignatureRejected as exc:
        print(f"signature: INVALID ({exc})")
        return 1
    print(f"signature: valid (pinned STS certificate {fingerprint(cert)})")
    rows = _saml2_rows(signed) if signed.tag == ns.qn(ns.SAML2, "Assertion") else _saml1_rows(signed)
    after = next((i + 1 for i, (label, _) in enumerate(rows) if label == "not on or after"), len(rows))
    rows.insert(after, ("validity", _validity(signed)))
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"{label + ':':<{width + 1}} {clean(value)}")
    return 0


def _validity(assertion: etree._Element) -> str:
    """Whether the Conditions window holds now (no clock skew allowed: this is a report, not a decision)."""
    conditions = assertion.find(_q2("Conditions")) if assertion.tag == ns.qn(ns.SAML2, "Assertion") else None
    if assertion.tag == ns.qn(ns.SAML1, "Assertion"):
        conditions = assertion.find(_q1("Conditions"))
    if conditions is None:
        return "no Conditions"
    now = dt.datetime.now(dt.UTC)
    try:
        not_before = conditions.get("NotBefore")
        if not_before and parse_xsd_datetime(not_before) > now:
            return "NOT YET VALID"
        not_after = conditions.get("NotOnOrAfter")
        if not_after and parse_xsd_datetime(not_after) <= now:
            return "EXPIRED"
    except InvalidSecurityToken:
        return "unreadable NotBefore/NotOnOrAfter"
    return "within NotBefore/NotOnOrAfter"


def _read_token_file(path: Path) -> etree._Element:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_TOKEN_FILE_BYTES + 1)
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_TOKEN_FILE_BYTES:
        raise CommandError(f"{path}: larger than {MAX_TOKEN_FILE_BYTES} bytes")
    try:
        return parse_untrusted(data, RESPONSE_LIMITS)
    except MalformedMessage:
        raise CommandError(f"{path}: not well-formed XML (or exceeds the parser limits)") from None


def _locate_token(root: etree._Element) -> etree._Element | None:
    if root.tag in _ASSERTIONS or root.tag in _ENCRYPTED:
        return root
    issued = find_issued_token(root)
    return issued.token if issued is not None else None


def _decrypt(token: etree._Element, key_path: Path | None) -> etree._Element:
    if key_path is None:
        raise CommandError("the token is encrypted: give the relying party's private key with --rp-key KEY")
    encrypted_data = (
        token if token.tag == ns.qn(ns.XENC, "EncryptedData") else token.find(ns.qn(ns.XENC, "EncryptedData"))
    )
    if encrypted_data is None:
        raise CommandError("EncryptedAssertion without xenc:EncryptedData")
    key = _rp_key(key_path)
    try:
        plain = TokenDecrypter(key).decrypt(encrypted_data)
    except DecryptionRejected as exc:
        raise CommandError(f"cannot decrypt the token with {key_path}: {exc}") from None
    try:
        # The plaintext is as untrusted as the file: same caps, and nothing but an element.
        return parse_untrusted(etree.tostring(plain), RESPONSE_LIMITS)
    except MalformedMessage:
        raise CommandError("the decrypted token exceeds the parser limits") from None


def _rp_key(path: Path) -> rsa.RSAPrivateKey:
    try:
        try:
            return load_private_key(path, None)
        except TypeError:  # encrypted PEM: ask for its passphrase
            passphrase = read_secret(f"Passphrase for {path}: ", from_stdin=False)
            return load_private_key(path, passphrase.encode("utf-8"))
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (ValueError, TypeError) as exc:
        raise CommandError(f"{path}: not a usable RSA private key (PEM): {exc}") from None


def _sts_certificate(args: argparse.Namespace) -> x509.Certificate:
    path: Path = args.sts_cert if args.sts_cert is not None else settings_from(args).issuer.signing_cert
    try:
        return load_certificate(path)
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError:
        raise CommandError(f"{path}: not a PEM or DER certificate") from None


Rows = list[tuple[str, str]]


def _q2(*path: str) -> str:
    return "/".join(ns.qn(ns.SAML2, part) for part in path)


def _q1(*path: str) -> str:
    return "/".join(ns.qn(ns.SAML1, part) for part in path)


def _texts(element: etree._Element, path: str) -> list[str]:
    return [text_of(found).strip() for found in element.findall(path)]


def _first_text(element: etree._Element, path: str) -> str:
    found = element.find(path)
    return text_of(found).strip() if found is not None else ""


def _dash(value: str | None) -> str:
    return value if value else "-"


def _attribute_rows(name: str, values: list[str]) -> Rows:
    """One row per value (multi-valued claims have one AttributeValue each, R39)."""
    return [("attribute", f"{name} = {value}") for value in values] or [("attribute", f"{name} (no value)")]


def _saml2_rows(assertion: etree._Element) -> Rows:
    """What a signed SAML 2.0 assertion says; direct paths only (nothing from Advice or nested assertions)."""
    rows: Rows = [
        ("SAML version", _dash(assertion.get("Version"))),
        ("ID", _dash(assertion.get("ID"))),
        ("issuer", _dash(_first_text(assertion, _q2("Issuer")))),
        ("issue instant", _dash(assertion.get("IssueInstant"))),
    ]
    name_id = assertion.find(_q2("Subject", "NameID"))
    if name_id is not None:
        rows.append(("subject", text_of(name_id).strip()))
        rows.append(("subject format", _dash(name_id.get("Format"))))
    else:
        rows.append(("subject", "-"))
    for confirmation in assertion.findall(_q2("Subject", "SubjectConfirmation")):
        rows.append(("confirmation", _dash(confirmation.get("Method"))))
        data = confirmation.find(_q2("SubjectConfirmationData"))
        if data is not None:
            for name, label in (("Recipient", "recipient"), ("NotOnOrAfter", "confirmation until")):
                if data.get(name):
                    rows.append((label, data.get(name, "")))
    audiences = _texts(assertion, _q2("Conditions", "AudienceRestriction", "Audience"))
    rows += [("audience", audience) for audience in audiences] or [("audience", "-")]
    conditions = assertion.find(_q2("Conditions"))
    rows.append(("not before", _dash(conditions.get("NotBefore") if conditions is not None else None)))
    rows.append(("not on or after", _dash(conditions.get("NotOnOrAfter") if conditions is not None else None)))
    for statement in assertion.findall(_q2("AuthnStatement")):
        context = _first_text(statement, _q2("AuthnContext", "AuthnContextClassRef")) or _first_text(
            statement, _q2("AuthnContext", "AuthnContextDeclRef")
        )
        rows.append(("authn context", _dash(context)))
        rows.append(("authn instant", _dash(statement.get("AuthnInstant"))))
    for attribute in assertion.findall(_q2("AttributeStatement", "Attribute")):
        rows += _attribute_rows(attribute.get("Name", ""), _texts(attribute, _q2("AttributeValue")))
    return rows


def _saml1_rows(assertion: etree._Element) -> Rows:
    """What a signed SAML 1.1 assertion says; direct paths only."""
    major, minor = assertion.get("MajorVersion"), assertion.get("MinorVersion")
    rows: Rows = [
        ("SAML version", f"{major}.{minor}" if major and minor else "-"),
        ("ID", _dash(assertion.get("AssertionID"))),
        ("issuer", _dash(assertion.get("Issuer"))),
        ("issue instant", _dash(assertion.get("IssueInstant"))),
    ]
    subject = None
    for kind in ("AuthenticationStatement", "AttributeStatement", "SubjectStatement", "AuthorizationDecisionStatement"):
        subject = assertion.find(_q1(kind, "Subject"))
        if subject is not None:
            break
    name_id = subject.find(_q1("NameIdentifier")) if subject is not None else None
    if name_id is not None:
        rows.append(("subject", text_of(name_id).strip()))
        rows.append(("subject format", _dash(name_id.get("Format"))))
    else:
        rows.append(("subject", "-"))
    methods = _texts(subject, _q1("SubjectConfirmation", "ConfirmationMethod")) if subject is not None else []
    rows += [("confirmation", method) for method in methods] or [("confirmation", "-")]
    audiences = _texts(assertion, _q1("Conditions", "AudienceRestrictionCondition", "Audience"))
    rows += [("audience", audience) for audience in audiences] or [("audience", "-")]
    conditions = assertion.find(_q1("Conditions"))
    rows.append(("not before", _dash(conditions.get("NotBefore") if conditions is not None else None)))
    rows.append(("not on or after", _dash(conditions.get("NotOnOrAfter") if conditions is not None else None)))
    for statement in assertion.findall(_q1("AuthenticationStatement")):
        rows.append(("authn method", _dash(statement.get("AuthenticationMethod"))))
        rows.append(("authn instant", _dash(statement.get("AuthenticationInstant"))))
    for attribute in assertion.findall(_q1("AttributeStatement", "Attribute")):
        name = f"{attribute.get('AttributeNamespace', '')}/{attribute.get('AttributeName', '')}"
        rows += _attribute_rows(name, _texts(attribute, _q1("AttributeValue")))
    return rows


__all__: Sequence[str] = [
    "BuiltRequest",
    "RequestOptions",
    "build_request",
    "find_fault",
    "find_issued_token",
    "register",
    "send",
]
