"""Charts (issue 22, SPEC 11): what the chart projections cost the catch-up, and how fast a
12-month daily series answers at 100k customers.

A. Catch-up: per store, generated facts (benchlib/facts.py) in a fresh store; fresh child
   processes alternate the read+decode baseline, a catch-up from position 0 with the charts
   projection, and one without it (this tree with `projections.fold.charts.refresh` made a
   no-op: the same code otherwise). Goal: with / without >= 1 / 1.2 (at most 20 % added).
M. The fold alone, in memory (no store): the same generated facts folded by fresh child
   processes with and without the charts step, alternating; process CPU a fact. The
   store-free view of A, far less disturbed by other processes on a shared VM.
B. Series: per store, the charts rows of 100k customers written in bulk (not folded: 100k
   customers' facts would take the fold tens of minutes here): synthetic purchases over 14
   months (trials converting or not, monthly and yearly prices, two currencies, refunds,
   cancellations), charted by the fold's own rules (rules/charts.py), their day counters
   summed as the fold sums them. Then `chart_series` for a 12-month daily range of every
   chart, in turn, timed; the baseline is the same SQL read without decoding or summing.
   Goal: p99 < 100 ms. A drill-down (every purchase of the app) is timed too.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "scripts" / "bench"), str(ROOT / "src"), str(ROOT)]

from benchlib import catchup, facts, load, run, stores  # noqa: E402

DAY = 86_400
START = 1_767_225_600  # 2026-01-01


def child(kind: str, url: str) -> None:
    """One catch-up from 0 in this (fresh) process: `with` or `without` the charts."""
    if kind == "without":
        from projections.fold import charts

        def skip(b: Any) -> None:
            b.charted.clear()

        charts.refresh = skip  # type: ignore[assignment]
    print(json.dumps(catchup.fresh_catch_up(url)))


def memory_child(kind: str, count: int) -> None:
    """The fold alone, in memory (no store): CPU seconds of folding `count` generated facts."""
    from projections.fold import charts
    from projections.fold.notifications import decode_stripe
    from projections.storage.memory import MemoryTables
    from tests.memory import MemoryLog, fold_batches

    if kind == "without":
        charts.refresh = lambda b: b.charted.clear()  # type: ignore[assignment]
    log = MemoryLog()
    app_id = log.new_app()
    made = [*log.facts, *facts.generate(app_id, count)]
    folded = [(n, f, decode_stripe(f)) for n, f in enumerate(made, start=1)]
    started = time.process_time()
    fold_batches(MemoryTables(), folded, 2000)
    print(json.dumps({"facts": len(folded), "cpu_s": time.process_time() - started}))


def in_memory(count: int, repeat: int) -> dict[str, Any]:
    """Alternating fresh children, with and without the charts step: the fold's own CPU."""
    cpu: dict[str, list[float]] = {"with": [], "without": []}
    for turn in range(repeat):
        for kind in ["with", "without"] if turn % 2 == 0 else ["without", "with"]:
            argv = [sys.executable, __file__, "--memory-child", kind, str(count)]
            done = catchup.json_child(argv)
            cpu[kind].append(1e6 * done["cpu_s"] / done["facts"])
    pairs = [w / o for w, o in zip(cpu["with"], cpu["without"], strict=True)]
    return {
        "facts": count,
        "cpu_us_with": round(statistics.median(cpu["with"]), 1),
        "cpu_us_without": round(statistics.median(cpu["without"]), 1),
        "cpu_pairs": [round(p, 3) for p in pairs],
        "cpu_added_pct": round(100 * (statistics.median(pairs) - 1), 1),
    }


def catch_up(store: str, count: int, repeat: int, tmp: Path) -> dict[str, Any]:
    url = stores.fresh_url(store, tmp)
    try:
        facts.fill(url, count)
        runs: dict[str, list[float]] = {"baseline": [], "with": [], "without": []}
        cpu: dict[str, list[float]] = {"with": [], "without": []}  # µs a fact, + server's
        for turn in range(repeat):
            order = ["with", "without"] if turn % 2 == 0 else ["without", "with"]
            stores.quiet(url)
            runs["baseline"].append(catchup.child("baseline", url)["rate"])
            for kind in order:
                stores.quiet(url)
                argv = [sys.executable, __file__, "--child", kind, url]
                done = catchup.json_child(argv)
                runs[kind].append(done["rate"])
                spent = done["cpu_s"] + done["server_cpu_s"]
                cpu[kind].append(1e6 * spent / done["facts"])
        pairs = [w / o for w, o in zip(runs["with"], runs["without"], strict=True)]
        cpu_pairs = [w / o for w, o in zip(cpu["with"], cpu["without"], strict=True)]
        return {
            "store": store,
            "facts": count,
            "baseline_rate": round(statistics.median(runs["baseline"])),
            "with_rate": round(statistics.median(runs["with"])),
            "without_rate": round(statistics.median(runs["without"])),
            "with_vs_without": round(statistics.median(pairs), 3),
            "pairs": [round(p, 3) for p in pairs],
            "added_pct": round(100 * (1 / statistics.median(pairs) - 1), 1),
            "cpu_us_with": round(statistics.median(cpu["with"]), 1),
            "cpu_us_without": round(statistics.median(cpu["without"]), 1),
            "cpu_pairs": [round(p, 3) for p in cpu_pairs],
            "cpu_added_pct": round(100 * (statistics.median(cpu_pairs) - 1), 1),
        }
    finally:
        stores.drop(url)


