"""Which invoice a charge paid (SPEC 6, 7.1): current Stripe versions dropped `charge.invoice`.

A pure function of everything known about one Stripe customer's payments, so the link does
not depend on which of charge and invoice arrived first. Explicit links win; otherwise the
same customer, amount and paid time (within MATCH_WINDOW_S) of an unclaimed invoice that
names no other payment, for charges that are not one-time Checkout payments.
"""

from __future__ import annotations

from projections.model import ChargeObs, InvoiceRef, Payments

MATCH_WINDOW_S = 600


def link_charges(payments: Payments) -> dict[str, tuple[str, str]]:
    """charge id → (invoice id, how) for every charge that can be linked now."""
    links: dict[str, tuple[str, str]] = {}
    by_intent = {
        ref.payment_intent: invoice_id
        for invoice_id, ref in sorted(payments.invoices.items())
        if ref.payment_intent
    }
    by_charge = {
        ref.charge: invoice_id for invoice_id, ref in payments.invoices.items() if ref.charge
    }
    pending = []
    for charge_id, charge in sorted(payments.charges.items()):
        if charge.invoice and charge.invoice in payments.invoices:
            links[charge_id] = (charge.invoice, "charge.invoice")
        elif charge_id in by_charge:
            links[charge_id] = (by_charge[charge_id], "charge.invoice")
        elif charge.payment_intent and charge.payment_intent in payments.intent_invoice:
            invoice_id = payments.intent_invoice[charge.payment_intent]
            if invoice_id in payments.invoices:
                links[charge_id] = (invoice_id, "invoice_payment")
        elif charge.payment_intent and charge.payment_intent in by_intent:
            links[charge_id] = (by_intent[charge.payment_intent], "invoice_payment")
        elif not charge.invoice:
            pending.append(charge)
    claimed = {invoice_id for invoice_id, _ in links.values()}
    one_time = set(payments.one_time_intents)
    for charge in sorted(pending, key=lambda c: (c.created or 0, c.id)):
        if charge.payment_intent in one_time:
            continue  # a one-time Checkout payment: it paid no invoice
        candidates = [
            (abs(ref.paid_at - (charge.created or 0)), invoice_id)
            for invoice_id, ref in payments.invoices.items()
            if invoice_id not in claimed
            and ref.paid_at is not None
            and ref.amount_paid == charge.amount
            and abs(ref.paid_at - (charge.created or 0)) <= MATCH_WINDOW_S
            and _may_have_paid(ref, charge)
        ]
        if candidates:
            invoice_id = min(candidates)[1]
            links[charge.id] = (invoice_id, "match")
            claimed.add(invoice_id)
    return links


def _may_have_paid(ref: InvoiceRef, charge: ChargeObs) -> bool:
    """An invoice that names its own payment intent or charge was paid by that one only."""
    if ref.charge and ref.charge != charge.id:
        return False
    return not (ref.payment_intent and charge.payment_intent != ref.payment_intent)
