"""Narrow msgspec views of Stripe payloads: only the fields subledger reads.

Unknown fields are ignored and enums are plain strings, so new Stripe API versions decode.
"""

from __future__ import annotations

import msgspec

from subledger.facts import NotificationReceived, received_notification
from subledger.storable import INT64_MAX, INT64_MIN, UnstorableJsonError, check_storable_json

SUPPORTED_EVENT_TYPES: tuple[str, ...] = (
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "charge.refunded",
    "invoice.updated",
    "checkout.session.completed",
)


class PayloadError(ValueError):
    """The body is not a Stripe event."""


class EventObject(msgspec.Struct, frozen=True):
    object: str = ""
    id: str | None = None


class EventData(msgspec.Struct, frozen=True):
    object: EventObject


class EventEnvelope(msgspec.Struct, frozen=True):
    """What ingest checks and stores next to the raw bytes."""

    id: str
    object: str
    type: str
    created: int | float  # an integral float is that integer (JSON does not tell them apart)
    data: EventData
    livemode: bool = False
    api_version: str | None = None


_envelope = msgspec.json.Decoder(EventEnvelope)


def decode_envelope(body: bytes) -> EventEnvelope:
    """The event's envelope, once the whole body is known to be JSON every store and the
    fold can hold (a stored notification is folded on every rebuild, so it must fold)."""
    try:
        check_storable_json(body)
    except UnstorableJsonError as error:
        raise PayloadError(
            f"body is not a JSON Stripe event subledger can store: {error}"
        ) from None
    try:
        event = _envelope.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError) as error:
        raise PayloadError(f"body is not a JSON Stripe event: {error}") from None
    if event.object != "event" or not event.id.startswith("evt_") or not event.type:
        raise PayloadError('body is not a Stripe event (needs object "event" and an evt_ id)')
    if isinstance(event.created, float):
        if not event.created.is_integer() or not INT64_MIN <= int(event.created) <= INT64_MAX:
            raise PayloadError("body is not a Stripe event: `created` must be whole seconds")
        event = msgspec.structs.replace(event, created=int(event.created))
    return event


def notification_fact(
    app_id: str, event: EventEnvelope, body: bytes, *, received_at_ms: int, secret_fingerprint: str
) -> NotificationReceived:
    return received_notification(
        app_id,
        event_id=event.id,
        event_type=event.type,
        created=int(event.created),
        livemode=event.livemode,
        api_version=event.api_version,
        body=body,
        received_at_ms=received_at_ms,
        secret_fingerprint=secret_fingerprint,
    )
