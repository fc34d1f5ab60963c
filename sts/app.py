"""``create_app(settings)``: the one composition root: no module-level singletons.

Everything a request needs is built here once, in the gunicorn master (``preload_app``): settings, keys, the
stores (:func:`sts.stores.factory.build_stores`), the WSDL, the service and its operations, and the Spyne adapter
in front of them. Per-process resources (SQLite connections, one per thread; xmlsec key managers) are opened
lazily per PID by their owners, never shared across ``fork()``. Every part that tells the time gets the one
:class:`~sts.clock.Clock` passed in (the wall clock in production), so the whole service runs in-process under a
frozen clock in tests.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from cryptography import x509
from lxml import etree

from sts.auth.certificates import CertificateRules, CertificateTrust
from sts.auth.credential_cache import VerifiedCredentialCache, VerifiedPrincipalCache
from sts.auth.encrypted_requests import (
    ENCRYPTED_SCENARIOS,
    EncryptedRequestOpener,
    EncryptionPolicy,
    OpenedRequest,
)
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
from sts.certificates import configured_certificates
from sts.clock import Clock, SystemClock
from sts.config.settings import Settings
from sts.crypto.client_certs import ClientAuthority
from sts.crypto.keyring import KeyRing, RingSigner, build_ring, load_extra
from sts.crypto.keystore import KeyStore, check_certificate, key_passphrase, load_certificate, load_keystore
from sts.crypto.keywrap import TrustedClientKeys
from sts.crypto.message_keys import MessageKeys
from sts.crypto.pkcs11_key import Pkcs11SigningKey
from sts.crypto.wss_decrypt import AES256_CBC, AES256_GCM
from sts.errors import ConfigError, FailedAuthentication
from sts.netaddr import AddressSet
from sts.operations.call import RequestInfo, TrustRequest
from sts.operations.cancel import CancelOperation
from sts.operations.delegation import DelegationResolver
from sts.operations.issue import IssueOperation
from sts.operations.issued_callers import IssuedTokenAuthenticator, IssuedTokenPolicy
from sts.operations.minting import TokenMinter
from sts.operations.records import TokenLedger
from sts.operations.renew import RenewalPolicy, RenewOperation
from sts.operations.targets import TargetResolver
from sts.operations.transformation import TokenTransformer
from sts.operations.validate import ValidateOperation
from sts.readiness import Readiness
from sts.relying_parties.directory import RelyingPartyDirectory
from sts.relying_parties.profiles import timestamp_required
from sts.relying_parties.registry import RelyingPartyRegistry
from sts.service import OperationHandler, SecurityTokenService
from sts.soap.endpoint import ResponseProtector, SoapEndpoint
from sts.soap.metadata import FederationMetadata
from sts.soap.spyne_app import SpyneAdapter
from sts.soap.transport import (
    ADFS_CERTIFICATE_MIXED_PATH,
    ADFS_CERTIFICATE_TRANSPORT_PATH,
    ADFS_FEB2005_PATH,
    ADFS_TRUST13_PATH,
    ISSUED_TOKEN_SCENARIO,
    UT_SCENARIO,
    WSO2_PATH,
    WSO2_SOAP12_SUFFIX,
    OpsEndpoints,
    Transport,
    TransportPolicy,
    scenario_paths,
)
from sts.soap.wsdl_render import ScenarioEndpoint, load_policy, load_scenario_policy, render_mex, render_wsdl
from sts.soapenv import SoapVersion
from sts.stores.factory import Stores, build_stores
from sts.tokens.provider import IssuerIdentity, TokenProvider
from sts.tokens.trust import SELF, IssuerTrust, IssuerTrustList
from sts.wss.encrypted_response import EncryptedResponder
from sts.wss.response import SignedResponder, TimestampResponder
from sts.wss.timestamp import FreshnessPolicy
from sts.wstrust.actions import Operation
from sts.xmlutil import ParserLimits

_RESPONSE_CIPHERS = {"aes256-gcm": AES256_GCM, "aes256-cbc": AES256_CBC}

if TYPE_CHECKING:  # imported when [metrics] enabled (ops_endpoints): prometheus_client only when it is used
    from sts.metrics import Metrics


def public_url(settings: Settings) -> str:
    """The endpoint URL clients use: configured, else derived from the bind address."""
    if settings.server.public_url:
        return settings.server.public_url.rstrip("/")
    host, _, port = settings.server.bind.rpartition(":")
    scheme = "https" if settings.server.tls_cert else "http"
    host = "localhost" if host in ("0.0.0.0", "::", "[::]", "") else host  # noqa: S104 - a comparison
    return f"{scheme}://{host}:{port}{WSO2_PATH}"


@functools.lru_cache(maxsize=64)  # a few served paths, asked at every signed request
def published_path(url: str, path: str) -> str:
    """The path of the endpoint served at ``path`` in the address the WSDL publishes for it
    (:func:`scenario_endpoint`): ``path`` itself unless the public URL mounts the STS below a prefix."""
    if path.startswith(WSO2_PATH + "/"):
        return urlsplit(url).path.rstrip("/") + path[len(WSO2_PATH) :]
    base = url[: -len(WSO2_PATH)] if url.endswith(WSO2_PATH) else url.rstrip("/")
    return urlsplit(base).path + path


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
        accounts=stores.accounts,
    )


def trusted_issuers(settings: Settings, clock: Clock) -> tuple[x509.Certificate, ...]:
    """Certificates of other issuers whose assertions Validate accepts (the STS's own come from its key ring)."""
    problems: list[str] = []
    now = clock.now()
    extra = [
        cert
        for index, path in enumerate(settings.lifecycle.trusted_issuer_certs)
        if (cert := _checked_certificate(path, f"lifecycle.trusted_issuer_certs[{index}]", now, problems)) is not None
    ]
    if problems:
        raise ConfigError(problems)
    return tuple(extra)


def _checked_certificate(path: Path, label: str, now: datetime, problems: list[str]) -> x509.Certificate | None:
    """A configured certificate, its problems (unreadable, expired, weak key) added to ``problems``; None when it
    cannot be read."""
    try:
        cert = load_certificate(path)
    except (OSError, ValueError):
        problems.append(f"{label}: {path} unreadable")
        return None
    problems += check_certificate(cert, label, now)[0]
    return cert


def key_ring(settings: Settings, keystore: KeyStore, clock: Clock) -> KeyRing:
    """The signing keys of this process, starting from ``keystore`` and following rotations on disk; a next key
    or retired certificates that do not load fail the start (:class:`~sts.crypto.keystore.KeyStoreError`)."""
    return build_ring(settings, clock.now, load_extra(settings.issuer, keystore, key_passphrase(settings)))


def caller_certificates(stores: Stores) -> Callable[[Principal], list[x509.Certificate]]:
    """The certificates registered to a user (``sts user add-cert``), for UseKey on unsigned requests."""
    registered = stores.certificates

    def certificates(principal: Principal) -> list[x509.Certificate]:
        if registered is None:
            return []
        ders = registered.of_name(principal.domain, canonical(principal.name))
        return [x509.load_der_x509_certificate(der) for der in ders]

    return certificates


def certificate_trust(settings: Settings, stores: Stores, clock: Clock) -> CertificateTrust:
    """Who a client certificate is: registered certificates and the optional client CA with its mapping rule;
    refusals counted by the per-client throttle."""
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
    # Certificate callers' user lookups are cached under the credential cache's TTL and versions.
    principals = VerifiedPrincipalCache(security.credential_cache_ttl)
    return CertificateTrust(
        stores.certificates, authority, stores.users, rules, clock, stores.throttle, principals, stores.versions
    )


def build_signed_authenticator(settings: Settings, stores: Stores, clock: Clock) -> SignedRequestAuthenticator:
    """The authenticator of the X.509 signature scenarios (SigOnly, certificatemixed)."""
    security = settings.security
    trust = certificate_trust(settings, stores, clock)
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
        certificate_trust(settings, stores, clock), TransportCertificatePolicy(freshness), clock
    )


