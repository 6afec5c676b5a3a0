"""The RevenueCat-shaped customer document (SPEC 8), minus `request_date` (added at read).

Stored documents carry dates, never "is active" flags, so rebuilding gives the same bytes
whenever it runs; "active" is decided by the reader against the request time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from projections.model import AppState, Customer, Purchase
from projections.shapes import (
    AttributeEntry,
    EntitlementEntry,
    NonSubscriptionEntry,
    OneTimeView,
    Subscriber,
    SubscriptionEntry,
    SubscriptionView,
)
from projections.subscriptions import one_time_view, replaced_products, subscription_view

# Every document date and history time is formatted here, a few per fact. Formatting the
# day once and the time of day from tables costs far less than strftime per call or an
# lru_cache keyed by the second (decision 42).
_DAYS: dict[int, str] = {}
_MAX_DAYS = 200_000  # ~550 years of distinct days: bounded, never evicted
_MINUTES = [f"{m // 60:02d}:{m % 60:02d}" for m in range(1440)]
_SECONDS = [f"{s:02d}" for s in range(60)]


def day(days: int) -> str:
    """ "2026-11-01" for a count of days since 1970-01-01, UTC."""
    found = _DAYS.get(days)
    if found is None:
        found = civil_day(days)
        if len(_DAYS) < _MAX_DAYS:
            _DAYS[days] = found
    return found


def civil_day(days: int) -> str:
    """The proleptic Gregorian date of a day count, for any integer. `time.gmtime` raises
    for years it cannot represent, and a signed Stripe payload may hold any 64-bit time:
    one such fact made the fold fail on every retry, stopping the projection for good
    (decision 45). Same text as strftime's "%Y-%m-%d" for years 1000-9999; beyond, the
    year has as many digits as it needs. (H. Hinnant's `civil_from_days`.)"""
    z = days + 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    y = yoe + era * 400 + (1 if m <= 2 else 0)
    year = f"{y:04d}" if y >= 0 else f"-{-y:04d}"
    return f"{year}-{m:02d}-{d:02d}"


def minute_of_day(seconds: int) -> str:
    """ "2026-11-01 09:00" for Unix seconds, UTC."""
    rest = seconds % 86_400
    return f"{day(seconds // 86_400)} {_MINUTES[rest // 60]}"


def iso(seconds: int | None) -> str | None:
    """ "2026-11-01T09:00:05Z" for Unix seconds (as strftime's "%Y-%m-%dT%H:%M:%SZ")."""
    if seconds is None:
        return None
    rest = seconds % 86_400
    return f"{day(seconds // 86_400)}T{_MINUTES[rest // 60]}:{_SECONDS[rest % 60]}Z"


def empty_subscriber(app_user_id: str, seen_at: str) -> Subscriber:
    """The document of an id nobody has used yet. RevenueCat's SDKs require `first_seen`
    (iOS declares it non-optional), so it and `last_seen` are the request's time, as
    RevenueCat itself answers a new id; nothing is stored (decision 45)."""
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


def build_subscriber(
    customer: Customer,
    purchases: Iterable[Purchase],
    app: AppState,
    views: Callable[[Purchase], SubscriptionView | None] = subscription_view,
) -> Subscriber:
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
    return Subscriber(
        original_app_user_id=customer.id,
        first_seen=iso(customer.first_seen_ms // 1000),
        last_seen=iso(customer.last_seen_ms // 1000),
        management_url=None,
        original_application_version=None,
        original_purchase_date=None,
        entitlements=_entitlements(app, list(subs.values()), one_time),
        subscriptions={product: _subscription_entry(v) for product, v in subs.items()},
        non_subscriptions=_non_subscriptions(one_time),
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
