"""Callers who sign their request with an X.509 key: WSO2 scenario 2 ``SigOnly`` and AD FS-style
``certificatemixed`` (WSS 1.1 §8; WS-SecurityPolicy 1.2 §7.5 AsymmetricBinding, §8.3 EndorsingSupportingTokens).

Order, every step before the next (each failure one fixed WS-Security fault, audited like a UsernameToken login):

1. the one Security header for us: exactly one Signature and Timestamp, at most one X.509 BinarySecurityToken;
   the Timestamp's structure and freshness;
2. one ID index over the whole envelope (duplicates refused), SignedInfo against the allow-lists, each Reference
   resolved by position to the Body, our Timestamp/BST or a whole top-level header (:mod:`sts.wss.signed`);
3. the KeyInfo's token reference resolved to a *trusted* certificate and its user (:mod:`sts.auth.certificates`):
   an untrusted signer costs no RSA operation;
4. the signature verified with that certificate's key over exactly those referents (:mod:`sts.crypto.wss_signature`);
5. coverage per scenario: SigOnly {Body, Timestamp}; certificatemixed {Timestamp} and {Body or ``wsa:To``} (a
   signature over the Timestamp alone proves nothing about the request); certificatemixed also needs TLS. A
   signed ``wsa:To`` must name this endpoint on every scenario, whatever else is signed: the client's signature
   says the message was sent to that destination (WS-Addressing 1.0 Core §3.2, [destination]);
6. the signature value once per freshness window across all workers (replay cache), then the user's domain,
   enabled flag and role.

The RST the operation reads is the very Body node the signature covered (:meth:`SignedRequestAuthenticator.authenticate`
checks it is the request's Body child's parent); the caller comes only from the certificate.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from urllib.parse import urlsplit

from lxml import etree

from sts.auth.certificates import CertificateAttempt, CertificateTrust
from sts.auth.validators import X509_SIGNATURE, AuthenticatedCaller, CallerInfo, KeyProof
from sts.clock import Clock
from sts.crypto.wss_signature import (
    AlgorithmRefused,
    SignatureInvalid,
    SignatureStructureError,
    SignedInfoFacts,
    read_signed_info,
    verify_signature,
)
from sts.errors import FailedCheck, InvalidSecurity, STSError, UnsupportedAlgorithm
from sts.soapenv import SoapVersion
from sts.stores.base import ReplayCache
from sts.wss.header import find_security_header
from sts.wss.signed import (
    BODY_KIND,
    TIMESTAMP_KIND,
    WSA_TO_KIND,
    check_coverage,
    covered,
    index_ids,
    read_signed_header,
    resolve_referents,
)
from sts.wss.timestamp import FreshnessPolicy, check_timestamp
from sts.wss.x509_token import read_token_reference
from sts.xmlutil import text_of

SIGNATURE_NAMESPACE = "wss-signature"
SIG_ONLY = "SigOnly"
CERTIFICATE_MIXED = "certificatemixed"

# What each scenario's signature must cover: one kind out of each set (WS-SecurityPolicy SignedParts).
COVERAGE: dict[str, tuple[frozenset[str], ...]] = {
    SIG_ONLY: (frozenset({BODY_KIND}), frozenset({TIMESTAMP_KIND})),
    CERTIFICATE_MIXED: (frozenset({TIMESTAMP_KIND}), frozenset({BODY_KIND, WSA_TO_KIND})),
}


@dataclass(frozen=True, slots=True)
class SignaturePolicy:
    """``[security]`` rules for signed requests."""

    freshness: FreshnessPolicy = FreshnessPolicy()
    legacy_sha1: bool = False
    allow_insecure_transport: bool = False


@dataclass(frozen=True, slots=True)
class SignedCall:
    """The facts of one signed request the authenticator needs beyond the headers."""

    scenario: str
    body_child: etree._Element
    endpoint_path: str
    info: CallerInfo
    public_path: str = ""  # the endpoint's path in its published address ([server] public_url), if another


class SignedRequestAuthenticator:
    """Authenticates the signer of a request under the SigOnly or certificatemixed policy."""

    def __init__(self, trust: CertificateTrust, replay: ReplayCache, policy: SignaturePolicy, clock: Clock) -> None:
        self._trust = trust
        self._replay = replay
        self._policy = policy
        self._clock = clock

    def authenticate(
        self, headers: tuple[etree._Element, ...], version: SoapVersion, call: SignedCall, roles: frozenset[str]
    ) -> AuthenticatedCaller:
        """The caller the verified signature names, or the WS-Security fault; audits both outcomes (with the user
        the certificate named, once it named one) and counts refusals towards the per-client throttle."""
        attempt = CertificateAttempt(call.info)
        try:
            caller = self._authenticate(headers, version, call, frozenset(r.casefold() for r in roles), attempt)
        except STSError as error:
            self._trust.count_failure(error, call.info.client_address)
            attempt.audit("failure", error.reason)
            raise
        attempt.audit("success", "x509")
        return caller

    def _authenticate(
        self,
        headers: tuple[etree._Element, ...],
        version: SoapVersion,
        call: SignedCall,
        roles: frozenset[str],
        attempt: CertificateAttempt,
    ) -> AuthenticatedCaller:
        if call.scenario == CERTIFICATE_MIXED and not (
            call.info.secure_transport or self._policy.allow_insecure_transport
        ):
            raise InvalidSecurity("certificatemixed requires TLS", reason="insecure_transport")
        header = read_signed_header(find_security_header(headers, version))
        created = check_timestamp(header.timestamp, self._clock, self._policy.freshness)
        index = index_ids(header.security.getroottree().getroot())
        try:
            facts = read_signed_info(header.signature, legacy_sha1=self._policy.legacy_sha1)
        except AlgorithmRefused:
            raise UnsupportedAlgorithm("algorithm not allowed", reason="signature_algorithm") from None
        except SignatureStructureError:
            raise InvalidSecurity("signature structure not allowed", reason="signature_structure") from None
        referents = resolve_referents(facts.reference_ids, header, index)
        reference = read_token_reference(facts.token_reference, header.security)
        self._trust.check_throttle(call.info.client_address)
        certificate, domain, name = self._trust.resolve(reference)
        attempt.domain, attempt.user = domain, name
        try:
            verify_signature(
                header.signature,
                {key: (r.element, r.id_namespace) for key, r in referents.items()},
                certificate,
                legacy_sha1=self._policy.legacy_sha1,
            )
        except SignatureInvalid:
            raise FailedCheck("signature does not verify", reason="signature_invalid") from None
        check_coverage(referents, COVERAGE[call.scenario])
        body = covered(referents, BODY_KIND)
        if body is not None and call.body_child.getparent() is not body:
            raise FailedCheck("signed Body is not the request's Body", reason="body_mismatch")
        to = covered(referents, WSA_TO_KIND)
        if to is not None or body is None:  # without the Body, coverage let in only a signed wsa:To
            self._check_to(to, call)
        signature_seen_once(self._replay, facts, created, self._policy.freshness, self._clock)
        principal = self._trust.principal(domain, name, roles)
        proof = KeyProof(certificate, reference.token_id, header.signature.get("Id"))
        return AuthenticatedCaller(principal, X509_SIGNATURE, proof)

    @staticmethod
    def _check_to(to: etree._Element | None, call: SignedCall) -> None:
        """A signed ``wsa:To`` must name this endpoint: the path the request reached, or the path of the endpoint's
        published address when a proxy mounts the STS below a prefix; host and port may be a proxy's."""
        endpoint = {path.rstrip("/") for path in (call.endpoint_path, call.public_path) if path}
        if to is None or urlsplit(text_of(to).strip()).path.rstrip("/") not in endpoint:
            raise FailedCheck("signed wsa:To does not name this endpoint", reason="to_mismatch")