def require_key_outside_token(settings: Settings, what: str) -> None:
    """Message-level security (python-xmlsec, cryptography) needs the STS's private key itself: refuse to start a
    scenario that uses it while ``[issuer] pkcs11_module`` keeps the key in an HSM (the token signs tokens only)."""
    if settings.issuer.pkcs11_module:
        raise ConfigError([
            f"security.scenarios: {what} with the STS key outside the token; this cannot be served while"
            " [issuer] pkcs11_module keeps the signing key in an HSM"
        ])


def response_protectors(settings: Settings, keys: MessageKeys, clock: Clock) -> dict[str, ResponseProtector]:
    """Each enabled scenario's response security: SigOnly answers signed by the STS, certificatemixed a Timestamp.

    SigOnly answers are signed with python-xmlsec, which needs the key itself: with the signing key in a PKCS#11
    token (which signs the tokens) SigOnly cannot be served, and the start is refused with that reason.
    """
    protectors: dict[str, ResponseProtector] = {CERTIFICATE_MIXED: TimestampResponder(clock)}
    if SIG_ONLY in settings.security.enabled_scenarios:
        require_key_outside_token(settings, "SigOnly signs its answers")
        protectors[SIG_ONLY] = SignedResponder(keys, clock)
    return protectors


def issuer_trust(
    settings: Settings, own_certs: Callable[[], tuple[x509.Certificate, ...]], clock: Clock
) -> IssuerTrustList:
    """The issuers whose assertions may be delegated or authenticate callers: this STS (``own_certs``: the
    certificates its key ring publishes now, asked at each verification, under ``[issuer] name``) and each
    ``[[trusted_issuers]]`` entry."""
    problems: list[str] = []
    # This STS's tokens span at most [tokens] max_lifetime from NotBefore backdated by the clock skew; the
    # trusted-issuer default (8 h) would refuse the longer lifetimes the STS itself issues.
    longest = settings.tokens.max_lifetime + settings.tokens.clock_skew
    issuers = [IssuerTrust(settings.issuer.name, own_certs(), SELF, max_token_age=longest)]
    now = clock.now()
    for index, entry in enumerate(settings.trusted_issuers):
        label = f"trusted_issuers[{index}].certificates"
        certificates = [
            cert
            for path in entry.certificates
            if (cert := _checked_certificate(path, label, now, problems)) is not None
        ]
        if entry.entity_id == settings.issuer.name:
            problems.append(f"trusted_issuers[{index}]: entity_id is this STS's own [issuer] name")
        issuers.append(
            IssuerTrust(
                entry.entity_id, tuple(certificates), entry.entity_id, entry.map_to_domain,
                entry.subject_attribute, entry.max_token_age, entry.single_use, entry.callers,
            )
        )
    if problems:
        raise ConfigError(problems)
    return IssuerTrustList(tuple(issuers), settings.tokens.clock_skew, own_certs)


