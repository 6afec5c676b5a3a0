"""Which Stripe objects to read, and the facts that record the answers (SPEC 6).

Reads happen only on the live path — before a token is recorded, or when a refund cannot
be linked — and each answer is appended as a `StripeObjectRead` before it is used, so a
rebuild never calls Stripe.
"""

from __future__ import annotations

import time

import msgspec

from subledger.facts import StripeObjectRead, new_id
from subledger.stripe import objects
from subledger.stripe.api import Answer, StripeApi

TOKEN_REASON = "token for a purchase with no facts yet"  # noqa: S105 - a reason, not a secret
PRODUCT_REASON = "token for a one-time purchase whose product is not known yet"
REFUND_REASON = "refunded charge without an invoice"


class StripeReads:
    def __init__(self, *, api_base: str = "", timeout_s: float = 3.0) -> None:
        self.api_base = api_base
        self.timeout_s = timeout_s
        self._clients: dict[str, StripeApi] = {}

    def _api(self, key: str) -> StripeApi:
        if key not in self._clients:
            self._clients[key] = StripeApi(key, api_base=self.api_base, timeout_s=self.timeout_s)
        return self._clients[key]

    def for_token(
        self, app_id: str, api_key: str, token: str, reason: str = TOKEN_REASON
    ) -> list[StripeObjectRead]:
        """The subscription (or the Checkout Session, then its subscription) of a token."""
        api = self._api(api_key)
        if not token.startswith("cs_"):
            return [_fact(app_id, api.get(f"/v1/subscriptions/{token}"), token, reason)]
        answer = api.get(f"/v1/checkout/sessions/{token}", expand=["line_items"])
        facts = [_fact(app_id, answer, token, reason)]
        subscription = _session_subscription(answer)
        if subscription:
            read = api.get(f"/v1/subscriptions/{subscription}")
            facts.append(_fact(app_id, read, subscription, reason))
        return facts

    def for_refund(
        self, app_id: str, api_key: str, charge: objects.Charge
    ) -> list[StripeObjectRead]:
        """Invoice payments of the charge's payment intent, then each invoice they name."""
        api = self._api(api_key)
        intent = objects.ref_id(charge.payment_intent)
        customer = objects.ref_id(charge.customer)
        params = {"payment": {"payment_intent": intent, "type": "payment_intent"}}
        listing = api.get("/v1/invoice_payments", **params)
        facts = [_fact(app_id, listing, charge.id, REFUND_REASON, customer)]
        for invoice_id in _listed_invoices(listing):
            answer = api.get(f"/v1/invoices/{invoice_id}")
            facts.append(_fact(app_id, answer, invoice_id, REFUND_REASON, customer))
        return facts


def _fact(
    app_id: str, answer: Answer, subject: str, reason: str, customer: str | None = None
) -> StripeObjectRead:
    return StripeObjectRead(
        originator_id=new_id(),
        app_id=app_id,
        received_at_ms=time.time_ns() // 1_000_000,
        request=answer.request,
        status=answer.status,
        body=answer.body,
        reason=reason,
        subject=subject,
        customer=customer,
        error=answer.error,
    )


def _session_subscription(answer: Answer) -> str | None:
    if answer.status != 200:
        return None
    try:
        session: objects.CheckoutSession = objects.decode_api_object(
            "checkout.session", answer.body
        )
    except msgspec.DecodeError:  # not JSON, or not the shape (ValidationError)
        return None
    return objects.ref_id(session.subscription) if session.mode == "subscription" else None


def _listed_invoices(answer: Answer) -> list[str]:
    if answer.status != 200:
        return []
    try:
        listing: objects.InvoicePaymentList = objects.decode_api_object("list", answer.body)
    except msgspec.DecodeError:  # not JSON, or not the shape (ValidationError)
        return []
    found = [objects.ref_id(item.invoice) for item in listing.data if item.status in ("paid", None)]
    return sorted({i for i in found if i})
