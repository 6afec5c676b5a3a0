"""Outbound events (SPEC 10): after each fact, what changed in the purchases it saved becomes
RevenueCat-shaped events, queued as one delivery per integration that wants them. The rules
are pure (rules/outbound.py); deliveries and their attempts are in fold/deliveries.py.
"""

from __future__ import annotations

from typing import Any

from projections.fold.context import Context
from projections.fold.deliveries import queue
from projections.fold.state import Batch
from projections.model import AppState, Customer, Purchase
from projections.rules.eventfields import (
    build,
    one_time_fields,
    subscriber_fields,
    subscription_fields,
)
from projections.rules.outbound import event_id, subscription_changes, wants
from projections.rules.subjects import integration_subject
from projections.rules.subscriptions import one_time_view
from projections.views import WebhookEvent
from subledger.facts import TestEventRequested


def purchase_events(b: Batch, ctx: Context) -> None:
    """The events of the purchases the current fact changed, for apps with integrations
    (for the others nothing is looked at: `end_fact` forgets what the fact saved)."""
    if not b.watching:
        return
    for app_id, before, after in b.changed_purchases():
        app = b.app(app_id)
        if not app.integrations or after is None or after.owner is None:
            continue
        queued: list[WebhookEvent] = []
        for body in _events(b, ctx, app, before, after):
            sandbox = body.environment == "SANDBOX"
            targets = [i.id for i in app.integrations if wants(i, body.type, sandbox)]
            if queue(b, ctx, body, after.key, targets):
                queued.append(body)
        if queued:
            text = "outbound " + ", ".join(f"{e.type} {e.id}" for e in queued) + " queued"
            b.note([after.key], text, {"outbound_event": queued[0].id})


def _events(
    b: Batch, ctx: Context, app: AppState, before: Purchase | None, after: Purchase
) -> list[WebhookEvent]:
    changes: list[tuple[str, dict[str, Any]]] = []
    gone = before.owner if before is not None else None
    owner = b.customer_of(ctx.app_id, after.owner) if gone != after.owner else None
    moved = _transfer(b, ctx, gone, after, owner)
    if moved is not None:
        changes.append(("TRANSFER", {"app_user_id": None, **moved}))
    base: dict[str, Any] = {}
    if after.kind == "one_time":
        shown = one_time_view(after)
        if shown is None:
            return []
        if before is None or before.owner is None or one_time_view(before) is None:
            changes.append(("NON_RENEWING_PURCHASE", {}))
        if changes:
            base = one_time_fields(shown, after, app.entitlements)
    else:
        view = b.view(after)
        if view is None:
            return []
        changes += subscription_changes(b.view(before), view, after)
        if changes:
            base = subscription_fields(view, after, app.entitlements)
    if not changes:
        return []
    owner = owner or b.customer_of(ctx.app_id, after.owner)
    fields = {**subscriber_fields(owner), **base}
    found = []
    for kind, extra in changes:
        key = f"{kind}:{extra['cancel_reason']}" if kind == "CANCELLATION" else kind
        made = event_id(ctx.app_id, after.key, key, ctx.fact_id)
        found.append(build(kind, made, ctx.app_id, ctx.received_at_ms, {**fields, **extra}))
    return found


def _transfer(
    b: Batch, ctx: Context, gone: str | None, after: Purchase, owner: Customer | None
) -> dict[str, Any] | None:
    """SPEC 7.4's TRANSFER: the purchase changed hands between two customers (an alias
    keeps the owner, so it is not one); both sides named with every id they have."""
    if gone is None or gone == after.owner or (owner is not None and gone in owner.ids):
        return None
    giver = b.customer_of(ctx.app_id, gone)
    return {
        "transferred_from": giver.ids if giver is not None else (gone,),
        "transferred_to": owner.ids if owner is not None else (after.owner,),
    }


def send_test(b: Batch, ctx: Context, fact: TestEventRequested) -> None:
    """A TEST event, to the one integration asked for (whatever its filters)."""
    subject = integration_subject(fact.integration_id)
    known = {i.id for i in b.app(ctx.app_id).integrations}
    if fact.integration_id not in known:
        text = f"test event for unknown integration {fact.integration_id}: nothing sent"
        b.note([subject], text, {"integration": fact.integration_id})
        return
    made = event_id(ctx.app_id, subject, "TEST", ctx.fact_id)
    body = build("TEST", made, ctx.app_id, ctx.received_at_ms, {"environment": "SANDBOX"})
    queue(b, ctx, body, subject, [fact.integration_id])
    text = f"outbound TEST {made} queued for {fact.integration_id}"
    b.note([subject], text, {"outbound_event": made})
