"""The STS's own keys for message-level security (the X.509 scenarios), following the key ring.

SigOnly, SigEncr and SgnEncrUsername answers are signed with the key that signs tokens now, and their KeyInfo
names its certificate, the one the metadata lists as current; requests may be encrypted to the current or the
next certificate (a client may have fetched the next one from the metadata already). When ``sts key promote`` or
``[issuer] promote_at`` switches the signing key, these switch with it, in every worker, without a reload
(WS-Security 1.1 §8 signatures, XML Encryption 1.1 §3.5.1 EncryptedKey).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from sts.crypto.keystore import fingerprint
from sts.crypto.wss_decrypt import KeyUnwrapper
from sts.crypto.wss_sign import WssSigner

KeysInForce = Callable[[], tuple[tuple[rsa.RSAPrivateKey, x509.Certificate], ...]]


@dataclass(frozen=True, slots=True)
class MessageKey:
    """One key pair of the STS, ready to sign answers and to unwrap keys sent to it."""

    certificate: x509.Certificate
    signer: WssSigner
    unwrapper: KeyUnwrapper


class MessageKeys:
    """The keys in force (``keys``: the signing key first, then a next key), each made ready once."""

    def __init__(self, keys: KeysInForce) -> None:
        self._keys = keys
        self._lock = threading.Lock()
        self._ready: dict[str, MessageKey] = {}
        # The last answer, for the tuple it answered: the ring hands out the same tuple until its state changes.
        self._last: tuple[object, tuple[MessageKey, ...]] = (object(), ())

    @classmethod
    def fixed(cls, key: rsa.RSAPrivateKey, certificate: x509.Certificate) -> MessageKeys:
        """One key that never changes (tests, tools)."""
        in_force = ((key, certificate),)
        return cls(lambda: in_force)

    def signing(self) -> MessageKey:
        """The key that signs tokens now: answers are signed with it."""
        return self.recipients()[0]

    def recipients(self) -> tuple[MessageKey, ...]:
        """Every key a request may be encrypted to, the signing key first."""
        in_force = self._keys()
        last_in_force, answer = self._last
        if in_force is last_in_force:
            return answer
        with self._lock:  # a key came into force: make it ready, forget the ones that left
            ready = {}
            for key, cert in in_force:
                name = fingerprint(cert)
                ready[name] = self._ready.get(name) or MessageKey(cert, WssSigner(key), KeyUnwrapper(key))
            self._ready = ready
            answer = tuple(ready[fingerprint(cert)] for _, cert in in_force)
            self._last = (in_force, answer)
        return answer
