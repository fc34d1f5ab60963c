"""``create_app(settings)``: the one composition root: no module-level singletons.

Everything a request needs is built here once, in the gunicorn master (``preload_app``): settings, keys, the
stores (:func:`sts.stores.factory.build_stores`), the WSDL, the service and its operations, and the Spyne adapter
in front of them. Per-process resources (SQLite connections, one per thread; xmlsec key managers) are opened
lazily per PID by their owners, never shared across ``fork()``. Every part that tells the time gets the one
:class:`~sts.clock.Clock` passed in (the wall clock in production), so the whole service runs in-process under a
frozen clock in tests.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from cryptography import x509

from sts.auth.certificates import CertificateRules, CertificateTrust
from sts.auth.credential_cache import VerifiedCredentialCache
from sts.auth.passwords import PasswordHasher
from sts.auth.signed_requests import (
    CERTIFICATE_MIXED,
    SIG_ONLY,
    SignaturePolicy,
    SignedCall,
    SignedRequestAuthenticator,
)
from sts.auth.subjects import SubjectAuthorizer
from sts.auth.transport_certs import (
    CERTIFICATE_TRANSPORT,
    TransportCertificateAuthenticator,
    TransportCertificatePolicy,
)
from sts.auth.users import Principal, canonical
from sts.auth.validators import AuthenticatedCaller, AuthPolicy, CallerInfo, UsernameTokenAuthenticator
from sts.clock import Clock, SystemClock
from sts.config.settings import Settings
from sts.crypto.client_certs import ClientAuthority
from sts.crypto.keystore import KeyStore, check_certificate, load_certificate, load_keystore
from sts.crypto.keywrap import TrustedClientKeys
from sts.crypto.signer import AssertionSigner
from sts.crypto.wss_sign import WssSigner
from sts.errors import ConfigError
from sts.netaddr import AddressSet
from sts.operations.call import TrustRequest
from sts.operations.cancel import CancelOperation
from sts.operations.issue import IssueOperation
from sts.operations.minting import TokenMinter
from sts.operations.records import TokenLedger
from sts.operations.renew import RenewalPolicy, RenewOperation
from sts.operations.targets import TargetResolver
from sts.operations.validate import ValidateOperation
from sts.relying_parties.directory import RelyingPartyDirectory
from sts.relying_parties.profiles import timestamp_required
from sts.relying_parties.registry import RelyingPartyRegistry
from sts.service import OperationHandler, SecurityTokenService
from sts.soap.endpoint import ResponseProtector, SoapEndpoint
from sts.soap.spyne_app import SpyneAdapter
from sts.soap.transport import (
    ADFS_CERTIFICATE_MIXED_PATH,
    ADFS_CERTIFICATE_TRANSPORT_PATH,
    ADFS_FEB2005_PATH,
    ADFS_TRUST13_PATH,
    UT_SCENARIO,
    WSO2_PATH,
    WSO2_SOAP12_SUFFIX,
    Transport,
    TransportPolicy,
    scenario_paths,
)
from sts.soap.wsdl_render import ScenarioEndpoint, load_policy, load_scenario_policy, render_mex, render_wsdl
from sts.stores.factory import Stores, build_stores
from sts.tokens.provider import IssuerIdentity, TokenProvider
from sts.wss.response import SignedResponder, TimestampResponder
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


def build_authenticator(
    settings: Settings, stores: Stores, clock: Clock, hasher: PasswordHasher
) -> UsernameTokenAuthenticator:
    """The UsernameToken authenticator over the instance's user stores and shared stores."""
    return UsernameTokenAuthenticator(
        users=stores.users,
        hasher=hasher,
        lockout=stores.lockout,
        replay=stores.replay,
        # Its TTL is a span of elapsed time, measured on the monotonic clock, not an instant of the Clock's.
        cache=VerifiedCredentialCache(settings.security.credential_cache_ttl),
        policy=auth_policy(settings),
        clock=clock,
        throttle=stores.throttle,
    )


def trusted_issuers(settings: Settings, keystore: KeyStore, clock: Clock) -> tuple[x509.Certificate, ...]:
    """Certificates whose assertions Validate accepts: the STS's own (current, previous), then configured ones."""
    problems: list[str] = []
    extra: list[x509.Certificate] = []
    now = clock.now()
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