def build_encrypted_opener(
    settings: Settings, stores: Stores, clock: Clock, keys: MessageKeys
) -> EncryptedRequestOpener | None:
    """Verification and decryption of SigEncr and SgnEncrUsername requests, with the STS keys in force as
    recipients (None when neither is served). Both need the private key itself (python-xmlsec and cryptography
    decrypt and sign with it): with the key in a PKCS#11 token they are refused at start."""
    security = settings.security
    if not ENCRYPTED_SCENARIOS & set(security.enabled_scenarios):
        return None
    require_key_outside_token(settings, "SigEncr and SgnEncrUsername decrypt and sign")
    policy = EncryptionPolicy(
        FreshnessPolicy(security.timestamp_ttl, security.timestamp_future_ttl),
        security.legacy_sha1,
        security.inbound_cbc,
        security.accept_plain_ut,
    )
    responder = EncryptedResponder(keys, clock, _RESPONSE_CIPHERS[security.response_cipher], security.legacy_sha1)
    return EncryptedRequestOpener(
        certificate_trust(settings, stores, clock), keys, stores.replay, policy, clock, parser_limits(settings),
        responder, frozenset(security.allowed_roles),
    )


def build_service(
    settings: Settings,
    keys: KeyStore | KeyRing,
    stores: Stores,
    clock: Clock,
    hasher: PasswordHasher | None = None,
) -> SecurityTokenService:
    """The framework-free service with the operations enabled by the configuration.

    ``keys``: the key ring (or a keystore to start one from); ``hasher``: the one the stores check passwords
    with (:func:`~sts.stores.factory.build_stores`), so failures that checked none cost the same; by default one
    with the production parameters, as the stores use.
    """
    ring = keys if isinstance(keys, KeyRing) else key_ring(settings, keys, clock)
    authenticator = build_authenticator(settings, stores, clock, hasher or PasswordHasher())
    tokens, lifecycle = settings.tokens, settings.lifecycle
    directory = RelyingPartyDirectory(
        RelyingPartyRegistry(stores.relying_parties), settings.store.truststore, tokens.default_relying_party,
        tokens.profile, clock=clock
    )
    store = stores.tokens
    provider = TokenProvider(
        IssuerIdentity(settings.issuer.name, tokens.lifetime, tokens.max_lifetime, tokens.clock_skew),
        RingSigner(ring),
        clock,
    )
    ledger = TokenLedger(store, tokens.clock_skew, lifecycle.renew_after_expiry) if store is not None else None
    minter = TokenMinter(provider, directory, ledger)
    others = trusted_issuers(settings, clock)
    resolver = TargetResolver(store, lambda: (*ring.state().accepted_certs, *others))
    client_keys = TrustedClientKeys(settings.security.trusted_client_certs)
    lifecycle_roles = frozenset(lifecycle.allowed_roles) or None
    subjects = SubjectAuthorizer(stores.users, auth_policy(settings))
    trust = issuer_trust(settings, lambda: ring.state().accepted_certs, clock)
    delegation = DelegationResolver(trust, subjects, authenticator, store, stores.replay, clock, directory)
    operations: dict[Operation, OperationHandler] = {
        Operation.ISSUE: IssueOperation(
            directory, minter, clock, client_keys, caller_certificates(stores),
            settings.security.legacy_unproven_use_key, delegation,
        ),
        Operation.VALIDATE: ValidateOperation(
            resolver, clock, tokens.clock_skew,
            TokenTransformer(directory, minter, trust, subjects, store, stores.replay, clock),
        ),
    }
    if store is not None:
        operations[Operation.CANCEL] = CancelOperation(resolver, store)
        policy = RenewalPolicy(
            tokens.clock_skew, lifecycle.renew_after_expiry, lifecycle.max_renewal_age, lifecycle_roles
        )
        operations[Operation.RENEW] = RenewOperation(
            resolver, directory, minter, subjects, clock, policy, client_keys,
            settings.security.legacy_unproven_use_key,
        )

    signed = build_signed_authenticator(settings, stores, clock)
    transport = build_transport_authenticator(settings, stores, clock)
    issued = IssuedTokenAuthenticator(
        trust,
        subjects,
        stores.lockout,
        stores.replay,
        IssuedTokenPolicy(
            settings.issuer.name,
            FreshnessPolicy(settings.security.timestamp_ttl, settings.security.timestamp_future_ttl),
            settings.server.allow_insecure_transport,
        ),
        clock,
    )

    opener = build_encrypted_opener(settings, stores, clock, ring.message_keys)

    endpoint_url = public_url(settings)

    def caller_info(info: RequestInfo) -> CallerInfo:
        return CallerInfo(info.correlation_id, info.client_address, info.secure_transport)

    def open_request(
        soap: SoapVersion, headers: tuple[etree._Element, ...], body_child: etree._Element, info: RequestInfo
    ) -> OpenedRequest | None:
        if info.scenario not in ENCRYPTED_SCENARIOS or opener is None:
            return None
        return opener.open(soap, headers, body_child, info.scenario, caller_info(info))

    def authenticate(request: TrustRequest) -> AuthenticatedCaller:
        info = caller_info(request.info)
        if request.info.scenario == ISSUED_TOKEN_SCENARIO:
            if request.operation is not Operation.ISSUE:  # lifecycle calls keep their own roles and credentials
                raise FailedAuthentication("Issue only on this endpoint", reason="operation_not_offered")
            return issued.authenticate(request.headers, request.soap, info)
        roles = None if request.operation is Operation.ISSUE else lifecycle_roles
        if request.opened is not None and opener is not None:
            return opener.caller(request.opened, info, roles, authenticator)
        if request.info.scenario == UT_SCENARIO:
            return authenticator.authenticate(request.headers, request.soap, info, roles)
        allowed = frozenset(settings.security.allowed_roles if roles is None else roles)
        if request.info.scenario == CERTIFICATE_TRANSPORT:
            return transport.authenticate(request.headers, request.soap, info, request.info.client_certificate, allowed)
        path = request.info.path
        call = SignedCall(request.info.scenario, request.rst, path, info, published_path(endpoint_url, path))
        return signed.authenticate(request.headers, request.soap, call, allowed)

    return SecurityTokenService(operations, authenticate=authenticate, open_request=open_request)


