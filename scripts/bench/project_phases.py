"""Where projection time goes: wall time per runner phase, per fact.

Usage: scripts/bench/project_phases [sqlite|postgresql] [FACTS]
Generates FACTS facts (default 50,000) into a fresh store, then catches up the projection
with timers wrapped around the runner's functions. Phases overlap (the writer thread runs
while the main thread folds), so they do not add up to the total.
"""

from __future__ import annotations

import collections
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Its timers wrap the fold's methods, which compiled (mypyc) classes do not allow: it
# profiles the pure-Python fold.
os.environ.setdefault("SUBLEDGER_NATIVE", "0")

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1] / "src"), str(HERE.parents[1])]

import replay_bench  # noqa: E402

from projections import fold, runner, workingset  # noqa: E402

SPENT: collections.Counter[str] = collections.Counter()


def timed(owner: Any, name: str, label: str) -> None:
    original: Callable[..., Any] = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            SPENT[label] += time.perf_counter() - started

    setattr(owner, name, wrapper)


def main() -> None:
    from subledger.runtime import tune_runtime

    tune_runtime()  # as in every `subledger` process
    store = sys.argv[1] if len(sys.argv) > 1 else "sqlite"
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 50_000
    for owner, name, label in (
        (fold, "decode_record", "decode fact (msgpack)"),
        (fold, "decode_stripe", "decode Stripe body"),
        (fold, "prefetch", "prefetch rows"),
        (runner.Projector, "fold", "main thread: fold a batch (all)"),
        (fold.Fold, "apply", "fold facts"),
        (fold.Fold, "finish", "build documents"),
        (workingset.WorkingSet, "prepare", "encode rows"),
        (runner.Projector, "_commit", "writer thread: write + commit"),
    ):
        timed(owner, name, label)
    url = replay_bench.fresh_url(store, Path("/tmp"))
    try:
        replay_bench.generate(url, count)
        result = replay_bench.caught_up(url)
        facts, elapsed = result["facts"], result["seconds"]
    finally:
        replay_bench.drop(url)
    print(f"machine: {replay_bench.machine()}")
    print(f"command: scripts/bench/project_phases {store} {count}")
    print(
        f"{facts} facts in {elapsed:.2f} s = {facts / elapsed:,.0f} facts/s ({elapsed / facts * 1e6:.1f} us/fact)"
    )
    for label, seconds in SPENT.most_common():
        print(f"  {label:<34} {seconds:6.2f} s  {seconds / facts * 1e6:6.1f} us/fact")


if __name__ == "__main__":
    main()
