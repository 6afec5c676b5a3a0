"""What the rules derive from rows: a purchase's view, and the customer document (SPEC 8).

Like model.py (the stored rows), only types live here; the rules that make them live in
`projections/rules/`.
"""

from __future__ import annotations

import msgspec


class SubscriptionView(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    """Times are Unix seconds (UTC); the document formats them."""

    key: str
    product: str
    status: str
    is_sandbox: bool
    period_type: str
    purchase_date: int | None
    original_purchase_date: int | None
    expires_date: int | None
    unsubscribe_detected_at: int | None
    billing_issues_detected_at: int | None
    refunded_at: int | None
    partially_refunded: bool = False


class OneTimeView(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    key: str
    product: str
    is_sandbox: bool
    purchase_date: int | None


class EntitlementEntry(msgspec.Struct, frozen=True, gc=False):
    expires_date: str | None
    grace_period_expires_date: str | None
    product_identifier: str
    purchase_date: str | None


class SubscriptionEntry(msgspec.Struct, frozen=True, gc=False):
    store: str
    is_sandbox: bool
    ownership_type: str
    period_type: str
    purchase_date: str | None
    original_purchase_date: str | None
    expires_date: str | None
    unsubscribe_detected_at: str | None
    billing_issues_detected_at: str | None
    grace_period_expires_date: str | None
    refunded_at: str | None
    auto_resume_date: str | None
    store_transaction_id: str
    management_url: str | None


class NonSubscriptionEntry(msgspec.Struct, frozen=True, gc=False):
    id: str
    is_sandbox: bool
    original_purchase_date: str | None
    purchase_date: str | None
    store: str
    store_transaction_id: str


class AttributeEntry(msgspec.Struct, frozen=True, gc=False):
    value: str
    updated_at_ms: int


class Subscriber(msgspec.Struct, frozen=True, gc=False):
    original_app_user_id: str
    first_seen: str | None
    last_seen: str | None
    management_url: str | None
    original_application_version: str | None
    original_purchase_date: str | None
    entitlements: dict[str, EntitlementEntry]
    subscriptions: dict[str, SubscriptionEntry]
    non_subscriptions: dict[str, list[NonSubscriptionEntry]]
    other_purchases: dict[str, object]
    subscriber_attributes: dict[str, AttributeEntry]


class WebhookEvent(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    """One outbound event in RevenueCat's webhook shape (SPEC 10, shared/revenuecat-
    webhooks.md): every field RevenueCat documents, `null` where Stripe data cannot fill it.
    Field order is fixed, so the same event is always the same bytes."""

    type: str
    id: str
    app_id: str
    event_timestamp_ms: int
    app_user_id: str | None = None
    original_app_user_id: str | None = None
    aliases: tuple[str, ...] | None = None
    subscriber_attributes: dict[str, AttributeEntry] | None = None
    product_id: str | None = None
    entitlement_ids: tuple[str, ...] | None = None
    entitlement_id: str | None = None  # deprecated by RevenueCat: always null
    period_type: str | None = None
    purchased_at_ms: int | None = None
    expiration_at_ms: int | None = None
    grace_period_expiration_at_ms: int | None = None
    auto_resume_at_ms: int | None = None
    store: str = "STRIPE"
    environment: str = "SANDBOX"
    is_trial_conversion: bool | None = None
    cancel_reason: str | None = None
    expiration_reason: str | None = None
    new_product_id: str | None = None
    presented_offering_id: str | None = None
    price: float | None = None
    currency: str | None = None
    price_in_purchased_currency: float | None = None
    tax_percentage: float | None = None
    commission_percentage: float | None = None
    takehome_percentage: float | None = None
    transaction_id: str | None = None
    original_transaction_id: str | None = None
    is_family_share: bool | None = None
    transferred_from: tuple[str, ...] | None = None
    transferred_to: tuple[str, ...] | None = None
    country_code: str | None = None
    offer_code: str | None = None
    renewal_number: int | None = None
    experiments: tuple[dict[str, str], ...] | None = None


class WebhookBody(msgspec.Struct, frozen=True, gc=False):
    """What is POSTed: `{"event": {...}, "api_version": "1.0"}` (RevenueCat's envelope)."""

    event: WebhookEvent
    api_version: str = "1.0"