def create_app(settings: Settings, keystore: KeyStore | None = None, clock: Clock | None = None) -> Transport:
    """Build the WSGI application; ``clock``: the time every part of it tells (default: the wall clock)."""
    keystore = keystore or load_keystore(settings)
    clock = clock or SystemClock()
    hasher = PasswordHasher()
    stores = build_stores(settings, clock, hasher)
    ring = key_ring(settings, keystore, clock)
    service = build_service(settings, ring, stores, clock, hasher)
    ops, metrics = ops_endpoints(settings, stores, keystore)
    protectors = response_protectors(settings, ring.message_keys, clock)
    endpoint = SoapEndpoint(
        service, parser_limits(settings), settings.server.soap12_sender_status, protectors, metrics
    )
    scenarios = served_scenarios(settings)
    url = public_url(settings)
    wsdl = render_wsdl(
        load_policy(UT_SCENARIO),
        port_addresses(url),
        require_timestamp=timestamp_required(settings.tokens.profile),  # what is enforced is what is published
        extra=[scenario_endpoint(name, url) for name in scenarios if name != UT_SCENARIO],
        include_base=UT_SCENARIO in scenarios,
    )
    metadata = FederationMetadata(settings.issuer.name, url, lambda: ring.state().published)
    policy = TransportPolicy(
        settings.limits.max_body_bytes,
        AddressSet.parse(settings.server.trusted_proxies),
        settings.server.client_cert_header,
    )

    def close() -> None:
        if metrics is not None:
            metrics.flush()  # the last samples of an exiting worker
        stores.close()

    return Transport(
        policy, wsdl, SpyneAdapter(endpoint), render_mex(wsdl), close=close, routes=scenario_paths(scenarios),
        metadata=metadata.document, ops=ops,
    )


