"""The charts page (SPEC 11) behind a seam: `ChartSource` gives a chart's bars and what one
bar counts. `ReadModelCharts` adapts the charts read model (`projections.charts` and
`projections.chartreads`) where this build has it; without it the page keeps its pickers
and says the chart is not available."""

from __future__ import annotations

import datetime as dt
import importlib
from typing import Any, Protocol

import msgspec

from projections.reader import Reader
from subledger.service import Service

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


class ChartQuery(msgspec.Struct, frozen=True):
    name: str
    resolution: str
    start: dt.date
    end: dt.date
    currency: str | None = None


class Bar(msgspec.Struct, frozen=True):
    label: str  # the bucket: 2026-12-07, 2026-W49 or 2026-12
    start: str
    end: str
    value: float | None


class DrillItem(msgspec.Struct, frozen=True):
    measure: str
    value: float
    purchase: str | None
    customer: str | None
    transaction: str | None
    currency: str | None
    positions: list[int]


class ChartSource(Protocol):
    def bars(self, app_id: str, query: ChartQuery) -> tuple[str, list[Bar]]: ...
    def drill(self, app_id: str, query: ChartQuery, bucket: str) -> list[DrillItem]: ...


class ReadModelCharts:
    """The charts read model's series and drill-downs, as bars and items."""

    def __init__(self, reader: Reader, charts: Any, reads: Any) -> None:
        self.reader, self.charts, self.reads = reader, charts, reads

    def _query(self, query: ChartQuery) -> Any:
        return self.charts.ChartQuery(
            name=query.name,
            today=dt.datetime.now(dt.UTC).date(),
            start=query.start,
            end=query.end,
            resolution=query.resolution,
            currency=query.currency,
        )

    def bars(self, app_id: str, query: ChartQuery) -> tuple[str, list[Bar]]:
        series = self.reads.chart_series(self.reader, app_id, self._query(query))
        return series.unit, [Bar(b.bucket, b.start, b.end, b.value) for b in series.buckets]

    def drill(self, app_id: str, query: ChartQuery, bucket: str) -> list[DrillItem]:
        try:
            found = self.reads.chart_drilldown(self.reader, app_id, self._query(query), bucket)
        except self.charts.ChartInputError:
            return []
        return [
            DrillItem(
                i.measure, i.value, i.purchase, i.customer, i.transaction, i.currency, i.positions
            )
            for i in found.items
        ]


def chart_source(reader: Reader) -> ChartSource | None:
    """The charts read model where this build has one (SPEC 11), else None."""
    try:
        charts = importlib.import_module("projections.charts")
        reads = importlib.import_module("projections.chartreads")
    except ImportError:
        return None
    return ReadModelCharts(reader, charts, reads)


def _date(text: str, default: dt.date) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return default


def chart_query(name: str, resolution: str, start: str, end: str) -> ChartQuery:
    """The pickers' values, each replaced by its default when it is not one (the last 30
    days, by day, of the first chart)."""
    today = dt.datetime.now(dt.UTC).date()
    last = _date(end, today)
    first = min(_date(start, last - dt.timedelta(days=29)), last)
    return ChartQuery(
        name=name if name in CHARTS else CHARTS[0],
        resolution=resolution if resolution in RESOLUTIONS else RESOLUTIONS[0],
        start=first,
        end=last,
    )


def _chart(reader: Reader, app_id: str, query: ChartQuery, bucket: str) -> dict[str, Any]:
    source = chart_source(reader)
    if source is None:
        return {"available": False, "unit": "", "bars": [], "drill": None}
    unit, bars = source.bars(app_id, query)
    top = max((b.value or 0.0 for b in bars), default=0.0) or 1.0
    shown = [{"bar": b, "height": round(20 * max(b.value or 0.0, 0.0) / top) * 5} for b in bars]
    drill = source.drill(app_id, query, bucket) if bucket else None
    return {"available": True, "unit": unit, "bars": shown, "drill": drill}


async def chart_page(
    service: Service, app_id: str, query: ChartQuery, bucket: str
) -> dict[str, Any]:
    shown = await service.read(_chart, service.reader, app_id, query, bucket)
    return {
        "charts": CHARTS,
        "resolutions": RESOLUTIONS,
        "query": query,
        "bucket": bucket,
        **shown,
    }
