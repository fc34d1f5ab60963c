"""P_SHA1 known-answer vector (wstrust-protocol.md §9) and proof-key sizing (row I12)."""

from __future__ import annotations

import base64

import pytest
from signxml.util import raw_p_sha1

from sts import errors
from sts.wstrust.keys import p_sha1, symmetric_proof

REQUESTOR = bytes(range(0x00, 0x20))
ISSUER = bytes(range(0x20, 0x40))


def test_psha1_known_answer() -> None:
    key = p_sha1(REQUESTOR, ISSUER, 32)
    assert key.hex() == "df59132c2af6d230e4337732076a14561694be12838cc00203d63c816653d75b"
    assert base64.b64encode(key).decode() == "31kTLCr20jDkM3cyB2oUVhaUvhKDjMACA9Y8gWZT11s="


@pytest.mark.parametrize("length", [16, 20, 24, 32, 40, 64])
def test_psha1_agrees_with_an_independent_implementation(length: int) -> None:
    assert (p_sha1(REQUESTOR, ISSUER, length),) == raw_p_sha1(REQUESTOR, ISSUER, (length,))


def test_random_proof_key_sizes() -> None:
    assert symmetric_proof(None, None).bits == 256
    assert symmetric_proof(128, None).bits == 128
    assert symmetric_proof(512, None).bits == 512
    assert symmetric_proof(None, None).key != symmetric_proof(None, None).key


def test_computed_key_uses_both_entropies() -> None:
    proof = symmetric_proof(256, REQUESTOR)
    assert proof.issuer_entropy is not None and len(proof.issuer_entropy) == 32
    assert proof.key == p_sha1(REQUESTOR, proof.issuer_entropy, 32)


@pytest.mark.parametrize("bits", [0, 1, 64, 100, 127, 513, 100000, -1, 130])
def test_bad_key_sizes(bits: int) -> None:
    with pytest.raises(errors.InvalidRequest):
        symmetric_proof(bits, None)
