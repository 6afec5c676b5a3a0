"""The terminal form of `subledger explain --as-of`: the customer document as it was then
(SPEC 12), its entitlements and subscriptions judged at that moment, then the facts up to it."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table


def active_then(entry: dict[str, Any], request_date: str) -> bool:
    """An entitlement or subscription is active when it (or its grace period) ends after
    the moment asked about; no end date means for life. ISO dates of one width compare as
    text."""
    ends = [entry.get("expires_date"), entry.get("grace_period_expires_date")]
    if ends[0] is None:
        return True
    return any(end is not None and end > request_date for end in ends)


def print_document(answer: dict[str, Any], heading: str, stream: TextIO | None = None) -> None:
    console = Console(file=stream or sys.stdout, markup=False, emoji=False, highlight=False)
    subscriber = answer["subscriber"]
    when = answer["request_date"]
    console.print(f"{heading}: the document as of {when}")
    console.print(
        f"original_app_user_id: {subscriber['original_app_user_id']}   "
        f"first_seen: {subscriber['first_seen'] or '-'}   "
        f"last_seen: {subscriber['last_seen'] or '-'}"
    )
    table = Table(title="entitlements and subscriptions then")
    for column in ("kind", "id", "product", "purchased", "expires", "active then", "notes"):
        table.add_column(column, overflow="fold")
    for name, e in sorted(subscriber["entitlements"].items()):
        table.add_row(
            "entitlement",
            name,
            e["product_identifier"],
            e["purchase_date"] or "",
            e["expires_date"] or "never",
            "yes" if active_then(e, when) else "no",
            "",
        )
    for product, s in sorted(subscriber["subscriptions"].items()):
        notes = [
            f"{label} {s[field]}"
            for label, field in (
                ("unsubscribed", "unsubscribe_detected_at"),
                ("billing issue", "billing_issues_detected_at"),
                ("refunded", "refunded_at"),
            )
            if s.get(field)
        ]
        table.add_row(
            "subscription",
            s["store_transaction_id"] or "",
            product,
            s["purchase_date"] or "",
            s["expires_date"] or "never",
            "yes" if active_then(s, when) else "no",
            "; ".join(notes),
        )
    if table.row_count:
        console.print(table)
    else:
        console.print("no entitlements or subscriptions then")
