"""Password hashing: the only module importing ``passlib`` (installed from the maintained fork ``libpass``).

argon2id at the OWASP minimum (m = 19 MiB, t = 2, p = 1) is the default; older hashes verify and are flagged by
``needs_update`` for a rehash at the next successful login. Unknown users cost one ``dummy_verify`` so that
timing does not tell them apart (OWASP Authentication Cheat Sheet, "Authentication and Error Messages").
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass

from passlib.context import CryptContext


@dataclass(frozen=True, slots=True)
class HashPolicy:
    """argon2id parameters; tests may lower them, production keeps the OWASP floor."""

    memory_kib: int = 19456
    time_cost: int = 2
    parallelism: int = 1


class PasswordHasher:
    """Hash, verify and upgrade passwords with one ``CryptContext`` built once."""

    def __init__(self, policy: HashPolicy | None = None) -> None:
        policy = policy or HashPolicy()
        self._context = CryptContext(
            schemes=["argon2", "bcrypt_sha256", "bcrypt", "pbkdf2_sha256"],
            deprecated="auto",
            argon2__type="ID",
            argon2__memory_cost=policy.memory_kib,
            argon2__rounds=policy.time_cost,
            argon2__parallelism=policy.parallelism,
        )
        self._dummy_hash: str | None = None
        self._dummy_lock = threading.Lock()  # one dummy hash per process, however many threads ask at once

    def hash(self, password: str) -> str:
        """A new hash with the current default parameters."""
        return str(self._context.hash(password))

    def verify(self, password: str, stored_hash: str) -> tuple[bool, bool]:
        """``(matches, needs_rehash)``; a malformed stored hash never matches."""
        try:
            matches = self._context.verify(password, stored_hash)
        except (ValueError, TypeError):
            return False, False
        return matches, matches and self._context.needs_update(stored_hash)

    def dummy_verify(self) -> None:
        """Spend the time of one real verification, for users that do not exist.

        passlib's own ``dummy_verify`` measured ~45 ms against ~28 ms for a real argon2id check, which would
        tell unknown users apart; verifying against a hash made with the same parameters costs the same.
        """
        dummy = self._dummy_hash
        if dummy is None:
            # Made once: unknown users arriving together on request threads each made one before (argon2id at
            # its full cost, the interpreter lock released meanwhile), so each such failure cost two hashes.
            with self._dummy_lock:
                if self._dummy_hash is None:
                    self._dummy_hash = self.hash(secrets.token_urlsafe(16))
                dummy = self._dummy_hash
        self._context.verify(secrets.token_urlsafe(16), dummy)