def synthetic(n: int, rng: random.Random) -> Any:
    """One customer's purchase as the fold would chart it (rows, not facts)."""
    from projections.model import ChartCustomer, ChartPurchase, Span, Trial, Txn
    from projections.rules.chartspans import monthly_milli

    start = START + rng.randrange(420 * DAY)
    currency = "eur" if n % 3 == 0 else "usd"
    yearly = n % 5 == 0
    period = 365 * DAY if yearly else 30 * DAY
    amount = rng.choice([499, 999, 1999]) * (10 if yearly else 1)
    spans: list[Span] = []
    trial = None
    paid_from = start
    if n % 4 == 0:
        spans.append(Span(kind="trial", start=start, end=start + 7 * DAY, positions=(n,)))
        paid_from = start + 7 * DAY
        if rng.random() < 0.4:
            end = start + 7 * DAY
            trial = Trial(purchase=f"sub_{n}", end=end, outcome="abandoned", positions=(n,))
            chart = ChartPurchase(key=f"sub_{n}", spans=tuple(spans))
            return chart, ChartCustomer(first_seen_ms=start * 1000, position=n + 1, trial=trial)
        trial = Trial(purchase=f"sub_{n}", end=paid_from, outcome="converted", positions=(n,))
    periods = rng.randint(1, 3 if yearly else 14)
    end = paid_from + periods * period
    mrr = monthly_milli(amount, "year" if yearly else "month", 1)
    spans.append(
        Span(
            kind="paid",
            start=paid_from,
            end=end,
            positions=(n, n + 1),
            mrr=mrr,
            currency=currency,
            lapsed=True,
        )
    )
    refunded = rng.random() < 0.05
    txns = tuple(
        Txn(
            id=f"in_{n}_{k}",
            at=paid_from + k * period,
            amount=amount,
            currency=currency,
            positions=(n + 2 + k,),
            refunded=amount if refunded and k == 0 else 0,
        )
        for k in range(periods)
    )
    chart = ChartPurchase(key=f"sub_{n}", spans=tuple(spans), txns=txns)
    return chart, ChartCustomer(first_seen_ms=start * 1000, position=n + 1, trial=trial)


def bulk_rows(url: str, customers: int) -> str:
    """An app whose charts tables hold `customers` synthetic customers; returns its id."""
    import msgspec

    from projections.model import CHART_CUSTOMERS, CHART_DAYS, CHART_PURCHASES, ChartDay
    from projections.rules.charts import customer_contribution, purchase_contribution
    from projections.storage import sqltables
    from projections.storage.changes import Changes
    from projections.storage.db import ViewDb
    from projections.storage.tables import LIVE
    from subledger.settings import parse_database_url

    app_id = "app_bench_charts"
    encode = msgspec.json.Encoder(order="deterministic").encode
    rng = random.Random(22)
    totals: dict[tuple[str, str], int] = {}
    purchases, owners = [], []
    for n in range(customers):
        chart, customer = synthetic(n, rng)
        purchase_contribution(chart, totals, 1)
        customer_contribution(customer, totals, 1)
        purchases.append((app_id, chart.key, encode(chart)))
        owners.append((app_id, f"user_{n}", encode(customer)))
    by_day: dict[str, dict[str, int]] = {}
    for (day, series), value in totals.items():
        if value:
            by_day.setdefault(day, {})[series] = value
    days = [(app_id, d, encode(ChartDay(values=v))) for d, v in sorted(by_day.items())]
    from subledger.ledger import Ledger

    Ledger(parse_database_url(url)).close()  # the store and its schema, as a server makes them
    db = ViewDb(parse_database_url(url))
    sqltables.create(db, LIVE)
    upserts = {CHART_PURCHASES: purchases, CHART_CUSTOMERS: owners, CHART_DAYS: days}
    with db.write() as cur:
        sqltables.write(db, cur, LIVE, Changes(upserts=upserts, deletes={}, inserts={}, values={}))
    db.close()
    return app_id


def p99(samples: list[float]) -> float:
    return load.percentile(sorted(samples), 99)


