"""Proof keys for holder-of-key tokens (WS-Trust 1.3 §4.4.2-4.4.4, §9).

A symmetric proof key is either made by the STS (CSPRNG) or computed from both parties' entropy with P_SHA1
(TLS 1.0, RFC 2246 §5): ``key = P_SHA1(secret = requestor entropy, seed = issuer entropy)`` truncated to
KeySize/8 bytes. Entropy values are the decoded bytes of the base64 ``BinarySecret``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field

from sts.errors import InvalidRequest

DEFAULT_KEY_BITS = 256
MIN_KEY_BITS = 128
MAX_KEY_BITS = 512
ISSUER_ENTROPY_BYTES = 32


def p_sha1(secret: bytes, seed: bytes, length: int) -> bytes:
    """P_SHA1(secret, seed) truncated to ``length`` bytes: A(0) = seed, A(i) = HMAC(secret, A(i-1))."""
    output = b""
    a = seed
    while len(output) < length:
        a = hmac.new(secret, a, hashlib.sha1).digest()
        output += hmac.new(secret, a + seed, hashlib.sha1).digest()
    return output[:length]


@dataclass(frozen=True, slots=True)
class SymmetricProof:
    """The proof key, and the issuer entropy when the key was computed (returned to the requestor)."""

    key: bytes = field(repr=False)
    issuer_entropy: bytes | None = field(default=None, repr=False)

    @property
    def bits(self) -> int:
        """Key size in bits."""
        return len(self.key) * 8


def key_bits(requested: int | None) -> int:
    """The proof-key size: default 256 when absent, 128..512 in whole bytes accepted, else wst:InvalidRequest
    (0 included: a key of no bits is no key)."""
    if requested is None:
        return DEFAULT_KEY_BITS
    if not MIN_KEY_BITS <= requested <= MAX_KEY_BITS or requested % 8:
        raise InvalidRequest("KeySize out of range", reason="bad_key_size")
    return requested


def symmetric_proof(requested_bits: int | None, requestor_entropy: bytes | None) -> SymmetricProof:
    """Make the proof key: random, or P_SHA1 of requestor and issuer entropy when the client sent some."""
    bits = key_bits(requested_bits)
    if requestor_entropy is None:
        return SymmetricProof(secrets.token_bytes(bits // 8))
    issuer_entropy = secrets.token_bytes(ISSUER_ENTROPY_BYTES)
    return SymmetricProof(p_sha1(requestor_entropy, issuer_entropy, bits // 8), issuer_entropy)
