"""`subledger charts NAME --app APP`: a chart's series as bars in the terminal (plain
numbers when piped), or `--at BUCKET` for what that bucket counts (SPEC 11)."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from typing import Any

from projections.chartreads import chart_drilldown, chart_series
from projections.charts import (
    CHARTS,
    MONEY,
    RESOLUTIONS,
    ChartInputError,
    ChartQuery,
    Series,
    parse_bucket,
)
from projections.drilldown import Drilldown
from projections.reader import Reader
from subledger.cli.output import add_json_flag, emit, fail
from subledger.ledger import Ledger, UnknownAppError
from subledger.settings import Settings

BAR_WIDTH = 40


def register(commands: Any) -> None:
    charts = commands.add_parser("charts", help="a chart's series, or what one bucket counts")
    charts.add_argument("name", choices=CHARTS, metavar="NAME", help=", ".join(CHARTS))
    charts.add_argument("--app", required=True, metavar="APP_ID")
    charts.add_argument("--from", dest="start", type=_date, metavar="YYYY-MM-DD")
    charts.add_argument("--to", dest="end", type=_date, metavar="YYYY-MM-DD", help="default today")
    charts.add_argument("--resolution", choices=RESOLUTIONS, default="day")
    charts.add_argument(
        "--currency", type=_currency, metavar="CUR", help="mrr, revenue: one currency"
    )
    charts.add_argument(
        "--at", type=_bucket, metavar="BUCKET", help="2026-12-07, 2026-W49 or 2026-12"
    )
    add_json_flag(charts)
    charts.set_defaults(handler=_charts)


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from error


def _currency(text: str) -> str:
    if len(text) != 3 or not text.isalpha():
        raise argparse.ArgumentTypeError(f"not a three-letter currency code: {text!r}")
    return text.lower()


def _bucket(text: str) -> str:
    try:
        parse_bucket(text)
    except ChartInputError as error:
        raise argparse.ArgumentTypeError(str(error)) from error
    return text


def _charts(args: argparse.Namespace, settings: Settings) -> int:
    try:
        ledger = Ledger(settings.database)
    except Exception as error:  # noqa: BLE001
        return fail(args, f"cannot open store {settings.database.redacted_url}: {error}")
    try:
        ledger.get_app(args.app)
    except UnknownAppError as error:
        return fail(args, str(error))
    finally:
        ledger.close()
    today = dt.datetime.now(dt.UTC).date()
    end = args.end or today
    start = args.start or end - dt.timedelta(days=29)
    q = ChartQuery(
        name=args.name,
        today=today,
        start=start,
        end=end,
        resolution=args.resolution,
        currency=args.currency,
    )
    reader = Reader(settings.database)
    try:
        if args.at:
            down = chart_drilldown(reader, args.app, q, args.at)
            return emit(args, down, drilldown_text(down))
        found = chart_series(reader, args.app, q)
    finally:
        reader.close()
    return emit(args, found, series_text(found, tty=sys.stdout.isatty()))


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def series_text(s: Series, *, tty: bool) -> str:
    """Bars scaled to the largest value on a terminal; `bucket value` lines otherwise."""
    if s.chart in MONEY and s.currency is None:
        return _per_currency(s, tty=tty)
    rows = [(b.bucket, b.value) for b in s.buckets]
    if not tty:
        return "\n".join(f"{label} {_plain(value)}" for label, value in rows)
    return _bars(f"{s.chart} ({s.unit}, by {s.resolution})", rows)


def _plain(value: float | None) -> str:
    if value is None:
        return "-"
    return str(int(value)) if float(value).is_integer() else str(value)


def _bars(title: str, rows: list[tuple[str, float | None]]) -> str:
    top = max((abs(v) for _, v in rows if v is not None), default=0) or 1
    width = max((len(_number(v)) for _, v in rows), default=1)
    lines = [title]
    for label, value in rows:
        bar = "█" * round(BAR_WIDTH * abs(value or 0) / top)
        lines.append(f"{label:<10}  {_number(value):>{width}}  {bar}".rstrip())
    return "\n".join(lines)


def _per_currency(s: Series, *, tty: bool) -> str:
    """Money charts without --currency: one block (or one column of numbers) a currency."""
    currencies = sorted({c for b in s.buckets for c in b.values})
    if not tty:
        lines = [" ".join(["bucket", *currencies])]
        for b in s.buckets:
            lines.append(" ".join([b.bucket, *(_plain(b.values.get(c, 0)) for c in currencies)]))
        return "\n".join(lines)
    blocks = [
        _bars(
            f"{s.chart} in {c} ({s.unit}, by {s.resolution})",
            [(b.bucket, b.values.get(c, 0)) for b in s.buckets],
        )
        for c in currencies
    ]
    return "\n\n".join(blocks) or f"{s.chart}: nothing in this range"


def drilldown_text(d: Drilldown) -> str:
    b = d.bucket
    values = ", ".join(f"{k} {_number(v)}" for k, v in b.values.items())
    lines = [f"{d.chart} {b.bucket} ({b.start} to {b.end}): {_number(b.value)}  [{values}]"]
    for item in d.items:
        who = item.purchase or item.customer or ""
        extra = f" {item.transaction}" if item.transaction else ""
        extra += f" charges {','.join(item.charges)}" if item.charges else ""
        extra += f" {item.currency}" if item.currency else ""
        where = ",".join(str(p) for p in item.positions)
        facts = f"  facts {where}" if where else ""
        lines.append(f"  {item.measure:<16} {_number(item.value):>10}  {who}{extra}{facts}")
    return "\n".join(lines)
