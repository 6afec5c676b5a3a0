"""Projection speed: catch-up on generated facts against a bare read+decode baseline, the
CPU each thread spends (the bound two cores put on the ratio), and lag under ingest load.

A. Throughput: per store, realistic generated facts (benchlib/facts.py) in a fresh store;
   in fresh child processes, alternating: the baseline (plain SQL pages + decode each fact
   and its Stripe body: what any projection must at least do) and the projector catching up
   from position 0 (`Projector(batch_size=2000).catch_up()`). Goal: ratio >= 0.30.
   For each catch-up also its CPU a fact by thread (main, writer, reader) and, on
   PostgreSQL, the server's; from those, the ratio if that CPU were spread perfectly over
   every core, and the ratio the main thread's CPU alone allows (the fold applies facts
   one after another on it).
B. Lag: per store, a real `subledger serve` with its default projector under wrk at full
   speed, then (a fresh server) an open loop at half that rate. Lag is what the projector
   measures per fact, projected time minus receive time, read from `GET /ready`.
   Goal: lag p99 < 200 ms.
C. `--compare REV ...`: catch-up A/B of code revisions on one data set instead of A and B
   (benchlib/compare.py; `worktree`, a git revision, `REV+compiled`; `--callgrind`).

PostgreSQL: SUBLEDGER_BENCH_DATABASE_URL, else SUBLEDGER_TEST_DATABASE_URL, else
postgresql://postgres@127.0.0.1:5432/test.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "scripts" / "bench"), str(ROOT)]

from benchlib import catchup, compare, facts, load, run, source, stores, webhooks  # noqa: E402

from tests.serverprocess import Server, free_port, serve_argv, start  # noqa: E402


def bounds(caught_up: dict[str, Any], base_rate: float) -> dict[str, Any]:
    """What a catch-up's CPU allows: all cores busy, or the main thread alone."""
    n, cores = caught_up["facts"], os.cpu_count() or 1
    threads, server = caught_up["threads_cpu_s"], caught_up["server_cpu_s"]
    cpu = sum(threads) + server
    return {
        "cpu_us_a_fact": round(cpu / n * 1e6, 1),
        "threads_us_a_fact": [round(t / n * 1e6, 1) for t in threads],
        "server_us_a_fact": round(server / n * 1e6, 1),
        "main_waited_us_a_fact": round(caught_up["main_waited_s"] / n * 1e6, 1),
        "all_cores_ratio": round(cores / (cpu / n) / base_rate, 2),
        "main_alone_ratio": round(n / threads[0] / base_rate, 2),
    }


def throughput(store: str, count: int, repeat: int, tmp: Path) -> dict[str, Any]:
    """Baseline and catch-up alternate `repeat` times over the same log; medians count."""
    url = stores.fresh_url(store, tmp)
    try:
        facts.fill(url, count)
        bases, runs = catchup.alternate(url, repeat, "fresh-catchup")
    finally:
        stores.drop(url)
    return {
        "store": store,
        **catchup.compared(bases, runs, "project"),
        "peak_rss_mb": round(max(p["peak_rss_mb"] for p in runs)),
        "cpu": [bounds(c, b["rate"]) for b, c in zip(bases, runs, strict=True)],
    }


def print_throughput(row: dict[str, Any], repeat: int) -> None:
    print(
        f"{row['store']:<10} {row['facts']:>7} facts: baseline read+decode "
        f"{row['baseline_rate']:>7,}/s, project {row['project_rate']:>6,}/s, ratio "
        f"{row['ratio']:.2f} (median of {repeat}; each pair {row['ratios']}), "
        f"peak RSS {row['peak_rss_mb']} MB",
        flush=True,
    )
    for cpu in row["cpu"]:
        server = f", server {cpu['server_us_a_fact']}" if row["store"] == "postgresql" else ""
        print(
            f"{'':<10} CPU {cpu['cpu_us_a_fact']} µs a fact (threads, main first: "
            f"{', '.join(map(str, cpu['threads_us_a_fact']))}{server}); main thread waited "
            f"{cpu['main_waited_us_a_fact']} µs a fact for a core; all cores busy -> ratio "
            f"{cpu['all_cores_ratio']:.2f}, main thread alone -> {cpu['main_alone_ratio']:.2f}",
            flush=True,
        )


def serve(store: str, tmp: Path) -> tuple[Server, str, str, str]:
    """A fresh store with one app, and `subledger serve` on it (its default projector)."""
    secret = "whsec_bench" + secrets.token_hex(16)
    url = stores.fresh_url(store, tmp)
    app_id, _ = webhooks.create_app(url, secret)
    port = free_port()
    env = source.clean_env(
        SUBLEDGER_DATABASE_URL=url, SUBLEDGER_PORT=str(port), SUBLEDGER_LOG_LEVEL="WARNING"
    )
    server = start(serve_argv(), port, tmp / f"lag-{store}-{port}.log", env=env)
    return server, app_id, secret, url


def settle(server: Server, timeout_s: float = 120) -> dict[str, Any]:
    """Wait until the projector has applied everything appended; `/ready`'s projection."""
    deadline = time.monotonic() + timeout_s
    while True:
        with urllib.request.urlopen(f"{server.url}/ready", timeout=10) as answer:
            state: dict[str, Any] = json.loads(answer.read())
        if state["projection"]["position"] >= state["position"] or time.monotonic() > deadline:
            return state["projection"]  # type: ignore[no-any-return]
        time.sleep(0.2)


