"""Deliveries of outbound events (SPEC 10): queued when an event is derived, then moved by
the facts the sender records (each attempt, with the retry it decided on) and by operators
(re-send, integration removed). The outbox holds what is pending, keyed by when it is due.
"""

from __future__ import annotations

import msgspec

from projections.fold.context import Context
from projections.fold.state import Batch
from projections.model import (
    DELIVERIES,
    OUTBOUND_EVENTS,
    OUTBOX,
    Attempt,
    Delivery,
    OutboundEvent,
    OutboxEntry,
)
from projections.rules.dates import iso_ms
from projections.rules.subjects import delivery_key, integration_subject, outbox_key
from projections.views import WebhookEvent
from subledger.facts import DeliveryAttempted, RedeliveryRequested


def queue(b: Batch, ctx: Context, body: WebhookEvent, subject: str, targets: list[str]) -> bool:
    """Keep the event and a pending delivery to each target, due at once; False when no
    integration wants it (then nothing is kept)."""
    if not targets:
        return False
    b.rows.put(
        OUTBOUND_EVENTS,
        ctx.app_id,
        body.id,
        OutboundEvent(position=ctx.position, subject=subject, body=body),
    )
    for integration in targets:
        delivery = Delivery(
            integration=integration,
            event=body.id,
            type=body.type,
            subject=subject,
            position=ctx.position,
        )
        _reopen(b, ctx.app_id, delivery, ctx.received_at_ms)
    return True


def _reopen(b: Batch, app_id: str, delivery: Delivery, due_ms: int) -> None:
    """`delivery` pending from `due_ms`, with its outbox entry: a new round of attempts."""
    delivery = msgspec.structs.replace(delivery, status="pending", due_ms=due_ms, retry=0)
    b.rows.put(DELIVERIES, app_id, delivery_key(delivery.integration, delivery.event), delivery)
    entry = OutboxEntry(
        integration=delivery.integration,
        event=delivery.event,
        attempt=len(delivery.attempts) + 1,
        retry=0,
    )
    b.rows.put(OUTBOX, app_id, outbox_key(delivery.integration, due_ms, delivery.event), entry)


def _close(b: Batch, app_id: str, delivery: Delivery) -> None:
    """Take a pending delivery out of the outbox (it is sent, given up or dropped)."""
    if delivery.status == "pending" and delivery.due_ms is not None:
        key = outbox_key(delivery.integration, delivery.due_ms, delivery.event)
        b.rows.put(OUTBOX, app_id, key, None)


def attempted(b: Batch, ctx: Context, fact: DeliveryAttempted) -> None:
    """One POST's outcome: delivered on 200, else due again when the sender said, or failed
    when it gave up. An attempt on a delivery no longer pending (a sender that re-sent after
    a restart) is recorded and changes nothing else: delivered stays delivered."""
    key = delivery_key(fact.integration_id, fact.outbound_event_id)
    found: Delivery | None = b.rows.get(DELIVERIES, ctx.app_id, key)
    ids = {"integration": fact.integration_id, "outbound_event": fact.outbound_event_id}
    if found is None:
        text = f"delivery attempt for unknown event {fact.outbound_event_id}: ignored"
        b.note([integration_subject(fact.integration_id)], text, ids)
        return
    attempt = Attempt(
        attempt=fact.attempt,
        position=ctx.position,
        at_ms=fact.received_at_ms,
        status=fact.status,
        duration_ms=fact.duration_ms,
        error=fact.error,
    )
    delivery = msgspec.structs.replace(found, attempts=(*found.attempts, attempt))
    outcome = f"answered {fact.status}" if fact.status else f"failed ({fact.error})"
    text = f"outbound {found.type} {found.event} to {found.integration}: attempt {fact.attempt}"
    if found.status != "pending":
        text += f" {outcome}; the delivery was already {found.status}"
    else:
        _close(b, ctx.app_id, found)
        retry = found.retry + 1
        if fact.status == 200:
            delivery = msgspec.structs.replace(delivery, status="delivered", due_ms=None)
            text += f" delivered in {fact.duration_ms} ms"
        elif fact.next_attempt_at_ms is not None:
            due = fact.next_attempt_at_ms
            delivery = msgspec.structs.replace(delivery, due_ms=due, retry=retry)
            entry = OutboxEntry(
                integration=found.integration,
                event=found.event,
                attempt=len(delivery.attempts) + 1,
                retry=retry,
            )
            b.rows.put(OUTBOX, ctx.app_id, outbox_key(found.integration, due, found.event), entry)
            text += f" {outcome}; retry at {iso_ms(due)}"
        else:
            delivery = msgspec.structs.replace(delivery, status="failed", due_ms=None, retry=retry)
            text += f" {outcome}; given up: failed (an operator can re-send it)"
    b.rows.put(DELIVERIES, ctx.app_id, key, delivery)
    b.note([found.subject], text, ids)


def redelivery(b: Batch, ctx: Context, fact: RedeliveryRequested) -> None:
    """An operator re-sends a delivery that is not pending: a new round, due at once."""
    key = delivery_key(fact.integration_id, fact.outbound_event_id)
    found: Delivery | None = b.rows.get(DELIVERIES, ctx.app_id, key)
    ids = {"integration": fact.integration_id, "outbound_event": fact.outbound_event_id}
    subject = found.subject if found else integration_subject(fact.integration_id)
    known = {i.id for i in b.app(ctx.app_id).integrations}
    if found is None or found.status == "pending" or fact.integration_id not in known:
        why = (
            "no such delivery"
            if found is None
            else "it is pending already"
            if found.status == "pending"
            else "the integration was removed"
        )
        b.note([subject], f"re-send of {fact.outbound_event_id} refused: {why}", ids)
        return
    _reopen(b, ctx.app_id, found, ctx.received_at_ms)
    text = f"outbound {found.type} {found.event} to {found.integration}: re-send requested"
    b.note([subject], text, ids)


def integration_removed(b: Batch, ctx: Context, integration_id: str) -> None:
    """Pending deliveries to a removed integration are dropped (canceled), not sent."""
    prefix = f"{integration_id}/"
    for key in b.rows.ids(OUTBOX, ctx.app_id):
        if not key.startswith(prefix):
            continue
        event = key.rsplit("/", 1)[1]
        found: Delivery | None = b.rows.get(
            DELIVERIES, ctx.app_id, delivery_key(integration_id, event)
        )
        if found is None:
            continue
        _close(b, ctx.app_id, found)
        canceled = msgspec.structs.replace(found, status="canceled", due_ms=None)
        b.rows.put(DELIVERIES, ctx.app_id, delivery_key(integration_id, event), canceled)
        text = f"integration {integration_id} removed: pending deliveries canceled"
        b.note([found.subject], text, {"integration": integration_id})
