"""Who a caller is, built from the configuration: the authenticator of each scenario (UsernameToken, X.509
signatures, TLS client certificates, encrypted requests), the issuers whose assertions are trusted, and the
response protection of the signed scenarios."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from cryptography import x509

from sts.auth.certificates import CertificateRules, CertificateTrust
from sts.auth.credential_cache import VerifiedCredentialCache, VerifiedPrincipalCache
from sts.auth.encrypted_requests import (
    ENCRYPTED_SCENARIOS,
    EncryptedRequestOpener,
    EncryptionPolicy,
)
from sts.auth.passwords import PasswordHasher
from sts.auth.signed_requests import (
    CERTIFICATE_MIXED,
    SIG_ONLY,
    SignaturePolicy,
    SignedRequestAuthenticator,
)
from sts.auth.transport_certs import (
    CERTIFICATE_TRANSPORT,
    TransportCertificateAuthenticator,
    TransportCertificatePolicy,
)
from sts.auth.users import Principal, canonical
from sts.auth.validators import AuthPolicy, UsernameTokenAuthenticator
from sts.clock import Clock
from sts.config.settings import Settings, hsm_scenario_problems
from sts.crypto.client_certs import ClientAuthority
from sts.crypto.keystore import check_certificate, load_certificate
from sts.crypto.message_keys import MessageKeys
from sts.crypto.wss_decrypt import AES256_CBC, AES256_GCM
from sts.errors import ConfigError
from sts.relying_parties.profiles import timestamp_required
from sts.soap.endpoint import ResponseProtector
from sts.stores.factory import Stores
from sts.tokens.trust import SELF, IssuerTrust, IssuerTrustList
from sts.wss.encrypted_response import EncryptedResponder
from sts.wss.response import SignedResponder, TimestampResponder
from sts.wss.timestamp import FreshnessPolicy
from sts.xmlutil import ParserLimits

_RESPONSE_CIPHERS = {"aes256-gcm": AES256_GCM, "aes256-cbc": AES256_CBC}


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


def require_key_outside_token(settings: Settings) -> None:
    """Message-level security (python-xmlsec, cryptography) needs the STS's private key itself: refuse to start a
    scenario that uses it while ``[issuer] pkcs11_module`` keeps the key in an HSM (the token signs tokens only;
    the rule is :func:`~sts.config.settings.hsm_scenario_problems`, which the CLI reports before starting)."""
    if problems := hsm_scenario_problems(settings):
        raise ConfigError(problems)


def response_protectors(settings: Settings, keys: MessageKeys, clock: Clock) -> dict[str, ResponseProtector]:
    """Each enabled scenario's response security: SigOnly answers signed by the STS, certificatemixed a Timestamp.

    SigOnly answers are signed with python-xmlsec, which needs the key itself: with the signing key in a PKCS#11
    token (which signs the tokens) SigOnly cannot be served, and the start is refused with that reason.
    """
    protectors: dict[str, ResponseProtector] = {CERTIFICATE_MIXED: TimestampResponder(clock)}
    if SIG_ONLY in settings.security.enabled_scenarios:
        require_key_outside_token(settings)
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
    require_key_outside_token(settings)
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
