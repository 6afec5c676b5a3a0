"""A purchase's spans of access and its paid transactions, as the charts count them (SPEC
11): a pure function of the purchase's row, so a late fact about the past (a refund of an
old invoice) recomputes it. Each span and transaction carries the log positions of the
facts behind it, which the drill-down shows (docs/decisions.md, "Charts")."""

from __future__ import annotations

from msgspec.structs import replace

from projections.model import ChartPurchase, Purchase, Span, SubObs, Txn
from projections.rules.subscriptions import latest_period_refunds

PAID = ("active", "past_due")  # past_due keeps access (SPEC 7.1)

# RevenueCat's normalisation to one month, as (numerator, denominator) per interval unit.
_MONTHLY = {"day": (30, 1), "week": (4, 1), "month": (1, 1), "year": (1, 12)}


def monthly_milli(amount: int, interval: str | None, count: int | None) -> int:
    """MRR of one period's price, in thousandths of a minor unit, rounded half up:
    x30 a day, x4 a week, x1 a month, x1/12 a year, divided by the interval count (3 days:
    x10, 2 weeks: x2, 6 months: x1/6). An unknown interval counts as one month."""
    num, den = _MONTHLY.get(interval or "month", (1, 1))
    den *= max(count or 1, 1)
    return (2 * amount * 1000 * num + den) // (2 * den)


def chart_purchase(p: Purchase) -> ChartPurchase | None:
    """None for purchases nobody owns yet (facts waiting for a token count nowhere)."""
    if p.owner is None:
        return None
    if p.kind == "subscription":
        spans = _refund_cut(p, _spans(p.subs))
        txns = _invoice_txns(p)
    elif p.kind == "one_time":
        spans, txns = (), _session_txns(p)
    else:
        return None
    if not spans and not txns:
        return None
    return ChartPurchase(key=p.key, spans=spans, txns=txns)


def _state(s: SubObs) -> str | None:
    if s.status == "trialing":
        return "trial"
    return "paid" if s.status in PAID else None


def _own_end(s: SubObs) -> int | None:
    """Where this snapshot's access ends by itself: the period end, or an earlier cancel_at."""
    if s.cancel_at is not None and s.period_end is not None:
        return min(s.cancel_at, s.period_end)
    return s.period_end if s.cancel_at is None else s.cancel_at


def _ending_time(s: SubObs, prev_end: int | None) -> int:
    """When an access-ending snapshot (canceled, unpaid, ...) ended access: `ended_at`, else
    when it was seen; never later than the period the access had."""
    end = s.ended_at if s.ended_at is not None else s.order[0]
    return end if prev_end is None else min(end, prev_end)


def _spans(subs: tuple[SubObs, ...]) -> tuple[Span, ...]:
    """Snapshots in merge order become spans: each state holds from when it began (its
    period start, for the first and after a gap) until the next state begins or its own
    access ends, whichever is first."""
    raw: list[Span] = []
    open_end: int | None = None  # where the current span's access would end by itself
    for s in subs:
        kind = _state(s)
        t = s.order[0]
        if raw and raw[-1].end is None:
            last = raw[-1]
            stop = t if kind is not None else _ending_time(s, open_end)
            if open_end is not None and open_end < stop:
                stop = open_end
            raw[-1] = _with_end(last, max(stop, last.start))
        if kind is None:
            open_end = None
            continue
        start = t
        if s.period_start is not None and s.period_start < t:
            start = s.period_start
        if raw and raw[-1].end is not None and start < raw[-1].end:
            start = raw[-1].end  # a renewal seen late continues the earlier span
        amount = s.items_amount if s.items_amount is not None else s.amount
        paid = kind == "paid" and amount is not None
        mrr = monthly_milli(amount or 0, s.interval, s.interval_count) if paid else 0
        cancelled = kind == "trial" and (s.cancel_at_period_end or s.cancel_at is not None)
        raw.append(
            Span(
                kind=kind,
                start=start,
                end=None,
                positions=(s.position,),
                mrr=mrr,
                currency=s.currency if kind == "paid" else None,
                cancelled=cancelled,
            )
        )
        open_end = _own_end(s)
    if raw and raw[-1].end is None and open_end is not None:
        raw[-1] = _with_end(raw[-1], max(open_end, raw[-1].start))
    return _flags(_merged(raw))


def _with_end(span: Span, end: int) -> Span:
    return replace(span, end=end)


