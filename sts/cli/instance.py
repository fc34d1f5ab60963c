"""``sts check-config``: load config, keys, truststore, policies and database, run the crypto self-test.

Also a problem: a ``[tokens] default_relying_party`` that matches no registered relying party. Warned about:
relying parties accepting tokens of an issuer for transformation that no ``[[trusted_issuers]]`` entry names;
certificates (signing, TLS, relying parties, clients) within 30 days of expiry, client certificates of an earlier
release that unsigned PublicKey requests no longer bind (without ``legacy_unproven_use_key``), secret files other
users can read, loopback exempt from spray throttling with no trusted proxy listed, and built-in users whose name
a ``netbios_name`` now reads as a down-level logon name, that an earlier release stored under a name now refused,
or whose stored role-claim values (which an earlier release issued instead of the roles) differ from their roles.
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

from cryptography.x509 import load_pem_x509_certificates

from sts.auth.builtin_users import BuiltinUserStore
from sts.auth.users import PRIMARY, UserStoreError, normalize_name, parse_user_name, user_name_problem
from sts.certificates import unbound_client_cert_warnings
from sts.cli.common import SubParsers
from sts.clock import SystemClock
from sts.config import foreign_environment, load_settings
from sts.config.settings import Settings, config_warnings, hsm_scenario_problems, tls_problems
from sts.config.user_stores import down_level_domains
from sts.crypto.client_certs import ClientAuthority
from sts.crypto.keyring import load_material
from sts.crypto.keystore import KeyStoreError, check_certificate, check_validity, load_certificate
from sts.crypto.selftest import run_selftest
from sts.errors import ConfigError, ServiceUnavailable
from sts.files import loose_secret
from sts.policy.claims import ROLE_CLAIMS, is_role_claim
from sts.relying_parties.certificates import certificate_location, load_rp_certificate, rp_certificate_problems
from sts.relying_parties.matching import AddressIndex
from sts.relying_parties.registry import RelyingPartyRegistry, RelyingPartyStore
from sts.relying_parties.transformation import ISSUER_PREFIX
from sts.soap.wsdl_render import load_policy
from sts.stores.factory import build_stores, check_cache


def register(commands: SubParsers) -> None:
    """Add the ``check-config`` command."""
    parser = commands.add_parser(
        "check-config", help="check configuration, keys, truststore and database", description=__doc__
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Print every problem found; exit 1 if there is any."""
    problems: list[str] = []
    # Ignored by the loader (not ours), but a misspelt table name would be ignored too: say so here.
    warnings = [f"environment: {name} names no sts setting; ignored" for name in foreign_environment()]
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        _report(exc.problems, warnings)
        return 1
    try:
        keystore = load_material(settings).current  # with the next key and retired certificates of a rotation
        warnings += keystore.warnings
        problems += run_selftest(keystore)
    except KeyStoreError as exc:
        problems += exc.problems
    try:
        load_policy(settings.security.scenario)
    except (KeyError, OSError):
        problems.append(f"security.scenario: no policy file for {settings.security.scenario}")
    for path in (settings.server.tls_cert, settings.server.tls_key):
        if path is not None and not path.is_file():
            problems.append(f"server: {path} not found")
    problems += _check_tls_certificate(settings.server.tls_cert, warnings)
    problems += tls_problems(settings)  # what sts serve, sts reload and the master refuse
    if not settings.store.truststore.is_dir():
        problems.append(f"store.truststore: {settings.store.truststore} is not a directory")
    warnings += config_warnings(settings)
    problems += hsm_scenario_problems(settings)
    warnings += _secret_file_warnings(settings)
    problems += check_cache(settings, SystemClock())
    problems += _check_client_certificates(settings.security.trusted_client_certs, warnings)
    warnings += unbound_client_cert_warnings(settings)
    problems += _check_client_ca(settings, warnings)
    problems += _check_store(settings, warnings)
    _report(problems, warnings)
    if not problems:
        print(f"configuration OK: {settings.config_path}")
    return 1 if problems else 0


def _check_store(settings: Settings, warnings: list[str]) -> list[str]:
    """The database answers, with the schema version of this release, and its relying parties' certificates."""
    if settings.store.backend == "postgresql":
        from sts.stores.postgres import tls_warning  # psycopg only when PostgreSQL is configured

        warning = tls_warning(settings.store)
        warnings += [warning] if warning else []
    try:
        stores = build_stores(settings, SystemClock())  # checks the schema version first
    except ConfigError as exc:
        return list(exc.problems)
    try:
        problems = _check_relying_parties(stores.relying_parties, settings.store.truststore, warnings)
        warnings += _unknown_transformation_sources(stores.relying_parties, settings)
        users = stores.builtin.list_users()
        warnings += _down_level_shadows(settings, users)
        warnings += _invalid_user_names(users)
        warnings += _stored_role_claims(stores.builtin)
        return problems + _check_default_relying_party(stores.relying_parties, settings.tokens.default_relying_party)
    except ServiceUnavailable as exc:
        return [f"store: the database is unavailable ({exc})"]
    finally:
        stores.close()


