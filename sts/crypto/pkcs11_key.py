"""The signing key in a PKCS#11 token (an HSM, or SoftHSM2): the only module importing python-pkcs11.

:class:`Pkcs11SigningKey` is a ``cryptography`` RSA private key whose ``sign`` is done by the token
(``CKM_SHA256_RSA_PKCS``, PKCS#11 v2.40 §2.1.14: RSASSA-PKCS1-v1_5 over SHA-256). signxml computes the
SignatureValue by calling ``key.sign(c14n(SignedInfo), PKCS1v15(), SHA256())`` (XML-DSig 1.1 §6.4.2), so the token
signs exactly what signxml would have signed with a PEM key, and nothing else of the signing path changes. The
private key never leaves the token: every other private operation is refused.

Sessions belong to a process: a worker opens its own on its first signature (PKCS#11 v2.40 §6.6.1: an
application must call C_Initialize again after fork). Every call into the token runs on one thread of the process
(:class:`_TokenThread`), and its caller waits at most ``[issuer] pkcs11_timeout_ms``: a token that stops answering
(removed, powered off, a network HSM black-holed) fails the request closed with ``ServiceUnavailable``
(soap:Server "Service unavailable") within that time, never holding a worker until gunicorn kills it. While a call
is stuck past its deadline, later requests fail at once instead of queueing behind it; when it returns, the thread
opens the token afresh, so service resumes as soon as the token answers, without a restart. A key its process no
longer uses is closed (:meth:`Pkcs11SigningKey.close`): its thread ends, so the gunicorn master, which loads the key
again on every reload, does not keep one thread per reload.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any, NoReturn

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import NoDigestInfo, Prehashed

from sts.errors import ServiceUnavailable

PIN_ENV = "STS_PKCS11_PIN"
PROBE = b"sts: does the token's key match issuer.signing_cert?"
Job = Callable[[Any], Any]  # called on the token thread with the session's private key object


class Pkcs11Error(Exception):
    """The token cannot be used (at start-up: reported with the other key problems)."""


class TokenTimeout(Exception):
    """The token did not answer within the deadline, or an earlier call is still stuck in it."""


class _Token:
    """Where the key lies: the library, the token and key labels, and the PIN."""

    def __init__(self, module: Path, token_label: str, key_label: str, pin: str) -> None:
        self.module, self.token_label, self.key_label, self.pin = module, token_label, key_label, pin

    def open(self) -> Any:
        """A fresh start of the library, a session logged in, and the key object in it (on the token thread)."""
        import pkcs11

        library = pkcs11.lib(str(self.module))
        if library.initialized:
            library.reinitialize()  # after fork, or after the token went away: a fresh start of the library
        else:
            library.initialize()
        try:
            token = library.get_token(token_label=self.token_label)
        except (pkcs11.NoSuchToken, pkcs11.MultipleTokensReturned):
            raise Pkcs11Error(f"no single token labelled {self.token_label!r}") from None
        session = token.open(user_pin=self.pin)
        try:
            return session.get_key(object_class=pkcs11.ObjectClass.PRIVATE_KEY, label=self.key_label)
        except (pkcs11.NoSuchKey, pkcs11.MultipleObjectsReturned):
            raise Pkcs11Error(f"no single private key labelled {self.key_label!r}") from None


class _TokenThread:
    """The one thread of a process that calls the token, one call at a time, each awaited for a bounded time.

    One thread, because python-pkcs11 initialises the library without locking arguments (C_Initialize(NULL)), which
    lets it assume calls never overlap; a call stuck in the token therefore cannot be bypassed by another thread,
    only waited out. Callers never wait longer than ``timeout``, and fail at once while a call is stuck.
    """

    def __init__(self, token: _Token, timeout: float) -> None:
        self._token = token
        self._timeout = timeout
        self._jobs: queue.SimpleQueue[tuple[Future[Any], Job] | None] = queue.SimpleQueue()
        self._key: Any = None  # the session's key object: touched only by the thread
        self._busy_since: float | None = None  # when the call in progress started (monotonic)
        # A daemon thread: a call stuck in the token must not keep the worker from exiting.
        threading.Thread(target=self._serve, name="sts-pkcs11", daemon=True).start()

    def call(self, job: Job) -> Any:
        """``job(key)`` on the thread; its exception, or :class:`TokenTimeout` after ``timeout`` seconds."""
        if self.stuck():
            raise TokenTimeout("an earlier call is still waiting for the token")
        future: Future[Any] = Future()
        self._jobs.put((future, job))
        try:
            return future.result(timeout=self._timeout)
        except FutureTimeout:
            future.cancel()  # still queued: it never reaches the token
            raise TokenTimeout(f"no answer within {self._timeout:g} s") from None

    def stop(self) -> None:
        """End the thread once the calls queued before are done (a call stuck in the token is waited out)."""
        self._jobs.put(None)

    def stuck(self) -> bool:
        """Whether the call in progress has outlived its deadline (the token does not answer)."""
        started = self._busy_since
        return started is not None and time.monotonic() - started > self._timeout

    def _serve(self) -> None:
        while (item := self._jobs.get()) is not None:
            future, job = item
            if future.set_running_or_notify_cancel():  # False: its caller gave up while it was queued
                self._run(future, job)

    def _run(self, future: Future[Any], job: Job) -> None:
        self._busy_since = time.monotonic()
        try:
            future.set_result(job(self._session_key()))
        except Exception as exc:  # the caller maps it; the session is not trusted after a failure
            self._key = None
            future.set_exception(exc)
        if self.stuck():  # it answered late: its caller is gone; open the token afresh before the next request
            self._reopen()
        self._busy_since = None

    def _reopen(self) -> None:
        self._key = None
        self._busy_since = time.monotonic()  # the re-open has a deadline of its own
        try:
            self._session_key()
        except Exception:  # the next request tries again
            self._key = None

    def _session_key(self) -> Any:
        if self._key is None:
            self._key = self._token.open()
        return self._key


class Pkcs11SigningKey(rsa.RSAPrivateKey):
    """An RSA signing key held by a PKCS#11 token, signing RSASSA-PKCS1-v1_5 with SHA-256 only."""

    in_hsm = True  # the crypto self-test skips the decryption round trip, which needs the private key

    def __init__(
        self, module: Path, token_label: str, key_label: str, pin: str, public: rsa.RSAPublicKey, timeout: float
    ) -> None:
        self._token = _Token(module, token_label, key_label, pin)
        self._public = public
        self._timeout = timeout
        self._lock = threading.Lock()
        self._thread: _TokenThread | None = None
        self._pid = 0
        self._closed = False

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

        try:
            return bytes(self._call(lambda key: key.sign(data, mechanism=pkcs11.Mechanism.SHA256_RSA_PKCS)))
        except TokenTimeout as exc:
            raise ServiceUnavailable(f"PKCS#11 token: {exc}", reason="hsm_timeout") from None
        except (pkcs11.PKCS11Error, Pkcs11Error) as exc:
            raise ServiceUnavailable(f"PKCS#11 token: {type(exc).__name__}", reason="hsm_unavailable") from None

    def probe(self) -> None:
        """Sign a fixed value (the readiness probe); ``ServiceUnavailable`` when the token does not."""
        self.sign(PROBE, padding.PKCS1v15(), hashes.SHA256())

    def check(self) -> None:
        """Open the token and find the key now (start-up), or raise :class:`Pkcs11Error`."""
        import pkcs11

        try:
            self._call(lambda key: key)
        except TokenTimeout as exc:
            raise Pkcs11Error(f"PKCS#11: the token does not answer ({exc})") from None
        except pkcs11.PKCS11Error as exc:
            raise Pkcs11Error(f"PKCS#11: {type(exc).__name__}") from None

    def close(self) -> None:
        """Stop using the key in this process: its token thread ends, later calls fail (``hsm_unavailable``)."""
        with self._lock:
            self._closed = True
            if self._thread is not None and self._pid == os.getpid():
                self._thread.stop()
            self._thread = None

    def _call(self, job: Job) -> Any:
        """``job(key)`` on this process's token thread (a forked worker starts its own: the parent's is not here)."""
        with self._lock:
            if self._closed:
                raise Pkcs11Error("the key was closed")
            if self._thread is None or self._pid != os.getpid():
                self._thread, self._pid = _TokenThread(self._token, self._timeout), os.getpid()
            thread = self._thread
        return thread.call(job)

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
        return pin_file.read_text(encoding="utf-8").splitlines()[0].strip() if pin_file.stat().st_size else ""
    except (OSError, IndexError):
        raise Pkcs11Error(f"issuer.pkcs11_pin_file: {pin_file} unreadable") from None
    except UnicodeDecodeError:  # the bytes are never echoed: they may be the PIN
        raise Pkcs11Error(f"issuer.pkcs11_pin_file: {pin_file} is not UTF-8 text") from None


