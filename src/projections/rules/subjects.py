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
