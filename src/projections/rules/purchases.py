"""Purchase state from Stripe snapshots: a commutative, idempotent newest-wins merge (SPEC 7.1).

Every snapshot is kept under its order key `(created, precedence, id)`; the state shown is a
function of the sorted set, so any arrival order of the same notifications gives one state.
"""

from __future__ import annotations

import bisect

import msgspec

from projections.model import (
    ChargeObs,
    InvoiceObs,
    OrderKey,
    Purchase,
    SessionObs,
    SubObs,
)
from subledger.stripe.objects import (
    Charge,
    CheckoutSession,
    Invoice,
    Subscription,
    ref_id,
)

TERMINAL = ("canceled", "incomplete_expired")
INVOICE_PRECEDENCE = {"draft": 0, "open": 1, "paid": 2, "void": 2, "uncollectible": 2}


# --- precedence: ties inside Stripe's one-second clock go to the later state --------------


def subscription_precedence(sub: Subscription) -> int:
    if sub.status in TERMINAL:
        return 3
    if sub.ended_at is not None:
        return 2
    if sub.canceled_at is not None:
        return 1
    return 0


def session_precedence(session: CheckoutSession) -> int:
    return {"complete": 2, "expired": 2, "open": 1}.get(session.status or "", 0)


# --- observations -----------------------------------------------------------------------


def subscription_product(sub: Subscription) -> tuple[str | None, int | None, str | None]:
    """(product, unit amount x quantity, currency) of the first item with a product: the
    list price, before discounts and tax (outbound events' prices)."""
    for item in sub.items.data if sub.items else []:
        price = item.price or item.plan
        if price:
            product = ref_id(price.product)
            if product:
                amount = (
                    None if price.unit_amount is None else price.unit_amount * (item.quantity or 1)
                )
                return product, amount, price.currency or sub.currency
    return None, None, sub.currency


def subscription_billing(sub: Subscription) -> tuple[int | None, str | None, int | None]:
    """Charts' MRR (SPEC 11): the list prices of every item (a multi-item subscription is
    one purchase; Stripe bills all its items on one interval) and that interval, as
    (amount, interval, interval count)."""
    total: int | None = None
    interval: str | None = None
    count: int | None = None
    for item in sub.items.data if sub.items else []:
        price = item.price or item.plan
        if price is None:
            continue
        if price.unit_amount is not None:
            total = (total or 0) + price.unit_amount * (item.quantity or 1)
        if interval is None and price.recurring is not None:
            interval, count = price.recurring.interval, price.recurring.interval_count
    return total, interval, count if interval is not None else None


def subscription_period(sub: Subscription) -> tuple[int | None, int | None]:
    """Current period: on the item since API 2025-03-31, on the subscription before."""
    for item in sub.items.data if sub.items else []:
        if item.current_period_end is not None:
            return item.current_period_start, item.current_period_end
    return sub.current_period_start, sub.current_period_end


def sub_obs(sub: Subscription, order: OrderKey, position: int) -> SubObs:
    start, end = subscription_period(sub)
    product, amount, currency = subscription_product(sub)
    items_amount, interval, interval_count = subscription_billing(sub)
    return SubObs(
        order=order,
        position=position,
        status=sub.status,
        product=product,
        period_start=start,
        period_end=end,
        start_date=sub.start_date,
        cancel_at_period_end=sub.cancel_at_period_end,
        cancel_at=sub.cancel_at,
        canceled_at=sub.canceled_at,
        ended_at=sub.ended_at,
        livemode=sub.livemode,
        customer=ref_id(sub.customer),
        metadata=sub.metadata or {},
        amount=amount,
        currency=currency,
        cancel_reason=sub.cancellation_details.reason if sub.cancellation_details else None,
        items_amount=items_amount,  # None as the default is: the same row
        interval=interval,
        interval_count=interval_count,
    )


def session_obs(session: CheckoutSession, order: OrderKey, position: int) -> SessionObs:
    product = None
    for line in session.line_items.data if session.line_items else []:
        if line.price and ref_id(line.price.product):
            product = ref_id(line.price.product)
            break
    return SessionObs(
        order=order,
        position=position,
        id=session.id,
        mode=session.mode,
        payment_status=session.payment_status,
        customer=ref_id(session.customer),
        subscription=ref_id(session.subscription),
        livemode=session.livemode,
        created=session.created,
        product=product,
        payment_intent=ref_id(session.payment_intent),
        metadata=session.metadata or {},
        client_reference_id=session.client_reference_id,
        amount_total=session.amount_total,
        currency=session.currency,
    )


