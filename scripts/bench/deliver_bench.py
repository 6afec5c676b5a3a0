"""Outbound webhooks (SPEC 10, issue 20): what deriving events costs the projection, and how
fast the sender delivers next to plain POSTs.

A. Derivation: per store, the same generated facts (benchlib/facts.py) in two fresh stores
   whose app differs only by an outbound integration (added before the facts). In fresh
   child processes, alternating, a catch-up from position 0 of each
   (`Projector(batch_size=2000).catch_up()`): ratio = facts/s with / without the
   integration. Every purchase change then becomes events and deliveries.
B. Delivery: per store and repetition, a fresh store with the facts and an integration
   posting to a local receiver (a process answering 200 at once), projected (untimed), so
   its outbox holds every delivery. Then, in fresh child processes, the baseline (the same
   event bodies POSTed with the sender's own `post`, N at a time, nothing recorded) and a
   drain (the projector thread and the sender of `serve`, N requests in flight, until the
   outbox is empty: each attempt recorded as a fact and applied). Ratio = drain / baseline
   events/s: what at-least-once bookkeeping costs against the HTTP work itself.

PostgreSQL: SUBLEDGER_BENCH_DATABASE_URL, else SUBLEDGER_TEST_DATABASE_URL, else
postgresql://postgres@127.0.0.1:5432/test.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "scripts" / "bench"), str(ROOT)]

from benchlib import catchup, delivery, facts, run, stores  # noqa: E402

UNUSED = "http://127.0.0.1:9/hook"  # part A never sends


def derivation(store: str, count: int, repeat: int, tmp: Path) -> dict[str, Any]:
    plain, integrated = stores.fresh_url(store, tmp), stores.fresh_url(store, tmp)
    try:
        facts.fill(plain, count)
        facts.fill(integrated, count, integration=UNUSED)
        withouts, withs = [], []
        for _ in range(repeat):
            stores.quiet(plain)
            withouts.append(catchup.child("fresh-catchup", plain))
            stores.quiet(integrated)
            withs.append(catchup.child("fresh-catchup", integrated))
        events = _count(integrated, "sl_outbound_events")
    finally:
        stores.drop(plain)
        stores.drop(integrated)
    ratios = [w["rate"] / b["rate"] for b, w in zip(withouts, withs, strict=True)]
    return {
        "store": store,
        "facts": withs[0]["facts"],
        "events": events,
        "without_rate": round(statistics.median(b["rate"] for b in withouts)),
        "with_rate": round(statistics.median(w["rate"] for w in withs)),
        "ratio": round(statistics.median(ratios), 3),
        "ratios": [round(r, 3) for r in ratios],
    }


def sending(store: str, count: int, repeat: int, concurrency: int, tmp: Path) -> dict[str, Any]:
    receiver, target = delivery.start_receiver()
    bases, drains = [], []
    try:
        for _ in range(repeat):
            url = stores.fresh_url(store, tmp)
            try:
                facts.fill(url, count, integration=target)
                catchup.child("catchup", url)  # the outbox fills (untimed)
                stores.quiet(url)
                bases.append(delivery.child("posts", url, concurrency))
                stores.quiet(url)
                drains.append(delivery.child("drain", url, concurrency))
            finally:
                stores.drop(url)
    finally:
        receiver.terminate()
        receiver.wait(timeout=10)
    ratios = [d["rate"] / b["rate"] for b, d in zip(bases, drains, strict=True)]
    events = drains[0]["events"]
    return {
        "store": store,
        "events": events,
        "concurrency": concurrency,
        "baseline_rate": round(statistics.median(b["rate"] for b in bases)),
        "drain_rate": round(statistics.median(d["rate"] for d in drains)),
        "ratio": round(statistics.median(ratios), 3),
        "ratios": [round(r, 3) for r in ratios],
        "baseline_cpu_us_an_event": round(
            statistics.median(b["cpu_s"] for b in bases) / events * 1e6
        ),
        "drain_cpu_us_an_event": round(
            statistics.median(d["cpu_s"] for d in drains) / events * 1e6
        ),
    }


def _count(url: str, table: str) -> int:
    from projections.storage.db import ViewDb
    from subledger.settings import parse_database_url

    db = ViewDb(parse_database_url(url))
    try:
        with db.read() as cur:
            cur.execute(f"SELECT count(*) FROM {table}")
            return int(cur.fetchone()[0])
    finally:
        db.close()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/bench/deliver",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 2,000 facts, 1 pair")
    parser.add_argument("--facts", type=int, default=50_000, help="generated facts (50,000)")
    parser.add_argument("--stores", default="sqlite,postgresql")
    parser.add_argument("--repeat", type=int, default=3, help="pairs per part (3)")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight (8)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)
    count, repeat = (2_000, 1) if args.quick else (args.facts, args.repeat)
    names = [s for s in args.stores.split(",") if s]
    started = run.begin("deliver", argv, names)
    if isinstance(started, str):
        print(started)
        return 2
    results: dict[str, list[dict[str, Any]]] = {"derivation": [], "delivery": []}
    with tempfile.TemporaryDirectory(prefix="subledger-bench-") as tmp:
        for store in names:
            row = derivation(store, count, repeat, Path(tmp))
            results["derivation"].append(row)
            print(
                f"A {store:<10} {row['facts']:>7} facts ({row['events']} events): catch-up "
                f"{row['without_rate']:,}/s without, {row['with_rate']:,}/s with an "
                f"integration: ratio {row['ratio']:.2f} (each pair {row['ratios']})",
                flush=True,
            )
        for store in names:
            row = sending(store, count, repeat, args.concurrency, Path(tmp))
            results["delivery"].append(row)
            print(
                f"B {store:<10} {row['events']:>7} events, {row['concurrency']} in flight: "
                f"baseline {row['baseline_rate']:,}/s ({row['baseline_cpu_us_an_event']} µs CPU "
                f"an event), sender {row['drain_rate']:,}/s ({row['drain_cpu_us_an_event']} µs): "
                f"ratio {row['ratio']:.2f} (each pair {row['ratios']})",
                flush=True,
            )
    run.end(started, results, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
