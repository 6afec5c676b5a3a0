"""Readable sentences and structured diffs for the history of a customer (SPEC 9)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import msgspec

from projections.model import Change
from projections.rules.dates import iso, when
from projections.views import SubscriptionView

_FIELDS = (
    "status",
    "product",
    "period_type",
    "purchase_date",
    "expires_date",
    "unsubscribe_detected_at",
    "billing_issues_detected_at",
    "refunded_at",
)
_TIMES = {
    "purchase_date",
    "expires_date",
    "unsubscribe_detected_at",
    "billing_issues_detected_at",
    "refunded_at",
}


def _text(field: str, value: object) -> str | None:
    if value is None:
        return None
    if field in _TIMES and isinstance(value, int):
        return iso(value)
    return str(value)


_AT = [(field, SubscriptionView.__struct_fields__.index(field)) for field in _FIELDS]
_NONE = (None,) * len(SubscriptionView.__struct_fields__)


def view_changes(
    before: SubscriptionView | None, after: SubscriptionView | None
) -> tuple[Change, ...]:
    if before == after:
        return ()
    old_values = _NONE if before is None else msgspec.structs.astuple(before)
    new_values = _NONE if after is None else msgspec.structs.astuple(after)
    return tuple(
        Change(field=field, before=_text(field, old_values[i]), after=_text(field, new_values[i]))
        for field, i in _AT
        if old_values[i] != new_values[i]
    )


def _access(product: str, entitlements: Mapping[str, Sequence[str]]) -> str:
    """ "access to pro, premium": the entitlements `product` grants, sorted."""
    granted = sorted(e for e, products in entitlements.items() if product in products)
    return f"access to {', '.join(granted)}" if granted else "access"


def _headline(
    key: str,
    before: SubscriptionView | None,
    after: SubscriptionView,
    entitlements: Mapping[str, Sequence[str]],
) -> list[str]:
    """The status, and a product change with the access it ended."""
    if before is None:
        return [f"subscription {key} {after.status} ({after.product})"]
    if before.status != after.status:
        parts = [f"subscription {key} {before.status} → {after.status}"]
    else:
        parts = [f"subscription {key} {after.status}"]
    if before.product != after.product:
        ended = _access(before.product, entitlements)
        parts.append(f"product {before.product} → {after.product} ({ended} ended)")
    return parts


def describe_view_change(
    key: str,
    before: SubscriptionView | None,
    after: SubscriptionView | None,
    entitlements: Mapping[str, Sequence[str]],
) -> str:
    """ "subscription sub_… active → canceled; access to pro ends 2026-11-01 09:00 UTC"."""
    if after is None:
        return f"subscription {key}: nothing to show yet"
    parts = _headline(key, before, after, entitlements)
    access = _access(after.product, entitlements)
    if before is None or before.expires_date != after.expires_date:
        verb = "ends" if after.status != "active" or after.refunded_at else "runs until"
        if after.unsubscribe_detected_at and after.status not in ("canceled",):
            verb = "ends"
        parts.append(f"{access} {verb} {when(after.expires_date)}")
    if after.unsubscribe_detected_at and (not before or not before.unsubscribe_detected_at):
        parts.append(f"unsubscribe detected at {when(after.unsubscribe_detected_at)}")
    if before and before.unsubscribe_detected_at and not after.unsubscribe_detected_at:
        parts.append("subscriber resumed (unsubscribe cleared)")
    if after.billing_issues_detected_at and (not before or not before.billing_issues_detected_at):
        parts.append(f"billing issue detected at {when(after.billing_issues_detected_at)}")
    if before and before.billing_issues_detected_at and not after.billing_issues_detected_at:
        parts.append("billing issue cleared")
    if after.refunded_at and (not before or not before.refunded_at):
        parts.append(f"refunded at {when(after.refunded_at)}")
    if after.partially_refunded and (not before or not before.partially_refunded):
        parts.append("partial refund recorded (access kept)")
    return "; ".join(parts)
