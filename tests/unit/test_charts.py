"""Charts in memory (SPEC 11): every chart on generated lifecycles equals what the
lifecycles' parameters say by hand, and every bucket's drill-down adds up to its value."""

from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from projections.chartreads import decode
from projections.charts import CHARTS, ChartQuery, series
from projections.drilldown import drilldown
from projections.model import CHART_CUSTOMERS, CHART_DAYS, CHART_PURCHASES, ChartDay
from projections.storage.memory import MemoryTables
from subledger.cli.chartcommands import series_text
from tests.lifecycles import DAY, KINDS, MONTH0, Lifecycle, expected_day, facts
from tests.memory import MemoryLog

TODAY = dt.date(2027, 6, 1)
FIRST, LAST = dt.date(2026, 12, 1), dt.date(2027, 1, 31)


def month_of_lifecycles(count: int) -> list[Lifecycle]:
    """A month of customers: every kind, two currencies, some yearly prices."""
    return [
        Lifecycle(
            n=n,
            start=MONTH0 + (n * 17 % 30) * DAY + n * 3_600,
            kind=KINDS[n % len(KINDS)],
            currency="eur" if n % 3 == 0 else "usd",
            amount=499 + 100 * (n % 4),
            interval="year" if n % 5 == 0 else "month",
        )
        for n in range(count)
    ]


def folded(lcs: list[Lifecycle], batch_size: int = 1000) -> tuple[MemoryTables, str]:
    log = MemoryLog()
    app_id = log.new_app()
    for lc in lcs:
        log.append(*facts(app_id, lc))
    return log.fold(batch_size), app_id


def day_rows(tables: MemoryTables, app_id: str) -> list[tuple[str, ChartDay]]:
    rows = tables.tables[CHART_DAYS]
    return [(k[1], decode(CHART_DAYS, v)) for k, v in sorted(rows.items()) if k[0] == app_id]


def drill(tables: MemoryTables, app_id: str, q: ChartQuery, bucket: str):  # type: ignore[no-untyped-def]
    purchases = [
        decode(CHART_PURCHASES, v)
        for k, v in sorted(tables.tables[CHART_PURCHASES].items())
        if k[0] == app_id
    ]
    customers = [
        (k[1], decode(CHART_CUSTOMERS, v))
        for k, v in sorted(tables.tables[CHART_CUSTOMERS].items())
        if k[0] == app_id
    ]
    return drilldown(purchases, customers, q, bucket)


def test_a_generated_month_matches_the_hand_computed_charts() -> None:
    lcs = month_of_lifecycles(42)
    tables, app_id = folded(lcs)
    days = day_rows(tables, app_id)
    for chart in ("active_subscriptions", "active_trials", "new_customers", "refund_rate", "churn"):
        got = series(days, ChartQuery(name=chart, today=TODAY, start=FIRST, end=LAST))
        for bucket in got.buckets:
            assert bucket.values == expected_day(lcs, chart, bucket.bucket), (chart, bucket)
    for chart in ("mrr", "revenue"):
        for currency in ("usd", "eur"):
            q = ChartQuery(name=chart, today=TODAY, start=FIRST, end=LAST, currency=currency)
            for bucket in series(days, q).buckets:
                want = expected_day(lcs, chart, bucket.bucket, currency).get(currency, 0)
                assert bucket.value == want, (chart, currency, bucket)


def test_trial_conversion_counts_the_cohort_by_first_seen() -> None:
    lcs = month_of_lifecycles(42)
    tables, app_id = folded(lcs)
    q = ChartQuery(name="trial_conversion", today=TODAY, start=FIRST, end=FIRST, resolution="month")
    (bucket,) = series(day_rows(tables, app_id), q).buckets
    trials = sum(lc.kind.startswith("trial") for lc in lcs)
    converted = sum(lc.kind == "trial_convert" for lc in lcs)
    assert bucket.values["customers"] == len(lcs)
    assert bucket.values["trials"] == trials
    assert bucket.values["converted"] == converted
    assert bucket.values["abandoned"] == trials - converted
    assert bucket.values["pending"] == 0
    assert bucket.value == round(100 * converted / trials, 2)