def invoice_subscription(invoice: Invoice) -> str | None:
    """`parent.subscription_details.subscription` (current) or `subscription` (older)."""
    details = invoice.parent.subscription_details if invoice.parent else None
    found = ref_id(details.subscription) if details else None
    if found:
        return found
    found = ref_id(invoice.subscription)
    if found:
        return found
    for line in invoice.lines.data if invoice.lines else []:
        if ref_id(line.subscription):
            return ref_id(line.subscription)
    return None


def invoice_failed(invoice: Invoice) -> bool:
    return invoice.status == "open" and invoice.attempted and invoice.attempt_count > 0


def invoice_obs(invoice: Invoice, order: OrderKey, position: int) -> InvoiceObs:
    start = end = None
    for line in invoice.lines.data if invoice.lines else []:
        if line.period and line.period.end is not None:
            end = max(end or 0, line.period.end)
            start = line.period.start if start is None else min(start, line.period.start or start)
    paid_at = invoice.status_transitions.paid_at if invoice.status_transitions else None
    return InvoiceObs(
        order=order,
        position=position,
        id=invoice.id,
        status=invoice.status or "",
        amount_paid=invoice.amount_paid,
        paid_at=paid_at,
        period_start=start,
        period_end=end,
        customer=ref_id(invoice.customer),
        payment_intent=ref_id(invoice.payment_intent),
        charge=ref_id(invoice.charge),
        first_failed_at=order[0] if invoice_failed(invoice) else None,
        currency=invoice.currency,
    )


UNDONE = ("failed", "canceled")  # refunds that returned nothing: not a refund time


def charge_obs(charge: Charge, order: OrderKey, position: int) -> ChargeObs:
    refund_times = (
        [r.created for r in charge.refunds.data if r.created and r.status not in UNDONE]
        if charge.refunds
        else []
    )
    refunded_at = (
        max(refund_times) if refund_times else (order[0] if charge.amount_refunded else None)
    )
    return ChargeObs(
        order=order,
        position=position,
        id=charge.id,
        amount=charge.amount,
        amount_refunded=charge.amount_refunded,
        customer=ref_id(charge.customer),
        invoice=ref_id(charge.invoice),
        payment_intent=ref_id(charge.payment_intent),
        created=charge.created,
        refunded_at=refunded_at,
        currency=charge.currency,
    )


# --- merges -----------------------------------------------------------------------------


def add_subscription(p: Purchase, obs: SubObs) -> Purchase:
    """Insert a snapshot by order key; the same event twice is a no-op."""
    if any(o.order == obs.order for o in p.subs):
        return p
    subs = list(p.subs)
    bisect.insort(subs, obs, key=lambda o: o.order)
    return msgspec.structs.replace(
        p, subs=tuple(subs), kind="subscription", customer=subs[-1].customer or p.customer
    )


def add_session(p: Purchase, obs: SessionObs) -> Purchase:
    if p.session is not None and p.session.order >= obs.order:
        return p
    kind = "one_time" if obs.mode == "payment" else p.kind
    if obs.mode == "subscription" and kind == "unknown":
        kind = "subscription"
    return msgspec.structs.replace(p, session=obs, kind=kind, customer=p.customer or obs.customer)


def add_invoice(p: Purchase, obs: InvoiceObs) -> Purchase:
    current = p.invoices.get(obs.id)
    failed = [t for t in (obs.first_failed_at, current and current.first_failed_at) if t]
    first_failed = min(failed) if failed else None
    winner = obs if current is None or obs.order > current.order else current
    winner = msgspec.structs.replace(winner, first_failed_at=first_failed)
    if current == winner:
        return p
    return msgspec.structs.replace(p, invoices={**p.invoices, obs.id: winner})


def invoice_order(invoice: Invoice, created: int, event_id: str) -> OrderKey:
    return (created, INVOICE_PRECEDENCE.get(invoice.status or "", 0), event_id)


def charge_order(charge: Charge, created: int, event_id: str) -> OrderKey:
    # A later refund of the same charge always refunds more: amount breaks same-second ties.
    return (created, charge.amount_refunded, event_id)
