"""``sts rp ...``: register the relying parties tokens are issued for (WSO2's "service providers" with WS-Trust).

A relying party is an endpoint address (``--match exact``, the default), an address prefix ending in ``/``
(``--match prefix``) or an anchored regular expression (``--match regex``), compared with the AppliesTo of a
request after one documented normalisation (lower-case scheme and host, default port dropped).
Tokens for it are encrypted with its certificate, which ``add`` checks (RSA >= 2048 bits, currently valid, an
end-entity certificate whose KeyUsage, if any, allows keyEncipherment) and
copies into the instance truststore, or with ``[store] backend = "postgresql"`` stores in the shared database
(every node reads it there). Token type, NameID and encryption not given here come from the relying
party's compatibility profile (``--profile``, else ``[tokens] profile``): strict, wso2, adfs or cxf.
``--nameid`` takes the user name, the e-mail claim or any claim URI of the user (e.g. an immutable ID for
Office 365), ``--nameid-format`` the Format written with it.
Data ciphers: aes256-gcm, aes128-gcm, aes256-cbc (.NET Framework / WIF relying parties only, the adfs
profile's choice); key transport: rsa-oaep-mgf1p or rsa-oaep. RSA 1.5 and 3DES do not exist.
``--claim-map LOCAL=REMOTE`` issues the local claim LOCAL under the URI REMOTE the relying party expects.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from sts.cli.common import CommandError, SubParsers, open_stores, settings_from
from sts.cli.rp_support import changes_from, read_certificate, warn
from sts.config.settings import PROFILE_NAMES, Settings
from sts.crypto.algorithms import CIPHER_NAMES, KEY_TRANSPORT_NAMES, CipherName
from sts.crypto.keystore import fingerprint
from sts.policy.claims import local_claim
from sts.relying_parties import registration
from sts.relying_parties.delegation import DelegationMode
from sts.relying_parties.model import MAX_LIFETIME, NAMEID_SOURCES, Match, RelyingParty, RelyingPartyError, TokenFormat
from sts.relying_parties.profiles import EffectiveSettings
from sts.relying_parties.registry import RelyingPartyRegistry

LEGACY_CIPHER = CipherName.AES256_CBC


def register(commands: SubParsers) -> None:
    """Add the ``rp`` command group."""
    rp = commands.add_parser("rp", help="manage relying parties", description=__doc__)
    sub = rp.add_subparsers(dest="rp_command", metavar="ACTION", required=True)

    add = sub.add_parser("add", help="register a relying party", description="Register a relying party.")
    add.add_argument("address", metavar="ADDRESS", help="endpoint address (or prefix / regular expression)")
    add.add_argument("--cert", type=Path, metavar="FILE", help="its certificate, PEM or DER (required to encrypt)")
    add.add_argument(
        "--no-encrypt", dest="encrypt", action="store_const", const=False, help="issue unencrypted tokens"
    )
    add.add_argument(
        "--no-applies-to-in-response",
        dest="applies_to_in_response",
        action="store_const",
        const=False,
        help="leave wsp:AppliesTo out of the response",
    )
    _options(add, update=False)
    add.set_defaults(handler=_add)

    sub.add_parser(
        "list", help="list relying parties", description="One line per relying party, with effective settings."
    ).set_defaults(handler=_list)

    show = sub.add_parser(
        "show", help="show a relying party", description="Every setting (stored and effective) and the certificate."
    )
    show.add_argument("address", metavar="ADDRESS", help="the registered address")
    show.set_defaults(handler=_show)

    update = sub.add_parser(
        "update", help="change a relying party", description="Change the given settings; the others are kept."
    )
    update.add_argument("address", metavar="ADDRESS", help="the registered address")
    update.add_argument("--cert", type=Path, metavar="FILE", help="replace its certificate (PEM or DER)")
    update.add_argument(
        "--encrypt", action=argparse.BooleanOptionalAction, default=None, help="encrypt tokens (or not)"
    )
    update.add_argument(
        "--applies-to-in-response",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="echo wsp:AppliesTo in the response (or not)",
    )
    _options(update, update=True)
    update.add_argument("--clear-claims", action="store_true", help="request no claims")
    update.add_argument("--clear-claim-maps", action="store_true", help="drop every claim mapping")
    _delegation_options(update)
    update.set_defaults(handler=_update)

    remove = sub.add_parser(
        "remove", help="unregister a relying party", description="Unregister a relying party and drop its certificate."
    )
    remove.add_argument("address", metavar="ADDRESS", help="the registered address")
    remove.set_defaults(handler=_remove)


def _options(parser: argparse.ArgumentParser, *, update: bool) -> None:
    """The settings shared by ``add`` and ``update`` (values are checked by the handlers: errors exit 1)."""
    from_profile = "; '' returns to the profile's" if update else " (default: from the profile)"
    parser.add_argument(
        "--match",
        metavar="|".join(Match),
        help="how ADDRESS is compared; prefixes must end with '/', regexes are anchored"
        + ("" if update else " (default: exact)"),
    )
    parser.add_argument(
        "--token-type",
        metavar="|".join(sorted(TokenFormat)),
        help="SAML version of tokens when a request names none" + from_profile,
    )
    parser.add_argument(
        "--identifier",
        metavar="URI",
        help="Audience/Recipient written into tokens; required with --match regex"
        + ("; '' clears it" if update else " (default: the registered address)"),
    )
    kt_default = "keeps the current KEYTRANSPORT" if update else "leaves KEYTRANSPORT to the profile"
    parser.add_argument(
        "--encryption",
        metavar="CIPHER[,KEYTRANSPORT]",
        help=f"CIPHER: {', '.join(CIPHER_NAMES)}; KEYTRANSPORT: {', '.join(KEY_TRANSPORT_NAMES)}; "
        f"CIPHER alone {kt_default}" + from_profile,
    )
    parser.add_argument(
        "--claim",
        action="append",
        metavar="URI",
        help="claim to include (repeatable)" + ("; replaces the current list" if update else ""),
    )
    parser.add_argument(
        "--claim-map",
        action="append",
        metavar="LOCAL=REMOTE",
        help="issue local claim LOCAL under the URI REMOTE the relying party expects (repeatable)"
        + ("; replaces the current mappings" if update else ""),
    )
    parser.add_argument(
        "--lifetime",
        metavar="SECONDS",
        help=f"token lifetime, 1..{MAX_LIFETIME} (0: the [tokens] default)" + ("" if update else " (default: 0)"),
    )
    parser.add_argument(
        "--nameid",
        metavar="|".join(NAMEID_SOURCES) + "|CLAIM_URI",
        help="what the subject NameID carries: the user name, the e-mail claim or any claim of the user"
        + from_profile,
    )
    parser.add_argument(
        "--nameid-format",
        metavar="URI",
        help="the NameID Format, e.g. urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
        + ("; '' returns to the default" if update else "")
        + " (default: emailAddress for email, else unspecified)",
    )
    parser.add_argument(
        "--profile",
        metavar="|".join(PROFILE_NAMES),
        help="compatibility profile: the defaults of token type, NameID and encryption"
        + ("; '' returns to the [tokens] profile" if update else " (default: the [tokens] profile)"),
    )


def _delegation_options(parser: argparse.ArgumentParser) -> None:
    """Delegation (OnBehalfOf / ActAs) and Validate with transformation: deny by default."""
    parser.add_argument(
        "--allow-delegation",
        action="append",
        metavar="CALLER",
        help="a caller that may ask for tokens for this RP on behalf of other users: a user name (DOMAIN/name), "
        "role:NAME or cert:SHA256-FINGERPRINT (repeatable; added to the current list)",
    )
    parser.add_argument("--clear-delegation", action="store_true", help="allow no caller to delegate (the default)")
    parser.add_argument(
        "--delegation-mode", choices=[mode.value for mode in DelegationMode], help="OnBehalfOf, ActAs or both"
    )
    parser.add_argument(
        "--delegation-subjects",
        metavar="any|same-domain|role:NAME",
        help="which users may be delegated: any, those of the caller's domain (default) or holders of a role",
    )
    parser.add_argument(
        "--max-delegation-depth", type=int, metavar="N", help="longest ActAs chain of services (default 1)"
    )
    parser.add_argument(
        "--delegation-audience",
        action="append",
        metavar="URI",
        help="a delegated token must be addressed to one of these (repeatable; replaces; '' clears)",
    )
    parser.add_argument(
        "--allow-transformation-from",
        action="append",
        metavar="SOURCE",
        help="Validate may exchange a valid token of SOURCE for a token for this RP: self (tokens of this STS) or "
        "a [[trusted_issuers]] entity id (repeatable; added to the current list)",
    )
    parser.add_argument(
        "--clear-transformation", action="store_true", help="exchange no tokens for this RP's (the default)"
    )


def _delegation_changes(args: argparse.Namespace, current: RelyingParty) -> dict[str, Any]:
    """The delegation settings given; values are normalised and checked by the registry."""
    given: dict[str, Any] = {}
    if args.clear_delegation or args.allow_delegation:
        kept = () if args.clear_delegation else current.delegation_callers
        given["delegation_callers"] = (*kept, *(args.allow_delegation or ()))
    if args.delegation_mode is not None:
        given["delegation_mode"] = args.delegation_mode
    if args.delegation_subjects is not None:
        given["delegation_subjects"] = args.delegation_subjects
    if args.max_delegation_depth is not None:
        given["max_delegation_depth"] = args.max_delegation_depth
    if args.delegation_audience is not None:
        given["delegation_audiences"] = tuple(uri.strip() for uri in args.delegation_audience if uri.strip())
    if args.clear_transformation or args.allow_transformation_from:
        kept = () if args.clear_transformation else current.transform_from
        given["transform_from"] = (*kept, *(args.allow_transformation_from or ()))
    return given


# --- handlers -------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _refusals() -> Iterator[None]:
    """Refusals of the relying-party package as command errors (exit 1)."""
    try:
        yield
    except RelyingPartyError as exc:
        raise CommandError(str(exc)) from None


def _in_database(settings: Settings) -> bool:
    """Certificates go into the registry itself when the store is shared by several nodes (PostgreSQL)."""
    return settings.store.backend == "postgresql"


@contextlib.contextmanager
def _registry(settings: Settings) -> Iterator[RelyingPartyRegistry]:
    """The instance's registry for one command; its refusals become command errors."""
    with open_stores(settings) as stores, _refusals():
        yield RelyingPartyRegistry(stores.relying_parties)


