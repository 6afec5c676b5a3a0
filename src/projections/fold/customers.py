"""Customers as the API's own facts shape them: created on first use, seen, merged, and
their attributes (SPEC 5)."""

from __future__ import annotations

from projections.fold.context import Context
from projections.fold.state import Batch
from projections.model import Customer
from projections.rules.ownership import apply_attributes, merge, new_customer, seen
from subledger.facts import AttributesPosted

API_KINDS = ("token", "attributes")  # facts a client posted, unlike Stripe's


def ensure_customer(b: Batch, ctx: Context, app_user_id: str) -> Customer:
    """The customer of `app_user_id`, created if new. Only the API's own facts (tokens,
    attribute posts) make an existing customer "seen": a notification's receive time would
    make `last_seen` depend on Stripe's delivery order."""
    found = b.customer_of(ctx.app_id, app_user_id)
    if found is None:
        return new_customer(app_user_id, ctx.position, ctx.received_at_ms)
    return seen(found, ctx.received_at_ms) if ctx.kind in API_KINDS else found


def alias(b: Batch, app_id: str, first: Customer, second: Customer) -> Customer:
    """Merge two customers into one (the id seen first in the log stays canonical)."""
    merged = merge(first, second)
    for old in (first, second):
        if old.id != merged.id:
            b.drop_customer(app_id, old.id)
    b.save_customer(app_id, merged)
    return merged


def attributes(b: Batch, ctx: Context, fact: AttributesPosted) -> None:
    customer = ensure_customer(b, ctx, fact.app_user_id)
    customer, changed = apply_attributes(customer, fact.attributes, fact.received_at_ms)
    b.save_customer(fact.app_id, customer)
    text = (
        f"attributes {', '.join(changed)} updated"
        if changed
        else "attributes posted; none newer than the stored values"
    )
    b.note([fact.app_user_id], text, {"app_user_id": fact.app_user_id})
