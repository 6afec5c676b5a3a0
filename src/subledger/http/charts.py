"""`GET /v1/charts/{name}` and `GET /v1/charts/{name}/{bucket}`: the numbers a subscription
business watches, and what each one counts (SPEC 11). Secret key only."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Literal

from litestar import get
from litestar.di import NamedDependency
from litestar.params import PathParameter, QueryParameter

from projections.chartreads import chart_drilldown, chart_series
from projections.charts import CHARTS, ChartInputError, ChartQuery, Series
from projections.drilldown import Drilldown
from subledger.codes import Code
from subledger.http.errors import ApiError
from subledger.http.guards import Caller, api_key, secret_key
from subledger.http.openapi import BEARER, errors
from subledger.service import Service

ChartName = Annotated[
    str,
    PathParameter(description="the chart", schema_extra={"enum": list(CHARTS)}),
]
Currency = Annotated[
    str | None,
    QueryParameter(
        description="money charts (mrr, revenue): one currency, never converted",
        schema_extra={"pattern": "^[A-Za-z]{3}$"},
    ),
]
_CURRENCY = re.compile(r"[A-Za-z]{3}")
ERRORS = (Code.INVALID_API_KEY, Code.SECRET_KEY_NEEDED, Code.UNKNOWN_CHART)


def _query(
    name: str,
    currency: str | None,
    start: dt.date | None = None,
    end: dt.date | None = None,
    resolution: str = "day",
) -> ChartQuery:
    """The default range is the 30 days (or buckets) up to today, UTC."""
    if name not in CHARTS:
        raise ApiError(Code.UNKNOWN_CHART, f"no chart {name!r}; charts: {', '.join(CHARTS)}")
    if currency is not None and not _CURRENCY.fullmatch(currency):
        raise ApiError(Code.INVALID_CHART_QUERY, f"currency {currency!r} is not a 3-letter code")
    today = dt.datetime.now(dt.UTC).date()
    last = end or today
    return ChartQuery(
        name=name,
        today=today,
        start=start or last - dt.timedelta(days=29),
        end=last,
        resolution=resolution,
        currency=currency.lower() if currency else None,
    )


@get(
    "/v1/charts/{name:str}",
    operation_id="getChart",
    tags=["charts"],
    summary="A chart's series in UTC buckets (default: the last 30 days, by day)",
    description=(
        "Stock charts (active subscriptions, trials, MRR) show each bucket's end; flow charts "
        "sum its days. A range longer than 1000 buckets answers its last 1000 "
        "(`truncated`); dates are kept within 1970-01-01 and 9999-11-30."
    ),
    guards=[api_key, secret_key],
    security=BEARER,
    responses=errors(*ERRORS, Code.INVALID_CHART_QUERY),
)
async def get_chart(
    name: ChartName,
    *,
    caller: NamedDependency[Caller],
    service: NamedDependency[Service],
    start: Annotated[dt.date | None, QueryParameter(description="first day (UTC)")] = None,
    end: Annotated[dt.date | None, QueryParameter(description="last day (default today)")] = None,
    resolution: Annotated[Literal["day", "week", "month"], QueryParameter()] = "day",
    currency: Currency = None,
) -> Series:
    q = _query(name, currency, start, end, resolution)
    return await service.read(chart_series, service.reader, caller.app_id, q)


@get(
    "/v1/charts/{name:str}/{bucket:str}",
    operation_id="getChartBucket",
    tags=["charts"],
    summary="What one bucket of a chart counts: purchases, transactions or customers, with "
    "the log positions of the facts behind each",
    guards=[api_key, secret_key],
    security=BEARER,
    responses=errors(*ERRORS, Code.INVALID_CHART_QUERY, Code.UNKNOWN_BUCKET),
)
async def get_chart_bucket(
    name: ChartName,
    *,
    bucket: Annotated[str, PathParameter(description="2026-12-07, 2026-W49 or 2026-12")],
    caller: NamedDependency[Caller],
    service: NamedDependency[Service],
    currency: Currency = None,
) -> Drilldown:
    q = _query(name, currency)
    try:
        return await service.read(chart_drilldown, service.reader, caller.app_id, q, bucket)
    except ChartInputError as error:
        raise ApiError(Code.UNKNOWN_BUCKET, str(error)) from error
