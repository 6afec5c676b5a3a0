"""The charts page (SPEC 11) behind a seam: the page asks `chart_source` for a chart's
points; until the charts read model is on main there is none, and the page says so while
its pickers and drill-down links are in place for the data to arrive."""

from __future__ import annotations

from typing import Any, Protocol

import msgspec

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
    start: str
    end: str


class ChartSource(Protocol):
    """Points of a chart: (bucket start ISO, value, drill-down purchase keys)."""

    def points(self, app_id: str, query: ChartQuery) -> list[tuple[str, float, list[str]]]: ...


def chart_source(service: Service) -> ChartSource | None:
    """The charts read model, once main has one (issue 21's branch `charts`)."""
    return None


async def chart_page(service: Service, app_id: str, query: ChartQuery) -> dict[str, Any]:
    name = query.name if query.name in CHARTS else CHARTS[0]
    resolution = query.resolution if query.resolution in RESOLUTIONS else RESOLUTIONS[0]
    start, end = query.start, query.end
    source = chart_source(service)
    points = (
        []
        if source is None
        else await service.read(source.points, app_id, ChartQuery(name, resolution, start, end))
    )
    top = max((value for _, value, _ in points), default=0.0) or 1.0
    return {
        "charts": CHARTS,
        "resolutions": RESOLUTIONS,
        "name": name,
        "resolution": resolution,
        "start": start,
        "end": end,
        "available": source is not None,
        "bars": [
            {"label": label, "value": value, "height": round(100 * value / top), "keys": keys}
            for label, value, keys in points
        ],
    }
