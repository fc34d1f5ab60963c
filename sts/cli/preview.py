"""``sts preview --user U --rp R [--claims URI ...]``: what U would receive at R, without issuing anything.

The answer is decided by the code Issue runs (:func:`sts.operations.issue.plan_issue` over the RST parser, the
relying-party directory, the NameID and claims policy, and the token provider's lifetime rule), on the user as the
user store has it now: subject and NameID, the claims after the RP's ceiling and mappings, lifetime, token type,
subject confirmation and encryption. Nothing is signed, recorded or audited, and no password is checked.
"""

from __future__ import annotations

import argparse
from xml.sax.saxutils import escape

from lxml import etree

from sts import ns
from sts.app.callers import auth_policy
from sts.auth.subjects import SubjectAuthorizer
from sts.auth.users import UserStoreError, split_qualified
from sts.cli.common import CommandError, SubParsers, open_stores, settings_from
from sts.errors import STSError
from sts.operations.issue import plan_issue
from sts.operations.minting import MintPlan
from sts.relying_parties.directory import RelyingPartyDirectory
from sts.relying_parties.registry import RelyingPartyRegistry
from sts.tokens.authn import password_context
from sts.tokens.provider import IssuerIdentity, token_lifetime
from sts.wstrust.actions import Operation
from sts.wstrust.rst import parse_rst
from sts.wstrust.tokentypes import KeyKind
from sts.wstrust.version import TrustVersion

KEY_TYPES = {"bearer": "Bearer", "symmetric": "SymmetricKey", "public": "PublicKey"}
IDENTITY_DIALECT = ns.WSID


def register(commands: SubParsers) -> None:
    """Add the ``preview`` command."""
    parser = commands.add_parser(
        "preview", help="show what a user would receive at a relying party", description=__doc__
    )
    parser.add_argument("--user", required=True, metavar="[DOMAIN/]NAME", help="the user")
    parser.add_argument("--rp", required=True, metavar="ADDRESS", help="the AppliesTo address the client would send")
    parser.add_argument("--claims", nargs="+", default=[], metavar="URI", help="claim types the request would ask for")
    parser.add_argument("--token-type", metavar="URI", help="the TokenType the request would ask for")
    parser.add_argument("--key-type", choices=sorted(KEY_TYPES), default="bearer")
    parser.add_argument("--plain-http", action="store_true", help="the request would come over plain HTTP")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Print the preview; exit 2 when the request would be refused (and why): by Issue's plan, or because Issue's
    caller rules refuse the user (domain not allowed, disabled, none of ``[security] allowed_roles``)."""
    settings = settings_from(args)
    try:
        domain, name = split_qualified(args.user)
    except UserStoreError as exc:
        raise CommandError(f"--user: {exc}") from None
    with open_stores(settings) as stores:
        principal = stores.users.lookup(domain, name)
        if principal is None:
            raise CommandError(f"no user {args.user} in the user store of domain {domain}")
        tokens = settings.tokens
        directory = RelyingPartyDirectory(
            RelyingPartyRegistry(stores.relying_parties), settings.store.truststore, tokens.default_relying_party,
            tokens.profile,
        )
        try:
            rst = parse_rst(_rst(args), TrustVersion.TRUST13, Operation.ISSUE)
            party = directory.resolve(rst.applies_to.address if rst.applies_to else None)
            plan = plan_issue(rst, principal, party, password_context(not args.plain_http))
        except STSError as error:
            _refused(error)
            return 2
        try:  # the rules a caller of Issue must pass, as Renew and delegation check a subject again
            SubjectAuthorizer(stores.users, auth_policy(settings)).authorize(principal.qualified_name)
            refusal: STSError | None = None
        except STSError as error:
            refusal = error
    identity = IssuerIdentity(settings.issuer.name, tokens.lifetime, tokens.max_lifetime, tokens.clock_skew)
    allowed = frozenset(settings.security.allowed_roles)
    _print(plan, token_lifetime(identity, party.rp.lifetime), principal.holds_any_role(allowed))
    if refusal is not None:
        _refused(refusal)
        return 2
    return 0


def _refused(error: STSError) -> None:
    print(f"refused: {error.fault_qname()[1]} (reason code: {error.reason}): {error.detail}")


def _rst(args: argparse.Namespace) -> etree._Element:
    """The RST a client would send (parsed by the server's own parser)."""
    wst = ns.WST
    claims = "".join(f'<ic:ClaimType xmlns:ic="{IDENTITY_DIALECT}" Uri="{escape(uri)}"/>' for uri in args.claims)
    token_type = f"<wst:TokenType>{escape(args.token_type)}</wst:TokenType>" if args.token_type else ""
    text = (
        f'<wst:RequestSecurityToken xmlns:wst="{wst}">{token_type}<wst:RequestType>{wst}/Issue</wst:RequestType>'
        f'<wsp:AppliesTo xmlns:wsp="{ns.WSP}"><wsa:EndpointReference xmlns:wsa="{ns.WSA}"><wsa:Address>'
        f"{escape(args.rp)}</wsa:Address></wsa:EndpointReference></wsp:AppliesTo>"
        f"<wst:KeyType>{wst}/{KEY_TYPES[args.key_type]}</wst:KeyType>"
        + (f'<wst:Claims Dialect="{IDENTITY_DIALECT}">{claims}</wst:Claims>' if claims else "")
        + "</wst:RequestSecurityToken>"
    )
    return etree.fromstring(text.encode())  # noqa: S320 - built here from escaped values, not untrusted input


def _print(plan: MintPlan, lifetime: int, role_ok: bool) -> None:
    party = plan.party
    rows = [
        ("relying party", party.rp.address + (" (default_relying_party: no match)" if party.fallback else "")),
        ("audience", party.audience),
        ("token type", plan.token_type.uri),
        ("subject", plan.subject),
        ("NameID", f"{plan.name_id}  (Format {plan.name_id_format})"),
        ("lifetime", f"{lifetime} s"),
        ("confirmation", _confirmation(plan)),
        ("encryption", _encryption(plan)),
        ("allowed role", "yes" if role_ok else "NO: the user holds none of [security] allowed_roles"),
    ]
    for label, text in rows:
        print(f"{label + ':':<15}{text}")
    print("claims:" if plan.attributes else "claims:        none")
    for attribute in plan.attributes:
        print(f"  {attribute.uri} = {', '.join(attribute.values)}")


def _confirmation(plan: MintPlan) -> str:
    if plan.key_kind is KeyKind.BEARER:
        return "bearer"
    if plan.key_kind is KeyKind.PUBLIC:
        return "holder-of-key: the client's public key (UseKey)"
    return "holder-of-key: a symmetric proof key wrapped for the relying party's certificate"


def _encryption(plan: MintPlan) -> str:
    party = plan.party
    if not party.rp.encrypt:
        return "none (signed only)"
    subject = party.certificate.subject.rfc4514_string() if party.certificate is not None else "no certificate!"
    return f"{party.settings.cipher} + {party.settings.key_transport} for {subject}"
