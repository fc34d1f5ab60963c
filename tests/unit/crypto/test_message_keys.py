"""The STS keys of message-level security follow the key ring: the signing key first, a next key as a second
recipient, each made ready once, and a key that left forgotten."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from sts.crypto.keygen import generate_rsa_key, self_signed_certificate
from sts.crypto.message_keys import MessageKeys

Pair = tuple[rsa.RSAPrivateKey, x509.Certificate]


def _pair(name: str) -> Pair:
    key = generate_rsa_key(2048)
    return key, self_signed_certificate(key, name)


def test_the_keys_follow_what_is_in_force() -> None:
    current, upcoming = _pair("current"), _pair("next")
    in_force: list[tuple[Pair, ...]] = [(current,)]
    keys = MessageKeys(lambda: in_force[0])
    first = keys.signing()
    assert first.certificate is current[1] and keys.recipients() == (first,)
    assert keys.signing() is first  # the same state: nothing made again
    in_force[0] = (current, upcoming)  # `sts key rotate`: the next key may be encrypted to
    recipients = keys.recipients()
    assert [r.certificate for r in recipients] == [current[1], upcoming[1]] and recipients[0] is first
    in_force[0] = (upcoming,)  # promoted: it signs, the old key is gone
    assert keys.signing() is recipients[1] and len(keys.recipients()) == 1


def test_a_fixed_key() -> None:
    key, cert = _pair("fixed")
    keys = MessageKeys.fixed(key, cert)
    assert keys.signing() is keys.signing() and keys.signing().certificate is cert
    assert keys.signing().unwrapper.modulus_bytes == 256