def caller_certificates(stores: Stores) -> Callable[[Principal], list[x509.Certificate]]:
    """The certificates registered to a user (``sts user add-cert``), for UseKey on unsigned requests."""
    registered = stores.certificates

    def certificates(principal: Principal) -> list[x509.Certificate]:
        if registered is None:
            return []
        ders = registered.of_name(principal.domain, canonical(principal.name))
        return [x509.load_der_x509_certificate(der) for der in ders]

    return certificates


def build_certificate_trust(settings: Settings, stores: Stores, clock: Clock) -> CertificateTrust:
    """Who a client certificate is: registered certificates and the optional client CA, refusals throttled."""
    security = settings.security
    authority = None
    if security.client_ca_file is not None:
        if not security.client_cert_user:
            raise ConfigError(["security.client_cert_user: required with client_ca_file (cn, san_email or san_dns)"])
        authority = ClientAuthority(security.client_ca_file, security.client_crl_file)
        problems = authority.check()
        if problems:
            raise ConfigError([f"security.client_ca_file: {problem}" for problem in problems])
    rules = CertificateRules(frozenset(d.upper() for d in security.allowed_domains), security.client_cert_user)
    return CertificateTrust(stores.certificates, authority, stores.users, rules, clock, stores.throttle)


def build_signed_authenticator(settings: Settings, stores: Stores, clock: Clock) -> SignedRequestAuthenticator:
    """The authenticator of the X.509 signature scenarios (SigOnly, certificatemixed)."""
    security = settings.security
    trust = build_certificate_trust(settings, stores, clock)
    policy = SignaturePolicy(
        FreshnessPolicy(security.timestamp_ttl, security.timestamp_future_ttl),
        security.legacy_sha1,
        settings.server.allow_insecure_transport,
    )
    return SignedRequestAuthenticator(trust, stores.replay, policy, clock)


def build_transport_authenticator(
    settings: Settings, stores: Stores, clock: Clock
) -> TransportCertificateAuthenticator:
    """The authenticator of TLS client certificates (certificatetransport); a ConfigError when it is enabled but no
    certificate could ever arrive (neither gunicorn asking for one nor a proxy header)."""
    server = settings.server
    if CERTIFICATE_TRANSPORT in settings.security.enabled_scenarios:
        direct = server.tls_client_ca_file is not None and server.tls_cert is not None
        proxied = bool(server.client_cert_header) and bool(server.trusted_proxies)
        if not (direct or proxied):
            raise ConfigError([
                "security.scenarios: certificatetransport needs server.tls_client_ca_file (with tls_cert), or"
                " server.client_cert_header with server.trusted_proxies"
            ])
    freshness = FreshnessPolicy(settings.security.timestamp_ttl, settings.security.timestamp_future_ttl)
    return TransportCertificateAuthenticator(
        build_certificate_trust(settings, stores, clock), TransportCertificatePolicy(freshness), clock
    )


def response_protectors(keystore: KeyStore, clock: Clock) -> dict[str, ResponseProtector]:
    """Each scenario's response security: SigOnly answers signed by the STS, certificatemixed a Timestamp."""
    return {
        SIG_ONLY: SignedResponder(WssSigner(keystore.signing_key), keystore.signing_cert, clock),
        CERTIFICATE_MIXED: TimestampResponder(clock),
    }


