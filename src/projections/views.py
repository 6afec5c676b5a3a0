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
