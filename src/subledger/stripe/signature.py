"""Stripe's webhook signature scheme on the raw request bytes (constant-time, rotation-aware).

Header: `t=<unix seconds>,v1=<hex hmac>[,v1=…][,v0=…]`; the signed payload is `t.` + body.
Stripe sends one `v1` per active secret during a secret roll; `v0` is a test scheme we ignore.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

import msgspec


class SignatureError(ValueError):
    """Why a signature was refused; `reason` is one of malformed, mismatch, too_old."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class SignatureHeader(msgspec.Struct, frozen=True):
    timestamp: int
    signatures: tuple[bytes, ...]


def parse_header(header: str | None) -> SignatureHeader:
    if not header:
        raise SignatureError("malformed", "Stripe-Signature header is missing")
    timestamp: int | None = None
    signatures: list[bytes] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise SignatureError("malformed", "Stripe-Signature has a non-numeric t=") from None
        elif key == "v1":
            signatures.append(value.strip().lower().encode())
    if timestamp is None:
        raise SignatureError("malformed", "Stripe-Signature has no timestamp (t=)")
    if not signatures:
        raise SignatureError("malformed", "Stripe-Signature has no v1 signature")
    return SignatureHeader(timestamp, tuple(signatures))


def sign(body: bytes, secret: str, timestamp: int) -> str:
    """The hex v1 signature Stripe would send (used by tests and benchmarks)."""
    signed = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def verify(
    body: bytes,
    header: str | None,
    secrets: Sequence[tuple[str, str]],
    *,
    tolerance_s: int,
    now_s: float,
) -> str:
    """Return the fingerprint of the secret that signed `body`, or raise SignatureError."""
    parsed = parse_header(header)
    signed = str(parsed.timestamp).encode() + b"." + body
    matched: str | None = None
    for fingerprint, secret in secrets:
        expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest().encode()
        # Compare against every candidate so timing does not reveal which one matched.
        hits = sum(hmac.compare_digest(expected, candidate) for candidate in parsed.signatures)
        if hits and matched is None:
            matched = fingerprint
    if matched is None:
        raise SignatureError(
            "mismatch", "no v1 signature matches this app's webhook secrets for this exact body"
        )
    if now_s - parsed.timestamp > tolerance_s:
        raise SignatureError(
            "too_old",
            f"signature timestamp is {int(now_s - parsed.timestamp)} s old "
            f"(tolerance {tolerance_s} s); Stripe retries with a fresh signature",
        )
    return matched