def served_scenarios(settings: Settings) -> tuple[str, ...]:
    """The endpoints served: the enabled ``[security] scenarios``, and the issued-token one when some trusted
    issuer may authenticate callers (``[[trusted_issuers]] callers = true``)."""
    scenarios = tuple(settings.security.enabled_scenarios)
    if any(issuer.callers for issuer in settings.trusted_issuers):
        return (*scenarios, ISSUED_TOKEN_SCENARIO)
    return scenarios


def ops_endpoints(settings: Settings, stores: Stores, keystore: KeyStore) -> tuple[OpsEndpoints, Metrics | None]:
    """``/readyz`` over the stores' probes (and the HSM's), and the metrics with the observer that feeds them
    (:mod:`sts.metrics`, imported only when ``[metrics] enabled``)."""
    readiness = Readiness((*stores.probes, *hsm_probes(keystore)), settings.server.readiness_timeout_ms / 1000)
    config = settings.metrics
    if not config.enabled:
        return OpsEndpoints(readiness=readiness.report), None
    from sts.metrics import Metrics

    metrics = Metrics(lambda: configured_certificates(settings))
    ops = OpsEndpoints(
        readiness=readiness.report,
        metrics=None if config.bind else metrics.render,
        metrics_path=config.path,
        metrics_allow=AddressSet.parse(config.allow),
        serve_metrics=metrics.serve if config.bind else None,
    )
    return ops, metrics


def hsm_probes(keystore: KeyStore) -> tuple[tuple[str, Callable[[], object]], ...]:
    """The readiness probe of a signing key in a PKCS#11 token: the token signs a fixed value (one signature, the
    cheapest call that proves the key usable)."""
    key = keystore.signing_key
    return (("hsm", key.probe),) if isinstance(key, Pkcs11SigningKey) else ()


def scenario_endpoint(name: str, url: str) -> ScenarioEndpoint:
    """The WSDL ports of a scenario served on its own path (``/services/wso2carbon-sts/<name>``), and for
    certificatemixed and certificatetransport the AD FS one."""
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
