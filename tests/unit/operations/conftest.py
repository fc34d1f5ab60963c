"""Fixtures of the in-process operation tests: the STS signing key, and one STS over a fresh database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from sts.crypto.keygen import generate_rsa_key, self_signed_certificate
from sts.crypto.signer import AssertionSigner
from tests.unit.operations.harness import Env, Keys


@pytest.fixture(scope="module")
def sts_key() -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    """The STS's signing key and certificate, for tests that also trust its tokens (delegation, transformation)."""
    key = generate_rsa_key(2048)
    return key, self_signed_certificate(key, "sts")


@pytest.fixture(scope="module")
def keys() -> Keys:
    key = generate_rsa_key(2048)
    return Keys(AssertionSigner(key, self_signed_certificate(key, "sts")))


@pytest.fixture
def env(tmp_path: Path, keys: Keys) -> Iterator[Env]:
    environment = Env(tmp_path, keys)
    environment.add_rp()
    yield environment
    environment.db.close()