def load_pkcs11_key(
    module: Path, token_label: str, key_label: str, pin_file: Path | None, public: rsa.RSAPublicKey, timeout: float
) -> Pkcs11SigningKey:
    """The token's key, checked now: it opens, and it signs what ``public`` (the certificate's key) verifies; every
    call into the token is awaited for at most ``timeout`` seconds."""
    try:
        import pkcs11  # noqa: F401 - the optional extra wstrust-sts[hsm]
    except ImportError:
        raise Pkcs11Error("issuer.pkcs11_module is set but python-pkcs11 is not installed (wstrust-sts[hsm])") from None
    if not module.is_file():
        raise Pkcs11Error(f"issuer.pkcs11_module: {module} not found")
    key = Pkcs11SigningKey(module, token_label, key_label, pin_from(pin_file), public, timeout)
    try:
        key.check()
        signature = key.sign(PROBE, padding.PKCS1v15(), hashes.SHA256())
        public.verify(signature, PROBE, padding.PKCS1v15(), hashes.SHA256())
    except Pkcs11Error:
        key.close()
        raise
    except ServiceUnavailable:
        key.close()
        raise Pkcs11Error("the PKCS#11 token does not sign") from None
    except Exception:  # cryptography's InvalidSignature: another key
        key.close()
        raise Pkcs11Error("the PKCS#11 key does not match issuer.signing_cert") from None
    return key