def _invalid_user_names(users: list[tuple[str, str, bool, bool]]) -> list[str]:
    """Built-in users stored by an earlier release under a name the rule now refuses (a ``/`` in the name part, as
    ``sts user add PRIMARY/SECONDARY/carol`` made, or U+FFFE/U+FFFF, which XML cannot carry): they cannot sign in.
    ``sts user remove`` deletes the first kind (also with a fullwidth ``／``); the second cannot be named on the
    command line any more."""
    warnings = []
    for domain, name, _enabled, _digest in users:
        if (problem := user_name_problem(name)) is None:
            continue
        remedy = (
            f"remove it (`sts user remove '{domain}/{name}'`) and add the account under a valid name"
            if _is_name_text(name) else "add the account under a valid name"
        )
        warnings.append(
            f"user {domain}/{name}: an earlier release stored this name, which is now refused ({problem}): the user"
            f" cannot sign in; {remedy}"
        )
    return warnings


def _is_name_text(name: str) -> bool:
    """Whether a refused user name breaks only the separator rule (``sts user remove`` can name it then)."""
    try:
        normalize_name(name)
    except UserStoreError:
        return False
    return True


def _stored_role_claims(store: BuiltinUserStore) -> list[str]:
    """Users with values stored under a role claim whose set is not the user's roles: releases up to 0.1.0 issued
    the stored values instead of the roles (``sts user add --claim http://wso2.org/claims/role=...`` was allowed, and
    ``sts init --demo`` stored one); now role claims come from membership only, so such a user's tokens changed."""
    warnings = []
    for domain, name in store.users_with_claims(ROLE_CLAIMS):
        if user_name_problem(name) is not None:
            continue  # named by _invalid_user_names
        user = store.find(domain, name)
        if user is None:
            continue
        roles = user.principal.roles
        for uri, values in sorted(user.principal.claims.items()):
            if not is_role_claim(uri) or {v.casefold() for v in values} == {r.casefold() for r in roles}:
                continue
            who = f"'{domain}/{name}'"
            warnings.append(
                f"user {domain}/{name}: {uri} is stored as {', '.join(values)}, which earlier releases issued instead"
                f" of the user's roles; tokens now carry the roles ({', '.join(sorted(roles)) or 'none'}): grant the"
                f" roles its relying parties expect (`sts role add ROLE`, `sts user grant {who} ROLE`), then remove"
                f" the stored value (`sts user set-claim {who} {uri}=`)"
            )
    return warnings


def _down_level_shadows(settings: Settings, users: list[tuple[str, str, bool, bool]]) -> list[str]:
    """Built-in PRIMARY users whose bare name a ``netbios_name`` now reads as a down-level name (``TEST\\bob``
    reaches CORP/bob once CORP's NetBIOS name is TEST): they still sign in, as ``PRIMARY/TEST\\bob``."""
    down_level = down_level_domains(settings.user_stores)
    if not down_level:
        return []
    warnings = []
    for domain, name, _enabled, _digest in users:
        if domain != PRIMARY:
            continue
        try:
            shadowed = parse_user_name(name, down_level=down_level).qualified
        except UserStoreError:
            shadowed = True  # NETBIOS\\a\\b: refused as a down-level name now
        if shadowed:
            warnings.append(
                f"user PRIMARY/{name}: the bare name now reads as a down-level logon name (a [[user_stores]]"
                f" netbios_name); that user signs in as PRIMARY/{name}"
            )
    return warnings


def _check_relying_parties(store: RelyingPartyStore, truststore: Path, warnings: list[str]) -> list[str]:
    """Each relying party's certificate (inline in the database or a truststore file) readable, strong, valid now,
    and allowed to transport keys (registrations made before ``sts rp add`` refused those that are not)."""
    problems: list[str] = []
    now = dt.datetime.now(dt.UTC)
    for rp in RelyingPartyRegistry(store).all():
        if not rp.has_certificate:
            continue
        try:
            cert = load_rp_certificate(rp, truststore)
        except (OSError, ValueError):
            where = certificate_location(rp, truststore)
            problems.append(f"relying party {rp.address}: certificate ({where}) missing or unreadable")
            continue
        cert_problems, cert_warnings = rp_certificate_problems(cert, f"relying party {rp.address}", now)
        # Often a registration an older release accepted (before the key-transport rules): say how to repair it.
        problems += [f"{problem}; replace it: `sts rp update {rp.address} --cert FILE`" for problem in cert_problems]
        warnings += cert_warnings
    return problems


