"""Rebuild speed: `subledger replay` over generated facts, next to a bare read+decode baseline.

For each size and store: generate realistic facts (benchlib/facts.py) into a fresh store,
bring the live projections up to date (untimed: a running system's are), then alternate, in
fresh child processes (so peak RSS is the work's own), the baseline — read the stored events
with plain SQL in pages, decode each fact and its Stripe body — and `Replay(...).run()`:
rebuild every projection into fresh tables, checksum and swap. Reports facts/s, the ratio
to the baseline (medians), and peak RSS. Goal: ratio >= 0.30, peak RSS < 300 MB at 1M facts.
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

from benchlib import catchup, facts, run, stores  # noqa: E402

SIZES = "sqlite:100000,postgresql:100000,postgresql:1000000"
QUICK = "sqlite:5000,postgresql:5000"


def measure(store: str, count: int, repeat: int, tmp: Path) -> dict[str, Any]:
    url = stores.fresh_url(store, tmp)
    try:
        generated = facts.fill(url, count)
        catchup.child("catchup", url)  # a running system's live tables are current (not timed)
        bases, rebuilds = catchup.alternate(url, repeat, "replay")
    finally:
        stores.drop(url)
    return {
        "store": store,
        "generate_s": round(generated, 1),
        **catchup.compared(bases, rebuilds, "replay"),
        "replay_s": round(statistics.median(r["seconds"] for r in rebuilds), 1),
        "replay_peak_rss_mb": round(max(r["peak_rss_mb"] for r in rebuilds)),
        "baseline_peak_rss_mb": round(max(b["peak_rss_mb"] for b in bases)),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/bench/replay",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--sizes", default=SIZES, help=f"STORE:FACTS,... ({SIZES})")
    parser.add_argument(
        "--quick", action="store_true", help=f"smoke run: --sizes {QUICK} --repeat 1"
    )
    parser.add_argument("--repeat", type=int, default=3, help="baseline/replay pairs (3)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)
    sizes, repeat = (QUICK, 1) if args.quick else (args.sizes, args.repeat)
    plan = [(store, int(count)) for store, count in (spec.split(":") for spec in sizes.split(","))]
    started = run.begin("replay", argv, {store for store, _ in plan})
    if isinstance(started, str):
        print(started)
        return 2
    results = []
    with tempfile.TemporaryDirectory(prefix="subledger-bench-") as tmp:
        for store, count in plan:
            row = measure(store, count, repeat, Path(tmp))
            results.append(row)
            print(
                f"{store:<10} {row['facts']:>9} facts  baseline {row['baseline_rate']:>7,}/s  "
                f"replay {row['replay_rate']:>6,}/s ({row['replay_s']} s)  ratio {row['ratio']:.2f} "
                f"(median of {repeat}; each pair {row['ratios']})  peak RSS replay "
                f"{row['replay_peak_rss_mb']} MB (baseline {row['baseline_peak_rss_mb']} MB)",
                flush=True,
            )
    run.end(started, {"results": results}, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
