"""Tests for sts.auth.encrypted_requests.EncryptedRequestOpener over real SQLite stores: scenario 5 (SigEncr)
certificate callers are throttled per client like every other certificate or password caller."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from sts import errors
from sts.auth.encrypted_requests import SGN_ENCR_USERNAME, SIG_ENCR, EncryptedRequestOpener, EncryptionPolicy
from sts.auth.validators import UsernameTokenAuthenticator
from sts.crypto.message_keys import MessageKeys
from sts.soapenv import SoapVersion
from sts.wss.encrypted_response import EncryptedResponder
from sts.xmlutil import ParserLimits
from tests import encrypted_support as es
from tests.unit.auth.x509_env import FAILURE_LIMIT, INFO, X509Env, build_env
from tests.x509_support import Client, make_cert, rsa_key

ROLES = frozenset({"admin"})
S11 = SoapVersion.SOAP11
NO_PASSWORDS: UsernameTokenAuthenticator = None  # type: ignore[assignment]  # scenario 5 never asks for one


@pytest.fixture
def env(tmp_path: Path) -> Iterator[X509Env]:
    built = build_env(tmp_path)
    yield built
    built.db.close()


@pytest.fixture(autouse=True)
def _audit(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="sts.audit")


@pytest.fixture(scope="module")
def sts() -> tuple[MessageKeys, x509.Certificate]:
    key = rsa_key()
    certificate = make_cert("sts", key)
    return MessageKeys.fixed(key, certificate), certificate


def _opener(env: X509Env, keys: MessageKeys) -> EncryptedRequestOpener:
    return EncryptedRequestOpener(
        env.trust, keys, env.replay, EncryptionPolicy(), env.clock, ParserLimits(),
        EncryptedResponder(keys, env.clock, es.AES256_GCM), ROLES,
    )


def _login(env: X509Env, sts: tuple[MessageKeys, x509.Certificate], client: Client) -> str:
    """One SigEncr request by ``client``, opened and its caller found: the caller's name."""
    keys, certificate = sts
    root = es.build("s5", certificate, es.Sender(certificate=client.cert, key=client.key)).root
    headers = tuple(child for child in root[0] if isinstance(child.tag, str))
    body_child = next(child for child in root[-1] if isinstance(child.tag, str))
    opener = _opener(env, keys)
    opened = opener.open(S11, headers, body_child, SIG_ENCR, INFO)
    return opener.caller(opened, INFO, None, NO_PASSWORDS).principal.name


def _refused(env: X509Env, sts: tuple[MessageKeys, x509.Certificate], client: Client, reason: str) -> None:
    with pytest.raises(errors.FailedAuthentication) as caught:
        _login(env, sts, client)
    assert type(caught.value) is errors.FailedAuthentication
    assert caught.value.reason == reason


def test_a_registered_signer_opens_a_sigencr_request(env: X509Env, sts: tuple[MessageKeys, x509.Certificate]) -> None:
    assert _login(env, sts, env.alice) == "admin"


@pytest.mark.parametrize(("who", "reason"), [("stranger", "cert_unknown"), ("carol", "user_disabled")])
def test_sigencr_certificate_refusals_are_throttled_per_client(
    env: X509Env, sts: tuple[MessageKeys, x509.Certificate], who: str, reason: str
) -> None:
    """As on SigOnly, certificatemixed and certificatetransport (and for passwords): refusals count towards the
    per-client throttle, and a throttled client is refused before its certificate is looked at."""
    for _ in range(FAILURE_LIMIT):
        _refused(env, sts, getattr(env, who), reason)
    _refused(env, sts, env.alice, "client_throttled")


@pytest.mark.parametrize("scenario", ["s5", "s8"])
def test_a_signature_that_names_no_body_is_refused_before_any_key_is_unwrapped(
    env: X509Env, sts: tuple[MessageKeys, x509.Certificate], scenario: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every scenario signs the Body: a SignedInfo that names it nowhere is refused by its structure, before the
    EncryptedKey is unwrapped or anything decrypted, and before the replay cache (the same message gets the same
    fault again, not a replay fault after one decryption)."""
    keys, certificate = sts
    sender = (es.Sender(certificate=env.alice.cert, key=env.alice.key) if scenario == "s5"
              else es.Sender(username="admin", password="unused"))
    signed = ("TS",) if scenario == "s5" else ("TS", "UT-1")
    root = es.build(scenario, certificate, sender, es.Options(sign=signed)).root
    headers = tuple(child for child in root[0] if isinstance(child.tag, str))
    body_child = next(child for child in root[-1] if isinstance(child.tag, str))
    opener = _opener(env, keys)

    def no_unwrap(*_: object) -> bytes:
        raise AssertionError("an EncryptedKey was unwrapped for a signature that does not cover the Body")

    monkeypatch.setattr(EncryptedRequestOpener, "_unwrap", no_unwrap)
    binding = SIG_ENCR if scenario == "s5" else SGN_ENCR_USERNAME
    for _ in range(2):
        with pytest.raises(errors.STSError) as caught:
            opener.open(S11, headers, body_child, binding, INFO)
        assert (type(caught.value), caught.value.reason) == (errors.FailedCheck, "coverage")
