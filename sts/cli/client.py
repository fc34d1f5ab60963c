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
import sys
from collections.abc import Sequence
from pathlib import Path

from sts import ns
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
from sts.cli.rst_builder import SOAP_VERSIONS, TOKEN_TYPES, TRUST_VERSIONS, BuiltRequest, RequestOptions, build_request
from sts.crypto.keystore import fingerprint
from sts.crypto.verifier import SignatureRejected
from sts.xmlutil import serialize


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


# --- handlers ------------------------------------------------------------------------------------------------------


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
    root = parse_answer(answer)
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
    print(issued.describe(args.out), file=sys.stderr)
    return 0


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
    "RequestOptions",
    "build_request",
    "find_fault",
    "find_issued_token",
    "register",
    "send",
]
