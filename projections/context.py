"""Where a fact sits in the log: what every history entry it causes carries."""

from __future__ import annotations

from typing import Any

import msgspec

from projections.model import HistoryEntry
from subledger.facts import StripeObjectRead


def event_subject(event_id: str) -> str:
    return f"event:{event_id}"


class Context(msgspec.Struct, frozen=True, gc=False):
    """Where a fact sits in the log: what every history entry it causes carries."""

    app_id: str
    position: int
    received_at_ms: int
    kind: str
    created: int | None
    event_id: str | None = None

    def entry(self, text: str, ids: dict[str, str], changes: tuple[Any, ...] = ()) -> HistoryEntry:
        if self.event_id:
            ids = {"event": self.event_id, **ids}
        return HistoryEntry(
            position=self.position,
            received_at_ms=self.received_at_ms,
            kind=self.kind,
            text=text,
            created=self.created,
            ids=ids,
            changes=changes,
        )


def note(position: int, received_at_ms: int, kind: str, text: str) -> HistoryEntry:
    return HistoryEntry(position=position, received_at_ms=received_at_ms, kind=kind, text=text)


def stripe_customer_subject(customer: str | None) -> str:
    """The history subject of a Stripe customer's payments ("" when there is none, which
    `Fold.record` skips). Namespaced: a `cus_…` id can also be an App User ID, whose own
    entries are not this Stripe customer's payments."""
    return f"stripe-customer:{customer}" if customer and customer != "-" else ""


def read_subjects(fact: StripeObjectRead) -> list[str]:
    """A Stripe read is filed under what it read and, for refund reads, the Stripe
    customer: the subject through which a customer's history reaches unlinked refunds."""
    return [fact.subject, stripe_customer_subject(fact.customer)]
