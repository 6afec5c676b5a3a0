"""The read+decode baseline, a catch-up and a replay, each measured in a child process.

The baseline reads the log with plain SQL in pages of 2,000 and decodes each fact and its
Stripe body: what any projection must do before deciding anything. A child process has its
own peak RSS and runs with `tune_runtime()`, as every `subledger` process does.
Run as `python -m benchlib.catchup KIND URL [--source DIR]`; it prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchlib import machine, source, stores

HERE = Path(__file__).resolve().parents[1]


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def baseline(url: str) -> dict[str, Any]:
    """Plain SQL pages of (id, topic, state) + the same decoding the fold starts with."""
    from subledger.settings import parse_database_url
    from subledger.store import decode_record, pg_conninfo

    decode_stripe = _decode_stripe()
    database = parse_database_url(url)
    started = time.perf_counter()
    count = last = 0
    if database.kind == "sqlite":
        import sqlite3

        conn: Any = sqlite3.connect(database.path)
        query = "SELECT rowid, topic, state FROM stored_events WHERE rowid > ? ORDER BY rowid LIMIT 2000"
        fetch = lambda after: conn.execute(query, (after,)).fetchall()  # noqa: E731
    else:
        import psycopg

        conn = psycopg.connect(**pg_conninfo(database))
        table = f'"{database.schema}".ledger_events'
        query = f"SELECT notification_id, topic, state FROM {table} WHERE notification_id > %s ORDER BY notification_id LIMIT 2000"
        fetch = lambda after: conn.execute(query, (after,), binary=True).fetchall()  # noqa: E731
    while rows := fetch(last):
        for position, topic, state in rows:
            decode_stripe(decode_record(topic, bytes(state)))
            count += 1
            last = position
    conn.close()
    elapsed = time.perf_counter() - started
    return {"facts": count, "seconds": elapsed, "rate": count / elapsed, "peak_rss_mb": rss_mb()}


def caught_up(url: str) -> dict[str, Any]:
    """`Projector(batch_size=2000).catch_up()` from wherever the live tables are, timed, with
    the CPU of each of this process's threads (main first), of the PostgreSQL server (on the
    same cores, from /proc) and the main thread's wait for a core (run-queue time)."""
    from projections.runner import Projector
    from subledger.ledger import Ledger
    from subledger.settings import parse_database_url

    ledger = Ledger(parse_database_url(url))
    projector = Projector(ledger, batch_size=2000)
    on_postgres = url.startswith("postgresql")
    server = machine.postgres_cpu(exited=True) if on_postgres else 0.0
    threads, queued, usage = machine.thread_cpu(), machine.run_queue_s(), os.times()
    started = time.perf_counter()
    projector.catch_up()
    elapsed = time.perf_counter() - started
    spent = machine.thread_cpu()  # the runner's reader and writer threads are still alive
    queued, ended = machine.run_queue_s() - queued, os.times()
    server = machine.postgres_cpu(exited=True) - server if on_postgres else 0.0
    facts = projector.facts
    projector.close()
    ledger.close()
    main = str(os.getpid())
    per_thread = {tid: cpu - threads.get(tid, 0.0) for tid, cpu in spent.items()}
    others = sorted((cpu for tid, cpu in per_thread.items() if tid != main), reverse=True)
    return {
        "facts": facts,
        "seconds": elapsed,
        "rate": facts / elapsed,
        "peak_rss_mb": rss_mb(),
        "cpu_s": (ended.user + ended.system) - (usage.user + usage.system),
        "threads_cpu_s": [per_thread[main], *(cpu for cpu in others if cpu > 0.01)],
        "server_cpu_s": server,
        "main_waited_s": queued,
    }


def replay(url: str) -> dict[str, Any]:
    """`Replay(batch_size=2000).run()`: rebuild every projection, checksum, swap."""
    from projections.replay import Replay
    from subledger.ledger import Ledger
    from subledger.settings import parse_database_url

    ledger = Ledger(parse_database_url(url))
    started = time.perf_counter()
    result = Replay(ledger, batch_size=2000).run()
    elapsed = time.perf_counter() - started
    ledger.close()
    return {
        "facts": result.facts,
        "seconds": elapsed,
        "rate": result.facts / elapsed,
        "peak_rss_mb": rss_mb(),
    }


