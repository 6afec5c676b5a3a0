"""Webhook secrets and Stripe keys at rest: AES-GCM when SUBLEDGER_SECRETS_KEY is set."""

from __future__ import annotations

import base64
import hashlib
import os
from typing import Literal

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


class SealingError(ValueError):
    """A stored secret cannot be opened with the configured key."""


class SealedSecret(msgspec.Struct, frozen=True, kw_only=True):
    """A secret as stored in an App event; the fingerprint names it without revealing it."""

    fingerprint: str
    scheme: Literal["plain", "aes-gcm"]
    data: bytes


def fingerprint(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


class Sealer:
    """Seals secrets before they enter the log; opens them when the service loads apps."""

    def __init__(self, key_b64: str = "") -> None:
        self._aead: AESGCM | None = None
        if key_b64:
            try:
                key = base64.b64decode(key_b64, validate=True)
            except ValueError:
                raise SealingError("SUBLEDGER_SECRETS_KEY must be base64") from None
            if len(key) not in (16, 24, 32):
                raise SealingError("SUBLEDGER_SECRETS_KEY must decode to 16, 24 or 32 bytes")
            self._aead = AESGCM(key)

    @property
    def encrypts(self) -> bool:
        return self._aead is not None

    def seal(self, secret: str) -> SealedSecret:
        fp = fingerprint(secret)
        if self._aead is None:
            return SealedSecret(fingerprint=fp, scheme="plain", data=secret.encode())
        nonce = os.urandom(12)
        data = nonce + self._aead.encrypt(nonce, secret.encode(), fp.encode())
        return SealedSecret(fingerprint=fp, scheme="aes-gcm", data=data)

    def open(self, sealed: SealedSecret) -> str:
        if sealed.scheme == "plain":
            return sealed.data.decode()
        if self._aead is None:
            raise SealingError(
                f"secret {sealed.fingerprint} is encrypted: set SUBLEDGER_SECRETS_KEY to open it"
            )
        try:
            plain = self._aead.decrypt(
                sealed.data[:12], sealed.data[12:], sealed.fingerprint.encode()
            )
        except InvalidTag:
            raise SealingError(
                f"secret {sealed.fingerprint} does not open with SUBLEDGER_SECRETS_KEY"
            ) from None
        return plain.decode()


def new_secrets_key() -> str:
    """A fresh base64 AES-256 key for SUBLEDGER_SECRETS_KEY."""
    return base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()