def under_load(store: str, tmp: Path, rate: float | None, duration_s: float) -> dict[str, Any]:
    """One fresh server: wrk at full speed (`rate` None) or an open loop at `rate`."""
    server, app_id, secret, url = serve(store, tmp)
    factory = webhooks.EventFactory(secret)
    where = {"host": "127.0.0.1", "port": server.port, "app_id": app_id}
    try:
        if rate is None:
            prefix = tmp / f"lag-{store}-peak"
            webhooks.write_pool(prefix, 2, factory, int(3000 * duration_s) + 5000, **where)
            stores.quiet(url)  # no checkpoint of earlier phases lands in this one
            settle(server)  # the projector is up and current before load (steady state)
            peak = load.run_wrk(
                f"{server.url}/", prefix, threads=2, connections=64, duration_s=duration_s
            )
            webhooks.remove_pool(prefix, 2)
            return {"rate": peak.accepted_per_s, "projection": settle(server)}
        requests = factory.requests(int(rate * duration_s), **where)
        stores.quiet(url)
        settle(server)
        half = load.open_loop("127.0.0.1", server.port, requests, rate)
        return {"rate": half.achieved_rate, "p99_ms": half.p99_ms, "projection": settle(server)}
    finally:
        server.stop()
        stores.drop(url)


def lag(store: str, tmp: Path, duration_s: float) -> dict[str, Any]:
    peak = under_load(store, tmp, None, duration_s)
    half = under_load(store, tmp, peak["rate"] / 2, duration_s)
    return {
        "store": store,
        "peak_accepted_per_s": round(peak["rate"]),
        "peak_lag_ms_p50": peak["projection"]["lag_ms_p50"],
        "peak_lag_ms_p99": peak["projection"]["lag_ms_p99"],
        "half_rate": round(half["rate"]),
        "half_lag_ms_p50": half["projection"]["lag_ms_p50"],
        "half_lag_ms_p99": half["projection"]["lag_ms_p99"],
        "half_ingest_p99_ms": round(half["p99_ms"], 1),
    }


def print_lag(row: dict[str, Any]) -> None:
    print(
        f"{row['store']:<10} lag under wrk peak ({row['peak_accepted_per_s']}/s): p50 "
        f"{row['peak_lag_ms_p50']} ms, p99 {row['peak_lag_ms_p99']} ms; at half "
        f"({row['half_rate']}/s): p50 {row['half_lag_ms_p50']} ms, p99 "
        f"{row['half_lag_ms_p99']} ms (ingest p99 {row['half_ingest_p99_ms']} ms)",
        flush=True,
    )


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/bench/project",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 5,000 facts, 1 pair, 3 s load phases"
    )
    parser.add_argument(
        "--facts", type=int, help="generated facts (100,000; 5,000 with --callgrind)"
    )
    parser.add_argument("--stores", default=",".join(stores.STORES), help="sqlite,postgresql")
    parser.add_argument("--repeat", type=int, default=3, help="baseline/catch-up pairs (3)")
    parser.add_argument(
        "--duration", type=float, default=10.0, help="seconds of each load phase (10)"
    )
    parser.add_argument("--no-lag", action="store_true", help="throughput only, no lag phases")
    parser.add_argument("--compare", nargs="+", metavar="REV", help="A/B these revisions (C above)")
    parser.add_argument(
        "--callgrind", action="store_true", help="with --compare: count instructions"
    )
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)
    if args.callgrind and not args.compare:
        parser.error("--callgrind needs --compare")
    args.stores = [s for s in args.stores.split(",") if s]
    if set(args.stores) - set(stores.STORES):
        parser.error("unknown store")
    default_facts = 5_000 if args.quick or args.callgrind else 100_000
    args.facts = args.facts or default_facts
    if args.quick:
        args.repeat, args.duration = 1, 3.0
    return args


def compared(args: argparse.Namespace, tmp: Path) -> list[dict[str, Any]]:
    results = []
    for store in args.stores:
        url = stores.fresh_url(store, tmp)
        try:
            facts.fill(url, args.facts)
            print(f"{store}, {args.facts} facts:", flush=True)
            if args.callgrind:
                lines = compare.count_instructions(args.compare, url, args.facts, tmp)
                results.append({"store": store, "callgrind": lines})
            else:
                results.append({"store": store, **compare.run(args.compare, url, args.repeat, tmp)})
        finally:
            stores.drop(url)
    return results


def main(argv: list[str]) -> int:
    args = parse(argv)
    started = run.begin("project", argv, args.stores)
    if isinstance(started, str):
        print(started)
        return 2
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="subledger-bench-") as tmp:
        if args.compare:
            results["compare"] = compared(args, Path(tmp))
        else:
            results["throughput"] = []
            for store in args.stores:
                results["throughput"].append(throughput(store, args.facts, args.repeat, Path(tmp)))
                print_throughput(results["throughput"][-1], args.repeat)
            results["lag"] = []
            for store in [] if args.no_lag else args.stores:
                results["lag"].append(lag(store, Path(tmp), args.duration))
                print_lag(results["lag"][-1])
    run.end(started, results, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
