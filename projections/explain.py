"""Readable sentences and structured diffs for the history of a customer (SPEC 9)."""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping, Sequence

from projections.documents import iso
from projections.model import Change
from projections.subscriptions import SubscriptionView

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


@functools.lru_cache(maxsize=65_536)
def when(seconds: int | None) -> str:
    return "never" if seconds is None else time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(seconds))


def _text(field: str, value: object) -> str | None:
    if value is None:
        return None
    if field in _TIMES and isinstance(value, int):
        return iso(value)
    return str(value)


def view_changes(
    before: SubscriptionView | None, after: SubscriptionView | None
) -> tuple[Change, ...]:
    if before == after:
        return ()
    changes = []
    for field in _FIELDS:
        old = getattr(before, field) if before else None
        new = getattr(after, field) if after else None
        if old != new:
            changes.append(Change(field=field, before=_text(field, old), after=_text(field, new)))
    return tuple(changes)


def describe_view_change(
    key: str,
    before: SubscriptionView | None,
    after: SubscriptionView | None,
    entitlements: Mapping[str, Sequence[str]],
) -> str:
    """ "subscription sub_… active → canceled; access to pro ends 2026-11-01 09:00 UTC"."""
    if after is None:
        return f"subscription {key}: nothing to show yet"
    parts = []
    granted = sorted(e for e, products in entitlements.items() if after.product in products)
    access = f"access to {', '.join(granted)}" if granted else "access"
    if before is None:
        parts.append(f"subscription {key} {after.status} ({after.product})")
    elif before.status != after.status:
        parts.append(f"subscription {key} {before.status} → {after.status}")
    else:
        parts.append(f"subscription {key} {after.status}")
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
