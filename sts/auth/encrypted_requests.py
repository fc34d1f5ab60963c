"""Signed and encrypted requests: WSO2 scenario 5 ``SigEncr`` (asymmetric binding) and scenario 8
``SgnEncrUsername`` (symmetric binding, UsernameToken as a signed, encrypted supporting token) (WSS 1.1 §8-9;
WS-SecurityPolicy 1.2 §7.4-7.5; XML Encryption 1.1).

:meth:`EncryptedRequestOpener.open` runs before the WS-Trust request is read (the Body is ciphertext until then),
every step before the next, each failure one fixed WS-Security fault:

1. the Security header inventory (:mod:`sts.wss.encrypted`), the Timestamp, one ID index, SignedInfo against the
   allow-lists, the EncryptedKey and every EncryptedData: RSA 1.5, Triple-DES, and AES-CBC unless ``inbound_cbc``
   refused here, before any private-key operation; the Body must be encrypted, and a Reference of SignedInfo must
   name it (``wsse:FailedCheck`` otherwise, as a missing coverage after decryption was); a plain UsernameToken only
   over TLS or with ``accept_plain_ut``;
2. the signing key: scenario 5 the trusted certificate the KeyInfo names (an untrusted signer costs no RSA
   operation; a client throttled for earlier refusals is refused first, and certificate refusals count towards
   the per-client throttle as on the other certificate scenarios); scenario 8 the key K unwrapped from the
   EncryptedKey the signature names;
3. the SignedInfo signature and the Timestamp digest checked *before decryption* (only authenticated messages are
   decrypted), then the signature value and the EncryptedKey once per freshness window (replay cache, one
   namespace for the keys of both scenarios): every captured message gets at most one decryption attempt, and
   within the window its key is unwrapped for no other signer;
4. unwrap (scenario 5) and decrypt; any failure, in the key transport (continued with a random key), the cipher,
   the padding or the plaintext, is the same ``wsse:FailedCheck`` as a bad signature;
5. one ID index again, then python-xmlsec verifies the whole signature over exactly the referents it names, and
   the coverage: Timestamp and Body (scenario 8: and the UsernameToken).

The operation reads the RST from the very Body that was verified; the caller is the certificate's user (5) or the
verified UsernameToken's (8, authenticated by the UsernameToken path afterwards).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509
from lxml import etree

from sts import ns
from sts.audit import login
from sts.auth.certificates import CertificateTrust
from sts.auth.signed_requests import seen_once, signature_seen_once
from sts.auth.validators import (
    X509_SIGNATURE,
    AuthenticatedCaller,
    CallerInfo,
    KeyProof,
    UsernameTokenAuthenticator,
)
from sts.clock import Clock
from sts.crypto.message_keys import MessageKey, MessageKeys
from sts.crypto.wss_decrypt import (
    DataCipher,
    base64_value,
    data_cipher,
    decrypt_data,
    key_transport,
    reference_digest_matches,
    signed_info_verifies,
)
from sts.crypto.wss_sign import certificate_der
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
from sts.stores.certificate_index import same_name
from sts.wss.encrypted import (
    EncryptedDataFacts,
    EncryptedKeyFacts,
    PlaintextRefused,
    ProtectedHeader,
    encryption_targets,
    names_encrypted_key,
    parse_plaintext,
    read_encrypted_key,
    read_protected_header,
    splice,
)
from sts.wss.encrypted_response import EncryptedResponder
from sts.wss.header import find_security_header
from sts.wss.signed import (
    BODY_KIND,
    TIMESTAMP_KIND,
    USERNAME_TOKEN_KIND,
    SignedHeader,
    check_coverage,
    covered,
    index_ids,
    resolve_referents,
)
from sts.wss.timestamp import FreshnessPolicy, check_timestamp
from sts.wss.x509_token import TokenReference, read_token_reference
from sts.xmlutil import ParserLimits, element_children

SIG_ENCR = "SigEncr"
SGN_ENCR_USERNAME = "SgnEncrUsername"
ENCRYPTED_SCENARIOS = frozenset({SIG_ENCR, SGN_ENCR_USERNAME})
_COVERAGE = {
    SIG_ENCR: (frozenset({BODY_KIND}), frozenset({TIMESTAMP_KIND})),
    SGN_ENCR_USERNAME: (frozenset({BODY_KIND}), frozenset({TIMESTAMP_KIND}), frozenset({USERNAME_TOKEN_KIND})),
}

ENCRYPTED_KEY_NAMESPACE = "xenc-key"  # wrapped keys of SigEncr and SgnEncrUsername requests, once each
# The published symmetric binding's suite, Basic256Sha256, sets the symmetric key to exactly 256 bits
# (WS-SecurityPolicy 1.3 §6.1, [Min SKL] and [Max SKL]): K also keys the HMAC that authenticates the request.
_SYMMETRIC_KEY_BYTES = 32


@dataclass(frozen=True, slots=True)
class EncryptionPolicy:
    """``[security]`` rules for encrypted requests."""

    freshness: FreshnessPolicy = FreshnessPolicy()
    legacy_sha1: bool = False
    inbound_cbc: bool = False  # accept AES-CBC request data (Rampart/WSS4J 1.6 defaults); GCM otherwise
    accept_plain_ut: bool = False  # scenario 8: a signed but unencrypted UsernameToken over plain HTTP


@dataclass(frozen=True, slots=True)
class OpenedRequest:
    """A verified, decrypted request: the RST (the verified Body's child) and who or what vouched for it.

    Scenario 5: ``signer`` (user's domain and name) and ``proof`` from the trusted certificate; scenario 8:
    ``username_token``, the verified (decrypted) UsernameToken still to be authenticated. ``protect`` adds this
    request's response security (its keys, its SignatureConfirmation) to the answer.
    """

    scenario: str
    body_child: etree._Element
    protect: Callable[[etree._Element, SoapVersion], None]
    signer: tuple[str, str] | None = None
    proof: KeyProof | None = None
    username_token: etree._Element | None = None
    plain_username_token: bool = False


class EncryptedRequestOpener:
    """Verifies and decrypts scenario 5 and 8 requests (see the module docstring for the order)."""

    def __init__(
        self,
        trust: CertificateTrust,
        recipients: MessageKeys,
        replay: ReplayCache,
        policy: EncryptionPolicy,
        clock: Clock,
        limits: ParserLimits,
        responder: EncryptedResponder,
        roles: frozenset[str],
    ) -> None:
        self._roles = roles
        self._trust = trust
        self._recipients = recipients
        self._replay = replay
        self._policy = policy
        self._clock = clock
        self._limits = limits
        self._responder = responder

    def open(
        self, soap: SoapVersion, headers: tuple[etree._Element, ...], body_child: etree._Element, scenario: str,
        info: CallerInfo,
    ) -> OpenedRequest:
        """The verified and decrypted request, or the WS-Security fault (audited)."""
        try:
            return self._open(soap, headers, body_child, scenario, info)
        except STSError as error:
            self._trust.count_failure(error, info.client_address)
            _audit(info, error.reason)
            raise

    def caller(
        self, opened: OpenedRequest, info: CallerInfo, roles: frozenset[str] | None,
        passwords: UsernameTokenAuthenticator,
    ) -> AuthenticatedCaller:
        """Who the opened request is from: scenario 5 the certificate's user (domain, enabled, role checks as for
        any caller), scenario 8 the verified UsernameToken through the password path (lockout, throttle, nonce).

        ``roles``: the roles this operation allows (None: ``[security] allowed_roles``).
        """
        if opened.username_token is not None:
            confidential = not opened.plain_username_token
            return passwords.authenticate_token(opened.username_token, info, roles, confidential=confidential)
        if opened.signer is None or opened.proof is None:
            raise InvalidSecurity("no verified signer", reason="no_credential")
        domain, name = opened.signer
        allowed = frozenset(r.casefold() for r in (self._roles if roles is None else roles))
        try:
            principal = self._trust.principal(domain, name, allowed)
        except STSError as error:
            self._trust.count_failure(error, info.client_address)
            _audit(info, error.reason, name, domain)
            raise
        _audit(info, "x509", name, domain, "success")
        return AuthenticatedCaller(principal, X509_SIGNATURE, opened.proof)

    def _open(
        self, soap: SoapVersion, headers: tuple[etree._Element, ...], body_child: etree._Element, scenario: str,
        info: CallerInfo,
    ) -> OpenedRequest:
        symmetric = scenario == SGN_ENCR_USERNAME
        header = read_protected_header(find_security_header(headers, soap), symmetric=symmetric)
        if header.username_token is not None and not (info.secure_transport or self._policy.accept_plain_ut):
            raise InvalidSecurity("UsernameToken not encrypted over plain HTTP", reason="plain_username_token")
        created = check_timestamp(header.timestamp, self._clock, self._policy.freshness)
        body = body_child.getparent()
        if body is None:
            raise InvalidSecurity("no Body", reason="body_not_encrypted")
        index = index_ids(body.getroottree().getroot())
        facts = self._signed_info(header.signature, symmetric)
        if not any(index.get(identifier, (None,))[0] is body for identifier in facts.reference_ids):
            # Every scenario signs the Body: a signature that names it nowhere is refused here, by its structure,
            # before any key is unwrapped or anything decrypted (only a signed Body is worth a decryption).
            raise FailedCheck("signature does not cover the Body", reason="coverage")
        key = read_encrypted_key(header.encrypted_key)
        targets = encryption_targets(header, key, body)
        ciphers = [self._cipher(target) for target in targets]
        if symmetric and any(cipher.key_length != _SYMMETRIC_KEY_BYTES for cipher in ciphers):
            raise UnsupportedAlgorithm("encryption algorithm not allowed", reason="encryption_algorithm")
        timestamp_reference = _reference_to(header.signature, header.timestamp)
        reference: TokenReference | None = None
        certificate: x509.Certificate | None = None
        signer: tuple[str, str] | None = None
        if symmetric:
            if not names_encrypted_key(facts.token_reference, key):
                raise InvalidSecurity("the signature must be keyed with the EncryptedKey", reason="signature_key")
            secret = self._unwrap(key, ciphers[0], header.security)
            signing_key: x509.Certificate | bytes = secret
        else:
            reference = read_token_reference(facts.token_reference, header.security)
            self._trust.check_throttle(info.client_address)  # before any certificate work, as SigOnly
            certificate, domain, name = self._trust.resolve(reference)
            signer, signing_key = (domain, name), certificate
        value = base64_value(facts.signature_value.decode("ascii"), 1024) or b""
        if not (signed_info_verifies(header.signature, signing_key, facts.signature_method, value)
                and reference_digest_matches(timestamp_reference, header.timestamp)):
            raise FailedCheck("signature does not verify", reason="signature_invalid")
        freshness = self._policy.freshness
        signature_seen_once(self._replay, facts, created, freshness, self._clock)
        # The key is the sender's, whoever signs: another client re-signing a captured message (its Body
        # reference copied) must not get it unwrapped again (WSS 1.1 §13; one decryption per message). Both bindings
        # enter it: the EncryptedKey of a captured SgnEncrUsername request unwraps on SigEncr just as well.
        wrapped = hashlib.sha256(key.wrapped).digest()
        seen_once(self._replay, ENCRYPTED_KEY_NAMESPACE, wrapped, created, freshness, self._clock,
                  reason="encrypted_key_replayed")
        if not symmetric:
            secret = self._unwrap(key, ciphers[0], header.security)
        username_token = self._decrypt(targets, ciphers, secret, header)
        verified_body = self._verify(header, facts, username_token, signing_key, scenario)
        (request,) = element_children(verified_body)
        confirmations = (facts.signature_value.decode("ascii"),)
        if symmetric:
            protect = self._responder.symmetric(secret, key.wrapped, confirmations)
            return OpenedRequest(scenario, request, protect, username_token=username_token,
                                 plain_username_token=header.username_token is not None)
        if certificate is None or reference is None:  # set on the asymmetric path: never reached
            raise InvalidSecurity("no verified signer", reason="no_credential")
        proof = KeyProof(certificate, reference.token_id, header.signature.get("Id"))
        return OpenedRequest(scenario, request, self._responder.asymmetric(certificate, confirmations), signer, proof)

    def _signed_info(self, signature: etree._Element, symmetric: bool) -> SignedInfoFacts:
        try:
            return read_signed_info(signature, legacy_sha1=self._policy.legacy_sha1, symmetric=symmetric)
        except AlgorithmRefused:
            raise UnsupportedAlgorithm("algorithm not allowed", reason="signature_algorithm") from None
        except SignatureStructureError:
            raise InvalidSecurity("signature structure not allowed", reason="signature_structure") from None

    def _cipher(self, target: EncryptedDataFacts) -> DataCipher:
        try:
            return data_cipher(target.algorithm, allow_cbc=self._policy.inbound_cbc)
        except AlgorithmRefused:
            raise UnsupportedAlgorithm("encryption algorithm not allowed", reason="encryption_algorithm") from None

    def _unwrap(self, key: EncryptedKeyFacts, cipher: DataCipher, security: etree._Element) -> bytes:
        """K, or a random key when anything about it is wrong (XML Encryption 1.1 §5.5; no unwrap oracle)."""
        try:
            transport = key_transport(key.algorithm, key.digest, key.mgf)
        except AlgorithmRefused:
            raise UnsupportedAlgorithm("key transport not allowed", reason="key_transport") from None
        recipients = self._recipients.recipients()
        named = self._named(read_token_reference(key.token_reference, security), recipients)
        # A key that names none of ours is unwrapped anyway, as a dummy with the signing key: the same cost.
        unwrapper = (named or recipients[0]).unwrapper
        wrapped = key.wrapped if named is not None else bytes(unwrapper.modulus_bytes)
        return unwrapper.unwrap(wrapped, transport, cipher.key_length)

    @staticmethod
    def _named(reference: TokenReference, recipients: tuple[MessageKey, ...]) -> MessageKey | None:
        """The STS key whose certificate the EncryptedKey's STR names (thumbprint, SKI, issuer/serial), if any:
        the current one, or the next one the metadata already publishes."""
        for recipient in recipients:
            certificate = recipient.certificate
            der = certificate_der(certificate)
            if reference.thumbprint is not None and reference.thumbprint == hashlib.sha1(der).digest():  # noqa: S324
                return recipient
            if reference.certificate is not None and reference.certificate == certificate:
                return recipient
            if reference.issuer_serial is not None and _names_certificate(reference.issuer_serial, certificate):
                return recipient
            if reference.ski is not None and reference.ski == _ski(certificate):
                return recipient
        return None

    def _decrypt(
        self, targets: tuple[EncryptedDataFacts, ...], ciphers: list[DataCipher], secret: bytes,
        header: ProtectedHeader,
    ) -> etree._Element | None:
        """Decrypt every target, parse every plaintext (also after a failure: equal work), splice only when all
        succeeded. Returns the UsernameToken now in the header (scenario 8)."""
        parsed: list[list[etree._Element] | None] = []
        failed = False
        for target, cipher in zip(targets, ciphers, strict=True):
            result = decrypt_data(cipher, secret, target.cipher_value)
            try:
                parsed.append(parse_plaintext(target, result.plaintext, self._limits))
            except PlaintextRefused:
                parsed.append(None)
                failed = True
            failed = failed or not result.ok
        if failed:
            raise FailedCheck("decryption failed", reason="decryption_failed")
        username_token = header.username_token
        for target, plaintext in zip(targets, parsed, strict=True):
            element = splice(target, plaintext or [])
            if target.element is header.encrypted_token:
                username_token = element
        return username_token

    def _verify(
        self, header: ProtectedHeader, facts: SignedInfoFacts, username_token: etree._Element | None,
        signing_key: x509.Certificate | bytes, scenario: str,
    ) -> etree._Element:
        """The full signature over the decrypted message; returns the verified Body."""
        try:
            index = index_ids(header.security.getroottree().getroot())
        except InvalidSecurity:
            raise FailedCheck("decrypted content repeats an identifier", reason="decryption_failed") from None
        signed = SignedHeader(header.security, header.signature, header.timestamp, header.token, username_token)
        referents = resolve_referents(facts.reference_ids, signed, index)
        try:
            verify_signature(
                header.signature, {key: (r.element, r.id_namespace) for key, r in referents.items()}, signing_key,
                legacy_sha1=self._policy.legacy_sha1,
            )
        except SignatureInvalid:
            raise FailedCheck("signature does not verify", reason="signature_invalid") from None
        check_coverage(referents, _COVERAGE[scenario])
        body = covered(referents, BODY_KIND)
        if body is None:  # coverage requires it: never reached
            raise FailedCheck("signature does not cover the Body", reason="coverage")
        return body


def _names_certificate(issuer_serial: tuple[x509.Name, int], certificate: x509.Certificate) -> bool:
    """An X509IssuerSerial names ``certificate``: its serial, and its issuer as RFC 5280 §7.1 compares names
    (clients write the DN in their own spelling: case, spaces, string types)."""
    issuer, serial = issuer_serial
    return serial == certificate.serial_number and same_name(issuer, certificate.issuer)


def _reference_to(signature: etree._Element, element: etree._Element) -> etree._Element:
    """The SignedInfo Reference naming ``element`` by its ``wsu:Id``; FailedCheck when none does."""
    identifier = element.get(ns.qn(ns.WSU, "Id"))
    signed_info = signature.find(ns.qn(ns.DS, "SignedInfo"))
    if identifier and signed_info is not None:
        for reference in signed_info.iterfind(ns.qn(ns.DS, "Reference")):
            if reference.get("URI") == "#" + identifier:
                return reference
    raise FailedCheck("signature does not cover the Timestamp", reason="coverage")


def _ski(certificate: x509.Certificate) -> bytes | None:
    try:
        return certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return None


def _audit(info: CallerInfo, reason: str, user: str = "", domain: str = "", outcome: str = "failure") -> None:
    login(info, outcome, reason, user=user, domain=domain)