def _unknown_transformation_sources(store: RelyingPartyStore, settings: Settings) -> list[str]:
    """Relying parties that accept another issuer's tokens in Validate with transformation while no
    ``[[trusted_issuers]]`` entry has that entity id: Validate refuses such tokens, whatever the registration says."""
    trusted = {f"{ISSUER_PREFIX}{issuer.entity_id}" for issuer in settings.trusted_issuers}
    return [
        f"relying party {rp.address}: transformation from {source[len(ISSUER_PREFIX):]}, which no [[trusted_issuers]]"
        " entry names (its tokens are refused)"
        for rp in RelyingPartyRegistry(store).all()
        for source in rp.transform_from
        if source.startswith(ISSUER_PREFIX) and source not in trusted
    ]


def _check_default_relying_party(store: RelyingPartyStore, default: str) -> list[str]:
    """``[tokens] default_relying_party`` names a registered relying party, matched as the server matches it
    (like an AppliesTo); otherwise every request it should catch is refused with wst:InvalidScope, and nothing
    said so before the first one."""
    if not default or AddressIndex(RelyingPartyRegistry(store).all()).match(default) is not None:
        return []
    return [f"tokens.default_relying_party: {default} matches no registered relying party (sts rp list)"]


def _check_tls_certificate(path: Path | None, warnings: list[str]) -> list[str]:
    if path is None or not path.is_file():
        return []
    try:
        cert = load_certificate(path)
    except (OSError, ValueError):
        return [f"server.tls_cert: {path} is not a certificate"]
    problems, cert_warnings = check_validity(cert, "server.tls_cert", dt.datetime.now(dt.UTC))
    warnings += cert_warnings
    return problems


def _secret_file_warnings(settings: Settings) -> list[str]:
    """Every configured file holding a key, a password or a PIN (or the database, with its sealed secrets) that
    other users can read; a file that does not exist (no next key yet) is no warning."""
    issuer = settings.issuer
    secrets = [issuer.signing_key, issuer.next_signing_key, settings.store.credential_key, settings.store.database]
    optional = [issuer.signing_key_passphrase_file, issuer.pkcs11_pin_file, settings.server.tls_key,
                settings.store.password_file, settings.cache.password_file]
    optional += [store.connection_password_file for store in settings.user_stores]
    secrets += [path for path in optional if path is not None]
    return [warning for path in dict.fromkeys(secrets) if (warning := loose_secret(path)) is not None]


def _check_client_certificates(folder: Path, warnings: list[str]) -> list[str]:
    """Registered client certificates (PublicKey UseKey): expired or not yet valid ones, and expiry warnings."""
    problems: list[str] = []
    if not folder.is_dir():
        return problems
    now = dt.datetime.now(dt.UTC)
    for path in sorted(folder.iterdir()):
        try:
            cert = load_certificate(path)
        except (OSError, ValueError):
            warnings.append(f"security.trusted_client_certs: {path} is not a certificate (ignored)")
            continue
        cert_problems, cert_warnings = check_certificate(cert, f"client certificate {path.name}", now)
        problems += cert_problems
        warnings += cert_warnings
    return problems


def _check_client_ca(settings: Settings, warnings: list[str]) -> list[str]:
    """The client CA and its CRL (X.509 scenarios), and the TLS client-certificate bundle (certificatetransport)."""
    security, server = settings.security, settings.server
    problems: list[str] = []
    if security.client_ca_file is not None:
        authority = ClientAuthority(security.client_ca_file, security.client_crl_file)
        now = dt.datetime.now(dt.UTC)
        problems += [f"security.client_ca_file: {problem}" for problem in authority.check()]
        ca_problems, ca_warnings = authority.ca_problems(now)
        problems += [f"security.client_ca_file: {problem}" for problem in ca_problems]
        warnings += [f"security.client_ca_file: {warning}" for warning in ca_warnings]
        problems += [f"security.client_crl_file: {p}" for p in authority.crl_problems(now)]
        if not security.client_cert_user:
            problems.append("security.client_cert_user: required with client_ca_file (cn, san_email or san_dns)")
    elif security.client_crl_file is not None:
        problems.append("security.client_crl_file: needs security.client_ca_file")
    if server.tls_client_ca_file is not None:
        try:
            if not load_pem_x509_certificates(server.tls_client_ca_file.read_bytes()):
                raise ValueError("empty")
        except (OSError, ValueError):
            problems.append(f"server.tls_client_ca_file: {server.tls_client_ca_file} holds no PEM certificate")
    if "certificatetransport" in security.enabled_scenarios and not (
        server.tls_client_ca_file is not None or (server.client_cert_header and server.trusted_proxies)
    ):
        problems.append("security.scenarios: certificatetransport needs server.tls_client_ca_file, or"
                        " server.client_cert_header with server.trusted_proxies")
    return problems


def _report(problems: list[str], warnings: list[str]) -> None:
    for warning in warnings:
        print(f"warning: {warning}")
    for problem in problems:
        print(f"problem: {problem}")
