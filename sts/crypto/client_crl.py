"""The client CA's CRLs (RFC 5280 §5, §6.3.3), checked once when the file is read.

A CRL file holds one DER CRL or one or more PEM CRLs, at most one per configured CA, matched by issuer name and
signature. :func:`crl_verdict` decides, once per load, whether a CA's CRL can be used as that CA's complete list of
revoked certificates and keeps what every request needs: the validity window and the revoked serial numbers. A
request then costs a time comparison, a set lookup and, for a CRL scoped to a distribution point, one look at the
certificate's CRLDistributionPoints; never the CRL's signature again.

What is processed, and therefore allowed, is explicit: the CRL extensions AuthorityKeyIdentifier, CRLNumber and
IssuingDistributionPoint, the entry extensions CRLReason and InvalidityDate; any other critical extension makes the
CRL unusable (§5.2, §5.3: it MUST NOT be used), non-critical ones are ignored. Unusable as a complete list, too: a
delta CRL (§5.2.4), an IssuingDistributionPoint limited to CA or attribute certificates, to some reasons, or
indirect (§5.2.5), a CRL without nextUpdate, and one from a CA whose KeyUsage lacks ``cRLSign`` (§6.3.3 (f)). An
unusable CRL fails closed: every certificate of its CA counts as revoked.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import CRLEntryExtensionOID, ExtensionOID

_PEM_CRL = re.compile(rb"-----BEGIN X509 CRL-----.+?-----END X509 CRL-----", re.DOTALL)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
# Critical extensions we process; any other critical one makes the CRL unusable (RFC 5280 §5.2, §5.3).
_CRL_EXTENSIONS = frozenset({ExtensionOID.AUTHORITY_KEY_IDENTIFIER, ExtensionOID.CRL_NUMBER,
                             ExtensionOID.ISSUING_DISTRIBUTION_POINT})
_ENTRY_EXTENSIONS = frozenset({CRLEntryExtensionOID.CRL_REASON, CRLEntryExtensionOID.INVALIDITY_DATE})


def load_crls(data: bytes) -> tuple[x509.CertificateRevocationList, ...]:
    """The CRLs of a CRL file: one DER CRL, or every PEM CRL block (a bundle); ValueError without any."""
    if not data.lstrip().startswith(b"-----"):
        return (x509.load_der_x509_crl(data),)
    crls = tuple(x509.load_pem_x509_crl(block) for block in _PEM_CRL.findall(data))
    if not crls:
        raise ValueError("no PEM CRL")
    return crls


def signed_by(crl: x509.CertificateRevocationList, ca: x509.Certificate) -> bool:
    """Whether ``crl`` names ``ca`` as its issuer and carries a valid signature by its key (the costly check)."""
    try:
        if crl.issuer != ca.subject:
            return False
        return bool(crl.is_signature_valid(ca.public_key()))  # type: ignore[arg-type]
    except (ValueError, TypeError):  # an undecodable name, a key type that signs no CRL
        return False


def asserts_ca(cert: x509.Certificate) -> bool:
    """Whether ``cert`` has BasicConstraints with cA asserted (a malformed extension: raises ValueError)."""
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


@dataclass(frozen=True, slots=True)
class CrlVerdict:
    """A CA's CRL as judged when the file was read: why it cannot be used (``problem``; None: usable), its
    validity window, its revoked serial numbers and its scope (IssuingDistributionPoint)."""

    problem: str | None
    this_update: dt.datetime = _EPOCH
    next_update: dt.datetime = _EPOCH
    revoked: frozenset[int] = frozenset()
    user_certs_only: bool = False
    point: frozenset[x509.GeneralName] = frozenset()  # the distribution point it covers; empty: the whole CA

    def refusal(self, cert: x509.Certificate, now: dt.datetime) -> str | None:
        """Why this CRL cannot clear ``cert`` at ``now`` (whether it lists it aside), or None."""
        return self.problem or self.window_problem(now) or self._scope_problem(cert)

    def window_problem(self, now: dt.datetime) -> str | None:
        """Why the CRL is not current at ``now`` (RFC 5280 §5.1.2.4, §5.1.2.5), or None."""
        if now < self.this_update:
            return "not yet valid (thisUpdate in the future)"
        if now >= self.next_update:
            return "past its nextUpdate"
        return None

    def _scope_problem(self, cert: x509.Certificate) -> str | None:
        """§6.3.3 (b): a CRL for user certificates says nothing about a CA certificate; one for a distribution
        point only about the certificates naming that point."""
        try:
            if self.user_certs_only and asserts_ca(cert):
                return "covers only end-entity certificates"
            if self.point and not self.point & _certificate_points(cert):
                return "covers another distribution point"
        except ValueError:  # a malformed extension in the certificate
            return "cannot tell whether it covers the certificate"
        return None


def crl_verdict(crl: x509.CertificateRevocationList, ca: x509.Certificate) -> CrlVerdict:
    """Judge ``crl``, already known to be signed by ``ca`` (:func:`signed_by`), as ``ca``'s complete CRL."""
    if not key_usage_allows(ca, "crl_sign"):
        return CrlVerdict("its CA's KeyUsage lacks cRLSign (RFC 5280 §6.3.3 (f))")
    try:  # extensions parse lazily: a malformed one raises here
        problem = _extensions_problem(crl) or _entries_problem(crl)
        idp = _issuing_point(crl)
        next_update = crl.next_update_utc
        revoked = frozenset(entry.serial_number for entry in crl)
    except ValueError:
        return CrlVerdict("a malformed extension")
    if problem is not None:
        return CrlVerdict(problem)
    if next_update is None:  # §5.1.2.5: conforming CRL issuers MUST include it
        return CrlVerdict("no nextUpdate")
    point = frozenset() if idp is None else _point_names(idp.full_name, idp.relative_name, crl.issuer)
    user_only = idp is not None and idp.only_contains_user_certs
    return CrlVerdict(None, crl.last_update_utc, next_update, revoked, user_only, point)


