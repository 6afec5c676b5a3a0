"""Outbound events (SPEC 10): what one fact's change to a purchase means in RevenueCat's
webhook vocabulary. Pure: given the purchase's view before and after the fact, the purchase
and its owner, it gives the events; ids are hashes of (app, purchase, type, fact), so a
rebuild derives the same events with the same ids (docs/decisions.md, "Outbound notifications").
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import msgspec

from projections.model import IntegrationState, Purchase
from projections.rules.eventfields import prices
from projections.rules.subscriptions import ACCESS_ENDING, latest_period_refunds
from projections.views import SubscriptionView

# Fixed: changing it would change every derived event id.
EVENT_NAMESPACE = uuid.UUID("0b7d3c5e-9f41-4a8e-b2d6-5e1f7a9c3d20")
_NAMESPACE = EVENT_NAMESPACE.bytes
Change = tuple[str, dict[str, Any]]  # (type, the fields only that type carries)
# Stripe's cancellation_details.reason → RevenueCat's cancel/expiration reason.
STRIPE_REASONS = {
    "cancellation_requested": "UNSUBSCRIBE",
    "payment_failed": "BILLING_ERROR",
    "payment_disputed": "UNKNOWN",
}


def event_id(app_id: str, subject: str, kind: str, fact_id: str) -> str:
    """RevenueCat's ids are UUID strings; ours are name-based (`uuid.uuid5`'s bytes, made
    here without its objects: one per derived event), so derivable again."""
    name = f"{app_id}\x00{subject}\x00{kind}\x00{fact_id}".encode()
    raw = bytearray(hashlib.sha1(_NAMESPACE + name, usedforsecurity=False).digest()[:16])
    raw[6] = (raw[6] & 0x0F) | 0x50  # version 5
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = raw.hex().upper()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def wants(integration: IntegrationState, event_type: str, sandbox: bool) -> bool:
    """Does this integration receive such an event? TEST goes only where it is asked to."""
    if event_type == "TEST":
        return False
    if integration.event_types and event_type not in integration.event_types:
        return False
    environment = integration.environment
    return environment in ("both", "sandbox" if sandbox else "production")


# --- what changed ------------------------------------------------------------------------


def subscription_changes(
    before: SubscriptionView | None, after: SubscriptionView, p: Purchase
) -> list[Change]:
    """The events one fact's change from `before` to `after` gives, in a fixed order. A
    purchase its customer sees for the first time is compared with a fresh start of
    itself, so a token posted after a cancellation still tells the whole story."""
    found: list[Change] = []
    if before is None:
        found.append(("INITIAL_PURCHASE", {}))
        before = _fresh(after)
    if before.product != after.product:
        found.append(
            ("PRODUCT_CHANGE", {"product_id": before.product, "new_product_id": after.product})
        )
    if _renewed(before, after):
        converted = before.period_type == "trial" or _after_trial(p, after.purchase_date)
        found.append(("RENEWAL", {"is_trial_conversion": converted}))
    if before.unsubscribe_detected_at is not None and after.unsubscribe_detected_at is None:
        found.append(("UNCANCELLATION", {}))
    if before.billing_issues_detected_at is None and after.billing_issues_detected_at is not None:
        found.append(("BILLING_ISSUE", {}))
    if before.unsubscribe_detected_at is None and after.unsubscribe_detected_at is not None:
        found.append(("CANCELLATION", {"cancel_reason": _ending_reason(after, p)}))
    if before.refunded_at is None and after.refunded_at is not None:
        found.append(("CANCELLATION", {"cancel_reason": "CUSTOMER_SUPPORT", **_refund(p)}))
    if before.status not in ACCESS_ENDING and after.status in ACCESS_ENDING:
        found.append(("EXPIRATION", {"expiration_reason": _ending_reason(after, p)}))
    return found


def _fresh(view: SubscriptionView) -> SubscriptionView:
    """The purchase as it began: paid (or trialing), nothing cancelled, failed or refunded."""
    return msgspec.structs.replace(
        view,
        status="trialing" if view.period_type == "trial" else "active",
        unsubscribe_detected_at=None,
        billing_issues_detected_at=None,
        refunded_at=None,
    )


def _renewed(before: SubscriptionView, after: SubscriptionView) -> bool:
    """Paid access into a new period, out of a trial, back from a billing issue, or onto
    a new product (Stripe's immediate product change: PRODUCT_CHANGE + RENEWAL)."""
    if after.status != "active" or after.billing_issues_detected_at or after.refunded_at:
        return False
    return (
        after.purchase_date != before.purchase_date
        or before.status != "active"
        or before.billing_issues_detected_at is not None
        or before.product != after.product
    )


def _after_trial(p: Purchase, period_start: int | None) -> bool:
    """Was the period before the one starting at `period_start` a trial?"""
    previous = [
        s
        for s in p.subs
        if s.period_start is not None and period_start is not None and s.period_start < period_start
    ]
    return bool(previous) and previous[-1].status == "trialing"


def _ending_reason(after: SubscriptionView, p: Purchase) -> str:
    """Why access ends (or will): a refund, Stripe's own reason, a failed payment, a
    paused trial, else the subscriber's unsubscribe."""
    if after.refunded_at is not None:
        return "CUSTOMER_SUPPORT"
    stripe_reason = p.subs[-1].cancel_reason if p.subs else None
    if stripe_reason in STRIPE_REASONS:
        return STRIPE_REASONS[stripe_reason]
    if after.status == "paused":
        return "SUBSCRIPTION_PAUSED"
    if after.status == "unpaid" or after.billing_issues_detected_at is not None:
        return "BILLING_ERROR"
    return "UNSUBSCRIBE"


def _refund(p: Purchase) -> dict[str, Any]:
    """A refund's CANCELLATION: negative prices, and the refunded invoice."""
    full, _ = latest_period_refunds(p, p.subs[-1])
    amount = sum(linked.charge.amount_refunded for linked in full)
    currency = next((linked.charge.currency for linked in full if linked.charge.currency), None)
    invoice = min((linked.invoice for linked in full), default=None)
    return {**prices(-amount, currency), "transaction_id": invoice or p.key}
