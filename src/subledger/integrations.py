"""Outbound integrations of an app (SPEC 10): where RevenueCat-shaped webhooks go, and which.

An integration is part of the app's settings, so it is event-sourced like them
(`apps.IntegrationAdded` / `apps.IntegrationRemoved`): a rebuild knows which integrations
existed when each fact was folded, and an integration receives only what was derived after
it was added.
"""

from __future__ import annotations

import secrets
from typing import Literal
from urllib.parse import urlsplit

import msgspec

from subledger.sealing import SealedSecret

Environment = Literal["production", "sandbox", "both"]
ENVIRONMENTS: tuple[str, ...] = ("production", "sandbox", "both")
# The types subledger derives from Stripe data, and TEST (sent on request). RevenueCat's
# other types (App Store, Play, Amazon only) never come from Stripe.
EVENT_TYPES: tuple[str, ...] = (
    "INITIAL_PURCHASE",
    "RENEWAL",
    "CANCELLATION",
    "UNCANCELLATION",
    "EXPIRATION",
    "BILLING_ISSUE",
    "PRODUCT_CHANGE",
    "TRANSFER",
    "NON_RENEWING_PURCHASE",
    "TEST",
)
FILTERABLE = EVENT_TYPES[:-1]  # TEST goes only where an operator sends it
ID_PREFIX = "int_"
_MAX_URL = 2000
_MAX_AUTHORIZATION = 4000


class IntegrationError(ValueError):
    """An integration setting is refused; the message is the one-line reason."""


class Integration(msgspec.Struct, frozen=True, kw_only=True):
    """One webhook receiver. `event_types` empty means every type."""

    id: str
    url: str
    authorization: SealedSecret | None = None  # the Authorization header value, sealed
    event_types: tuple[str, ...] = ()
    environment: Environment = "both"


def new_integration_id() -> str:
    return ID_PREFIX + secrets.token_hex(8)


def check_url(url: str) -> str:
    """http or https, a host, no credentials in the URL (they belong in the header)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise IntegrationError(f"{url!r} is not an http(s) URL with a host")
    if parts.username or parts.password:
        raise IntegrationError(
            "put credentials in --authorization, not in the URL (it is shown in listings)"
        )
    if len(url) > _MAX_URL or any(c.isspace() for c in url):
        raise IntegrationError(f"an integration URL has no spaces and at most {_MAX_URL} chars")
    return url


def check_authorization(value: str) -> str:
    """Sent verbatim as a header value: printable ASCII on one line."""
    if not value or len(value) > _MAX_AUTHORIZATION:
        raise IntegrationError(f"an Authorization value has 1-{_MAX_AUTHORIZATION} characters")
    if not value.isascii() or not value.isprintable():
        raise IntegrationError("an Authorization value is printable ASCII on one line")
    return value


def check_event_types(types: list[str]) -> tuple[str, ...]:
    wanted = tuple(sorted({t.strip().upper() for t in types if t.strip()}))
    unknown = [t for t in wanted if t not in FILTERABLE]
    if unknown:
        raise IntegrationError(
            f"unknown event type(s) {', '.join(unknown)}: use {', '.join(FILTERABLE)}"
        )
    return wanted


def check_environment(environment: str) -> Environment:
    for known in ("production", "sandbox", "both"):
        if environment == known:
            return known
    raise IntegrationError(f"environment is production, sandbox or both, not {environment!r}")
