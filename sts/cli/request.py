"""``sts request`` and ``sts token inspect``: the sample client (replaces WSO2's sample STS client).

``sts request URL --username U --applies-to ADDR`` sends a WS-Trust Issue request with a UsernameToken
(PasswordText, or PasswordDigest with ``--digest``) over HTTPS and prints the issued token; the password comes
from stdin (``--password-stdin``) or a prompt, never from the command line. TLS certificates are always verified
(``--cafile`` or the system trust store); plain ``http://`` is only allowed to a loopback address.

Holder-of-key: ``--key-type symmetric`` (``--key-size BITS``; ``--entropy`` sends 32 bytes of client entropy and
asks for a PSHA1 computed key) or ``--key-type public --use-key CERT.pem``; ``--proof-key-out FILE`` writes the
symmetric proof key (raw bytes, mode 0600). ``--renewable`` / ``--renewable-after-expiry`` ask for a renewable token.
Exit codes: 0 token received, 1 HTTP/TLS/usage error, 2 SOAP fault.

``sts token inspect FILE`` decrypts (``--rp-key``) and verifies (``--sts-cert``, else the instance's signing
certificate) a token or a whole response, then shows what the *signed* assertion says. Exit 1 if the signature
is invalid.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from sts import ns
from sts.cli import rst_builder
from sts.cli.common import CommandError, SubParsers, read_secret, settings_from
from sts.cli.http_post import (
    DEFAULT_TIMEOUT,
    check_url,
    clean,
    find_fault,
    find_issued_token,
    parse_answer,
    send,
)
from sts.cli.inspect_token import assertion_table, load_sts_certificate, load_token, verify_assertion
from sts.cli.rst_builder import (
    KEY_TYPES,
    SOAP_VERSIONS,
    TOKEN_TYPES,
    TRUST_VERSIONS,
    BuiltRequest,
    RequestOptions,
    build_request,
)
from sts.crypto.keygen import certificate_der
from sts.crypto.keystore import fingerprint
from sts.crypto.verifier import SignatureRejected
from sts.wstrust.keys import DEFAULT_KEY_BITS, p_sha1
from sts.xmlutil import element_children, serialize, text_of

MAX_PROOF_KEY_BITS = 4096


def register(commands: SubParsers) -> None:
    """Add the ``request`` and ``token`` commands."""
    _register_request(commands)
    _register_token(commands)


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    """URL, authentication and transport options shared by ``request``, ``validate``, ``renew`` and ``cancel``."""
    parser.add_argument("url", metavar="URL", help="STS endpoint, e.g. https://host:9443/services/wso2carbon-sts")
    parser.add_argument("--username", required=True, help="user name (DOMAIN/NAME for a secondary store)")
    parser.add_argument("--password-stdin", action="store_true", help="read the password from stdin (first line)")
    parser.add_argument("--cafile", type=Path, metavar="FILE", help="CA certificates (PEM) to verify the server with")
    parser.add_argument("--digest", action="store_true", help="send a PasswordDigest instead of PasswordText")
    parser.add_argument("--soap", choices=sorted(SOAP_VERSIONS), default="1.1", help="SOAP version (default 1.1)")
    parser.add_argument("--trust", choices=sorted(TRUST_VERSIONS), default="1.3", help="WS-Trust version (default 1.3)")
    parser.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS", help="network timeout (default 30)"
    )


def _register_request(commands: SubParsers) -> None:
    parser = commands.add_parser(
        "request",
        help="ask an STS for a token (sample WS-Trust client)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_connection_options(parser)
    parser.add_argument("--applies-to", required=True, metavar="ADDR", help="relying-party address (AppliesTo)")
    parser.add_argument(
        "--token-type", choices=sorted(TOKEN_TYPES), help="token type to ask for (default: the RP's configured type)"
    )
    parser.add_argument("--claim", action="append", default=[], metavar="URI", help="claim to request (repeatable)")
    parser.add_argument(
        "--claims-dialect", default=ns.WSO2_CLAIMS, metavar="URI", help=f"claims dialect (default {ns.WSO2_CLAIMS})"
    )
    parser.add_argument("--out", type=Path, metavar="FILE", help="write the token here instead of to stdout")
    hok = parser.add_argument_group("holder-of-key and renewal")
    hok.add_argument("--key-type", choices=list(KEY_TYPES), default="bearer", help="key type (default bearer)")
    hok.add_argument("--key-size", type=int, metavar="BITS", help="proof-key size (symmetric; default: the STS's)")
    hok.add_argument(
        "--entropy", action="store_true", help="send client entropy and ask for a PSHA1 computed key (symmetric)"
    )
    hok.add_argument("--use-key", type=Path, metavar="CERT", help="certificate (PEM/DER) to bind the token to (public)")
    hok.add_argument(
        "--proof-key-out", type=Path, metavar="FILE", help="write the proof key (raw bytes, mode 0600) here (symmetric)"
    )
    hok.add_argument("--renewable", action="store_true", help='ask for a renewable token (Renewing Allow="true")')
    hok.add_argument(
        "--renewable-after-expiry", action="store_true", help='renewable also after expiry (Renewing OK="true")'
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


# --- shared by request, validate, renew and cancel ------------------------------------------------------------------


def check_connection(args: argparse.Namespace) -> None:
    """Refuse a bad URL or timeout before the password is asked for."""
    check_url(args.url)
    if args.timeout <= 0:
        raise CommandError("--timeout must be positive")


def exchange(args: argparse.Namespace, request: BuiltRequest) -> etree._Element | None:
    """POST the request; the parsed answer, or None after printing a SOAP fault (the caller exits 2)."""
    answer = send(args.url, request, cafile=args.cafile, timeout=args.timeout)
    root = parse_answer(answer)
    fault = find_fault(root) if root is not None else None
    if fault is not None:
        print(f"sts: fault: {fault.describe()}", file=sys.stderr)
        return None
    if answer.status != 200 or root is None:
        raise CommandError(f"HTTP {answer.status} {clean(answer.reason)} from {args.url}")
    return root


@dataclass(frozen=True, slots=True)
class ProofKey:
    """The symmetric proof key of an RSTR, and whether it was computed (PSHA1) or sent as a BinarySecret."""

    key: bytes = field(repr=False)
    computed: bool

    def describe(self) -> str:
        """Size and origin, never the key."""
        return f"{len(self.key) * 8} bits ({'computed with PSHA1' if self.computed else 'BinarySecret'})"


def proof_key_of(token: etree._Element, client_entropy: bytes | None, requested_bits: int | None) -> ProofKey | None:
    """The proof key of the RSTR that holds ``token``: ``RequestedProofToken/BinarySecret``, or
    P_SHA1(client entropy, issuer ``Entropy/BinarySecret``) truncated to ``KeySize`` when it is a ``ComputedKey``."""
    holder = token.getparent()
    rstr = holder.getparent() if holder is not None else None
    if rstr is None:
        return None
    trust_ns = etree.QName(rstr).namespace or ""
    proof = rstr.find(ns.qn(trust_ns, "RequestedProofToken"))
    if proof is None:
        return None
    children = element_children(proof)
    if len(children) != 1:
        raise CommandError("RequestedProofToken must hold exactly one element")
    content = children[0]
    if content.tag == ns.qn(trust_ns, "BinarySecret"):
        return ProofKey(_base64_value(content, "the proof-key BinarySecret"), computed=False)
    if content.tag == ns.qn(ns.XENC, "EncryptedKey"):
        raise CommandError("the proof key is encrypted (xenc:EncryptedKey): this client cannot decrypt it")
    if content.tag != ns.qn(trust_ns, "ComputedKey"):
        raise CommandError(f"unsupported RequestedProofToken content {clean(etree.QName(content).localname)}")
    algorithm = " ".join(text_of(content).split())
    if algorithm != f"{trust_ns}/CK/PSHA1":
        raise CommandError(f"unsupported ComputedKey algorithm {clean(algorithm)}")
    if client_entropy is None:
        raise CommandError("the STS returned a computed key, but this request sent no client entropy")
    issuer = rstr.find(f"{ns.qn(trust_ns, 'Entropy')}/{ns.qn(trust_ns, 'BinarySecret')}")
    if issuer is None:
        raise CommandError("the response has a ComputedKey but no Entropy/BinarySecret")
    issuer_entropy = _base64_value(issuer, "the issuer entropy")
    bits = _returned_key_bits(rstr, trust_ns, requested_bits)
    return ProofKey(p_sha1(client_entropy, issuer_entropy, bits // 8), computed=True)


def _base64_value(element: etree._Element, label: str) -> bytes:
    try:
        value = base64.b64decode("".join(text_of(element).split()), validate=True)
    except (binascii.Error, ValueError):
        raise CommandError(f"{label} is not base64") from None
    if not value:
        raise CommandError(f"{label} is empty")
    return value


def _returned_key_bits(rstr: etree._Element, trust_ns: str, requested_bits: int | None) -> int:
    """The RSTR's KeySize; without one, the size asked for, else the usual default (256, as CXF's client)."""
    size = rstr.find(ns.qn(trust_ns, "KeySize"))
    if size is None:
        return requested_bits if requested_bits is not None else DEFAULT_KEY_BITS
    text = text_of(size).strip()
    if not text.isdigit() or len(text) > 5 or not 0 < int(text) <= MAX_PROOF_KEY_BITS or int(text) % 8:
        raise CommandError(f"unusable KeySize in the response: {clean(text[:20])}")
    return int(text)


def write_secret_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` with mode 0600 (also when the file existed); never through a symbolic link."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, 0o600)
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(data)
    except OSError as exc:
        raise CommandError(f"cannot write {path}: {exc.strerror or exc}") from None


def emit_issued(
    root: etree._Element,
    *,
    out: Path | None,
    proof_key_out: Path | None,
    client_entropy: bytes | None = None,
    requested_bits: int | None = None,
) -> int:
    """Print or write the token of an Issue/Renew answer (and its proof key); the description goes to stderr."""
    issued = find_issued_token(root)
    if issued is None:
        raise CommandError("the response holds no RequestedSecurityToken")
    try:
        proof = proof_key_of(issued.token, client_entropy, requested_bits)
        proof_note = ""
    except CommandError as exc:
        if proof_key_out is not None:
            raise
        proof, proof_note = None, f"proof key:  unusable ({exc})"
    if proof_key_out is not None and proof is None:
        raise CommandError("the response holds no RequestedProofToken: no proof key to write")
    token_bytes = serialize(issued.token)
    if out is not None:
        try:
            out.write_bytes(token_bytes)
        except OSError as exc:
            raise CommandError(f"cannot write {out}: {exc.strerror or exc}") from None
    else:
        sys.stdout.write(token_bytes.decode("ascii") + "\n")
        sys.stdout.flush()
    if proof is not None:
        if proof_key_out is not None:
            write_secret_file(proof_key_out, proof.key)
            proof_note = f"proof key:  {proof.describe()}, written to {proof_key_out}"
        else:
            proof_note = f"proof key:  {proof.describe()}, not saved (use --proof-key-out FILE)"
    lines = [issued.describe(out)]
    token_id = _referenced_id(issued.token)
    if token_id:
        lines.append(f"token id:   {clean(token_id)} (for --id)")
    if proof_note:
        lines.append(proof_note)
    print("\n".join(lines), file=sys.stderr)
    return 0


def _referenced_id(token: etree._Element) -> str:
    """The token's ID from the RSTR's RequestedAttachedReference (the only place it shows for an encrypted token)."""
    holder = token.getparent()
    rstr = holder.getparent() if holder is not None else None
    if rstr is None:
        return ""
    trust_ns = etree.QName(rstr).namespace or ""
    path = f"{ns.qn(trust_ns, 'RequestedAttachedReference')}/{ns.qn(ns.WSSE, 'SecurityTokenReference')}"
    identifier = rstr.find(f"{path}/{ns.qn(ns.WSSE, 'KeyIdentifier')}")
    return text_of(identifier).strip()[:256] if identifier is not None else ""


# --- handlers ------------------------------------------------------------------------------------------------------


def _check_holder_of_key(args: argparse.Namespace) -> None:
    if args.key_type != "symmetric":
        for option, given in (
            ("--key-size", args.key_size is not None),
            ("--entropy", args.entropy),
            ("--proof-key-out", args.proof_key_out is not None),
        ):
            if given:
                raise CommandError(f"{option} needs --key-type symmetric")
    if args.key_type == "public" and args.use_key is None:
        raise CommandError("--key-type public needs --use-key CERT.pem")
    if args.key_type != "public" and args.use_key is not None:
        raise CommandError("--use-key needs --key-type public")
    if args.key_size is not None and (not 0 < args.key_size <= MAX_PROOF_KEY_BITS or args.key_size % 8):
        raise CommandError(f"--key-size must be a multiple of 8 between 8 and {MAX_PROOF_KEY_BITS}")


def _request(args: argparse.Namespace) -> int:
    _check_holder_of_key(args)
    check_connection(args)
    if not args.applies_to.strip():
        raise CommandError("--applies-to must not be empty")
    use_key = None
    if args.use_key is not None:
        use_key = certificate_der(load_sts_certificate(args.use_key))
    entropy = rst_builder.client_entropy() if args.entropy else None  # looked up at call time: a test hook
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
        key_type=args.key_type,
        key_size=args.key_size,
        entropy=entropy,
        use_key=use_key,
        renewable=args.renewable,
        renewable_after_expiry=args.renewable_after_expiry,
    )
    password = read_secret(f"Password for {options.username}: ", args.password_stdin)
    root = exchange(args, build_request(options, password))
    if root is None:
        return 2
    return emit_issued(
        root, out=args.out, proof_key_out=args.proof_key_out, client_entropy=entropy, requested_bits=args.key_size
    )


def _inspect(args: argparse.Namespace) -> int:
    token, encrypted = load_token(args.file, args.rp_key)
    sts_cert: Path = args.sts_cert if args.sts_cert is not None else settings_from(args).issuer.signing_cert
    cert = load_sts_certificate(sts_cert)
    print(f"encrypted: {'yes (decrypted with ' + str(args.rp_key) + ')' if encrypted else 'no'}")
    try:
        signed = verify_assertion(token, cert)
    except SignatureRejected as exc:
        print(f"signature: INVALID ({exc})")
        return 1
    print(f"signature: valid (pinned STS certificate {fingerprint(cert)})")
    for line in assertion_table(signed):
        print(line)
    return 0


# The request building and HTTP names are re-exported: they used to live in this module.
__all__: Sequence[str] = [
    "BuiltRequest",
    "ProofKey",
    "RequestOptions",
    "add_connection_options",
    "build_request",
    "check_connection",
    "emit_issued",
    "exchange",
    "find_fault",
    "find_issued_token",
    "proof_key_of",
    "register",
    "send",
    "write_secret_file",
]