def _add(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    rp = replace(RelyingParty(address=args.address), **changes_from(args))
    if rp.encrypt and args.cert is None:
        raise CommandError("--cert is required unless --no-encrypt")
    cert = read_certificate(args.cert) if args.cert is not None else None
    with _refusals():
        registration.checked(rp, cert)  # a refused setting is reported before the database is looked at
    with _registry(settings) as registry:
        done = registration.register(
            registry, settings.store.truststore, rp, cert, settings.tokens.profile, in_database=_in_database(settings)
        )
    print(f"registered relying party {done.rp.address} ({_summary(done.rp, done.settings)})")
    if cert is not None:
        print(f"  certificate: {_where(done)}  SHA-256 {fingerprint(cert)}")
    _warn_about(done.rp, done.settings, cipher_given=True, profile_given=True, claims_given=True)
    return 0


def _list(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    with _registry(settings) as registry:
        parties = registration.overview(registry, settings.tokens.profile)
    for rp, settled in parties:
        encrypt = "encrypt: yes" if rp.encrypt else "encrypt: no"
        cipher = f"{settled.cipher},{settled.key_transport}" if rp.encrypt else "-"
        print("\t".join((rp.address, rp.match, settled.token_type, encrypt, cipher, f"profile: {settled.profile}")))
    return 0


def _show(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    with _registry(settings) as registry:
        shown = registration.describe(
            registry, settings.store.truststore, args.address, settings.tokens.profile, dt.datetime.now(dt.UTC)
        )
    rp, settled = shown.rp, shown.settings

    def origin(stored: str | None) -> str:
        """Where an effective value comes from: this relying party's own setting or its profile."""
        return "(set)" if stored else f"(from profile {settled.profile})"

    print(f"address:                {rp.address}")
    print(f"match:                  {rp.match}")
    print(f"identifier:             {rp.identifier or '(the address)'}")
    print(f"token type:             {settled.token_type} {origin(rp.token_type)}")
    print(f"encrypt:                {'yes' if rp.encrypt else 'no'}")
    print(f"cipher:                 {settled.cipher} {origin(rp.cipher)}")
    print(f"key transport:          {settled.key_transport} {origin(rp.key_transport)}")
    print(f"nameid:                 {settled.nameid} {origin(rp.nameid)}")
    print(f"nameid format:          {settled.nameid_format} {'(set)' if rp.nameid_format else '(default)'}")
    print(f"lifetime:               {rp.lifetime or 'default'}")
    print(f"profile:                {settled.profile} {'(set)' if rp.profile else '(from [tokens] profile)'}")
    print(f"applies-to in response: {'yes' if rp.applies_to_in_response else 'no'}")
    print(f"claims:                 {len(rp.claims) or '-'}")
    for claim in rp.claims:
        print(f"  claim:                {claim}")
    print(f"claim mappings:         {len(rp.claim_mapping) or '-'}")
    for local, remote in rp.claim_mapping:
        print(f"  claim map:            {local} -> {remote}")
    print(f"delegation:             {rp.delegation.describe()}")
    for caller in rp.delegation_callers:
        print(f"  delegation caller:    {caller}")
    for audience in rp.delegation_audiences:
        print(f"  delegated token for:  {audience}")
    print(f"transformation:         {rp.transformation.describe()}")
    for source in rp.transform_from:
        print(f"  transform from:       {source}")
    _show_certificate(shown)
    return 0


def _show_certificate(shown: registration.Description) -> None:
    if shown.in_database:
        print("certificate file:       - (stored in the database)")
    elif shown.certificate_file is not None:
        print(f"certificate file:       {shown.certificate_file}")
    else:
        print("certificate:            -")
        return
    cert = shown.certificate
    if cert is None:
        print(f"certificate:            unreadable ({shown.unreadable})")
        return
    print(f"certificate subject:    {cert.subject.rfc4514_string()}")
    print(f"certificate issuer:     {cert.issuer.rfc4514_string()}")
    print(f"certificate valid from: {cert.not_valid_before_utc:%Y-%m-%d %H:%M:%S} UTC")
    print(f"certificate expires:    {cert.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC")
    print(f"certificate SHA-256:    {fingerprint(cert)}")
    for line in shown.problems:
        print(f"problem: {line}")
    if shown.problems:  # a registration an older release accepted: how to repair it
        print(f"  replace it: sts rp update {shown.rp.address} --cert FILE")
    for line in shown.warnings:
        print(f"warning: {line}")


def _update(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    if args.clear_claims and args.claim:
        raise CommandError("give either --claim or --clear-claims, not both")
    if args.clear_claim_maps and args.claim_map:
        raise CommandError("give either --claim-map or --clear-claim-maps, not both")
    cert = read_certificate(args.cert) if args.cert is not None else None

    def changes(current: RelyingParty) -> dict[str, Any]:
        """The options given, checked once the relying party is found (an unknown one is reported first)."""
        given = changes_from(args) | _delegation_changes(args, current)
        if args.clear_claims:
            given["claims"] = ()
        if args.clear_claim_maps:
            given["claim_mapping"] = ()
        return given

    with _registry(settings) as registry:
        done = registration.update(
            registry, settings.store.truststore, args.address, changes, cert, settings.tokens.profile,
            in_database=_in_database(settings),
        )
    for line in done.warnings:
        warn(line)
    print(f"updated relying party {done.rp.address} ({_summary(done.rp, done.settings)})")
    if cert is not None:
        print(f"  certificate: {_where(done)}  SHA-256 {fingerprint(cert)}")
    _warn_about(
        done.rp,
        done.settings,
        cipher_given=args.encryption is not None,
        profile_given=args.profile is not None,
        encrypt_given=args.encrypt is not None,
        claims_given=bool(args.claim or args.claim_map),
    )
    return 0


def _remove(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    with _registry(settings) as registry:
        removed = registration.unregister(registry, settings.store.truststore, args.address)
    print(f"removed relying party {removed.rp.address}")
    for line in removed.warnings:
        warn(line)
    if removed.deleted is not None:
        print(f"  deleted certificate {removed.deleted}")
    return 0


# --- output ----------------------------------------------------------------------------------------------------


def _where(done: registration.Outcome) -> str:
    """Where ``add``/``update`` put the certificate: the truststore file, or the database."""
    return str(done.certificate) if done.certificate is not None else "stored in the database"


def _summary(rp: RelyingParty, settled: EffectiveSettings) -> str:
    """Match kind, effective token type and encryption, and the profile, for the add/update confirmation."""
    encryption = f"encrypted with {settled.cipher},{settled.key_transport}" if rp.encrypt else "NOT encrypted"
    return f"{rp.match}, {settled.token_type}, {encryption}, profile {settled.profile}"


def _warn_about(
    rp: RelyingParty,
    settled: EffectiveSettings,
    *,
    cipher_given: bool,
    profile_given: bool,
    encrypt_given: bool = True,
    claims_given: bool = False,
) -> None:
    """Warn about AES-CBC (set, or the profile's), unencrypted tokens and idle claim maps the command set up."""
    if rp.encrypt and rp.cipher == LEGACY_CIPHER and cipher_given:
        warn("aes256-cbc is for .NET Framework / WIF relying parties only (no AES-GCM there); prefer aes256-gcm")
    elif rp.encrypt and not rp.cipher and settled.cipher == LEGACY_CIPHER and (cipher_given or profile_given):
        source = f"profile {settled.profile}" + ("" if rp.profile else " (the [tokens] profile)")
        warn(
            f"{source} selects AES-256-CBC for .NET Framework/WIF relying parties (no AES-GCM there); "
            f"give --encryption aes256-gcm if {rp.address} supports AES-GCM"
        )
    if not rp.encrypt and encrypt_given:
        warn(f"tokens issued for {rp.address} will not be encrypted")
    if claims_given and rp.claims:
        ceiling = set(rp.claims) | {local_claim(uri) for uri in rp.claims}
        for local, _remote in rp.claim_mapping:
            if local not in ceiling and local_claim(local) not in ceiling:
                warn(f"claim map for {local}: not one of the relying party's claims, so never issued")
