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
C. Under load (benchlib/live.py): per store and repetition, `subledger serve` with an app
   tracking new purchases, alternating without ("off") and with two integrations ("on")
   posting to a recording receiver process. Each gets the ingest benchmark's peak (wrk,
   64 connections, every request a new signed notification): ratio = accepted/s on / off.
   "On" then delivers its backlog (polling /ready), takes the ingest benchmark's open loop
   at half its peak, and the receiver's answer times give the latency from the fact's
   receive time (before its commit) to the receiver's 200, p50/p99, for the events that
   load caused.

PostgreSQL: SUBLEDGER_BENCH_DATABASE_URL, else SUBLEDGER_TEST_DATABASE_URL, else
postgresql://postgres@127.0.0.1:5432/test.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "scripts" / "bench"), str(ROOT)]

import ingest_bench  # noqa: E402
from benchlib import catchup, delivery, facts, live, machine, run, source, stores  # noqa: E402
from benchlib.webhooks import EventFactory  # noqa: E402

from tests.serverprocess import free_port, serve_argv, start  # noqa: E402

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


def _serve(
    store: str, receiver: str | None, plan: ingest_bench.Plan, sender: str
) -> tuple[ingest_bench.Target, subprocess.Popen[bytes] | None]:
    """`subledger serve` on a fresh store, and with `sender` "external" a `subledger
    deliver` process beside it (serve then sends nothing)."""
    secret = "whsec_bench" + secrets.token_hex(16)
    url = stores.fresh_url(store, plan.tmp)
    plan.stores.append(url)
    app_id = live.create_app(url, secret, receiver)
    port = free_port()
    env = source.clean_env(
        SUBLEDGER_DATABASE_URL=url,
        SUBLEDGER_HOST="127.0.0.1",
        SUBLEDGER_PORT=str(port),
        SUBLEDGER_LOG_LEVEL="WARNING",
        SUBLEDGER_DELIVERY=sender,
    )
    log_path = plan.tmp / f"live-{store}-{port}.log"
    server = start(serve_argv(), port, log_path, env=env, cwd=source.workdir())
    deliver = None
    if sender == "external":
        argv = [sys.executable, "-m", "subledger.cli", "deliver"]
        with (plan.tmp / f"deliver-{port}.log").open("wb") as out:
            deliver = subprocess.Popen(argv, env=env, cwd=source.workdir(), stdout=out, stderr=out)
    table = "stored_events" if store == "sqlite" else "ledger_events"
    return ingest_bench.Target(server, app_id, secret, url, table), deliver


def under_load(
    store: str,
    repeat: int,
    plan: ingest_bench.Plan,
    drain_s: float,
    fractions: list[float],
    *,
    sender: str,
) -> dict[str, Any]:
    """Part C: ingest peak with deliveries off and on, then (on) the latency under the open
    loop at each fraction of that peak (the ingest benchmark's is 0.5)."""
    receiver = live.Receiver(plan.tmp / f"received-{store}.txt")
    offs: list[float] = []
    ons: list[float] = []
    windows: list[dict[str, Any]] = []
    try:
        for i in range(repeat):
            for variant in ("off", "on"):
                if not machine.wait_quiet(plan.quiet_wait_s):
                    machine.log("  the machine is still busy; measuring anyway")
                machine.log(f"C {store} #{i + 1} deliveries {variant}")
                on = variant == "on"
                target, deliver = _serve(store, receiver.base if on else None, plan, sender)
                try:
                    factory = EventFactory(target.secret)
                    name = f"live-{store}-{variant}-{i}"
                    peak = ingest_bench.measure_peak(target, factory, plan, name)
                    (ons if variant == "on" else offs).append(peak.accepted_per_s)
                    for fraction in fractions if variant == "on" else ():
                        windows.append(
                            _window(target, factory, plan, drain_s, peak=peak, fraction=fraction)
                        )
                except Exception:
                    machine.log(f"server log:\n{target.server.logs()[-4000:]}")
                    raise
                finally:
                    target.server.stop()
                    if deliver is not None:
                        deliver.terminate()
                        deliver.wait(timeout=30)
    finally:
        seen = receiver.stop()
    for window in windows:
        window.update(live.latencies(seen, window["start_ms"], window["end_ms"]))
        window["demand_per_s"] = round(window["deliveries"] / window["load_s"])
    ratios = [on / off for off, on in zip(offs, ons, strict=True)]
    latency = {}
    for fraction in fractions:
        runs = [w for w in windows if w["fraction"] == fraction and w["p99_ms"] is not None]
        latency[str(fraction)] = {
            "p50_ms": statistics.median(w["p50_ms"] for w in runs) if runs else None,
            "p99_ms": max(w["p99_ms"] for w in runs) if runs else None,
            "rate": round(statistics.median(w["rate"] for w in runs)) if runs else None,
            "demand_per_s": round(statistics.median(w["demand_per_s"] for w in runs))
            if runs
            else None,
        }
    return {
        "store": store,
        "sender": sender,
        "off_rate": round(statistics.median(offs)),
        "on_rate": round(statistics.median(ons)),
        "ingest_ratio": round(statistics.median(ratios), 3),
        "ingest_ratios": [round(r, 3) for r in ratios],
        "latency": latency,
        "windows": windows,
    }


