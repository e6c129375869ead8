"""Destination credentials sealed at rest: AES-256-GCM under a key derived from a secret.

A sealed value is the text `v1:<key id>:<base64url(nonce | ciphertext | tag)>`:

- the key is HKDF-SHA256 of the secret (no salt, info `waypost/credentials/v1`). The secret is
  meant to be a long random string, not a password, so a fast extract-and-expand KDF is the right
  tool: any secret becomes a uniform 256-bit key, and a slow password hash would only add start-up
  time without making a random secret harder to guess;
- the key id is 4 bytes of a second HKDF output of the same secret (info `waypost/key-id/v1`). It
  reveals nothing about the key, and says which of the current and previous keys sealed a value, so
  a read tries one key, and a value sealed under an unknown key is told apart from a tampered one;
- the nonce is 12 random bytes per seal; the associated data is the destination's tenant and id, so
  a sealed value copied into another row does not open there.

Values that are not envelopes (legacy rows, written as plain JSON before sealing existed) are
returned as they are; they are sealed when the destination is next written. This module knows no
settings: it is given secrets, and names the settings they come from only in its error messages.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from waypost.errors import ConfigError, StoreError

PREFIX = "v1:"
_NONCE = 12
_TAG = 16
SECRET_SETTING = "AES_ENCRYPTION_SECRET"  # noqa: S105 - a setting name, not a secret
PREVIOUS_SETTING = "AES_ENCRYPTION_SECRET_PREVIOUS"


def _derive(secret: str, info: bytes, length: int) -> bytes:
    kdf = HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info)
    return kdf.derive(secret.encode())


class _Key:
    __slots__ = ("aead", "id")

    def __init__(self, secret: str) -> None:
        if not secret:
            raise ValueError(f"{SECRET_SETTING} must not be empty")
        self.aead = AESGCM(_derive(secret, b"waypost/credentials/v1", 32))
        self.id = _derive(secret, b"waypost/key-id/v1", 4).hex()


class Sealer:
    """Seals with the current secret; opens what the current or a previous secret sealed."""

    def __init__(self, secret: str, previous: Sequence[str] = ()) -> None:
        self._current = _Key(secret)
        self._keys = {self._current.id: self._current}
        for old in previous:
            if old:
                key = _Key(old)
                self._keys.setdefault(key.id, key)

    @property
    def key_id(self) -> str:
        return self._current.id

    @property
    def prefix(self) -> str:
        """How every value sealed under the current key begins."""
        return f"{PREFIX}{self._current.id}:"

    def refuse_unknown_keys(self, key_ids: Sequence[str], hint: str = "") -> None:
        """ConfigError if a stored value was sealed under a key neither secret gives.

        Checked when a store opens, so that a wrong or lost secret stops the start with the fix
        named, instead of every read of those destinations failing later."""
        unknown = sorted(set(key_ids) - set(self._keys))
        if unknown:
            raise ConfigError(
                f"destination credentials are sealed under key id {unknown[0]}, which neither "
                f"{SECRET_SETTING} nor {PREVIOUS_SETTING} gives{hint}: set "
                f"{SECRET_SETTING} to the secret they were written with"
            )

    def seal(self, plaintext: bytes, context: str) -> str:
        nonce = os.urandom(_NONCE)
        sealed = self._current.aead.encrypt(nonce, plaintext, context.encode())
        body = base64.urlsafe_b64encode(nonce + sealed).decode()
        return f"{self.prefix}{body}"

    @staticmethod
    def is_sealed(stored: str) -> bool:
        return stored.startswith(PREFIX)

    def is_current(self, stored: str) -> bool:
        """Whether a stored value is sealed under the current key (else a write reseals it)."""
        return stored.startswith(self.prefix)

    def open(self, stored: str, context: str) -> bytes:
        """The plaintext of a sealed value, or StoreError; never a wrong plaintext."""
        key_id, _, body = stored[len(PREFIX) :].partition(":")
        key = self._keys.get(key_id)
        if key is None:
            raise StoreError(
                f"credentials of {context} were sealed under another key (id {key_id}) than "
                f"{SECRET_SETTING} or {PREVIOUS_SETTING}: set the secret they were written with"
            )
        try:
            raw = base64.urlsafe_b64decode(body.encode())
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) < _NONCE + _TAG:
            raise StoreError(f"credentials of {context} are not a valid sealed value")
        try:
            return key.aead.decrypt(raw[:_NONCE], raw[_NONCE:], context.encode())
        except InvalidTag:
            raise StoreError(
                f"credentials of {context} fail authentication under {SECRET_SETTING}: "
                "tampered with, or sealed under a different secret"
            ) from None