def series_reads(store: str, customers: int, reads: int, tmp: Path) -> dict[str, Any]:
    from projections.chartreads import chart_drilldown, chart_series
    from projections.charts import CHARTS, ChartQuery
    from projections.model import CHART_DAYS
    from projections.reader import Reader
    from subledger.settings import parse_database_url

    url = stores.fresh_url(store, tmp)
    try:
        started = time.perf_counter()
        app_id = bulk_rows(url, customers)
        written = time.perf_counter() - started
        reader = Reader(parse_database_url(url))
        end = dt.date(2027, 2, 28)
        start = end - dt.timedelta(days=364)
        bare, timed = [], []
        for k in range(reads):
            t0 = time.perf_counter()
            with reader.db.read() as cur:
                cur.execute(
                    reader.db.q(
                        f"SELECT id, state FROM sl_{CHART_DAYS} WHERE app_id = ? AND id <= ? ORDER BY id"
                    ),
                    (app_id, (end + dt.timedelta(days=31)).isoformat()),
                )
                cur.fetchall()
            bare.append(time.perf_counter() - t0)
            name = CHARTS[k % len(CHARTS)]
            currency = "usd" if name in ("mrr", "revenue") else None
            q = ChartQuery(name=name, today=end, start=start, end=end, currency=currency)
            t0 = time.perf_counter()
            found = chart_series(reader, app_id, q)
            timed.append(time.perf_counter() - t0)
            assert len(found.buckets) == 365
        drills = []
        for _ in range(3):
            t0 = time.perf_counter()
            q = ChartQuery(name="active_subscriptions", today=end)
            down = chart_drilldown(reader, app_id, q, "2026-12")
            drills.append(time.perf_counter() - t0)
        reader.close()
        return {
            "store": store,
            "customers": customers,
            "bulk_write_s": round(written, 1),
            "reads": reads,
            "baseline_p99_ms": round(1000 * p99(bare), 2),
            "series_p50_ms": round(1000 * statistics.median(timed), 2),
            "series_p99_ms": round(1000 * p99(timed), 2),
            "ratio_p99": round(p99(timed) / p99(bare), 2),
            "drilldown_median_ms": round(1000 * statistics.median(drills)),
            "drilldown_items": len(down.items),
        }
    finally:
        stores.drop(url)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--child"]:
        child(argv[1], argv[2])
        return 0
    if argv[:1] == ["--memory-child"]:
        memory_child(argv[1], int(argv[2]))
        return 0
    parser = argparse.ArgumentParser(
        prog="scripts/bench/charts",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--stores", default=",".join(stores.STORES))
    parser.add_argument("--facts", type=int, default=30_000, help="catch-up facts (30,000)")
    parser.add_argument("--repeat", type=int, default=3, help="catch-up turns (3)")
    parser.add_argument("--customers", type=int, default=100_000, help="series rows (100,000)")
    parser.add_argument("--reads", type=int, default=400, help="timed series reads (400)")
    parser.add_argument("--quick", action="store_true", help="2,000 facts, 1 turn, 5,000 customers")
    parser.add_argument(
        "--parts", default="memory,catch-up,series", help="memory,catch-up,series (all)"
    )
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args(argv)
    if args.quick:
        args.facts, args.repeat, args.customers, args.reads = 2_000, 1, 5_000, 50
    names = args.stores.split(",")
    started = run.begin("charts", argv, names)
    if isinstance(started, str):
        print(started, file=sys.stderr)
        return 1
    results: dict[str, Any] = {"catch_up": [], "series": []}
    if "memory" in args.parts:
        row = results["memory"] = in_memory(args.facts, args.repeat)
        print(
            f"in memory  fold of {row['facts']} facts: CPU a fact {row['cpu_us_with']} vs "
            f"{row['cpu_us_without']} µs {row['cpu_pairs']} (+{row['cpu_added_pct']} %)",
            flush=True,
        )
    with tempfile.TemporaryDirectory() as tmp:
        for store in names if "catch-up" in args.parts else []:
            row = catch_up(store, args.facts, args.repeat, Path(tmp))
            results["catch_up"].append(row)
            print(
                f"{store:<10} catch-up {row['facts']} facts: with charts {row['with_rate']}/s, "
                f"without {row['without_rate']}/s, baseline {row['baseline_rate']}/s; "
                f"with/without {row['with_vs_without']} {row['pairs']} "
                f"(+{row['added_pct']} %); CPU a fact {row['cpu_us_with']} vs "
                f"{row['cpu_us_without']} µs {row['cpu_pairs']} (+{row['cpu_added_pct']} %)",
                flush=True,
            )
        for store in names if "series" in args.parts else []:
            row = series_reads(store, args.customers, args.reads, Path(tmp))
            results["series"].append(row)
            print(
                f"{store:<10} 12-month daily series at {row['customers']} customers: p50 "
                f"{row['series_p50_ms']} ms, p99 {row['series_p99_ms']} ms (bare SQL p99 "
                f"{row['baseline_p99_ms']} ms, ratio {row['ratio_p99']}); drill-down of a month "
                f"{row['drilldown_median_ms']} ms ({row['drilldown_items']} items); rows "
                f"written in bulk in {row['bulk_write_s']} s",
                flush=True,
            )
    run.end(started, results, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
