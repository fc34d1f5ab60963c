"""The signing key in a PKCS#11 token (an HSM, or SoftHSM2): the only module importing python-pkcs11.

:class:`Pkcs11SigningKey` is a ``cryptography`` RSA private key whose ``sign`` is done by the token
(``CKM_SHA256_RSA_PKCS``, PKCS#11 v2.40 §2.1.14: RSASSA-PKCS1-v1_5 over SHA-256). signxml computes the
SignatureValue by calling ``key.sign(c14n(SignedInfo), PKCS1v15(), SHA256())`` (XML-DSig 1.1 §6.4.2), so the token
signs exactly what signxml would have signed with a PEM key, and nothing else of the signing path changes. The
private key never leaves the token: every other private operation is refused.

Sessions belong to a process: a worker opens its own on its first signature (PKCS#11 v2.40 §6.6.1: an
application must call C_Initialize again after fork). When the token stops answering (removed, powered off, the
network HSM unreachable), the signature fails closed with ``ServiceUnavailable`` (soap:Server "Service
unavailable"); the next request tries to open the token again, so service resumes as soon as it is back.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, NoReturn

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import NoDigestInfo, Prehashed

from sts.errors import ServiceUnavailable

PIN_ENV = "STS_PKCS11_PIN"


class Pkcs11Error(Exception):
    """The token cannot be used (at start-up: reported with the other key problems)."""


class Pkcs11SigningKey(rsa.RSAPrivateKey):
    """An RSA signing key held by a PKCS#11 token, signing RSASSA-PKCS1-v1_5 with SHA-256 only."""

    in_hsm = True  # the crypto self-test skips the decryption round trip, which needs the private key

    def __init__(self, module: Path, token_label: str, key_label: str, pin: str, public: rsa.RSAPublicKey) -> None:
        self._module = module
        self._token_label = token_label
        self._key_label = key_label
        self._pin = pin
        self._public = public
        self._lock = threading.Lock()
        self._key: Any = None
        self._session: Any = None
        self._pid = 0

    def sign(
        self,
        data: bytes,
        padding: padding.AsymmetricPadding,
        algorithm: Prehashed | hashes.HashAlgorithm | NoDigestInfo,
    ) -> bytes:
        """RSASSA-PKCS1-v1_5 with SHA-256 by the token; ``ServiceUnavailable`` when the token does not answer."""
        from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15

        if not isinstance(padding, PKCS1v15) or not isinstance(algorithm, hashes.SHA256):
            raise ValueError("the PKCS#11 signing key signs RSA-SHA256 (PKCS#1 v1.5) only")
        import pkcs11

        with self._lock:
            try:
                key = self._open()
                return bytes(key.sign(data, mechanism=pkcs11.Mechanism.SHA256_RSA_PKCS))
            except (pkcs11.PKCS11Error, Pkcs11Error) as exc:
                self._key = self._session = None  # the next request opens the token again
                raise ServiceUnavailable(f"PKCS#11 token: {type(exc).__name__}", reason="hsm_unavailable") from None

    def check(self) -> None:
        """Open the token and find the key now (start-up), or raise :class:`Pkcs11Error`."""
        import pkcs11

        with self._lock:
            try:
                self._open()
            except pkcs11.PKCS11Error as exc:
                self._key = self._session = None
                raise Pkcs11Error(f"PKCS#11: {type(exc).__name__}") from None

    def _open(self) -> Any:
        """The key object of this process's session, opening the library, token, session and key if needed."""
        import pkcs11

        if self._key is not None and self._pid == os.getpid():
            return self._key
        library = pkcs11.lib(str(self._module))
        if library.initialized:
            library.reinitialize()  # after fork, or after the token went away: a fresh start of the library
        else:
            library.initialize()
        try:
            token = library.get_token(token_label=self._token_label)
        except (pkcs11.NoSuchToken, pkcs11.MultipleTokensReturned):
            raise Pkcs11Error(f"no single token labelled {self._token_label!r}") from None
        session = token.open(user_pin=self._pin)
        try:
            key = session.get_key(object_class=pkcs11.ObjectClass.PRIVATE_KEY, label=self._key_label)
        except (pkcs11.NoSuchKey, pkcs11.MultipleObjectsReturned):
            raise Pkcs11Error(f"no single private key labelled {self._key_label!r}") from None
        self._session, self._key, self._pid = session, key, os.getpid()
        return key

    @property
    def key_size(self) -> int:
        """The modulus size, from the certificate's public key."""
        return self._public.key_size

    def public_key(self) -> rsa.RSAPublicKey:
        """The public half (from the certificate)."""
        return self._public

    def decrypt(self, ciphertext: bytes, padding: padding.AsymmetricPadding) -> bytes:
        """Refused: the STS key signs only."""
        self._refuse()

    def private_numbers(self) -> rsa.RSAPrivateNumbers:
        """Refused: the private key never leaves the token."""
        self._refuse()

    def private_bytes(self, encoding: Any, format: Any, encryption_algorithm: Any) -> bytes:  # noqa: A002
        """Refused: the private key never leaves the token."""
        self._refuse()

    def __copy__(self) -> Pkcs11SigningKey:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> Pkcs11SigningKey:
        return self

    @staticmethod
    def _refuse() -> NoReturn:
        raise TypeError("the private key is in a PKCS#11 token and never leaves it")


def pin_from(pin_file: Path | None) -> str:
    """The user PIN: ``$STS_PKCS11_PIN``, else the first line of ``pin_file``; raise :class:`Pkcs11Error`."""
    from_env = os.environ.get(PIN_ENV)
    if from_env:
        return from_env
    if pin_file is None:
        raise Pkcs11Error(f"no PIN: set ${PIN_ENV} or [issuer] pkcs11_pin_file")
    try:
        return pin_file.read_text().splitlines()[0].strip() if pin_file.stat().st_size else ""
    except (OSError, IndexError):
        raise Pkcs11Error(f"issuer.pkcs11_pin_file: {pin_file} unreadable") from None


def load_pkcs11_key(
    module: Path, token_label: str, key_label: str, pin_file: Path | None, public: rsa.RSAPublicKey
) -> Pkcs11SigningKey:
    """The token's key, checked now: it opens, and it signs what ``public`` (the certificate's key) verifies."""
    try:
        import pkcs11  # noqa: F401 - the optional extra wstrust-sts[hsm]
    except ImportError:
        raise Pkcs11Error("issuer.pkcs11_module is set but python-pkcs11 is not installed (wstrust-sts[hsm])") from None
    if not module.is_file():
        raise Pkcs11Error(f"issuer.pkcs11_module: {module} not found")
    key = Pkcs11SigningKey(module, token_label, key_label, pin_from(pin_file), public)
    key.check()
    probe = b"sts: does the token's key match issuer.signing_cert?"
    try:
        signature = key.sign(probe, padding.PKCS1v15(), hashes.SHA256())
        public.verify(signature, probe, padding.PKCS1v15(), hashes.SHA256())
    except ServiceUnavailable:
        raise Pkcs11Error("the PKCS#11 token does not sign") from None
    except Exception:  # cryptography's InvalidSignature: another key
        raise Pkcs11Error("the PKCS#11 key does not match issuer.signing_cert") from None
    return key
