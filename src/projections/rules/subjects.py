"""History subjects: the names under which a fact's entry is found (SPEC 9).

App User IDs, purchase keys and Stripe ids are subjects as they are; the subjects below are
namespaced, because an App User ID may be any text (a user may be called `cus_…`).
"""

from __future__ import annotations

from subledger.facts import StripeObjectRead


def event_subject(event_id: str) -> str:
    """Where a Stripe event's redeliveries are listed (explain joins them to the event)."""
    return f"event:{event_id}"


def stripe_customer_subject(customer: str | None) -> str:
    """A Stripe customer's payments ("" when there is none, which notes skip)."""
    return f"stripe-customer:{customer}" if customer and customer != "-" else ""


def read_subjects(fact: StripeObjectRead) -> list[str]:
    """A Stripe read is filed under what it read and, for refund reads, the Stripe
    customer: the subject through which a customer's history reaches unlinked refunds."""
    return [fact.subject, stripe_customer_subject(fact.customer)]


def integration_subject(integration_id: str) -> str:
    """An outbound integration's own entries: TEST events, and what names no purchase."""
    return f"integration:{integration_id}"


def delivery_key(integration_id: str, event_id: str) -> str:
    """A delivery row: one outbound event to one integration."""
    return f"{integration_id}/{event_id}"


def outbox_key(integration_id: str, due_ms: int, event_id: str) -> str:
    """A pending delivery, ordered by when it is due within its integration: a sender
    reads what is due as one range of the primary key (`outbox_range`)."""
    return f"{integration_id}/{due_ms:015d}/{event_id}"


def outbox_range(integration_id: str, now_ms: int) -> tuple[str, str]:
    """The outbox keys of one integration due at `now_ms`: `low <= key < high`."""
    return f"{integration_id}/", f"{integration_id}/{now_ms + 1:015d}"
