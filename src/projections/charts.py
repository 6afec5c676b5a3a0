"""Chart series and drill-downs (SPEC 11), computed at read time from the charts projection.

A series reads the app's day counters (`chart_days`) once, from the first day up to the
range's end: stock series (active subscriptions, trials, MRR) are running sums at each
bucket's last day, flow series (revenue, new customers, expirations) sums over its days.
A drill-down (drilldown.py) recomputes one bucket from the rows the counters sum.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable

import msgspec

from projections.model import ChartDay

CHARTS = (
    "active_subscriptions",
    "active_trials",
    "mrr",
    "new_customers",
    "churn",
    "refund_rate",
    "trial_conversion",
    "revenue",
)
RESOLUTIONS = ("day", "week", "month")
MONEY = ("mrr", "revenue")  # per currency, never converted


class ChartInputError(ValueError):
    """A chart, bucket or range the caller asked for that does not exist."""


class ChartQuery(msgspec.Struct, frozen=True, kw_only=True):
    """What a caller asks for; `today` decides which open trials are still pending."""

    name: str
    today: dt.date
    start: dt.date | None = None
    end: dt.date | None = None
    resolution: str = "day"
    currency: str | None = None


class Bucket(msgspec.Struct, frozen=True, kw_only=True):
    bucket: str  # 2026-12-07 | 2026-W49 | 2026-12
    start: str  # its first day
    end: str  # its last day
    value: float | None  # the headline number (money: in the chosen currency)
    values: dict[str, float]  # every measure (money: one per currency)


class Series(msgspec.Struct, frozen=True, kw_only=True):
    chart: str
    resolution: str
    currency: str | None
    unit: str
    buckets: list[Bucket]
    truncated: bool = False  # the range held more than 1000 buckets: these are its last


UNITS = {
    "active_subscriptions": "subscriptions",
    "active_trials": "trials",
    "mrr": "minor units per month",
    "new_customers": "customers",
    "churn": "percent",
    "refund_rate": "percent",
    "trial_conversion": "percent",
    "revenue": "minor units",
}


# --- buckets ----------------------------------------------------------------------------


def bucket_of(day: dt.date, resolution: str) -> tuple[str, dt.date, dt.date]:
    """The bucket holding `day`: its label, first and last day (weeks are ISO weeks)."""
    if resolution == "day":
        return day.isoformat(), day, day
    if resolution == "week":
        year, week, weekday = day.isocalendar()
        first = day - dt.timedelta(days=weekday - 1)
        return f"{year}-W{week:02d}", first, first + dt.timedelta(days=6)
    first = day.replace(day=1)
    following = (first + dt.timedelta(days=32)).replace(day=1)
    return first.strftime("%Y-%m"), first, following - dt.timedelta(days=1)


def parse_bucket(label: str) -> tuple[str, dt.date]:
    """(resolution, first day) of a bucket label."""
    try:
        found = _parsed(label)
    except ValueError:
        found = None
    if found is None:
        raise ChartInputError(f"bucket {label!r} is none of 2026-12-07, 2026-W49 or 2026-12")
    if not EARLIEST <= found[1] <= LATEST:
        raise ChartInputError(f"bucket {label!r} is outside 1970-01-01 to 9999-11-30")
    return found


EARLIEST, LATEST = dt.date(1970, 1, 1), dt.date(9999, 11, 30)
MAX_BUCKETS = 1000


def _parsed(label: str) -> tuple[str, dt.date] | None:
    if len(label) == 10:
        return "day", dt.date.fromisoformat(label)
    if "-W" in label and len(label) == 8:
        year, week = label.split("-W")
        return "week", dt.date.fromisocalendar(int(year), int(week), 1)
    if len(label) == 7:
        return "month", dt.date.fromisoformat(label + "-01")
    return None


def buckets(start: dt.date, end: dt.date, resolution: str) -> list[tuple[str, dt.date, dt.date]]:
    """The buckets from `start`'s to `end`'s (kept within 1970-01-01 and 9999-11-30): at
    most the last `MAX_BUCKETS` of them."""
    if resolution not in RESOLUTIONS:
        raise ChartInputError(f"resolution {resolution!r} is not one of {', '.join(RESOLUTIONS)}")
    start, end = max(start, EARLIEST), min(end, LATEST)
    start = max(start, end - dt.timedelta(days=31 * MAX_BUCKETS))
    found = []
    day = start
    while day <= end:
        found.append(bucket_of(day, resolution))
        day = found[-1][2] + dt.timedelta(days=1)
    return found[-MAX_BUCKETS:]


def check_chart(name: str) -> None:
    if name not in CHARTS:
        raise ChartInputError(f"no chart {name!r}; charts: {', '.join(CHARTS)}")


# --- series -----------------------------------------------------------------------------


def series(days: Iterable[tuple[str, ChartDay]], q: ChartQuery) -> Series:
    """`days`: the app's day rows in day order, at least up to the last bucket's end."""
    check_chart(q.name)
    name, currency = q.name, q.currency
    first, last = q.start or q.today, q.end or q.today
    wanted = buckets(first, last, q.resolution)
    truncated = bool(wanted) and wanted[0][1] > max(first, EARLIEST)
    rows = iter(days)
    pending = next(rows, None)
    stock: dict[str, int] = {}
    found = []
    for label, first, last in wanted:
        first_text, last_text = first.isoformat(), last.isoformat()
        while pending is not None and pending[0] < first_text:
            _add_stocks(stock, pending[1].values)
            pending = next(rows, None)
        at_start = dict(stock)
        flow: dict[str, int] = {}
        while pending is not None and pending[0] <= last_text:
            _add_stocks(stock, pending[1].values)
            for key, value in pending[1].values.items():
                flow[key] = flow.get(key, 0) + value
            pending = next(rows, None)
        values = measures(name, at_start, stock, flow, q.today.isoformat())
        found.append(
            Bucket(
                bucket=label,
                start=first_text,
                end=last_text,
                value=headline(name, values, currency),
                values=money_values(name, values, currency),
            )
        )
    return Series(
        chart=name,
        resolution=q.resolution,
        currency=currency,
        unit=UNITS[name],
        buckets=found,
        truncated=truncated,
    )


STOCKS = ("subs", "trials", "mrr:")


def _add_stocks(stock: dict[str, int], values: dict[str, int]) -> None:
    for key, value in values.items():
        if key.startswith(STOCKS):
            stock[key] = stock.get(key, 0) + value


def measures(
    name: str, at_start: dict[str, int], stock: dict[str, int], flow: dict[str, int], today: str
) -> dict[str, float]:
    """Every measure of one bucket, from the stocks at its start and end and its flows."""
    return _MEASURES[name](at_start, stock, flow, today)


def _money_of(prefix: str, counters: dict[str, int], scale: int = 1) -> dict[str, float]:
    cut = len(prefix)
    return {k[cut:]: v / scale for k, v in sorted(counters.items()) if k.startswith(prefix) and v}


def _cohort(flow: dict[str, int], today: str) -> dict[str, float]:
    """Trial conversion's cohort: an open trial is pending until the day it ends."""
    pending = abandoned = 0
    for key, value in flow.items():
        if key.startswith("cohort_open:"):
            until = key[len("cohort_open:") :]
            if until != "open" and until < today:
                abandoned += value
            else:
                pending += value
    return {
        "customers": flow.get("customers", 0),
        "trials": flow.get("cohort_trials", 0),
        "converted": flow.get("cohort_converted", 0),
        "pending": pending,
        "abandoned": flow.get("cohort_abandoned", 0) + abandoned,
    }