def signature_seen_once(
    replay: ReplayCache, facts: SignedInfoFacts, created: dt.datetime, freshness: FreshnessPolicy, clock: Clock
) -> None:
    """Enter a signed message's signature in the replay cache (:func:`seen_once`) under its key, and under the key
    earlier releases used, or ``wsse:InvalidSecurity`` when either was seen already.

    The key is SHA-256 of the canonical SignedInfo (:class:`~sts.crypto.wss_signature.SignedInfoFacts`); earlier
    releases used :func:`legacy_replay_key`. Nodes of both share one replay cache during a rolling upgrade (README,
    "Several nodes behind a load balancer"): without the second entry, a message one of them accepted would be
    accepted once more by the other."""
    seen_once(replay, SIGNATURE_NAMESPACE, facts.replay_key, created, freshness, clock)
    seen_once(replay, SIGNATURE_NAMESPACE, legacy_replay_key(facts.signature_value), created, freshness, clock)


def legacy_replay_key(signature_value: bytes) -> bytes:
    """The replay-cache key releases before the SignedInfo key gave a signature: SHA-256 of its SignatureValue as
    sent, whitespace removed. Alone it would not do (a re-spelled value is a fresh key), but entered next to the
    SignedInfo key it refuses what those releases' nodes have seen, and lets them refuse what this one has."""
    return hashlib.sha256(b"".join(signature_value.split())).digest()


def seen_once(
    replay: ReplayCache, namespace: str, key: bytes, created: dt.datetime, freshness: FreshnessPolicy, clock: Clock,
    *, reason: str = "signature_replayed",
) -> None:
    """Enter a value of a signed message (its SignedInfo's digest, a wrapped key) in the replay cache for as long
    as its Timestamp could be accepted, or ``wsse:InvalidSecurity`` (``reason``) when it was seen already (WSS 1.1
    §13)."""
    expires = clock.now().timestamp() + freshness.replay_window
    if not replay.check_and_add(namespace, key, expires, created.timestamp()):
        raise InvalidSecurity("signed message replayed", reason=reason)
