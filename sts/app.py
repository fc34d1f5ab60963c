"""``create_app(settings)``: the one composition root (architecture.md §6).

Everything a request needs is built here once, in the gunicorn master (``preload_app``): settings, keys, the
WSDL, the service and its operations. Per-process resources (SQLite connections, xmlsec key managers) are
opened lazily per PID by their owners, never shared across ``fork()``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509

from sts import ns
from sts.auth.credential_cache import VerifiedCredentialCache
from sts.auth.passwords import PasswordHasher
from sts.auth.subjects import SubjectAuthorizer
from sts.auth.users import SqliteUserStore
from sts.auth.validators import AuthenticatedCaller, AuthPolicy, CallerInfo, UsernameTokenAuthenticator
from sts.clock import SystemClock
from sts.config.directory import RelyingPartyDirectory
from sts.config.profiles import timestamp_required
from sts.config.relying_parties import RelyingPartyStore
from sts.config.settings import Settings
from sts.crypto.keystore import KeyStore, check_certificate, load_certificate, load_keystore
from sts.crypto.keywrap import TrustedClientKeys
from sts.crypto.secretbox import SecretBox
from sts.crypto.signer import AssertionSigner
from sts.errors import ConfigError
from sts.issuance import IssueOperation
from sts.lifecycle.operations import CancelOperation, ValidateOperation
from sts.lifecycle.renew import RenewalPolicy, RenewOperation
from sts.lifecycle.targets import TargetResolver
from sts.minting import IssuerIdentity, TokenMinter
from sts.netaddr import AddressSet
from sts.service import OperationHandler, SecurityTokenService, TrustCall
from sts.soap.endpoint import SoapEndpoint, SoapRequest
from sts.soap.spyne_app import call_spyne, make_spyne_wsgi
from sts.soap.transport import (
    ADFS_FEB2005_PATH,
    ADFS_TRUST13_PATH,
    WSO2_PATH,
    WSO2_SOAP12_SUFFIX,
    Transport,
    TransportPolicy,
)
from sts.soap.wsdl_render import load_policy, render_mex, render_wsdl
from sts.soapenv import SoapVersion
from sts.stores.sqlite import Database, DatabaseError, check_database
from sts.stores.sqlite_stores import (
    SqliteClientThrottle,
    SqliteLockoutStore,
    SqliteReplayCache,
    SqliteTokenStore,
)
from sts.wss.timestamp import FreshnessPolicy
from sts.wstrust.actions import Operation
from sts.xmlutil import ParserLimits


def public_url(settings: Settings) -> str:
    """The endpoint URL clients use: configured, else derived from the bind address."""
    if settings.server.public_url:
        return settings.server.public_url.rstrip("/")
    host, _, port = settings.server.bind.rpartition(":")
    scheme = "https" if settings.server.tls_cert else "http"
    host = "localhost" if host in ("0.0.0.0", "::", "[::]", "") else host  # noqa: S104 - a comparison
    return f"{scheme}://{host}:{port}{WSO2_PATH}"


def port_addresses(url: str) -> dict[str, str]:
    """The URL of each ``wsdl:port`` of the published WSDL, from the public URL of the WSO2 endpoint.

    The AD FS-style aliases live beside ``/services/wso2carbon-sts`` (under the same prefix when a proxy mounts
    the STS below one), else at the URL's origin.
    """
    if url.endswith(WSO2_PATH):
        base = url[: -len(WSO2_PATH)]
    else:
        parts = urlsplit(url)
        base = f"{parts.scheme}://{parts.netloc}"
    return {
        "wso2carbon-stsHttpsSoap11Endpoint": url,
        "wso2carbon-stsHttpsSoap12Endpoint": url + WSO2_SOAP12_SUFFIX,
        "UserNameWSTrustBinding_IWSTrust13Async": base + ADFS_TRUST13_PATH,
        "UserNameWSTrustBinding_IWSTrustFeb2005Async": base + ADFS_FEB2005_PATH,
    }


def parser_limits(settings: Settings) -> ParserLimits:
    """The structural XML caps from ``[limits]``."""
    limits = settings.limits
    return ParserLimits(
        max_depth=limits.max_depth,
        max_elements=limits.max_elements,
        max_attributes=limits.max_attributes,
        max_namespaces=limits.max_namespaces,
        max_text_bytes=limits.max_text_bytes,
    )


def auth_policy(settings: Settings) -> AuthPolicy:
    """The ``[security]`` rules for callers."""
    security = settings.security
    return AuthPolicy(
        allowed_roles=frozenset(security.allowed_roles),
        allowed_domains=frozenset(d.upper() for d in security.allowed_domains),
        freshness=FreshnessPolicy(security.timestamp_ttl, security.timestamp_future_ttl),
        min_nonce_bytes=security.min_nonce_bytes,
        bsp_strict=security.bsp_strict,
        max_password_bytes=security.max_password_bytes,
        allow_insecure_transport=settings.server.allow_insecure_transport,
        require_timestamp=timestamp_required(settings.tokens.profile),  # what is enforced is what is published
    )


def user_store(settings: Settings, db: Database) -> SqliteUserStore:
    """The instance's user store (with the credential key, when there is one, for PasswordDigest users)."""
    key_file = settings.store.credential_key
    box = SecretBox.from_file(key_file) if key_file.is_file() else None
    return SqliteUserStore(db, PasswordHasher(), box)