Counters = dict[str, int]
_MEASURES: dict[str, Callable[[Counters, Counters, Counters, str], dict[str, float]]] = {
    "active_subscriptions": lambda a, s, f, t: {"active": s.get("subs", 0)},
    "active_trials": lambda a, s, f, t: {"active": s.get("trials", 0)},
    "mrr": lambda a, s, f, t: _money_of("mrr:", s, 1000),
    "revenue": lambda a, s, f, t: _money_of("revenue:", f),
    "new_customers": lambda a, s, f, t: {"customers": f.get("customers", 0)},
    "churn": lambda a, s, f, t: {
        "expired": f.get("expired", 0),
        "resubscribed": f.get("resumed", 0),
        "active_at_start": a.get("subs", 0),
    },
    "refund_rate": lambda a, s, f, t: {
        "transactions": f.get("tx", 0),
        "refunded": f.get("tx_refunded", 0),
    },
    "trial_conversion": lambda a, s, f, t: _cohort(f, t),
}


def _percent(part: float, whole: float) -> float | None:
    return round(100 * part / whole, 2) if whole else None


def headline(name: str, values: dict[str, float], currency: str | None) -> float | None:
    if name in MONEY:
        if currency is None:
            return values[next(iter(values))] if len(values) == 1 else None
        return values.get(currency.lower(), 0)
    if name == "churn":
        return _percent(values["expired"] - values["resubscribed"], values["active_at_start"])
    if name == "refund_rate":
        return _percent(values["refunded"], values["transactions"])
    if name == "trial_conversion":
        return _percent(values["converted"], values["trials"])
    return next(iter(values.values()))


def money_values(name: str, values: dict[str, float], currency: str | None) -> dict[str, float]:
    if name in MONEY and currency is not None:
        return {currency.lower(): values.get(currency.lower(), 0)}
    if name == "trial_conversion":
        rates = {
            "start_rate": _percent(values["trials"], values["customers"]),
            "conversion_rate": _percent(values["converted"], values["trials"]),
        }
        return {**values, **{k: v for k, v in rates.items() if v is not None}}
    return values
