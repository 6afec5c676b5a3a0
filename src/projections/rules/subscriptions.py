"""What a purchase means to its customer: the subscription entry's fields (SPEC 7.1)."""

from __future__ import annotations

from itertools import pairwise

from projections.model import InvoiceObs, LinkedCharge, Purchase, SubObs
from projections.rules.purchases import TERMINAL
from projections.views import OneTimeView, SubscriptionView

# `paused` (a trial that ended without a payment method, under Stripe's pause behaviour)
# stops service until the subscription resumes: it ends access too.
ACCESS_ENDING = ("unpaid", "canceled", "incomplete_expired", "paused")
NEVER_PAID = ("incomplete", "incomplete_expired")


def subscription_view(p: Purchase) -> SubscriptionView | None:
    """None until a paid-for snapshot exists (an `incomplete` checkout grants nothing)."""
    if p.kind != "subscription" or not p.subs:
        return None
    latest = p.subs[-1]
    if latest.status in NEVER_PAID and all(o.status in NEVER_PAID for o in p.subs):
        return None
    expires = _access_end(p.subs, latest)
    refunded_at, partial = _refund(p, latest) if p.charges else (None, False)
    if refunded_at is not None and (expires is None or refunded_at < expires):
        expires = refunded_at
    return SubscriptionView(
        key=p.key,
        product=latest.product or p.key,
        status=latest.status,
        is_sandbox=not latest.livemode,
        period_type="trial" if latest.status == "trialing" else "normal",
        purchase_date=latest.period_start,
        original_purchase_date=latest.start_date,
        expires_date=expires,
        unsubscribe_detected_at=_unsubscribe_detected(p.subs),
        billing_issues_detected_at=_billing_issue(p),
        refunded_at=refunded_at,
        partially_refunded=partial,
    )


def replaced_products(p: Purchase) -> list[SubscriptionView]:
    """Products this subscription held before a product change, each as last seen and
    ending when the change was first seen (never later than its period end). SPEC 7.5:
    expired entitlements stay listed, so an upgrade from basic to pro keeps basic in the
    document, expired. Read from the snapshots in their order, so it is the
    same whatever order they arrived in."""
    current = p.subs[-1].product if p.subs else None
    found: dict[str, SubscriptionView] = {}
    for before, after in pairwise(p.subs):
        product = before.product or p.key
        if product in (after.product or p.key, current or p.key) or before.status in NEVER_PAID:
            continue
        changed = after.order[0]
        found[product] = SubscriptionView(
            key=p.key,
            product=product,
            status=before.status,
            is_sandbox=not before.livemode,
            period_type="trial" if before.status == "trialing" else "normal",
            purchase_date=before.period_start,
            original_purchase_date=before.start_date,
            expires_date=changed if before.period_end is None else min(changed, before.period_end),
            unsubscribe_detected_at=None,
            billing_issues_detected_at=None,
            refunded_at=None,
        )
    return list(found.values())


def one_time_view(p: Purchase) -> OneTimeView | None:
    session = p.session
    if p.kind != "one_time" or session is None or session.payment_status != "paid":
        return None
    return OneTimeView(
        key=p.key,
        product=session.product or session.id,
        is_sandbox=not session.livemode,
        purchase_date=session.created,
    )


def _access_end(subs: tuple[SubObs, ...], latest: SubObs) -> int | None:
    """`unpaid`, `canceled`, `incomplete_expired` end access: at `ended_at`, else when first
    seen in that state, never later than the period end; `past_due` keeps access. A
    `cancel_at` before the period end is when access will end."""
    if latest.status not in ACCESS_ENDING:
        if latest.cancel_at is not None and latest.period_end is not None:
            return min(latest.cancel_at, latest.period_end)
        return latest.period_end
    seen = latest.order[0]
    for obs in reversed(subs):
        if obs.status not in ACCESS_ENDING:
            break
        seen = obs.order[0]
    end = latest.ended_at if latest.ended_at is not None else seen
    return end if latest.period_end is None else min(end, latest.period_end)


def _unsubscribe_detected(subs: tuple[SubObs, ...]) -> int | None:
    """When cancel_at_period_end became true or cancel_at was set; cleared on resume."""
    detected: int | None = None
    for obs in subs:
        ending = obs.cancel_at_period_end or obs.cancel_at is not None
        if obs.status in TERMINAL or ending:
            if detected is None:
                detected = obs.order[0]
        else:
            detected = None
    return detected


def _billing_issue(p: Purchase) -> int | None:
    """First seen past_due/unpaid (cleared when active again), or the latest invoice open
    with a failed attempt (cleared once paid); the earlier of the two."""
    found: int | None = None
    for obs in reversed(p.subs):  # back to the last active/trialing snapshot
        status = obs.status
        if status in ("past_due", "unpaid"):
            found = obs.order[0]
        elif status in ("active", "trialing"):
            break
    latest = _latest_invoice(p)
    failed = latest.first_failed_at if latest is not None and latest.status == "open" else None
    if failed is not None and (found is None or failed < found):
        found = failed
    return found


def _latest_invoice(p: Purchase) -> InvoiceObs | None:
    """The invoice with the furthest period end, ties to the newest snapshot order (the
    first of equals, as `max` gives). A plain loop: every view computes it, and a key
    function with a tuple per invoice cost more than the rest of the view."""
    latest: InvoiceObs | None = None
    latest_end = 0
    for invoice in p.invoices.values():
        end = invoice.period_end or 0
        if (
            latest is None
            or end > latest_end
            or (end == latest_end and invoice.order > latest.order)
        ):
            latest, latest_end = invoice, end
    return latest


def _refund(p: Purchase, latest: SubObs) -> tuple[int | None, bool]:
    """Full refund of a charge paying the latest period → its refund time (access ends)."""
    full, partial = latest_period_refunds(p, latest)
    refunded = [c.charge.refunded_at for c in full if c.charge.refunded_at is not None]
    return (max(refunded) if refunded else None), partial


def latest_period_refunds(p: Purchase, latest: SubObs) -> tuple[list[LinkedCharge], bool]:
    """The charges paying the latest period that were refunded in full, and whether any
    other charge was refunded in part."""
    latest_invoices = {
        i.id
        for i in p.invoices.values()
        if latest.period_end is not None and (i.period_end or 0) >= latest.period_end
    }
    full: list[LinkedCharge] = []
    partial = False
    for linked in p.charges.values():
        charge = linked.charge
        if charge.amount_refunded <= 0:
            continue
        if charge.amount_refunded >= charge.amount and linked.invoice in latest_invoices:
            full.append(linked)
        else:
            partial = True
    return full, partial
