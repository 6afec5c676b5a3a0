"""Projection benchmark (issue 4): throughput on generated facts, and lag under ingest load.

A. Throughput — per store, 100,000 realistic generated facts (factgen.py) in a fresh store;
   in fresh child processes: the bare baseline (plain SQL pages + msgpack decode + Stripe
   body decode: what any projection must at least do, shared with replay_bench.py) and
   the projector catching up from position 0 (`Projector(batch_size=2000).catch_up()`).
B. Lag — per store, a real `subledger serve` with its in-process projector (the default)
   under the ingest benchmark's load: wrk at full speed, then (fresh server) an open loop at
   half that rate. Lag is what the projector itself measures per fact, projected time minus
   receive time, reported by `GET /ready` (`lag_ms_p50`, `lag_ms_p99`).
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1] / "src"), str(HERE.parents[1])]

import benchlib  # noqa: E402
import replay_bench  # noqa: E402


def throughput(store: str, count: int, tmp: Path, repeat: int) -> dict[str, Any]:
    """Baseline and projection alternate `repeat` times over the same log; medians count
    (this VM's speed drifts by ±20 % between runs)."""
    url = replay_bench.fresh_url(store, tmp)
    try:
        replay_bench.generate(url, count)
        bases, projected = replay_bench.alternate(
            url, repeat, "project", __file__, before_work=replay_bench.reset
        )
    finally:
        replay_bench.drop(url)
    return {
        "store": store,
        **replay_bench.compared(bases, projected, "project"),
        "peak_rss_mb": round(max(p["peak_rss_mb"] for p in projected)),
    }


def ready(server: benchlib.Server) -> dict[str, Any]:
    with urllib.request.urlopen(f"{server.base_url}/ready", timeout=10) as answer:
        data: dict[str, Any] = json.loads(answer.read())
    return data


def serve(store: str, tmp: Path, pg: str) -> tuple[benchlib.Server, str, str, str]:
    secret = "whsec_bench" + secrets.token_hex(16)
    url = replay_bench.fresh_url(store, tmp)
    from subledger.apps import AppConfig
    from subledger.ledger import Ledger
    from subledger.settings import parse_database_url

    ledger = Ledger(parse_database_url(url))
    app, _, _ = ledger.create_app(
        "bench", AppConfig(signature_tolerance_s=86400), webhook_secrets=[secret]
    )
    ledger.close()
    port = benchlib.free_port()
    env = benchlib.clean_env(
        SUBLEDGER_DATABASE_URL=url, SUBLEDGER_PORT=str(port), SUBLEDGER_LOG_LEVEL="WARNING"
    )
    argv = [sys.executable, "-m", "subledger.cli", "serve"]
    return benchlib.start_server(f"lag-{store}", argv, env, port, tmp), app.app_id, secret, url


def settle(server: benchlib.Server, timeout_s: float = 120) -> dict[str, Any]:
    """Wait until the projector has applied everything appended, then report its lag."""
    deadline = time.monotonic() + timeout_s
    while True:
        state = ready(server)
        if state["projection"]["position"] >= state["position"] or time.monotonic() > deadline:
            return state
        time.sleep(0.2)


def lag(store: str, tmp: Path, pg: str, duration_s: float) -> dict[str, Any]:
    server, app_id, secret, url = serve(store, tmp, pg)
    factory = benchlib.EventFactory(secret)
    where = {"host": "127.0.0.1", "port": server.port, "app_id": app_id}
    prefix = tmp / f"lag-{store}-peak"
    try:
        pool = int(3000 * duration_s) + 5000
        benchlib.write_wrk_pool(prefix, 2, factory, pool, **where)
        replay_bench.quiet(url)  # no checkpoint of earlier phases lands in this one
        settle(server)  # the projector is up and current before load (steady state)
        peak = benchlib.run_wrk(
            f"{server.base_url}/",
            prefix,
            threads=2,
            connections=64,
            duration_s=duration_s,
            server=server,
        )
        benchlib.remove_wrk_pool(prefix, 2)
        at_peak = settle(server)["projection"]
    finally:
        server.stop()
        replay_bench.drop(url)
    rate = peak.accepted_per_s / 2
    server, app_id, secret, url = serve(store, tmp, pg)
    factory = benchlib.EventFactory(secret)
    where = {"host": "127.0.0.1", "port": server.port, "app_id": app_id}
    try:
        requests = factory.requests(int(rate * duration_s), **where)
        replay_bench.quiet(url)
        settle(server)
        half = benchlib.open_loop("127.0.0.1", server.port, requests, rate, server=server)
        at_half = settle(server)["projection"]
    finally:
        server.stop()
        replay_bench.drop(url)
    return {
        "store": store,
        "peak_accepted_per_s": round(peak.accepted_per_s),
        "peak_lag_ms_p50": at_peak["lag_ms_p50"],
        "peak_lag_ms_p99": at_peak["lag_ms_p99"],
        "half_rate": round(half.achieved_rate),
        "half_lag_ms_p50": at_half["lag_ms_p50"],
        "half_lag_ms_p99": at_half["lag_ms_p99"],
        "half_ingest_p99_ms": round(half.p99_ms, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child", nargs=2, metavar=("KIND", "URL"), help=argparse.SUPPRESS)
    parser.add_argument("--facts", type=int, default=100_000)
    parser.add_argument("--stores", default="sqlite,postgresql")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of each load phase")
    parser.add_argument("--quick", action="store_true", help="5,000 facts, 3 s load phases")
    parser.add_argument("--repeat", type=int, default=3, help="baseline/project pairs (median)")
    parser.add_argument("--no-lag", action="store_true", help="throughput only, no lag phases")
    parser.add_argument("--json", metavar="FILE")
    parser.add_argument("--tmp", default="/tmp")
    args = parser.parse_args()
    if args.child:
        from subledger.runtime import tune_runtime

        tune_runtime()  # as in every `subledger` process; the baseline gets the same setting
        kind, url = args.child
        work = replay_bench.baseline if kind == "baseline" else replay_bench.caught_up
        print(json.dumps(work(url)))
        return
    facts, duration = (5_000, 3.0) if args.quick else (args.facts, args.duration)
    tmp = Path(args.tmp) / f"project-bench-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    print(f"machine: {replay_bench.machine()}")
    print(f"command: scripts/bench/project {' '.join(sys.argv[1:])}".rstrip(), flush=True)
    results: dict[str, Any] = {"throughput": [], "lag": []}
    for store in args.stores.split(","):
        row = throughput(store, facts, tmp, args.repeat)
        results["throughput"].append(row)
        print(
            f"{store:<10} {row['facts']:>7} facts: baseline read+decode {row['baseline_rate']:>7,}/s, "
            f"project {row['project_rate']:>6,}/s, ratio {row['ratio']:.2f} (medians of {args.repeat}; "
            f"ratios {row['ratios']}), peak RSS {row['peak_rss_mb']} MB",
            flush=True,
        )
    for store in [] if args.no_lag else args.stores.split(","):
        row = lag(store, tmp, replay_bench.PG, duration)
        results["lag"].append(row)
        print(
            f"{store:<10} lag under wrk peak ({row['peak_accepted_per_s']}/s): p50 {row['peak_lag_ms_p50']} ms, "
            f"p99 {row['peak_lag_ms_p99']} ms; at half ({row['half_rate']}/s): p50 {row['half_lag_ms_p50']} ms, "
            f"p99 {row['half_lag_ms_p99']} ms (ingest p99 {row['half_ingest_p99_ms']} ms)",
            flush=True,
        )
    if args.json:
        Path(args.json).write_text(
            json.dumps({"machine": replay_bench.machine(), **results}, indent=2)
        )


if __name__ == "__main__":
    main()