def test_a_late_refund_moves_the_old_bucket_and_the_drilldown_names_it() -> None:
    lc = Lifecycle(n=1, start=MONTH0 + DAY, kind="refund", currency="eur")
    tables, app_id = folded([lc])
    q = ChartQuery(name="revenue", today=TODAY, currency="eur")
    got = drill(tables, app_id, q, "2026-12-02")
    assert got.bucket.value == 0  # paid 999, refunded 999: charged back to Dec 2
    rate = drill(tables, app_id, ChartQuery(name="refund_rate", today=TODAY), "2026-12")
    assert rate.bucket.value == 100.0
    refunded = [i for i in rate.items if i.measure == "refunded"]
    assert [i.charges for i in refunded] == [["ch_C1"]]
    positions = refunded[0].positions
    assert len(positions) == 2  # the invoice's fact and the refund's fact


@st.composite
def lifecycles(draw: st.DrawFn) -> list[Lifecycle]:
    count = draw(st.integers(1, 8))
    return [
        Lifecycle(
            n=n,
            start=MONTH0 + draw(st.integers(0, 40 * DAY)),
            kind=draw(st.sampled_from(KINDS)),
            currency=draw(st.sampled_from(["usd", "eur"])),
            amount=draw(st.integers(1, 50_000)),
            interval=draw(st.sampled_from(["month", "year"])),
        )
        for n in range(count)
    ]


@settings(max_examples=60, deadline=None)
@given(
    lcs=lifecycles(),
    batch_size=st.integers(1, 40),
    resolution=st.sampled_from(["day", "week", "month"]),
    today=st.sampled_from([dt.date(2026, 12, 20), TODAY]),
)
def test_every_drilldown_adds_up_to_its_bucket(
    lcs: list[Lifecycle], batch_size: int, resolution: str, today: dt.date
) -> None:
    tables, app_id = folded(lcs, batch_size)
    days = day_rows(tables, app_id)
    for chart in CHARTS:
        q = ChartQuery(
            name=chart, today=today, start=FIRST, end=dt.date(2027, 3, 1), resolution=resolution
        )
        for bucket in series(days, q).buckets:
            down = drill(tables, app_id, q, bucket.bucket)
            assert down.bucket == bucket, chart
            sums: dict[str, float] = {}
            for item in down.items:
                key = (item.currency or "") if chart in ("mrr", "revenue") else item.measure
                sums[key] = sums.get(key, 0) + round(item.value * 1000)
            for key, total in sums.items():
                assert total == round(bucket.values.get(key, 0) * 1000), (chart, bucket, key)


def test_the_terminal_draws_bars_and_a_pipe_gets_plain_numbers() -> None:
    lcs = month_of_lifecycles(14)
    tables, app_id = folded(lcs)
    q = ChartQuery(
        name="active_subscriptions", today=TODAY, start=FIRST, end=FIRST + dt.timedelta(days=13)
    )
    got = series(day_rows(tables, app_id), q)
    drawn = series_text(got, tty=True).splitlines()
    assert drawn[0] == "active_subscriptions (subscriptions, by day)"
    top = max(b.value or 0 for b in got.buckets)
    for line, bucket in zip(drawn[1:], got.buckets, strict=True):
        assert line.startswith(bucket.bucket)
        assert line.count("█") == round(40 * (bucket.value or 0) / top)
    plain = series_text(got, tty=False).splitlines()
    assert plain == [f"{b.bucket} {int(b.value or 0)}" for b in got.buckets]
    money = series(
        day_rows(tables, app_id), ChartQuery(name="revenue", today=TODAY, start=FIRST, end=LAST)
    )
    assert series_text(money, tty=False).splitlines()[0] == "bucket eur usd"
