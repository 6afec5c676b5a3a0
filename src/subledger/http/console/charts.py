"""The charts page (SPEC 11): a chart's buckets from the charts read model, each linked to
what it counts (the drill-down: purchases, customers and the facts behind each)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from projections.chartreads import chart_drilldown, chart_series
from projections.charts import CHARTS, RESOLUTIONS, ChartInputError, ChartQuery
from projections.reader import Reader
from subledger.service import Service


def _date(text: str, default: dt.date) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return default


def chart_query(name: str, resolution: str, start: str, end: str) -> ChartQuery:
    """The pickers' values, each replaced by its default when it is not one (the last 30
    days, by day, of the first chart), as the API's defaults are."""
    today = dt.datetime.now(dt.UTC).date()
    last = _date(end, today)
    return ChartQuery(
        name=name if name in CHARTS else CHARTS[0],
        today=today,
        start=min(_date(start, last - dt.timedelta(days=29)), last),
        end=last,
        resolution=resolution if resolution in RESOLUTIONS else RESOLUTIONS[0],
    )


def _chart(reader: Reader, app_id: str, query: ChartQuery, bucket: str) -> dict[str, Any]:
    series = chart_series(reader, app_id, query)
    top = max((b.value or 0.0 for b in series.buckets), default=0.0) or 1.0
    bars = [
        {"bucket": b, "height": round(20 * max(b.value or 0.0, 0.0) / top) * 5}
        for b in series.buckets
    ]
    drill = None
    if bucket:
        try:
            drill = chart_drilldown(reader, app_id, query, bucket).items
        except ChartInputError:
            drill = []
    return {"unit": series.unit, "bars": bars, "drill": drill}


async def chart_page(
    service: Service, app_id: str, query: ChartQuery, bucket: str
) -> dict[str, Any]:
    shown = await service.read(_chart, service.reader, app_id, query, bucket)
    return {"charts": CHARTS, "resolutions": RESOLUTIONS, "query": query, "bucket": bucket, **shown}