def _window(
    target: ingest_bench.Target,
    factory: EventFactory,
    plan: ingest_bench.Plan,
    drain_s: float,
    *,
    peak: Any,
    fraction: float,
) -> dict[str, Any]:
    """Once nothing is pending, the open loop at `fraction` of the peak; what the receiver
    gets for it is matched later by the events' timestamps."""
    waited = time.monotonic()
    backlog = live.wait_delivered(target.server.url, drain_s)
    waited = time.monotonic() - waited
    start_ms = time.time_ns() // 1_000_000
    rate = max(peak.accepted_per_s * fraction, 1.0)
    half = ingest_bench.measure_half(target, factory, plan, rate)
    end_ms = time.time_ns() // 1_000_000
    after = live.wait_delivered(target.server.url, drain_s)
    return {
        "fraction": fraction,
        "start_ms": start_ms,
        "end_ms": end_ms,
        "rate": round(half.achieved_rate),
        "load_s": round(half.sent / max(half.achieved_rate, 1e-9), 2),
        "ingest_p99_ms": round(half.p99_ms, 1),
        "backlog_wait_s": round(waited, 1),
        "pending_before": backlog.get("pending"),
        "pending_after": after.get("pending"),
        "projection_lag_p50_ms": after.get("projection_lag_p50_ms"),
        "projection_lag_p99_ms": after.get("projection_lag_p99_ms"),
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


def _windows(windows: list[dict[str, Any]]) -> str:
    return "; ".join(
        f"{w['fraction']}: {w['rate']}/s, {w['deliveries']} deliveries, "
        f"p50 {w['p50_ms']} p99 {w['p99_ms']} ms, "
        f"projection lag p50 {w['projection_lag_p50_ms']} p99 {w['projection_lag_p99_ms']} ms, "
        f"{w['pending_after']} pending after"
        for w in windows
    )


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
    parser.add_argument("--load-repeat", type=int, default=2, help="C: off/on pairs (2)")
    parser.add_argument("--duration", type=float, default=8.0, help="C: peak seconds (8)")
    parser.add_argument("--half-duration", type=float, default=8.0, help="C: open loop s (8)")
    parser.add_argument("--drain", type=float, default=180.0, help="C: max backlog wait s")
    parser.add_argument(
        "--fractions", default="0.5,0.25", help="C: open-loop rates, of the peak (0.5,0.25)"
    )
    parser.add_argument(
        "--sender",
        default="thread",
        choices=["thread", "external"],
        help="C: who sends with deliveries on: serve's thread (default) or `subledger deliver`",
    )
    parser.add_argument("--parts", default="A,B,C", help="which parts (A,B,C)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)
    count, repeat = (2_000, 1) if args.quick else (args.facts, args.repeat)
    parts = set(args.parts.upper().split(","))
    fractions = [float(f) for f in args.fractions.split(",") if f]
    names = [s for s in args.stores.split(",") if s]
    started = run.begin("deliver", argv, names)
    if isinstance(started, str):
        print(started)
        return 2
    results: dict[str, list[dict[str, Any]]] = {"derivation": [], "delivery": [], "load": []}
    with tempfile.TemporaryDirectory(prefix="subledger-bench-") as tmp:
        for store in names if "A" in parts else ():
            row = derivation(store, count, repeat, Path(tmp))
            results["derivation"].append(row)
            print(
                f"A {store:<10} {row['facts']:>7} facts ({row['events']} events): catch-up "
                f"{row['without_rate']:,}/s without, {row['with_rate']:,}/s with an "
                f"integration: ratio {row['ratio']:.2f} (each pair {row['ratios']})",
                flush=True,
            )
        for store in names if "B" in parts else ():
            row = sending(store, count, repeat, args.concurrency, Path(tmp))
            results["delivery"].append(row)
            print(
                f"B {store:<10} {row['events']:>7} events, {row['concurrency']} in flight: "
                f"baseline {row['baseline_rate']:,}/s ({row['baseline_cpu_us_an_event']} µs CPU "
                f"an event), sender {row['drain_rate']:,}/s ({row['drain_cpu_us_an_event']} µs): "
                f"ratio {row['ratio']:.2f} (each pair {row['ratios']})",
                flush=True,
            )
        if "C" in parts:
            plan = ingest_bench.Plan(
                connections=64,
                threads=2,
                warmup_s=1.0 if args.quick else 2.0,
                duration_s=2.0 if args.quick else args.duration,
                half_duration_s=2.0 if args.quick else args.half_duration,
                pg_mode="async",
                pg_pool=8,
                tmp=Path(tmp),
                quiet_wait_s=10.0 if args.quick else 60.0,
            )
            try:
                for store in names:
                    load_repeat = 1 if args.quick else args.load_repeat
                    row = under_load(
                        store, load_repeat, plan, args.drain, fractions, sender=args.sender
                    )
                    results["load"].append(row)
                    latency = "; ".join(
                        f"at {f} of the peak ({v['rate']}/s, {v['demand_per_s']} deliveries/s): "
                        f"p50 {v['p50_ms']} ms, p99 {v['p99_ms']} ms"
                        for f, v in row["latency"].items()
                    )
                    print(
                        f"C {store:<10} ({args.sender} sender) ingest peak "
                        f"{row['off_rate']:,}/s without, "
                        f"{row['on_rate']:,}/s with two integrations: ratio "
                        f"{row['ingest_ratio']:.2f} (each pair {row['ingest_ratios']}); fact to "
                        f"receiver's 200 {latency} (each run {_windows(row['windows'])})",
                        flush=True,
                    )
            finally:
                for url in plan.stores:
                    stores.drop(url)
    run.end(started, results, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
