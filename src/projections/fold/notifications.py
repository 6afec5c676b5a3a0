"""Stripe's facts: notifications, their redeliveries and API reads, each object routed to the
rule that merges it (SPEC 3, 6, 7.1)."""

from __future__ import annotations

from typing import Any

import msgspec

from projections.fold import payments
from projections.fold.claims import link_session
from projections.fold.context import Context
from projections.fold.purchases import observe
from projections.fold.state import Batch
from projections.rules import purchases as rules
from projections.rules.subjects import event_subject, read_subjects
from subledger.facts import NotificationReceived, NotificationRedelivered, StripeObjectRead
from subledger.stripe import objects

READ_KINDS = ("subscription", "checkout.session", "invoice", "charge")


def decode_stripe(record: Any) -> Any:
    """The Stripe object a fact carries (None for other facts or unreadable bodies)."""
    try:
        if isinstance(record, NotificationReceived):
            return objects.decode_event_object(record.type, record.body)
        if isinstance(record, StripeObjectRead) and record.status == 200:
            kind = objects.object_kind(record.body)
            if kind in READ_KINDS:
                return objects.decode_api_object(kind, record.body)
    except msgspec.ValidationError:
        return None
    return None


def notification(b: Batch, ctx: Context, fact: NotificationReceived, obj: Any) -> None:
    if obj is None:
        try:
            obj = objects.decode_event_object(fact.type, fact.body)
        except msgspec.ValidationError as error:
            text = f"unreadable payload: {error}"
            b.note([event_subject(fact.event_id)], text, {"event": fact.event_id})
            return
    observe_object(b, ctx, obj, fact.event_id, fact.type)


def observe_object(b: Batch, ctx: Context, obj: Any, order_id: str, event_type: str = "") -> None:
    created = ctx.created or ctx.received_at_ms // 1000
    match obj:
        case objects.Subscription():
            order = (created, rules.subscription_precedence(obj), order_id)
            sub = rules.sub_obs(obj, order, ctx.position)
            creates = event_type == "customer.subscription.created"
            observe(b, ctx, obj.id, lambda p: rules.add_subscription(p, sub), creates=creates)
        case objects.CheckoutSession():
            order = (created, rules.session_precedence(obj), order_id)
            session = rules.session_obs(obj, order, ctx.position)
            creates = event_type == "checkout.session.completed"
            if obj.mode == "subscription" and session.subscription:
                link_session(b, ctx, obj.id, session.subscription)
                key = session.subscription
            elif obj.mode == "payment":
                key = obj.id
                payments.one_time_session(b, ctx, session)
            else:
                text = f"checkout session {obj.id} ({obj.mode or 'no'} mode) grants nothing"
                b.note([obj.id], text, {"session": obj.id})
                return
            observe(b, ctx, key, lambda p: rules.add_session(p, session), creates=creates)
        case objects.Invoice():
            payments.invoice(b, ctx, obj, order_id)
        case objects.Charge():
            payments.charge(b, ctx, obj, order_id)
        case _:
            pass


def redelivered(b: Batch, ctx: Context, fact: NotificationRedelivered) -> None:
    """Listed under the event id; explain joins it to the original's entry."""
    text = f"duplicate delivery of {fact.event_id} — ignored (already recorded)"
    b.note([event_subject(fact.event_id)], text, {"event": fact.event_id})


def stripe_read(b: Batch, ctx: Context, fact: StripeObjectRead, decoded: Any) -> None:
    ids = {"request": fact.request, "subject": fact.subject}
    if fact.status != 200:
        text = f"Stripe read {fact.request} failed ({fact.status} {fact.error}): {fact.reason}"
        b.note(read_subjects(fact), text, ids)
        return
    kind = objects.object_kind(fact.body)
    if kind == "list":
        payments.intent_links(b, ctx, fact)
        return
    try:
        obj = decoded or (
            objects.decode_api_object(kind, fact.body) if kind in READ_KINDS else None
        )
    except msgspec.ValidationError:
        obj = None
    if obj is None:
        text = f"Stripe read {fact.request} returned an unexpected {kind or 'body'}"
        b.note(read_subjects(fact), text, ids)
        return
    observe_object(b, ctx, obj, f"read:{fact.originator_id.hex}")
