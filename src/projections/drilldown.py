"""What one bucket of a chart counts (SPEC 11): recomputed from the per-purchase and
per-customer rows the day counters were summed from, each item with the log positions of
its facts; the items of each measure add up to that measure's value in the series."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

import msgspec

from projections.charts import (
    MONEY,
    Bucket,
    ChartQuery,
    bucket_of,
    check_chart,
    headline,
    measures,
    money_values,
    parse_bucket,
)
from projections.model import ChartCustomer, ChartPurchase
from projections.rules.charts import day_of


class Item(msgspec.Struct, frozen=True, kw_only=True):
    """One purchase (or customer, or transaction) a bucket's measure counts."""

    measure: str
    value: float
    purchase: str | None = None
    customer: str | None = None
    transaction: str | None = None
    charges: list[str] = []
    currency: str | None = None
    positions: list[int] = []


class Drilldown(msgspec.Struct, frozen=True, kw_only=True):
    chart: str
    bucket: Bucket
    currency: str | None
    items: list[Item]


def drilldown(
    purchases: Iterable[ChartPurchase],
    customers: Iterable[tuple[str, ChartCustomer]],
    q: ChartQuery,
    label: str,
) -> Drilldown:
    """The purchases, transactions or customers behind one bucket, recomputed from the rows
    the day counters sum."""
    check_chart(q.name)
    name, currency, today = q.name, q.currency, q.today
    resolution, day = parse_bucket(label)
    label, first, last = bucket_of(day, resolution)
    lo, hi = first.isoformat(), last.isoformat()
    if name in ("new_customers", "trial_conversion"):
        items = _customer_items(customers, name, lo, hi, today.isoformat())
    else:
        items = _purchase_items(purchases, name, lo, hi)
    if name in MONEY and currency is not None:
        items = [i for i in items if (i.currency or "") == currency.lower()]
    totals: dict[str, float] = {}
    for item in items:
        key = item.currency or "" if name in MONEY else item.measure
        totals[key] = totals.get(key, 0) + item.value
    values = _empty(name) | {k: v for k, v in totals.items() if v or name not in MONEY}
    if name == "mrr":
        values = {k: round(v, 3) for k, v in values.items()}
    bucket = Bucket(
        bucket=label,
        start=lo,
        end=hi,
        value=headline(name, values, currency),
        values=money_values(name, values, currency),
    )
    return Drilldown(chart=name, bucket=bucket, currency=currency, items=items)


def _empty(name: str) -> dict[str, float]:
    return dict.fromkeys(measures(name, {}, {}, {}, ""), 0)


def _seconds(day: str) -> int:
    return int(dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC).timestamp())


def _active_at(start: int, end: int | None, until: int) -> bool:
    """At the end of the day ending at `until`: began before and not ended by then (as the
    day counters' running sum counts it: a span ending during the day is not counted)."""
    return start < until and (end is None or end >= until)


def _purchase_items(purchases: Iterable[ChartPurchase], name: str, lo: str, hi: str) -> list[Item]:
    """Compared in seconds: the same days as the counters, without formatting a date a span."""
    items: list[Item] = []
    first, until = _seconds(lo), _seconds(hi) + 86_400
    kind = "trial" if name == "active_trials" else "paid"
    for chart in purchases:
        for span in chart.spans:
            if span.kind != kind:
                continue
            found: list[tuple[str, float, str | None]] = []
            if name in ("active_subscriptions", "active_trials", "mrr"):
                if _active_at(span.start, span.end, until) and (name != "mrr" or span.mrr):
                    value = span.mrr / 1000 if name == "mrr" else 1
                    found.append(("active", value, span.currency if name == "mrr" else None))
            elif name == "churn":
                end = span.end
                if span.lapsed and end is not None and first <= end < until:
                    found.append(("expired", 1, None))
                if span.resumed and first <= span.start < until:
                    found.append(("resubscribed", 1, None))
                if _active_at(span.start, end, first):
                    found.append(("active_at_start", 1, None))
            items += [
                Item(
                    measure=measure,
                    value=value,
                    purchase=chart.key,
                    currency=currency,
                    positions=list(span.positions),
                )
                for measure, value, currency in found
            ]
        if name in ("revenue", "refund_rate"):
            items += _txn_items(chart, name, lo, hi)
    return items


def _txn_items(chart: ChartPurchase, name: str, lo: str, hi: str) -> list[Item]:
    items = []
    for txn in chart.txns:
        if not lo <= day_of(txn.at) <= hi:
            continue
        common: dict[str, Any] = {
            "purchase": chart.key,
            "transaction": txn.id,
            "charges": list(txn.charges),
            "positions": list(txn.positions),
        }
        if name == "revenue":  # refunded ones too (net 0): the refund's fact is why
            net = txn.amount - txn.refunded
            items.append(Item(measure="revenue", value=net, currency=txn.currency, **common))
            continue
        items.append(Item(measure="transactions", value=1, **common))
        if txn.refunded:
            items.append(Item(measure="refunded", value=1, **common))
    return items


def _customer_items(
    customers: Iterable[tuple[str, ChartCustomer]], name: str, lo: str, hi: str, today: str
) -> list[Item]:
    items = []
    for customer_id, chart in customers:
        if not lo <= day_of(chart.first_seen_ms // 1000) <= hi:
            continue
        first = [chart.position] if chart.position else []
        items.append(Item(measure="customers", value=1, customer=customer_id, positions=first))
        trial = chart.trial
        if name == "new_customers" or trial is None:
            continue
        common: dict[str, Any] = {
            "customer": customer_id,
            "purchase": trial.purchase,
            "positions": list(trial.positions),
        }
        items.append(Item(measure="trials", value=1, **common))
        outcome = trial.outcome
        if outcome == "open":
            ended = trial.end is not None and day_of(trial.end) < today
            outcome = "abandoned" if ended else "pending"
        items.append(Item(measure=outcome, value=1, **common))
    return items