def build_authenticator(settings: Settings, db: Database) -> UsernameTokenAuthenticator:
    """The UsernameToken authenticator over the instance's user store and shared stores."""
    security = settings.security
    key_file = settings.store.credential_key
    box = SecretBox.from_file(key_file) if key_file.is_file() else None
    hasher = PasswordHasher()
    lockout = settings.lockout
    return UsernameTokenAuthenticator(
        users=SqliteUserStore(db, hasher, box),
        hasher=hasher,
        lockout=SqliteLockoutStore(db, lockout.max_failures, lockout.duration, lockout.max_duration),
        replay=SqliteReplayCache(db),
        cache=VerifiedCredentialCache(security.credential_cache_ttl),
        secret_box=box,
        policy=auth_policy(settings),
        clock=SystemClock(),
        throttle=SqliteClientThrottle(
            db,
            security.client_failure_limit,
            security.client_failure_window,
            AddressSet.parse(security.client_failure_exempt),
        ),
    )


def trusted_issuers(settings: Settings, keystore: KeyStore) -> tuple[x509.Certificate, ...]:
    """Certificates whose assertions Validate accepts: the STS's own (current, previous), then configured ones."""
    problems: list[str] = []
    extra: list[x509.Certificate] = []
    now = dt.datetime.now(dt.UTC)
    for index, path in enumerate(settings.lifecycle.trusted_issuer_certs):
        label = f"lifecycle.trusted_issuer_certs[{index}]"
        try:
            cert = load_certificate(path)
        except (OSError, ValueError):
            problems.append(f"{label}: {path} unreadable")
            continue
        problems += check_certificate(cert, label, now)[0]
        extra.append(cert)
    if problems:
        raise ConfigError(problems)
    return (*keystore.accepted_certs, *extra)


def build_service(settings: Settings, keystore: KeyStore, db: Database) -> SecurityTokenService:
    """The framework-free service with the operations enabled by the configuration."""
    authenticator = build_authenticator(settings, db)
    tokens, lifecycle, clock = settings.tokens, settings.lifecycle, SystemClock()
    directory = RelyingPartyDirectory(
        RelyingPartyStore(db), settings.store.truststore, tokens.default_relying_party, tokens.profile, clock=clock
    )
    store = SqliteTokenStore(db) if lifecycle.token_store else None
    minter = TokenMinter(
        IssuerIdentity(settings.issuer.name, tokens.lifetime, tokens.max_lifetime, tokens.clock_skew),
        directory,
        AssertionSigner(keystore.signing_key, keystore.signing_cert),
        clock,
        store,
        lifecycle.renew_after_expiry,
    )
    resolver = TargetResolver(store, trusted_issuers(settings, keystore))
    client_keys = TrustedClientKeys(settings.security.trusted_client_certs)
    lifecycle_roles = frozenset(lifecycle.allowed_roles) or None
    operations: dict[Operation, OperationHandler] = {
        Operation.ISSUE: IssueOperation(directory, minter, clock, client_keys),
        Operation.VALIDATE: ValidateOperation(resolver, clock, tokens.clock_skew),
    }
    if store is not None:
        operations[Operation.CANCEL] = CancelOperation(resolver, store)
        subjects = SubjectAuthorizer(user_store(settings, db), auth_policy(settings))
        policy = RenewalPolicy(
            tokens.clock_skew, lifecycle.renew_after_expiry, lifecycle.max_renewal_age, lifecycle_roles
        )
        operations[Operation.RENEW] = RenewOperation(
            resolver, directory, minter, subjects, clock, policy, client_keys
        )

    def authenticate(call: TrustCall) -> AuthenticatedCaller:
        version = SoapVersion.SOAP11 if call.soap_ns == ns.S11 else SoapVersion.SOAP12
        info = CallerInfo(call.info.correlation_id, call.info.client_address, call.info.secure_transport)
        roles = None if call.operation is Operation.ISSUE else lifecycle_roles
        return authenticator.authenticate(call.headers, version, info, roles)

    return SecurityTokenService(operations, authenticate=authenticate)


def create_app(settings: Settings, keystore: KeyStore | None = None) -> Transport:
    """Build the WSGI application."""
    keystore = keystore or load_keystore(settings)
    try:
        check_database(settings.store.database)
    except DatabaseError as exc:
        raise ConfigError([f"store.database: {exc}"]) from None
    db = Database(settings.store.database, settings.store.busy_timeout_ms)
    service = build_service(settings, keystore, db)
    endpoint = SoapEndpoint(service, parser_limits(settings), settings.server.soap12_sender_status)
    wsdl = render_wsdl(
        load_policy(settings.security.scenario),
        port_addresses(public_url(settings)),
        require_timestamp=timestamp_required(settings.tokens.profile),  # what is enforced is what is published
    )
    spyne_apps = {version: make_spyne_wsgi(version is SoapVersion.SOAP12) for version in SoapVersion}

    def dispatch(environ: dict[str, Any], start_response: Any, request: SoapRequest) -> Iterable[bytes]:
        return call_spyne(spyne_apps[request.version], environ, start_response, endpoint, request)

    policy = TransportPolicy(settings.limits.max_body_bytes, AddressSet.parse(settings.server.trusted_proxies))
    return Transport(policy, wsdl, dispatch, render_mex(wsdl), close=db.close)
