"""``sts validate``, ``sts renew`` and ``sts cancel``: the sample client's Validate, Renew and Cancel requests.

The token is named either inline (``--token FILE``: the file ``sts request --out`` wrote; its first element, a
``saml2:Assertion``, ``saml:Assertion``, ``saml2:EncryptedAssertion`` or ``xenc:EncryptedData``, is sent as is) or
by its ID (``--id ID``: a ``wsse:SecurityTokenReference`` with a SAML ``KeyIdentifier``; ``--token-type`` saml20 or
saml11). Authentication and transport are those of ``sts request`` (UsernameToken, verified TLS).

``validate`` prints ``status: valid`` or ``status: invalid`` and the STS's reason; ``renew`` prints or writes the new
token like ``sts request`` (``--out``, ``--proof-key-out``); ``cancel`` prints ``cancelled``.
Exit codes: 0 valid / renewed / cancelled, 1 HTTP/TLS/usage error, 2 SOAP fault, 3 (validate) the token is invalid.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lxml import etree

from sts import ns
from sts.cli.client import add_connection_options, check_connection, emit_issued, exchange
from sts.cli.common import CommandError, SubParsers, read_secret
from sts.cli.http_post import clean
from sts.cli.inspect_token import read_token_file
from sts.cli.rst_builder import (
    REFERENCE_TYPES,
    TARGET_TOKENS,
    TRUST_VERSIONS,
    LifecycleOptions,
    build_lifecycle_request,
    token_reference,
)
from sts.xmlutil import text_of

EXIT_INVALID = 3
_COMMANDS = {
    "validate": ("Validate", "ask the STS whether a token is valid"),
    "renew": ("Renew", "ask the STS to renew a token (a new token with a new validity window)"),
    "cancel": ("Cancel", "ask the STS to cancel a token"),
}


def register(commands: SubParsers) -> None:
    """Add the ``validate``, ``renew`` and ``cancel`` commands."""
    for name, (operation, summary) in _COMMANDS.items():
        parser = commands.add_parser(
            name, help=summary, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
        )
        add_connection_options(parser)
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--token", type=Path, metavar="FILE", help="token file, as written by sts request --out")
        target.add_argument("--id", metavar="ID", help="ID of the token (SAML 2.0 ID, SAML 1.1 AssertionID)")
        parser.add_argument(
            "--token-type",
            choices=sorted(REFERENCE_TYPES),
            help="with --id: the kind of token the ID names (default saml20)",
        )
        if name == "renew":
            parser.add_argument("--out", type=Path, metavar="FILE", help="write the new token here, not to stdout")
            parser.add_argument(
                "--proof-key-out", type=Path, metavar="FILE", help="write the new proof key (raw bytes, mode 0600) here"
            )
        parser.set_defaults(handler=_HANDLERS[name], operation=operation)


def read_target_token(path: Path) -> etree._Element:
    """The token stored in ``path``: its first element, which must be an assertion or an encrypted one."""
    root = read_token_file(path)
    if root.tag not in TARGET_TOKENS:
        raise CommandError(
            f"{path}: the first element is {clean(etree.QName(root).localname)}, "
            "not an Assertion, EncryptedAssertion or EncryptedData"
        )
    return root


def _send(args: argparse.Namespace) -> etree._Element | None:
    """Build and send the request; the parsed answer, or None after a SOAP fault."""
    check_connection(args)
    if args.token_type is not None and args.id is None:
        raise CommandError("--token-type goes with --id (an inline token says what it is)")
    token_type = args.token_type or "saml20"
    token = read_target_token(args.token) if args.token is not None else None
    if args.id is not None:
        token_reference(args.id, token_type)  # refuse a bad ID before asking for the password
    options = LifecycleOptions(
        url=args.url,
        username=args.username,
        operation=args.operation,
        token=token,
        token_id=args.id,
        token_type=token_type,
        digest=args.digest,
        soap=args.soap,
        trust=args.trust,
    )
    password = read_secret(f"Password for {options.username}: ", args.password_stdin)
    return exchange(args, build_lifecycle_request(options, password))


def _response(root: etree._Element, trust: str) -> tuple[etree._Element, str]:
    """The RSTR of the answer, in the request's trust namespace (a bare RSTR; an RSTRC wrapper is tolerated)."""
    trust_ns = TRUST_VERSIONS[trust]
    rstr = next(root.iter(ns.qn(trust_ns, "RequestSecurityTokenResponse")), None)
    if rstr is None:
        raise CommandError("the response holds no RequestSecurityTokenResponse in the request's trust namespace")
    return rstr, trust_ns


def _child_text(parent: etree._Element | None, namespace: str, local: str) -> str:
    child = parent.find(ns.qn(namespace, local)) if parent is not None else None
    return text_of(child) if child is not None else ""


def _validate(args: argparse.Namespace) -> int:
    root = _send(args)
    if root is None:
        return 2
    rstr, trust_ns = _response(root, args.trust)
    status = rstr.find(ns.qn(trust_ns, "Status"))
    code = " ".join(_child_text(status, trust_ns, "Code").split())
    reason = _child_text(status, trust_ns, "Reason").strip()
    if code == f"{trust_ns}/status/valid":
        result = 0
        print("status: valid")
    elif code == f"{trust_ns}/status/invalid":
        result = EXIT_INVALID
        print("status: invalid")
    else:
        raise CommandError(f"the response has no known Status/Code: {clean(code[:200]) or '(none)'}")
    print(f"reason: {clean(reason) or '-'}")
    return result


def _renew(args: argparse.Namespace) -> int:
    root = _send(args)
    if root is None:
        return 2
    _response(root, args.trust)
    return emit_issued(root, out=args.out, proof_key_out=args.proof_key_out)


def _cancel(args: argparse.Namespace) -> int:
    root = _send(args)
    if root is None:
        return 2
    rstr, trust_ns = _response(root, args.trust)
    if rstr.find(ns.qn(trust_ns, "RequestedTokenCancelled")) is None:
        raise CommandError("the response does not confirm the cancellation (no RequestedTokenCancelled)")
    print("cancelled")
    sys.stdout.flush()
    return 0


_HANDLERS = {"validate": _validate, "renew": _renew, "cancel": _cancel}

__all__ = ["EXIT_INVALID", "read_target_token", "register"]
