"""The charts' reads against the live tables: a series (one range scan of the app's day
counters) and a drill-down (every charted purchase or customer of the app)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec

from projections.charts import ChartQuery, Series, series
from projections.drilldown import Drilldown, drilldown
from projections.model import CHART_CUSTOMERS, CHART_DAYS, CHART_PURCHASES
from projections.reader import Reader
from projections.storage.db import Cursor
from projections.storage.tables import ROW_TYPES

_decoders = {
    t: msgspec.json.Decoder(ROW_TYPES[t]) for t in (CHART_DAYS, CHART_PURCHASES, CHART_CUSTOMERS)
}


def decode(table: str, raw: str | bytes) -> Any:
    """A charts row from its stored JSON."""
    return _decoders[table].decode(raw)


def chart_series(reader: Reader, app_id: str, q: ChartQuery) -> Series:
    """Days are read up to the end of the last bucket (a week or month may end after `end`)."""
    with reader.db.read() as cur:
        cur.execute(
            reader.db.q(
                f"SELECT id, state FROM {reader.prefix}{CHART_DAYS} "
                "WHERE app_id = ? AND id <= ? ORDER BY id"
            ),
            (app_id, ((q.end or q.today) + dt.timedelta(days=31)).isoformat()),
        )
        rows = [(str(day), decode(CHART_DAYS, state)) for day, state in cur.fetchall()]
    return series(rows, q)


def chart_drilldown(reader: Reader, app_id: str, q: ChartQuery, bucket: str) -> Drilldown:
    name = q.name
    with reader.db.read() as cur:
        purchases: list[Any] = []
        customers: list[tuple[str, Any]] = []
        if name in ("new_customers", "trial_conversion"):
            customers = [
                (str(i), decode(CHART_CUSTOMERS, s))
                for i, s in _rows(reader, cur, CHART_CUSTOMERS, app_id)
            ]
        else:
            purchases = [
                decode(CHART_PURCHASES, s) for _, s in _rows(reader, cur, CHART_PURCHASES, app_id)
            ]
    return drilldown(purchases, customers, q, bucket)


def _rows(reader: Reader, cur: Cursor, table: str, app_id: str) -> list[tuple[str, str]]:
    cur.execute(
        reader.db.q(f"SELECT id, state FROM {reader.prefix}{table} WHERE app_id = ? ORDER BY id"),
        (app_id,),
    )
    return [(str(i), str(s)) for i, s in cur.fetchall()]
