"""The fields of an outbound event (SPEC 10) that Stripe data can fill: who it is about,
the product and its dates, prices in the purchase's currency, the transaction ids
(docs/decisions.md, "Outbound notifications"). The rest of RevenueCat's fields stay null.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from projections.model import Customer, Purchase
from projections.rules.subscriptions import NEVER_PAID
from projections.views import AttributeEntry, OneTimeView, SubscriptionView, WebhookEvent
from subledger.identity import is_anonymous

# Stripe's currencies without minor units, and with three decimals (its docs' lists).
ZERO_DECIMAL = frozenset(
    {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga"}
    | {"pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf"}
)
THREE_DECIMAL = frozenset({"bhd", "jod", "kwd", "omr", "tnd"})


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
