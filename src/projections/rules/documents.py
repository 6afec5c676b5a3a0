"""The RevenueCat-shaped customer document (SPEC 8), minus `request_date` (added at read).

Stored documents carry dates, never "is active" flags, so rebuilding gives the same bytes
whenever it runs; "active" is decided by the reader against the request time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from projections.model import AppState, Customer, Purchase
from projections.rules.dates import iso
from projections.rules.subscriptions import one_time_view, replaced_products, subscription_view
from projections.views import (
    AttributeEntry,
    EntitlementEntry,
    NonSubscriptionEntry,
    OneTimeView,
    Subscriber,
    SubscriptionEntry,
    SubscriptionView,
)


def empty_subscriber(app_user_id: str, seen_at: str) -> Subscriber:
    """The document of an id nobody has used yet. RevenueCat's SDKs require `first_seen`
    (iOS declares it non-optional), so it and `last_seen` are the request's time, as
    RevenueCat itself answers a new id; nothing is stored."""
    return Subscriber(
        original_app_user_id=app_user_id,
        first_seen=seen_at,
        last_seen=seen_at,
        management_url=None,
        original_application_version=None,
        original_purchase_date=None,
        entitlements={},
        subscriptions={},
        non_subscriptions={},
        other_purchases={},
        subscriber_attributes={},
    )


Shown = tuple[dict[str, SubscriptionView], tuple[OneTimeView, ...]]


def shown_purchases(
    purchases: Iterable[Purchase],
    views: Callable[[Purchase], SubscriptionView | None] = subscription_view,
) -> Shown:
    """What of a customer's purchases its document shows: per product the subscription
    reaching furthest, and the paid one-time purchases. Equal parts give equal documents
    (with the same customer and app), so the fold skips rendering when they did not change."""
    subs: dict[str, SubscriptionView] = {}
    one_time: list[OneTimeView] = []
    for purchase in sorted(purchases, key=lambda p: p.key):
        view = views(purchase)
        if view is not None:
            for shown in (*replaced_products(purchase), view):
                if _better(shown, subs.get(shown.product)):
                    subs[shown.product] = shown
        once = one_time_view(purchase)
        if once is not None:
            one_time.append(once)
    return subs, tuple(one_time)


def build_subscriber(
    customer: Customer,
    purchases: Iterable[Purchase],
    app: AppState,
    views: Callable[[Purchase], SubscriptionView | None] = subscription_view,
) -> Subscriber:
    return render_subscriber(customer, shown_purchases(purchases, views), app)


def render_subscriber(customer: Customer, shown: Shown, app: AppState) -> Subscriber:
    subs, one_time = shown
    return Subscriber(
        original_app_user_id=customer.id,
        first_seen=iso(customer.first_seen_ms // 1000),
        last_seen=iso(customer.last_seen_ms // 1000),
        management_url=None,
        original_application_version=None,
        original_purchase_date=None,
        entitlements=_entitlements(app, list(subs.values()), list(one_time)),
        subscriptions={product: _subscription_entry(v) for product, v in subs.items()},
        non_subscriptions=_non_subscriptions(list(one_time)),
        other_purchases={},
        subscriber_attributes={
            k: AttributeEntry(a.value, a.updated_at_ms) for k, a in customer.attributes.items()
        },
    )


def _better(candidate: SubscriptionView, current: SubscriptionView | None) -> bool:
    """Two subscriptions to one product: show the one reaching furthest."""
    if current is None:
        return True
    rank = (candidate.expires_date or 0, candidate.purchase_date or 0, candidate.key)
    return rank > (current.expires_date or 0, current.purchase_date or 0, current.key)


def _subscription_entry(v: SubscriptionView) -> SubscriptionEntry:
    return SubscriptionEntry(
        store="stripe",
        is_sandbox=v.is_sandbox,
        ownership_type="PURCHASED",
        period_type=v.period_type,
        purchase_date=iso(v.purchase_date),
        original_purchase_date=iso(v.original_purchase_date),
        expires_date=iso(v.expires_date),
        unsubscribe_detected_at=iso(v.unsubscribe_detected_at),
        billing_issues_detected_at=iso(v.billing_issues_detected_at),
        grace_period_expires_date=None,
        refunded_at=iso(v.refunded_at),
        auto_resume_date=None,
        store_transaction_id=v.key,
        management_url=None,
    )


def _non_subscriptions(one_time: list[OneTimeView]) -> dict[str, list[NonSubscriptionEntry]]:
    grouped: dict[str, list[NonSubscriptionEntry]] = {}
    for v in sorted(one_time, key=lambda o: (o.purchase_date or 0, o.key)):
        grouped.setdefault(v.product, []).append(
            NonSubscriptionEntry(
                id=v.key,
                is_sandbox=v.is_sandbox,
                original_purchase_date=iso(v.purchase_date),
                purchase_date=iso(v.purchase_date),
                store="stripe",
                store_transaction_id=v.key,
            )
        )
    return grouped


def _entitlements(
    app: AppState, subs: list[SubscriptionView], one_time: list[OneTimeView]
) -> dict[str, EntitlementEntry]:
    """Per entitlement, the granting purchase reaching furthest (one-time: never expires)."""
    found: dict[str, EntitlementEntry] = {}
    for entitlement, products in sorted(app.entitlements.items()):
        ranked: list[tuple[tuple[int, int, int, str], EntitlementEntry]] = []
        for v in subs:
            if v.product in products:
                entry = EntitlementEntry(iso(v.expires_date), None, v.product, iso(v.purchase_date))
                ranked.append(((0, v.expires_date or 0, v.purchase_date or 0, v.key), entry))
        for o in one_time:
            if o.product in products:
                entry = EntitlementEntry(None, None, o.product, iso(o.purchase_date))
                ranked.append(((1, 0, o.purchase_date or 0, o.key), entry))
        if ranked:
            found[entitlement] = max(ranked, key=lambda r: r[0])[1]
    return found