def _merged(spans: list[Span]) -> list[Span]:
    """Adjacent spans of the same access at the same price are one (renewals), naming all
    their facts; empty spans (a state that held for no time) go."""
    out: list[Span] = []
    for span in spans:
        if span.end is not None and span.end <= span.start:
            continue
        if out:
            last = out[-1]
            same = (last.kind, last.mrr, last.currency) == (span.kind, span.mrr, span.currency)
            if same and last.end == span.start:
                out[-1] = replace(
                    last,
                    end=span.end,
                    positions=last.positions + span.positions,
                    cancelled=last.cancelled or span.cancelled,
                )
                continue
        out.append(span)
    return out


def _flags(spans: list[Span]) -> tuple[Span, ...]:
    """Paid spans followed by no access at their end have lapsed (churn); paid spans after
    a lapse resumed (a resubscription)."""
    out: list[Span] = []
    lapsed_before = False
    for i, span in enumerate(spans):
        if span.kind != "paid":
            out.append(span)
            continue
        follows = i + 1 < len(spans) and spans[i + 1].start == span.end
        lapsed = span.end is not None and not follows
        out.append(replace(span, lapsed=lapsed, resumed=lapsed_before))
        lapsed_before = lapsed_before or lapsed
    return tuple(out)


def _refund_cut(p: Purchase, spans: tuple[Span, ...]) -> tuple[Span, ...]:
    """A full refund of the charge paying the latest period ends access at the refund
    (SPEC 7.1): spans are cut there, and the refund's fact joins the cut span."""
    if not p.charges or not spans or not p.subs:
        return spans
    full, _ = latest_period_refunds(p, p.subs[-1])
    refunds = [(c.charge.refunded_at, c.charge.position) for c in full if c.charge.refunded_at]
    if not refunds:
        return spans
    at, position = max(refunds)
    assert at is not None
    cut: list[Span] = []
    for span in spans:
        if span.start >= at:
            continue
        if span.end is not None and span.end <= at:
            cut.append(span)
            continue
        cut.append(
            replace(span, end=at, positions=(*span.positions, position), lapsed=span.kind == "paid")
        )
    return tuple(cut)


def _invoice_txns(p: Purchase) -> tuple[Txn, ...]:
    """Paid invoices (amount > 0), with the refunds of the charges that paid them. An
    invoice without a currency of its own is in its subscription's (Stripe bills a
    subscription in one currency)."""
    fallback = p.subs[-1].currency if p.subs else None
    refunds: dict[str, list[tuple[str, int, int]]] = {}
    for linked in p.charges.values():
        charge = linked.charge
        refunds.setdefault(linked.invoice, []).append(
            (charge.id, charge.amount_refunded, charge.position)
        )
    txns: list[Txn] = []
    for invoice in sorted(p.invoices.values(), key=lambda i: i.id):
        if invoice.status != "paid" or invoice.amount_paid <= 0:
            continue
        charges = sorted(refunds.get(invoice.id, []))
        refunded = min(sum(r[1] for r in charges), invoice.amount_paid)
        txns.append(
            Txn(
                id=invoice.id,
                at=invoice.paid_at if invoice.paid_at is not None else invoice.order[0],
                amount=invoice.amount_paid,
                currency=invoice.currency or fallback,
                positions=(invoice.position, *sorted({r[2] for r in charges if r[1] > 0})),
                refunded=refunded,
                charges=tuple(r[0] for r in charges if r[1] > 0),
            )
        )
    return tuple(txns)


def _session_txns(p: Purchase) -> tuple[Txn, ...]:
    """A paid one-time Checkout Session is one transaction; its refunds are those of the
    charges linked to the purchase."""
    session = p.session
    if session is None or session.payment_status != "paid" or not session.amount_total:
        return ()
    charges = sorted(
        (c.charge.id, c.charge.amount_refunded, c.charge.position) for c in p.charges.values()
    )
    refunded = [c for c in charges if c[1] > 0]
    at = session.created if session.created is not None else session.order[0]
    return (
        Txn(
            id=session.id,
            at=at,
            amount=session.amount_total,
            currency=session.currency,
            positions=(session.position, *sorted({c[2] for c in refunded})),
            refunded=min(sum(c[1] for c in refunded), session.amount_total),
            charges=tuple(c[0] for c in refunded),
        ),
    )
