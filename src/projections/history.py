"""The history of a customer as a document (API and `explain --json`): one entry per fact,
with the sentence and changes of each thing it did (SPEC 9)."""

from __future__ import annotations

from typing import Any

import msgspec

from projections.model import Change
from projections.reader import CustomerHistory
from projections.rules.dates import iso, iso_ms


def _changes(changes: tuple[Change, ...]) -> list[dict[str, str | None]]:
    return [{"field": c.field, "before": c.before, "after": c.after} for c in changes]


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
                "changes": _changes(e.changes),
                "transfer": None if e.transfer is None else msgspec.to_builtins(e.transfer),
                "parts": [
                    {
                        "what_changed": part.text,
                        "ids": part.ids,
                        "changes": _changes(part.changes),
                        "transfer": msgspec.to_builtins(part.transfer),
                    }
                    for part in e.parts
                ],
            }
            for e in history.entries
        ],
    }
