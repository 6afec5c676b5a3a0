"""Outbound events (SPEC 10): what one fact's change to a purchase means in RevenueCat's
webhook vocabulary. Pure: given the purchase's view before and after the fact, the purchase
and its owner, it gives the events; ids are hashes of (app, purchase, type, fact), so a
rebuild derives the same events with the same ids (docs/decisions-outbound.md).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from projections.model import Customer, IntegrationState, Purchase
from projections.rules.subscriptions import (
    ACCESS_ENDING,
    NEVER_PAID,
    latest_period_refunds,
)
from projections.views import AttributeEntry, OneTimeView, SubscriptionView, WebhookEvent
from subledger.identity import is_anonymous

# Fixed: changing it would change every derived event id.
EVENT_NAMESPACE = uuid.UUID("0b7d3c5e-9f41-4a8e-b2d6-5e1f7a9c3d20")
_NAMESPACE = EVENT_NAMESPACE.bytes
Change = tuple[str, dict[str, Any]]  # (type, the fields only that type carries)
# Stripe's currencies without minor units, and with three decimals (its docs' lists).
ZERO_DECIMAL = frozenset(
    {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga"}
    | {"pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf"}
)
THREE_DECIMAL = frozenset({"bhd", "jod", "kwd", "omr", "tnd"})
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


# --- the event's fields ------------------------------------------------------------------


def prices(amount: int | None, currency: str | None) -> dict[str, Any]:
    """RevenueCat's price fields from Stripe's minor units: `price` is USD only (no hidden
    exchange rates), `price_in_purchased_currency` in the purchase's own currency."""
    if amount is None or not currency:
        return {"price": None, "currency": None, "price_in_purchased_currency": None}
    code = currency.lower()
    digits = 0 if code in ZERO_DECIMAL else 3 if code in THREE_DECIMAL else 2
    value = amount / 10**digits
    return {
        "price": value if code == "usd" else None,
        "currency": code.upper(),
        "price_in_purchased_currency": value,
    }


def subscriber_fields(customer: Customer | None) -> dict[str, Any]:
    """Who the event is about: RevenueCat's last seen id is the customer's last identified
    id (else its last anonymous one); aliases are every id, in the order first seen."""
    if customer is None:
        return {}
    identified = [i for i in customer.ids if not is_anonymous(i)]
    return {
        "app_user_id": (identified or list(customer.ids))[-1],
        "original_app_user_id": customer.id,
        "aliases": customer.ids,
        "subscriber_attributes": {
            key: AttributeEntry(a.value, a.updated_at_ms)
            for key, a in sorted(customer.attributes.items())
        },
    }


def entitlement_ids(product: str, mapping: Mapping[str, Sequence[str]]) -> tuple[str, ...] | None:
    granted = tuple(sorted(e for e, products in mapping.items() if product in products))
    return granted or None


def subscription_fields(
    view: SubscriptionView, p: Purchase, mapping: Mapping[str, Sequence[str]]
) -> dict[str, Any]:
    """The lifecycle fields of a subscription as it stands after the fact."""
    latest = p.subs[-1]
    trial = view.period_type == "trial"
    amount = 0 if trial else latest.amount
    return {
        "product_id": view.product,
        "entitlement_ids": entitlement_ids(view.product, mapping),
        "period_type": "TRIAL" if trial else "NORMAL",
        "purchased_at_ms": _ms(view.purchase_date),
        "expiration_at_ms": _ms(view.expires_date),
        "environment": "SANDBOX" if view.is_sandbox else "PRODUCTION",
        "presented_offering_id": p.offering,
        **prices(amount, latest.currency),
        "transaction_id": period_invoice(p, view.purchase_date) or p.key,
        "original_transaction_id": p.key,
        "is_family_share": False,
        "renewal_number": renewal_number(p, view.purchase_date),
    }


def one_time_fields(
    view: OneTimeView, p: Purchase, mapping: Mapping[str, Sequence[str]]
) -> dict[str, Any]:
    session = p.session
    return {
        "product_id": view.product,
        "entitlement_ids": entitlement_ids(view.product, mapping),
        "period_type": "NORMAL",
        "purchased_at_ms": _ms(view.purchase_date),
        "environment": "SANDBOX" if view.is_sandbox else "PRODUCTION",
        "presented_offering_id": p.offering,
        **(prices(session.amount_total, session.currency) if session else prices(None, None)),
        "transaction_id": p.key,
        "original_transaction_id": p.key,
        "is_family_share": False,
    }


def period_invoice(p: Purchase, period_start: int | None) -> str | None:
    """The invoice of the period starting at `period_start`, when one is known."""
    found = [i for i in p.invoices.values() if period_start and i.period_start == period_start]
    return max(found, key=lambda i: i.order).id if found else None


def renewal_number(p: Purchase, period_start: int | None) -> int | None:
    """Which paid (or trial) period this is, counting the periods subledger has seen: 1 for
    the first, and a trial conversion counts (RevenueCat's definition)."""
    if period_start is None:
        return None
    starts = {
        s.period_start
        for s in p.subs
        if s.period_start is not None
        and s.period_start <= period_start
        and s.status not in NEVER_PAID
    }
    return len(starts) or None


def build(kind: str, event: str, app_id: str, at_ms: int, fields: dict[str, Any]) -> WebhookEvent:
    return WebhookEvent(type=kind, id=event, app_id=app_id, event_timestamp_ms=at_ms, **fields)


def _ms(seconds: int | None) -> int | None:
    return None if seconds is None else seconds * 1000
