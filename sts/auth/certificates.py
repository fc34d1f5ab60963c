"""Who a client certificate is: registered to a user, or issued by the client CA and mapped by an explicit rule.

Two trust sources and nothing else (never "the request carries it"): a certificate registered to a built-in user
with ``sts user add-cert``, or one issued directly by the configured client CA (``[security] client_ca_file``),
not listed in its CRL, whose subject names a user by ``client_cert_user``: ``cn`` (exactly one CN, as WSO2 maps
the CN to a user name, but never "whatever the first RDN is"), ``san_email`` or ``san_dns`` (exactly one such SAN).
Either way the certificate passes the checks of :func:`~sts.crypto.client_certs.certificate_problem`, and the user
passes the same domain, enabled and role checks as a UsernameToken caller. Every refusal is the one
``wsse:FailedAuthentication`` (WSS 1.1 §12), with the reason in the audit log only; like password failures, these
refusals count towards the per-client throttle (``[security] client_failure_limit``), and a throttled client is
refused before its certificate is looked at.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509

from sts.audit import login
from sts.auth.credential_cache import VerifiedPrincipalCache
from sts.auth.router import UserStoreRouter
from sts.auth.users import Principal, UserStoreError, canonical
from sts.auth.validators import CallerInfo
from sts.clock import Clock
from sts.config.settings import ALL_DOMAINS
from sts.crypto.client_certs import ClientAuthority, certificate_problem
from sts.crypto.wss_sign import certificate_der
from sts.errors import FailedAuthentication, STSError
from sts.stores.base import ClientThrottle, CredentialVersions, LocalCredentialVersions
from sts.stores.certificate_index import CertificateStore
from sts.wss.x509_token import TokenReference


@dataclass(frozen=True, slots=True)
class CertificateRules:
    """``[security]`` rules for client certificates."""

    allowed_domains: frozenset[str]
    user_rule: str = ""  # cn | san_email | san_dns ("" only without a client CA)
    min_rsa_bits: int = 2048


@dataclass(slots=True)
class CertificateAttempt:
    """One certificate login as the audit log records it: the user, once the certificate named one."""

    info: CallerInfo
    user: str = ""
    domain: str = ""

    def audit(self, outcome: str, reason: str) -> None:
        """Emit the ``authentication`` audit event of this attempt."""
        login(self.info, outcome, reason, user=self.user, domain=self.domain)


class CertificateTrust:
    """Finds the certificate a token reference names among the trusted ones, and the user it belongs to."""

    def __init__(
        self,
        registered: CertificateStore | None,
        authority: ClientAuthority | None,
        users: UserStoreRouter,
        rules: CertificateRules,
        clock: Clock,
        throttle: ClientThrottle | None = None,
        principals: VerifiedPrincipalCache | None = None,
        versions: CredentialVersions | None = None,
    ) -> None:
        self._registered = registered
        self._authority = authority
        self._users = users
        self._rules = rules
        self._clock = clock
        self._throttle = throttle
        self._principals = principals
        self._versions = versions if versions is not None else LocalCredentialVersions()

    def check_throttle(self, client: str) -> None:
        """Refuse a client address with too many recent authentication failures, before any certificate work."""
        if self._throttle is not None and client and self._throttle.throttled(client, self._clock.now().timestamp()):
            raise FailedAuthentication("too many failures from this client", reason="client_throttled")

    def count_failure(self, error: STSError, client: str) -> None:
        """Count an authentication refusal (not a throttled one) against the client address, as password failures."""
        if not isinstance(error, FailedAuthentication) or error.reason == "client_throttled":
            return
        if self._throttle is not None and client:
            self._throttle.record_failure(client, self._clock.now().timestamp())

    def resolve(self, reference: TokenReference) -> tuple[x509.Certificate, str, str]:
        """The trusted certificate ``reference`` names and its user's ``(domain, name)``, or FailedAuthentication.

        Runs before any signature check, so an untrusted signer costs no RSA operation.
        """
        found = self._find_registered(reference)
        if found is not None:
            cert, domain, name = found
        elif reference.certificate is not None and self._authority is not None:
            cert = reference.certificate
            domain, name = self._from_authority(cert)
        else:
            raise FailedAuthentication("certificate neither registered nor from the client CA", reason="cert_unknown")
        if reference.embedded is not None and certificate_der(reference.embedded) != certificate_der(cert):
            raise FailedAuthentication("embedded certificate differs from the one named", reason="cert_mismatch")
        problem = certificate_problem(cert, self._clock.now(), self._rules.min_rsa_bits)
        if problem is not None:
            raise FailedAuthentication("certificate not acceptable", reason=problem)
        return cert, domain, name

    def principal(self, domain: str, name: str, roles: frozenset[str]) -> Principal:
        """The enabled user, in an allowed domain and holding one of ``roles`` (case-folded), or a refusal."""
        allowed = self._rules.allowed_domains
        if ALL_DOMAINS not in allowed and domain not in allowed:
            raise FailedAuthentication("domain not allowed", reason="domain_denied")
        principal = self._lookup(domain, name)
        if principal is None:
            raise FailedAuthentication("no such user", reason="unknown_user")
        if not principal.enabled:
            raise FailedAuthentication("user disabled", reason="user_disabled")
        if not principal.holds_any_role(roles):
            raise FailedAuthentication("caller holds none of the allowed roles", reason="role_denied")
        return principal

    def _lookup(self, domain: str, name: str) -> Principal | None:
        """The user, from the principal cache when it holds a fresh entry (only enabled users are kept)."""
        if self._principals is None:
            return self._users.lookup(domain, name)
        user = canonical(name)
        # The version is read before the store is asked: a change racing the lookup leaves the entry stale.
        version = self._versions.current(f"{domain}/{user}")
        principal = self._principals.get(domain, user, version)
        if principal is None:
            principal = self._users.lookup(domain, name)
            if principal is not None and principal.enabled:
                self._principals.put(domain, user, principal, version)
        return principal

    def _find_registered(self, reference: TokenReference) -> tuple[x509.Certificate, str, str] | None:
        if self._registered is None:
            return None
        if reference.certificate is not None:
            entry = self._registered.find(der=certificate_der(reference.certificate))
        else:
            entry = self._registered.find(
                sha1=reference.thumbprint, ski=reference.ski, issuer_serial=reference.issuer_serial
            )
        return None if entry is None else (entry.certificate, entry.domain, entry.name)

    def _from_authority(self, cert: x509.Certificate) -> tuple[str, str]:
        authority = self._authority
        now = self._clock.now()
        ca = None if authority is None else authority.issuer_of(cert, now)
        if ca is None:
            raise FailedAuthentication("certificate not issued by the client CA", reason="cert_unknown")
        if authority is None or authority.revoked(cert, ca, now):
            raise FailedAuthentication("certificate revoked", reason="cert_revoked")
        value = mapped_name(cert, self._rules.user_rule)
        try:
            # Read as a typed name is (a CN may be TEST\\alice, as AD shows accounts): the CA could name CORP/alice
            # already, so a down-level spelling of the same account adds no user the CA could not name.
            domain, name, _ = self._users.parse(value)
            return domain, name
        except UserStoreError:
            raise FailedAuthentication("certificate names no valid user", reason="cert_unmapped") from None


def mapped_name(cert: x509.Certificate, rule: str) -> str:
    """The user name the mapping ``rule`` reads from ``cert``; FailedAuthentication unless exactly one value."""
    values: list[str] = []
    if rule == "cn":
        values = [str(a.value) for a in cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)]
    elif rule in ("san_email", "san_dns"):
        kind = x509.RFC822Name if rule == "san_email" else x509.DNSName
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            values = [str(v) for v in san.get_values_for_type(kind)]
        except (x509.ExtensionNotFound, ValueError):  # ValueError: a malformed extension (parsed lazily)
            values = []
    if len(values) != 1 or not values[0]:
        raise FailedAuthentication("certificate does not name exactly one user", reason="cert_unmapped")
    return values[0]