def _extensions_problem(crl: x509.CertificateRevocationList) -> str | None:
    for extension in crl.extensions:
        if extension.oid == ExtensionOID.DELTA_CRL_INDICATOR:
            return "a delta CRL, not a complete one (RFC 5280 §5.2.4)"
        if extension.critical and extension.oid not in _CRL_EXTENSIONS:
            return f"an unsupported critical extension {extension.oid.dotted_string} (RFC 5280 §5.2)"
    idp = _issuing_point(crl)
    if idp is None:
        return None
    if idp.only_contains_ca_certs or idp.only_contains_attribute_certs:
        return "covers no end-entity certificates (IssuingDistributionPoint, RFC 5280 §5.2.5)"
    if idp.only_some_reasons is not None:
        return "covers only some revocation reasons (IssuingDistributionPoint, RFC 5280 §5.2.5)"
    if idp.indirect_crl:
        return "an indirect CRL (IssuingDistributionPoint, RFC 5280 §5.2.5)"
    return None


def _entries_problem(crl: x509.CertificateRevocationList) -> str | None:
    # A critical CertificateIssuer entry (§5.3.3) would make the serial numbers after it another CA's.
    for entry in crl:
        for extension in entry.extensions:
            if extension.critical and extension.oid not in _ENTRY_EXTENSIONS:
                return f"an unsupported critical entry extension {extension.oid.dotted_string} (RFC 5280 §5.3)"
    return None


def _issuing_point(crl: x509.CertificateRevocationList) -> x509.IssuingDistributionPoint | None:
    try:
        return crl.extensions.get_extension_for_class(x509.IssuingDistributionPoint).value
    except x509.ExtensionNotFound:
        return None


def _certificate_points(cert: x509.Certificate) -> frozenset[x509.GeneralName]:
    """The names of the distribution points in ``cert``'s CRLDistributionPoints whose CRL its issuer signs (those
    with a cRLIssuer are indirect, never ours)."""
    try:
        points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    except x509.ExtensionNotFound:
        return frozenset()
    names: set[x509.GeneralName] = set()
    for point in points:
        if point.crl_issuer is None:
            names |= _point_names(point.full_name, point.relative_name, cert.issuer)
    return frozenset(names)


def _point_names(full: Iterable[x509.GeneralName] | None, relative: x509.RelativeDistinguishedName | None,
                 issuer: x509.Name) -> frozenset[x509.GeneralName]:
    """A DistributionPointName as a set of names; a nameRelativeToCRLIssuer is appended to the issuer's name
    (RFC 5280 §4.2.1.13)."""
    if full is not None:
        return frozenset(full)
    if relative is not None:
        return frozenset({x509.DirectoryName(x509.Name([*issuer.rdns, relative]))})
    return frozenset()


def key_usage_allows(ca: x509.Certificate, usage: str) -> bool:
    """Whether a CA certificate's KeyUsage allows ``usage`` (``key_cert_sign``, ``crl_sign``; RFC 5280 §4.2.1.3:
    without the extension nothing restricts the key); a malformed extension allows nothing."""
    try:
        return bool(getattr(ca.extensions.get_extension_for_class(x509.KeyUsage).value, usage))
    except x509.ExtensionNotFound:
        return True
    except ValueError:
        return False
