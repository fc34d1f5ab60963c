"""``create_app(settings)``: the one composition root: no module-level singletons.

Everything a request needs is built here once, in the gunicorn master (``preload_app``): settings, keys, the
stores (:func:`sts.stores.factory.build_stores`), the WSDL, the service and its operations, and the Spyne adapter
in front of them. Per-process resources (SQLite connections, one per thread; xmlsec key managers) are opened
lazily per PID by their owners, never shared across ``fork()``. Every part that tells the time gets the one
:class:`~sts.clock.Clock` passed in (the wall clock in production), so the whole service runs in-process under a
frozen clock in tests.

The authenticators of each scenario and the issuers they trust are built in :mod:`sts.app.callers`; the
addresses the STS publishes (public URL, WSDL ports) in :mod:`sts.app.published`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from lxml import etree

from sts.app.callers import (
    auth_policy,
    build_authenticator,
    build_encrypted_opener,
    build_signed_authenticator,
    build_transport_authenticator,
    caller_certificates,
    issuer_trust,
    parser_limits,
    response_protectors,
    trusted_issuers,
)
from sts.app.published import port_addresses, public_url, published_path, scenario_endpoint
from sts.auth.encrypted_requests import ENCRYPTED_SCENARIOS, OpenedRequest
from sts.auth.passwords import PasswordHasher
from sts.auth.signed_requests import SignedCall
from sts.auth.subjects import SubjectAuthorizer
from sts.auth.transport_certs import CERTIFICATE_TRANSPORT
from sts.auth.validators import AuthenticatedCaller, CallerInfo
from sts.certificates import configured_certificates
from sts.clock import Clock, SystemClock
from sts.config.settings import Settings
from sts.crypto.keyring import KeyRing, RingSigner, build_ring, load_extra
from sts.crypto.keystore import KeyStore, key_passphrase, load_keystore
from sts.crypto.keywrap import TrustedClientKeys
from sts.crypto.pkcs11_key import Pkcs11SigningKey
from sts.errors import FailedAuthentication
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
from sts.soap.endpoint import SoapEndpoint
from sts.soap.metadata import FederationMetadata
from sts.soap.spyne_app import SpyneAdapter
from sts.soap.transport import (
    ISSUED_TOKEN_SCENARIO,
    UT_SCENARIO,
    OpsEndpoints,
    Transport,
    TransportPolicy,
    scenario_paths,
)
from sts.soap.wsdl_render import load_policy, render_mex, render_wsdl
from sts.soapenv import SoapVersion
from sts.stores.factory import Stores, build_stores
from sts.tokens.provider import IssuerIdentity, TokenProvider
from sts.wss.timestamp import FreshnessPolicy
from sts.wstrust.actions import Operation

if TYPE_CHECKING:  # imported when [metrics] enabled (ops_endpoints): prometheus_client only when it is used
    from sts.metrics import Metrics


def key_ring(settings: Settings, keystore: KeyStore, clock: Clock) -> KeyRing:
    """The signing keys of this process, starting from ``keystore`` and following rotations on disk; a next key
    or retired certificates that do not load fail the start (:class:`~sts.crypto.keystore.KeyStoreError`)."""
    return build_ring(settings, clock.now, load_extra(settings.issuer, keystore, key_passphrase(settings)))


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
            allow_insecure_transport=settings.server.allow_insecure_transport,
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
            allow_insecure_transport=settings.server.allow_insecure_transport,
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
    keys = keystore or load_keystore(settings)  # narrowed: the closure below closes it
    clock = clock or SystemClock()
    hasher = PasswordHasher()
    stores = build_stores(settings, clock, hasher)
    ring = key_ring(settings, keys, clock)
    service = build_service(settings, ring, stores, clock, hasher)
    ops, metrics = ops_endpoints(settings, stores, keys)
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
        keys.close()  # the master, replacing this application on a reload, or an exiting worker

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
        connection_refused=metrics.connection_refused,
    )
    return ops, metrics


def hsm_probes(keystore: KeyStore) -> tuple[tuple[str, Callable[[], object]], ...]:
    """The readiness probe of a signing key in a PKCS#11 token: the token signs a fixed value (one signature, the
    cheapest call that proves the key usable)."""
    key = keystore.signing_key
    return (("hsm", key.probe),) if isinstance(key, Pkcs11SigningKey) else ()
