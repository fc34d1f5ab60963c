"""Authenticated encryption of stored secrets (AES-256-GCM) with the instance's credential key.

PasswordDigest (UsernameToken Profile 1.1) can only be checked against a recoverable secret. Users enrolled
for it keep that secret encrypted at rest with a 256-bit key from the keystore (``credentials.key``, mode
0600), bound to the user by the associated data, never in plaintext.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sts.files import SECRET_FILE, write_file

KEY_BYTES = 32
_NONCE_BYTES = 12


class SecretBoxError(Exception):
    """The key file is unusable, or a sealed secret does not open."""


def generate_key_file(path: Path) -> None:
    """Write a fresh random key (mode 0600, also over an existing file; never through a symbolic link)."""
    write_file(path, secrets.token_bytes(KEY_BYTES), SECRET_FILE)


class SecretBox:
    """Seal and open small secrets bound to a context string."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise SecretBoxError("the credential key must be 32 bytes")
        self._aead = AESGCM(key)

    @classmethod
    def from_file(cls, path: Path) -> SecretBox:
        """Load the key file."""
        try:
            return cls(path.read_bytes())
        except OSError as exc:
            raise SecretBoxError(f"{path}: {exc.strerror}") from None

    def seal(self, plaintext: str, context: str) -> bytes:
        """Encrypt ``plaintext``; ``context`` (e.g. the user's qualified name) must match on open."""
        nonce = secrets.token_bytes(_NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext.encode("utf-8"), context.encode("utf-8"))

    def open(self, sealed: bytes, context: str) -> str:
        """Decrypt a sealed secret, or raise :class:`SecretBoxError`."""
        try:
            plain = self._aead.decrypt(sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], context.encode("utf-8"))
        except (InvalidTag, ValueError):
            raise SecretBoxError("sealed secret does not open") from None
        return plain.decode("utf-8")
