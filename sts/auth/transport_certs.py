"""Callers who authenticate with a TLS client certificate: AD FS-style ``certificatetransport``
(WS-SecurityPolicy 1.2 §5.4.1 ``HttpsToken`` with ``RequireClientCertificate``).

The TLS handshake proves the caller holds the certificate's key. The certificate reaches the application from our
own TLS socket (gunicorn, ``[server] tls_client_ca_file``) or from a TLS-terminating proxy listed in
``[server] trusted_proxies``, in ``[server] client_cert_header`` (:class:`~sts.soap.transport.Transport` reads it
from no other peer). Either way it goes through the same trust, user mapping and domain/role gate as a signing
certificate (:mod:`sts.auth.certificates`): registered to a user, or issued by the client CA and mapped by the
configured rule; checked for validity, key usage, key size and revocation.

The message carries no credential of its own: a ``wsse:Security`` header for us may hold one ``wsu:Timestamp``
(checked for freshness) and nothing else, since one request has one authenticating credential.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from sts import ns
from sts.auth.certificates import CertificateAttempt, CertificateTrust
from sts.auth.validators import AuthenticatedCaller, CallerInfo, KeyProof
from sts.clock import Clock
from sts.crypto.client_certs import load_client_certificate
from sts.errors import FailedAuthentication, InvalidSecurity, STSError
from sts.soapenv import SoapVersion, targets_us
from sts.wss.header import check_unique_ids
from sts.wss.signed import TIMESTAMP
from sts.wss.timestamp import FreshnessPolicy, check_timestamp
from sts.wss.x509_token import TokenReference
from sts.xmlutil import element_children

CERTIFICATE_TRANSPORT = "certificatetransport"
TLS_CLIENT_METHOD = "tls-client-certificate"
_SECURITY = ns.qn(ns.WSSE, "Security")


@dataclass(frozen=True, slots=True)
class TransportCertificatePolicy:
    """``[security]`` rules for TLS client certificate callers."""

    freshness: FreshnessPolicy = FreshnessPolicy()


class TransportCertificateAuthenticator:
    """Authenticates the holder of the TLS client certificate of a certificatetransport request."""

    def __init__(self, trust: CertificateTrust, policy: TransportCertificatePolicy, clock: Clock) -> None:
        self._trust = trust
        self._policy = policy
        self._clock = clock

    def authenticate(
        self,
        headers: tuple[etree._Element, ...],
        version: SoapVersion,
        info: CallerInfo,
        certificate: bytes | None,
        roles: frozenset[str],
    ) -> AuthenticatedCaller:
        """The user the TLS client certificate maps to, or the WS-Security fault; audits both outcomes and counts
        refusals towards the per-client throttle."""
        attempt = CertificateAttempt(info)
        try:
            caller = self._authenticate(headers, version, info, certificate, frozenset(r.casefold() for r in roles),
                                        attempt)
        except STSError as error:
            self._trust.count_failure(error, info.client_address)
            attempt.audit("failure", error.reason)
            raise
        attempt.audit("success", TLS_CLIENT_METHOD)
        return caller

    def _authenticate(
        self,
        headers: tuple[etree._Element, ...],
        version: SoapVersion,
        info: CallerInfo,
        certificate: bytes | None,
        roles: frozenset[str],
        attempt: CertificateAttempt,
    ) -> AuthenticatedCaller:
        if not info.secure_transport:
            # Only TLS (ours, or a trusted proxy's) can have carried a client certificate.
            raise InvalidSecurity("certificatetransport requires TLS", reason="insecure_transport")
        self._check_security_headers(headers, version)
        self._trust.check_throttle(info.client_address)
        if certificate is None:
            raise FailedAuthentication("no TLS client certificate", reason="no_client_certificate")
        try:
            presented = load_client_certificate(certificate)
        except ValueError:
            raise FailedAuthentication("unreadable TLS client certificate", reason="bad_client_certificate") from None
        cert, domain, name = self._trust.resolve(TokenReference(certificate=presented))
        attempt.domain, attempt.user = domain, name
        principal = self._trust.principal(domain, name, roles)
        # The handshake proved the key: a PublicKey token may be bound to this certificate (WS-Trust 1.3 §9.2).
        return AuthenticatedCaller(principal, TLS_CLIENT_METHOD, KeyProof(cert))

    def _check_security_headers(self, headers: tuple[etree._Element, ...], version: SoapVersion) -> None:
        """At most one Security header for us, holding at most one Timestamp (fresh) and nothing else."""
        ours = [header for header in headers if header.tag == _SECURITY and targets_us(header, version)]
        if not ours:
            return
        if len(ours) > 1:
            raise InvalidSecurity("two wsse:Security headers for this receiver", reason="duplicate_security_header")
        check_unique_ids(ours[0].getroottree().getroot())
        children = element_children(ours[0])
        if any(child.tag != TIMESTAMP for child in children):
            raise InvalidSecurity("only a wsu:Timestamp may accompany a TLS client certificate", reason="header_extra")
        if len(children) > 1:
            raise InvalidSecurity("exactly one wsu:Timestamp allowed", reason="duplicate_timestamp")
        if children:
            check_timestamp(children[0], self._clock, self._policy.freshness)
