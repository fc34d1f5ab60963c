"""``sts request``: ask an STS for a token with :func:`sts.client.request_token` and print or write it."""

from __future__ import annotations

import argparse
from pathlib import Path

from sts import ns
from sts.cli.common import (
    CommandError,
    SubParsers,
    add_connection_options,
    connection_from,
    emit_issued,
    read_password,
)
from sts.client import (
    IssueOptions,
    PublicKey,
    SymmetricKey,
    load_certificate_file,
    new_client_entropy,
    request_token,
)
from sts.client.options import MAX_PROOF_KEY_BITS
from sts.client.tokenfile import read_delegation_token
from sts.wstrust.model import Renewing
from sts.wstrust.tokentypes import SamlVersion

KEY_TYPES = ("bearer", "symmetric", "public")
DESCRIPTION = """\
``sts request`` and ``sts token inspect``: the sample client (replaces WSO2's sample STS client).

``sts request URL --username U --applies-to ADDR`` sends a WS-Trust Issue request with a UsernameToken
(PasswordText, or PasswordDigest with ``--digest``) over HTTPS and prints the issued token; the password comes
from stdin (``--password-stdin``) or a prompt, never from the command line. TLS certificates are always verified
(``--cafile`` or the system trust store); plain ``http://`` is only allowed to a loopback address.

X.509 clients use ``--cert C.pem --key K.pem`` instead of ``--username`` (the certificate must be registered to a
user with ``sts user add-cert`` or issued by the STS's client CA), with ``--scenario``: ``SigOnly`` (default;
URL ``…/services/wso2carbon-sts/SigOnly``) signs the Timestamp and Body, ``certificatemixed`` also signs ``wsa:To``
(HTTPS), ``certificatetransport`` presents the certificate in the TLS handshake (HTTPS).

Holder-of-key: ``--key-type symmetric`` (``--key-size BITS``; ``--entropy`` sends 32 bytes of client entropy and
asks for a PSHA1 computed key) or ``--key-type public --use-key CERT.pem``; ``--proof-key-out FILE`` writes the
symmetric proof key (raw bytes, mode 0600). ``--renewable`` / ``--renewable-after-expiry`` ask for a renewable token.
Delegation: ``--on-behalf-of TOKEN_FILE`` or ``--act-as TOKEN_FILE`` sends the user's token (as received) and
asks for a token for that user (the relying party must allow this caller to delegate). ``--token TOKEN_FILE``
authenticates with a trusted identity provider's SAML assertion instead of a password (give the URL of the
``/IssuedTokenOverTransport`` endpoint; ``--username`` is then not needed).
Exit codes: 0 token received, 1 HTTP/TLS/usage error, 2 SOAP fault.

``sts token inspect FILE`` decrypts (``--rp-key``) and verifies (``--sts-cert``, else the instance's signing
certificate) a token or a whole response, then shows what the *signed* assertion says. Exit 1 if the signature
is invalid.
"""


def register(commands: SubParsers) -> None:
    """Add the ``request`` command."""
    parser = commands.add_parser(
        "request",
        help="ask an STS for a token (sample WS-Trust client)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_connection_options(parser, token_login=True)
    delegation = parser.add_mutually_exclusive_group()
    delegation.add_argument(
        "--on-behalf-of", type=Path, metavar="TOKEN_FILE", help="ask for a token for the user of this token "
        "(WS-Trust OnBehalfOf: a SAML assertion or a wsse:UsernameToken, sent as it is)"
    )
    delegation.add_argument(
        "--act-as", type=Path, metavar="TOKEN_FILE", help="ask for a token for the user of this token, recording "
        "this caller as acting for it (WS-Trust 1.4 ActAs)"
    )
    parser.add_argument("--applies-to", required=True, metavar="ADDR", help="relying-party address (AppliesTo)")
    parser.add_argument(
        "--token-type",
        choices=sorted(version.value for version in SamlVersion),
        help="token type to ask for (default: the RP's configured type)",
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


def _key(args: argparse.Namespace) -> SymmetricKey | PublicKey | None:
    if args.key_type == "symmetric":
        return SymmetricKey(bits=args.key_size, entropy=new_client_entropy() if args.entropy else None)
    if args.key_type == "public":
        return PublicKey(load_certificate_file(args.use_key))
    return None


def _renewing(args: argparse.Namespace) -> Renewing | None:
    if args.renewable or args.renewable_after_expiry:
        return Renewing(allow=True, ok=args.renewable_after_expiry)
    return None


def _request(args: argparse.Namespace) -> int:
    _check_holder_of_key(args)
    connection = connection_from(args)
    if not args.applies_to.strip():
        raise CommandError("--applies-to must not be empty")
    options = IssueOptions(
        connection,
        applies_to=args.applies_to,
        token_type=SamlVersion(args.token_type) if args.token_type is not None else None,
        claims=tuple(args.claim),
        claims_dialect=args.claims_dialect,
        key=_key(args),
        renewing=_renewing(args),
        on_behalf_of=read_delegation_token(args.on_behalf_of) if args.on_behalf_of is not None else None,
        act_as=read_delegation_token(args.act_as) if args.act_as is not None else None,
    )
    issued = request_token(options, "" if connection.token is not None else read_password(args))
    return emit_issued(issued, out=args.out, proof_key_out=args.proof_key_out)
