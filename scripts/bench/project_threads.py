"""CPU time per thread of one catch-up, and the ratio it allows on this machine's cores.

Usage: scripts/bench/project_threads [sqlite|postgresql] [FACTS] [--repeat N]
Generates FACTS facts (default 100,000) into a fresh store, measures the read+decode baseline,
then catches up the projection (the fold as `subledger` runs it, compiled when built) and
reads each thread's CPU time from /proc. If the catch-up's CPU were spread perfectly over
every core, its rate would be cores / (CPU a fact): the best ratio this fold can reach here,
whatever the threading. And since the fold applies facts one after another on the main
thread, that thread's CPU a fact bounds the rate by itself: 1 / (main thread CPU a fact).
On PostgreSQL the server's processes (on the same cores) are counted as well, from /proc,
when the server runs on this machine; on SQLite the store's work runs in this process.
It also reports how long the main thread waited for a core (the kernel's run-queue time,
/proc/…/schedstat): time the fold was ready to run while the cores were busy.
Linux only.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1] / "src"), str(HERE.parents[1])]

import benchlib  # noqa: E402
import replay_bench  # noqa: E402


def thread_cpu() -> dict[str, float]:
    """CPU seconds (user + system) of every thread of this process, by thread id."""
    tick = os.sysconf("SC_CLK_TCK")
    spent = {}
    for tid in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{tid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        spent[tid] = (int(fields[11]) + int(fields[12])) / tick
    return spent


def run_queue_s() -> float:
    """Seconds this (main) thread has spent runnable but waiting for a core."""
    with open(f"/proc/self/task/{threading.get_native_id()}/schedstat") as stat:
        return int(stat.read().split()[1]) / 1e9


def catch_up(url: str) -> tuple[int, float, list[float], float, float]:
    """(facts, wall seconds, CPU seconds of each busy thread, main thread first, CPU
    seconds of the PostgreSQL server's processes, main thread's run-queue seconds)."""
    from projections.runner import Projector
    from subledger.ledger import Ledger
    from subledger.settings import parse_database_url

    ledger = Ledger(parse_database_url(url))
    projector = Projector(ledger, batch_size=2000)
    server = benchlib.postgres_cpu(exited=True) if url.startswith("postgresql") else 0.0
    before, queued = thread_cpu(), run_queue_s()
    started = time.perf_counter()
    projector.catch_up()
    elapsed = time.perf_counter() - started
    after = thread_cpu()  # the runner's reader and writer threads are still alive here
    queued = run_queue_s() - queued
    if url.startswith("postgresql"):
        server = benchlib.postgres_cpu(exited=True) - server
    facts = projector.facts
    projector.close()
    ledger.close()
    main_tid = str(os.getpid())
    spent = {tid: cpu - before.get(tid, 0.0) for tid, cpu in after.items()}
    others = sorted((cpu for tid, cpu in spent.items() if tid != main_tid), reverse=True)
    return facts, elapsed, [spent[main_tid], *(cpu for cpu in others if cpu > 0.01)], server, queued


def main() -> None:
    from subledger.runtime import tune_runtime

    parser = argparse.ArgumentParser()
    parser.add_argument("store", nargs="?", default="sqlite", choices=("sqlite", "postgresql"))
    parser.add_argument("facts", nargs="?", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    tune_runtime()  # as in every `subledger` process
    cores = os.cpu_count() or 1
    url = replay_bench.fresh_url(args.store, Path("/tmp"))
    rows = []
    try:
        replay_bench.generate(url, args.facts)
        if args.store == "postgresql":
            replay_bench.quiet(url)
        for _ in range(args.repeat):
            base = replay_bench.baseline(url)["rate"]
            replay_bench.reset(url)
            facts, elapsed, threads, server, queued = catch_up(url)
            rows.append(
                (
                    base,
                    facts / elapsed,
                    (sum(threads) + server) / facts,
                    threads,
                    facts,
                    server,
                    queued,
                )
            )
    finally:
        replay_bench.drop(url)
    print(f"machine: {replay_bench.machine()}")
    print(
        f"command: scripts/bench/project_threads {args.store} {args.facts} --repeat {args.repeat}"
    )
    for base, rate, cpu, threads, facts, server, queued in rows:
        per_thread = ", ".join(f"{t / facts * 1e6:.1f}" for t in threads)
        on_server = f", server {server / facts * 1e6:.1f}" if args.store == "postgresql" else ""
        best = cores / cpu
        print(
            f"  baseline {base:,.0f}/s  catch-up {rate:,.0f}/s (ratio {rate / base:.2f})  "
            f"CPU {cpu * 1e6:.1f} µs a fact (threads, main first: {per_thread}{on_server})  "
            f"main thread waited for a core {queued / facts * 1e6:.1f} µs a fact  "
            f"all {cores} cores busy: {best:,.0f}/s, ratio {best / base:.2f}"
        )
    best_ratios = [cores / cpu / base for base, _, cpu, *_ in rows]
    print(
        f"best ratio this fold allows on {cores} cores: median {statistics.median(best_ratios):.2f}"
    )
    alone = [1 / (threads[0] / facts) / base for base, _, _, threads, facts, *_ in rows]
    print(f"best ratio with only the main thread's work: median {statistics.median(alone):.2f}")


if __name__ == "__main__":
    main()
