"""Charts (SPEC 11): at the end of a batch, each purchase and customer it touched is charted
afresh (rules/charts.py) and the difference from what it added before goes into the days'
counters. The counters always equal the sum over every purchase and customer as they
stand now, whatever the order and the batching of the facts (a rebuild writes the same
bytes).
"""

from __future__ import annotations

from projections.fold.state import Batch
from projections.model import (
    CHART_CUSTOMERS,
    CHART_DAYS,
    CHART_PURCHASES,
    ChartCustomer,
    ChartDay,
    ChartPurchase,
)
from projections.rules.charts import (
    Contribution,
    customer_chart,
    customer_contribution,
    purchase_contribution,
)
from projections.rules.chartspans import chart_purchase


def refresh(b: Batch) -> None:
    """Chart the purchases saved in this batch, then the customers whose charts may have
    changed: those saved or dropped, and the owners of purchases whose chart changed."""
    changes: dict[str, Contribution] = {}
    customers = b.recharted
    for app_id, keys in _by_app(b.charted).items():
        b.rows.prefetch(CHART_PURCHASES, app_id, keys)
        for key in keys:
            p = b.purchase(app_id, key)
            before: ChartPurchase | None = b.rows.get(CHART_PURCHASES, app_id, key)
            after = chart_purchase(p) if p is not None else None
            if after == before:
                continue
            into = changes.setdefault(app_id, {})
            purchase_contribution(before, into, -1)
            purchase_contribution(after, into, 1)
            b.rows.put(CHART_PURCHASES, app_id, key, after)
            owner = b.customer_of(app_id, p.owner) if p is not None else None
            if owner is not None:
                customers.add((app_id, owner.id))
    for app_id, ids in _by_app(customers).items():
        b.rows.prefetch(CHART_CUSTOMERS, app_id, ids)
        for customer_id in ids:
            _customer(b, app_id, customer_id, changes)
    b.charted.clear()
    customers.clear()
    for app_id, change in sorted(changes.items()):
        _apply(b, app_id, change)


def _by_app(keys: set[tuple[str, str]]) -> dict[str, list[str]]:
    """Row ids by app, sorted (the order rows are written in stays deterministic)."""
    found: dict[str, list[str]] = {}
    for app_id, row_id in sorted(keys):
        found.setdefault(app_id, []).append(row_id)
    return found


def _customer(b: Batch, app_id: str, customer_id: str, changes: dict[str, Contribution]) -> None:
    customer = b.customer(app_id, customer_id)
    before: ChartCustomer | None = b.rows.get(CHART_CUSTOMERS, app_id, customer_id)
    after: ChartCustomer | None = None
    if customer is not None:
        charts = [b.rows.get(CHART_PURCHASES, app_id, key) for key in customer.purchases]
        after = customer_chart(customer, [c for c in charts if c is not None])
    if after != before:
        into = changes.setdefault(app_id, {})
        customer_contribution(before, into, -1)
        customer_contribution(after, into, 1)
        b.rows.put(CHART_CUSTOMERS, app_id, customer_id, after)


def _apply(b: Batch, app_id: str, change: Contribution) -> None:
    by_day: dict[str, dict[str, int]] = {}
    for (day, series), value in change.items():
        if value:  # zero: taken back and added again (an unchanged span of a changed purchase)
            by_day.setdefault(day, {})[series] = value
    b.rows.prefetch(CHART_DAYS, app_id, sorted(by_day))
    for day, values in sorted(by_day.items()):
        row: ChartDay | None = b.rows.get(CHART_DAYS, app_id, day)
        merged = dict(row.values) if row is not None else {}
        for series, value in values.items():
            total = merged.get(series, 0) + value
            if total:
                merged[series] = total
            else:
                merged.pop(series, None)
        b.rows.put(CHART_DAYS, app_id, day, ChartDay(values=merged) if merged else None)
