"""Invoices and charges: which period a refund paid for, whatever arrived first (SPEC 6, 7.1)."""

from __future__ import annotations

import msgspec

from projections.fold.context import Context
from projections.fold.purchases import observe
from projections.fold.state import Batch
from projections.model import PAYMENTS, InvoiceRef, LinkedCharge, Payments, SessionObs
from projections.rules import purchases as rules
from projections.rules.explain import describe_view_change, view_changes
from projections.rules.linking import link_charges
from projections.rules.subjects import read_subjects, stripe_customer_subject
from subledger.facts import StripeObjectRead
from subledger.stripe import objects

HOW = {
    "charge.invoice": "the charge's invoice field",
    "invoice_payment": "Stripe's invoice payment for its payment intent",
    "match": "matching customer, amount and paid time",
}


def invoice(b: Batch, ctx: Context, invoice: objects.Invoice, order_id: str) -> None:
    key = rules.invoice_subscription(invoice)
    if key is None:
        text = f"invoice {invoice.id} belongs to no subscription: ignored"
        b.note([invoice.id], text, {"invoice": invoice.id})
        return
    created = ctx.created or ctx.received_at_ms // 1000
    obs = rules.invoice_obs(invoice, rules.invoice_order(invoice, created, order_id), ctx.position)
    p = observe(b, ctx, key, lambda p: rules.add_invoice(p, obs), creates=False)
    winner = p.invoices.get(invoice.id, obs)
    customer_key = winner.customer or "-"
    payments = b.payments(ctx.app_id, customer_key)
    ref = InvoiceRef(
        purchase=key,
        amount_paid=winner.amount_paid,
        paid_at=winner.paid_at,
        payment_intent=winner.payment_intent,
        charge=winner.charge,
    )
    if payments.invoices.get(invoice.id) != ref:
        payments = msgspec.structs.replace(
            payments, invoices={**payments.invoices, invoice.id: ref}
        )
        b.rows.put(PAYMENTS, ctx.app_id, customer_key, payments)
        relink(b, ctx, customer_key, payments)


def charge(b: Batch, ctx: Context, charge: objects.Charge, order_id: str) -> None:
    created = ctx.created or ctx.received_at_ms // 1000
    obs = rules.charge_obs(charge, rules.charge_order(charge, created, order_id), ctx.position)
    customer_key = obs.customer or "-"
    payments = b.payments(ctx.app_id, customer_key)
    ids = {"charge": charge.id, "stripe_customer": customer_key}
    current = payments.charges.get(charge.id)
    if current is not None and current.order >= obs.order:
        text = f"charge {charge.id}: older or repeated snapshot, state unchanged"
        subjects = [charge.id, stripe_customer_subject(customer_key)]
        b.note(subjects, text, ids)
        return
    payments = msgspec.structs.replace(payments, charges={**payments.charges, charge.id: obs})
    b.rows.put(PAYMENTS, ctx.app_id, customer_key, payments)
    links = relink(b, ctx, customer_key, payments)
    if charge.id not in links:
        text = (
            f"charge {charge.id} refunded {obs.amount_refunded} of {obs.amount}: "
            "not linked to an invoice yet (unlinked refund)"
        )
        subjects = [stripe_customer_subject(customer_key), charge.id]
        b.note(subjects, text, ids)


def one_time_session(b: Batch, ctx: Context, session: SessionObs) -> None:
    """A one-time Checkout payment's intent: a refund of its charge must never be
    matched to a subscription's invoice of the same amount."""
    intent = session.payment_intent
    if not intent:
        return
    customer_key = session.customer or "-"
    payments = b.payments(ctx.app_id, customer_key)
    if intent in payments.one_time_intents:
        return
    intents = tuple(sorted({*payments.one_time_intents, intent}))
    payments = msgspec.structs.replace(payments, one_time_intents=intents)
    b.rows.put(PAYMENTS, ctx.app_id, customer_key, payments)
    relink(b, ctx, customer_key, payments)


def intent_links(b: Batch, ctx: Context, fact: StripeObjectRead) -> None:
    """An API read of invoice payments: payment intent → invoice, the explicit link."""
    try:
        listing: objects.InvoicePaymentList = objects.decode_api_object("list", fact.body)
    except msgspec.ValidationError:  # a fact the fold cannot read must not stop the fold
        text = f"Stripe read {fact.request} returned an unexpected list"
        ids = {"request": fact.request, "subject": fact.subject}
        b.note(read_subjects(fact), text, ids)
        return
    customer_key = fact.customer or "-"
    payments = b.payments(ctx.app_id, customer_key)
    found = {
        objects.ref_id(item.payment.payment_intent): objects.ref_id(item.invoice)
        for item in listing.data
        if item.payment and item.status in ("paid", None)
    }
    links = {pi: inv for pi, inv in found.items() if pi and inv}
    text = "invoice payments read: " + (
        ", ".join(f"{pi} paid {inv}" for pi, inv in sorted(links.items())) or "none"
    )
    b.note(read_subjects(fact), text, {"request": fact.request})
    if links and any(payments.intent_invoice.get(pi) != inv for pi, inv in links.items()):
        merged = {**payments.intent_invoice, **links}
        payments = msgspec.structs.replace(payments, intent_invoice=merged)
        b.rows.put(PAYMENTS, ctx.app_id, customer_key, payments)
        relink(b, ctx, customer_key, payments)


def relink(
    b: Batch, ctx: Context, customer_key: str, payments: Payments
) -> dict[str, tuple[str, str]]:
    """Recompute the customer's charge → invoice links and update every purchase involved."""
    if not payments.charges:  # charges are never removed: no purchase holds one yet
        return {}
    links = link_charges(payments)
    per_purchase: dict[str, dict[str, LinkedCharge]] = {}
    for charge_id, (invoice_id, how) in links.items():
        key = payments.invoices[invoice_id].purchase
        per_purchase.setdefault(key, {})[charge_id] = LinkedCharge(
            charge=payments.charges[charge_id], invoice=invoice_id, how=how
        )
    for key in sorted({ref.purchase for ref in payments.invoices.values()}):
        p = b.purchase(ctx.app_id, key)
        charges = per_purchase.get(key, {})
        if p is None or p.charges == charges:
            continue
        before = b.view(p)
        p = msgspec.structs.replace(p, charges=charges)
        b.save_purchase(ctx.app_id, p)
        after = b.view(p)
        parts = [
            f"charge {cid} refunded {linked.charge.amount_refunded} of {linked.charge.amount}: "
            f"linked to invoice {linked.invoice} by {HOW[linked.how]}"
            for cid, linked in sorted(charges.items())
            if p.charges.get(cid) is not None and linked.charge.amount_refunded
        ]
        if after is not None:
            parts.append(describe_view_change(key, before, after, b.app(ctx.app_id).entitlements))
        ids = {"purchase": key, "stripe_customer": customer_key}
        text = "; ".join(parts) or f"{key}: payments relinked"
        b.note([key], text, ids, view_changes(before, after))
    return links