def build_service(
    settings: Settings, keystore: KeyStore, stores: Stores, clock: Clock, hasher: PasswordHasher | None = None
) -> SecurityTokenService:
    """The framework-free service with the operations enabled by the configuration.

    ``hasher``: the one the stores check passwords with (:func:`~sts.stores.factory.build_stores`), so failures
    that checked none cost the same; by default one with the production parameters, as the stores use.
    """
    authenticator = build_authenticator(settings, stores, clock, hasher or PasswordHasher())
    tokens, lifecycle = settings.tokens, settings.lifecycle
    directory = RelyingPartyDirectory(
        RelyingPartyRegistry(stores.relying_parties), settings.store.truststore, tokens.default_relying_party,
        tokens.profile, clock=clock
    )
    store = stores.tokens
    provider = TokenProvider(
        IssuerIdentity(settings.issuer.name, tokens.lifetime, tokens.max_lifetime, tokens.clock_skew),
        AssertionSigner(keystore.signing_key, keystore.signing_cert),
        clock,
    )
    ledger = TokenLedger(store, tokens.clock_skew, lifecycle.renew_after_expiry) if store is not None else None
    minter = TokenMinter(provider, directory, ledger)
    resolver = TargetResolver(store, trusted_issuers(settings, keystore, clock))
    client_keys = TrustedClientKeys(settings.security.trusted_client_certs)
    lifecycle_roles = frozenset(lifecycle.allowed_roles) or None
    operations: dict[Operation, OperationHandler] = {
        Operation.ISSUE: IssueOperation(
            directory, minter, clock, client_keys, caller_certificates(stores),
            settings.security.legacy_unproven_use_key,
        ),
        Operation.VALIDATE: ValidateOperation(resolver, clock, tokens.clock_skew),
    }
    if store is not None:
        operations[Operation.CANCEL] = CancelOperation(resolver, store)
        subjects = SubjectAuthorizer(stores.users, auth_policy(settings))
        policy = RenewalPolicy(
            tokens.clock_skew, lifecycle.renew_after_expiry, lifecycle.max_renewal_age, lifecycle_roles
        )
        operations[Operation.RENEW] = RenewOperation(
            resolver, directory, minter, subjects, clock, policy, client_keys,
            settings.security.legacy_unproven_use_key,
        )

    signed = build_signed_authenticator(settings, stores, clock)
    transport = build_transport_authenticator(settings, stores, clock)

    def authenticate(request: TrustRequest) -> AuthenticatedCaller:
        info = CallerInfo(request.info.correlation_id, request.info.client_address, request.info.secure_transport)
        roles = None if request.operation is Operation.ISSUE else lifecycle_roles
        if request.info.scenario == UT_SCENARIO:
            return authenticator.authenticate(request.headers, request.soap, info, roles)
        allowed = frozenset(settings.security.allowed_roles if roles is None else roles)
        if request.info.scenario == CERTIFICATE_TRANSPORT:
            return transport.authenticate(request.headers, request.soap, info, request.info.client_certificate, allowed)
        call = SignedCall(request.info.scenario, request.rst, request.info.path, info)
        return signed.authenticate(request.headers, request.soap, call, allowed)

    return SecurityTokenService(operations, authenticate=authenticate)


def create_app(settings: Settings, keystore: KeyStore | None = None, clock: Clock | None = None) -> Transport:
    """Build the WSGI application; ``clock``: the time every part of it tells (default: the wall clock)."""
    keystore = keystore or load_keystore(settings)
    clock = clock or SystemClock()
    hasher = PasswordHasher()
    stores = build_stores(settings, clock, hasher)
    service = build_service(settings, keystore, stores, clock, hasher)
    endpoint = SoapEndpoint(
        service, parser_limits(settings), settings.server.soap12_sender_status, response_protectors(keystore, clock)
    )
    scenarios = settings.security.enabled_scenarios
    url = public_url(settings)
    wsdl = render_wsdl(
        load_policy(UT_SCENARIO),
        port_addresses(url),
        require_timestamp=timestamp_required(settings.tokens.profile),  # what is enforced is what is published
        extra=[scenario_endpoint(name, url) for name in scenarios if name != UT_SCENARIO],
        include_base=UT_SCENARIO in scenarios,
    )
    policy = TransportPolicy(
        settings.limits.max_body_bytes,
        AddressSet.parse(settings.server.trusted_proxies),
        settings.server.client_cert_header,
    )
    return Transport(
        policy, wsdl, SpyneAdapter(endpoint), render_mex(wsdl), close=stores.close, routes=scenario_paths(scenarios)
    )


def scenario_endpoint(name: str, url: str) -> ScenarioEndpoint:
    """The WSDL ports of a non-UsernameToken scenario: its WSO2-style path, and for certificatemixed and
    certificatetransport the AD FS one."""
    base = url[: -len(WSO2_PATH)] if url.endswith(WSO2_PATH) else url.rstrip("/")
    ports = {f"{name}HttpsSoap11Endpoint": ("soap11", f"{url}/{name}"), f"{name}HttpsSoap12Endpoint": (
        "soap12", f"{url}/{name}"
    )}
    if name == CERTIFICATE_MIXED:
        ports["CertificateWSTrustBinding_IWSTrust13Async"] = ("soap12", base + ADFS_CERTIFICATE_MIXED_PATH)
    if name == CERTIFICATE_TRANSPORT:
        ports["CertificateTransportWSTrustBinding_IWSTrust13Async"] = (
            "soap12", base + ADFS_CERTIFICATE_TRANSPORT_PATH
        )
    return ScenarioEndpoint(name, load_scenario_policy(name), ports)