def reset(url: str) -> dict[str, Any]:
    """Drop the live read models and their tracking row: the next catch-up starts at 0."""
    from projections.replay import drop_projection
    from projections.runner import UPSTREAM, Projector
    from subledger.ledger import Ledger

    try:
        from projections.storage.tables import LIVE
    except ImportError:  # a revision from before projections/ had layers
        from projections.tables import LIVE  # type: ignore[import-not-found,no-redef]
    from subledger.settings import parse_database_url

    ledger = Ledger(parse_database_url(url))
    projector = Projector(ledger)
    drop_projection(projector, LIVE, UPSTREAM)
    projector.close()
    ledger.close()
    return {}


def _decode_stripe() -> Callable[[Any], Any]:
    """The fold's own first decoding step, wherever the revision keeps it."""
    try:
        from projections.fold.notifications import decode_stripe
    except ImportError:  # a revision from before projections/ had layers
        from projections.prefetch import decode_stripe  # type: ignore[import-not-found,no-redef]
    return decode_stripe  # type: ignore[no-any-return]


def compiled() -> bool:
    """Does this process run the fold compiled with mypyc (a wheel built with the build
    hook, or, in revisions before it, projections/native.py's build)?"""
    try:
        from projections.fold import dispatch
    except ImportError:
        try:
            from projections import native  # type: ignore[attr-defined]
        except ImportError:  # a revision from before any compiled fold
            return False
        return bool(native.active())
    return not str(dispatch.__file__).endswith(".py")


def fold_in_use() -> str:
    """Which fold this child runs; a child asked for a compiled fold that it cannot load
    fails instead of measuring the pure one under the compiled name."""
    active = compiled()
    if os.environ.get("SUBLEDGER_BENCH_COMPILED") == "1" and not active:
        raise SystemExit("asked for the compiled fold, but it is not in use")
    return "compiled" if active else "pure"


def fresh_catch_up(url: str) -> dict[str, Any]:
    """reset(), then caught_up(): a catch-up from position 0."""
    reset(url)
    return caught_up(url)


WORK: dict[str, Callable[[str], dict[str, Any]]] = {
    "baseline": baseline,
    "catchup": caught_up,
    "fresh-catchup": fresh_catch_up,
    "replay": replay,
    "reset": reset,
}


def child_argv(kind: str, url: str, code: str | None = None) -> list[str]:
    return [
        sys.executable,
        "-m",
        "benchlib.catchup",
        kind,
        url,
        *(["--source", code] if code else []),
    ]


def child_env() -> dict[str, str]:
    paths = [str(HERE), *source.SOURCE_PATHS, os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}


def child(kind: str, url: str, code: str | None = None) -> dict[str, Any]:
    """Run `kind` in a fresh process (`code`: the source tree to import); its result."""
    return json_child(child_argv(kind, url, code))


def json_child(argv: list[str]) -> dict[str, Any]:
    """Run a benchmark child process; the JSON object its last output line holds."""
    output = subprocess.run(
        argv,
        env=child_env(),
        cwd=source.workdir(),
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    return result


def alternate(
    url: str, repeat: int, work: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """`repeat` pairs of child runs, baseline then `work`, each from a quiet store (medians
    count: a VM's speed drifts by ±20 % between runs)."""
    bases, works = [], []
    for _ in range(repeat):
        stores.quiet(url)
        bases.append(child("baseline", url))
        stores.quiet(url)
        works.append(child(work, url))
    return bases, works


def compared(
    bases: Sequence[dict[str, Any]], works: Sequence[dict[str, Any]], name: str
) -> dict[str, Any]:
    """Medians of a baseline/work alternation, every pair's ratio and both rates."""
    ratios = [w["rate"] / b["rate"] for b, w in zip(bases, works, strict=True)]
    return {
        "facts": works[0]["facts"],
        "baseline_rate": round(statistics.median(b["rate"] for b in bases)),
        f"{name}_rate": round(statistics.median(w["rate"] for w in works)),
        "ratio": round(statistics.median(ratios), 3),
        "ratios": [round(r, 3) for r in ratios],
        "runs": [
            {"baseline": round(b["rate"]), name: round(w["rate"])}
            for b, w in zip(bases, works, strict=True)
        ],
    }


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=sorted(WORK))
    parser.add_argument("url")
    parser.add_argument("--source", help="a source tree to import subledger from first")
    args = parser.parse_args(argv)
    if args.source:
        sys.path[:0] = [str(Path(args.source) / "src"), args.source]
    from subledger.runtime import tune_runtime

    tune_runtime()  # as in every `subledger` process; the baseline gets the same setting
    fold = fold_in_use()
    print(json.dumps({**WORK[args.kind](args.url), "fold": fold}))


if __name__ == "__main__":
    main(sys.argv[1:])
