"""The history of a customer as a document (API) and as rows (CLI): one shape for both."""

from __future__ import annotations

from typing import Any

import msgspec

from projections.documents import iso
from projections.reader import CustomerHistory


def iso_ms(ms: int) -> str:
    """ "2026-11-01T09:00:05.123Z" for Unix milliseconds."""
    return f"{(iso(ms // 1000) or '')[:-1]}.{ms % 1000:03d}Z"


def history_document(history: CustomerHistory) -> dict[str, Any]:
    return {
        "app_user_id": history.app_user_id,
        "customer": {
            "original_app_user_id": history.customer_id,
            "aliases": history.ids,
            "purchases": history.purchases,
        },
        "history": [
            {
                "position": e.position,
                "received_at": iso_ms(e.received_at_ms),
                "stripe_created": iso(e.created),
                "kind": e.kind,
                "ids": e.ids,
                "what_changed": e.text,
                "changes": [
                    {"field": c.field, "before": c.before, "after": c.after} for c in e.changes
                ],
                "transfer": None if e.transfer is None else msgspec.to_builtins(e.transfer),
            }
            for e in history.entries
        ],
    }
