"""Stored facts: what arrived, kept as it arrived. Never rename or move these classes.

The stored topic of a fact is `subledger.facts:ClassName`; a better interpretation later is a
projection rebuild, not a migration of these records.
"""

from __future__ import annotations

import uuid
from typing import ClassVar

import msgspec

# Fixed namespace: changing it would break duplicate detection against existing stores.
NOTIFICATION_NAMESPACE = uuid.UUID("6f1d2b9e-4c1a-4f0e-9a57-3c1b8f0d2e71")


class Fact(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    """One appended event; each fact is its own one-event sequence in the store."""

    originator_id: uuid.UUID
    originator_version: int = 1
    app_id: str
    received_at_ms: int

    kind: ClassVar[str] = "fact"


class AttributeValue(msgspec.Struct, frozen=True, gc=False, kw_only=True, omit_defaults=True):
    """A customer attribute as posted; `value` None or "" deletes the key."""

    value: str | None = None
    updated_at_ms: int | None = None


class NotificationReceived(Fact, frozen=True, kw_only=True):
    """A Stripe webhook that passed signature, shape and allow-list checks."""

    event_id: str
    type: str
    created: int
    livemode: bool
    api_version: str | None
    body: bytes
    secret_fingerprint: str

    kind: ClassVar[str] = "stripe"


class NotificationRedelivered(Fact, frozen=True, kw_only=True):
    """A verified copy of a notification already recorded: kept so auditors see retries,
    never applied twice (the original fact is the one projections use)."""

    event_id: str
    type: str
    secret_fingerprint: str

    kind: ClassVar[str] = "stripe-duplicate"


class TokenPosted(Fact, frozen=True, kw_only=True):
    """An app backend said `app_user_id` bought `fetch_token` (a sub_… or cs_… id)."""

    app_user_id: str
    fetch_token: str
    attributes: dict[str, AttributeValue] = {}
    presented_offering_identifier: str | None = None

    kind: ClassVar[str] = "token"


class AttributesPosted(Fact, frozen=True, kw_only=True):
    """The accepted (valid) attributes of one attributes post."""

    app_user_id: str
    attributes: dict[str, AttributeValue]

    kind: ClassVar[str] = "attributes"


class UserIdentified(Fact, frozen=True, kw_only=True):
    """A client said `app_user_id` is now `new_app_user_id` (RevenueCat's logIn/identify)."""

    app_user_id: str
    new_app_user_id: str

    kind: ClassVar[str] = "identify"


class StripeObjectRead(Fact, frozen=True, kw_only=True):
    """One answer of Stripe's API, recorded before it is used so rebuilds never call Stripe."""

    request: str
    status: int
    body: bytes
    reason: str
    subject: str
    customer: str | None = None
    error: str = ""

    kind: ClassVar[str] = "stripe-read"


class DeliveryAttempted(Fact, frozen=True, kw_only=True):
    """One POST of an outbound event to an integration (SPEC 10), recorded when it ended
    (`received_at_ms`): a rebuild knows what was delivered and never sends it again.
    `status` is the HTTP status (0: no answer, `error` says why); only 200 is a success.
    `next_attempt_at_ms`: when the sender will try again, None when it gave up (or
    succeeded): the retry decision is recorded, not recomputed."""

    integration_id: str
    outbound_event_id: str
    attempt: int
    status: int
    error: str = ""
    duration_ms: int = 0
    next_attempt_at_ms: int | None = None

    kind: ClassVar[str] = "delivery"


class TestEventRequested(Fact, frozen=True, kw_only=True):
    """An operator asked for a TEST event to be sent to one integration."""

    __test__: ClassVar[bool] = False  # a fact, not a test case (pytest collects Test*)

    integration_id: str

    kind: ClassVar[str] = "delivery-test"


class RedeliveryRequested(Fact, frozen=True, kw_only=True):
    """An operator asked to send an outbound event to an integration again (a failed
    delivery, usually): a new round of attempts with the same event id and timestamp."""

    integration_id: str
    outbound_event_id: str

    kind: ClassVar[str] = "delivery-resend"


def received_notification(
    app_id: str,
    *,
    event_id: str,
    event_type: str,
    created: int,
    livemode: bool,
    api_version: str | None,
    body: bytes,
    received_at_ms: int,
    secret_fingerprint: str,
) -> NotificationReceived:
    """The fact for a verified notification, under its deterministic per-app id."""
    return NotificationReceived(
        originator_id=notification_id(app_id, event_id),
        app_id=app_id,
        received_at_ms=received_at_ms,
        event_id=event_id,
        type=event_type,
        created=created,
        livemode=livemode,
        api_version=api_version,
        body=body,
        secret_fingerprint=secret_fingerprint,
    )


def notification_id(app_id: str, event_id: str) -> uuid.UUID:
    """Deterministic sequence id per (app, Stripe event): the store's uniqueness dedups."""
    return uuid.uuid5(NOTIFICATION_NAMESPACE, f"{app_id}\x00{event_id}")


def new_id() -> uuid.UUID:
    return uuid.uuid4()
