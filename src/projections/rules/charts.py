"""What purchases and customers add to the charts' day counters (SPEC 11, RevenueCat's
definitions in shared/revenuecat-charts.md): +1/-1 where a span starts and ends (stock
series: the value at a bucket's end is the running sum), amounts on the day a transaction
was paid (flow series: the bucket's sum); a customer counts on the day first seen, with
its first trial's outcome (trial conversion's cohort). Spans and transactions come from
rules/chartspans.py.
"""

from __future__ import annotations

from projections.model import ChartCustomer, ChartPurchase, Customer, Trial
from projections.rules.dates import day

Contribution = dict[tuple[str, str], int]  # (day, series) → change


# --- customers --------------------------------------------------------------------------


def first_trial(charts: list[ChartPurchase]) -> Trial | None:
    """The customer's first trial (by start) and its outcome: converted when paid access
    followed it and the first paid transaction after it was not refunded in full
    (RevenueCat removes refunded conversions); abandoned when auto-renew was turned off or
    the trial ended without paid access; open (pending until it ends) otherwise."""
    found: tuple[int, str, ChartPurchase, int] | None = None
    for chart in charts:
        for i, span in enumerate(chart.spans):
            if span.kind == "trial" and (found is None or (span.start, chart.key) < found[:2]):
                found = (span.start, chart.key, chart, i)
    if found is None:
        return None
    chart, i = found[2], found[3]
    trial = chart.spans[i]
    following = chart.spans[i + 1] if i + 1 < len(chart.spans) else None
    positions = trial.positions
    if following is not None and following.kind == "paid" and following.start == trial.end:
        paid = [t for t in chart.txns if t.at >= following.start]
        first = min(paid, key=lambda t: (t.at, t.id)) if paid else None
        if first is not None and first.refunded >= first.amount:
            positions = (*positions, *first.positions)
            return Trial(
                purchase=chart.key, end=trial.end, outcome="abandoned", positions=positions
            )
        positions = (*positions, following.positions[0])
        return Trial(purchase=chart.key, end=trial.end, outcome="converted", positions=positions)
    ended = following is not None or trial.cancelled
    outcome = "abandoned" if ended else "open"
    return Trial(purchase=chart.key, end=trial.end, outcome=outcome, positions=positions)


# --- per-day counters -------------------------------------------------------------------


def day_of(seconds: int) -> str:
    return day(seconds // 86_400)


def _add(into: Contribution, when: int, series: str, value: int) -> None:
    if value:
        key = (day(when // 86_400), series)
        into[key] = into.get(key, 0) + value


def _bump(into: Contribution, key: tuple[str, str], value: int) -> None:
    into[key] = into.get(key, 0) + value


def purchase_contribution(chart: ChartPurchase | None, into: Contribution, sign: int) -> None:
    """What a purchase adds to each day's counters (times `sign`: -1 takes it back). Runs
    for every purchase a batch saves, twice: each day is formatted once a span."""
    if chart is None:
        return
    for span in chart.spans:
        first = day(span.start // 86_400)
        last = day(span.end // 86_400) if span.end is not None else None
        paid = span.kind == "paid"
        stock = "subs" if paid else "trials"
        _bump(into, (first, stock), sign)
        if last is not None:
            _bump(into, (last, stock), -sign)
        if paid and span.mrr:
            money = "mrr:" + (span.currency or "")
            _bump(into, (first, money), sign * span.mrr)
            if last is not None:
                _bump(into, (last, money), -sign * span.mrr)
        if span.lapsed and last is not None:
            _bump(into, (last, "expired"), sign)
        if span.resumed:
            _bump(into, (first, "resumed"), sign)
    for txn in chart.txns:
        when = day(txn.at // 86_400)
        _bump(into, (when, "tx"), sign)
        net = txn.amount - txn.refunded
        if net:
            _bump(into, (when, "revenue:" + (txn.currency or "")), sign * net)
        if txn.refunded:
            _bump(into, (when, "tx_refunded"), sign)


def customer_contribution(chart: ChartCustomer | None, into: Contribution, sign: int) -> None:
    """New customers count on the day first seen; trial conversion's cohort too."""
    if chart is None:
        return
    first = chart.first_seen_ms // 1000
    _add(into, first, "customers", sign)
    trial = chart.trial
    if trial is None:
        return
    _add(into, first, "cohort_trials", sign)
    if trial.outcome == "open":
        # Pending until the trial ends, abandoned after: which one is decided at read time.
        until = day_of(trial.end) if trial.end is not None else "open"
        _add(into, first, f"cohort_open:{until}", sign)
    else:
        _add(into, first, f"cohort_{trial.outcome}", sign)


def customer_chart(c: Customer, charts: list[ChartPurchase]) -> ChartCustomer:
    return ChartCustomer(
        first_seen_ms=c.first_seen_ms,
        position=min(c.since, default=0),
        trial=first_trial(charts),
    )
