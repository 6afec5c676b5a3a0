"""Rebuild speed: `subledger replay` over generated facts, next to a bare read+decode baseline.

For each size and store: generate realistic facts (scripts/bench/factgen.py) into a fresh
store, bring the live projections up to date (untimed: a running system's are), then in
fresh child processes (so peak RSS is the work's own) run
  - baseline: read the stored events with plain SQL in pages, msgpack-decode each fact and
    msgspec-decode its Stripe body (what any projection must at least do), and
  - replay: `Replay(...).run()` — rebuild every projection into fresh tables and swap,
reporting facts/s, the ratio to the baseline, and peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "scripts" / "bench"), str(ROOT / "src"), str(ROOT)]
PG = (
    os.environ.get("SUBLEDGER_TEST_DATABASE_URL", "") or "postgresql://postgres@127.0.0.1:5432/test"
)


def generate(url: str, count: int) -> float:
    from factgen import generate as facts

    from subledger.apps import AppConfig
    from subledger.ledger import Ledger
    from subledger.settings import parse_database_url

    ledger = Ledger(parse_database_url(url))
    app, _, _ = ledger.create_app(
        "bench", AppConfig(), entitlements={"pro": ["prod_TKbE3nVq8YhXcM"]}
    )
    started = time.perf_counter()
    page: list[Any] = []
    for fact in facts(app.app_id, count):
        page.append(fact)
        if len(page) == 2000:
            ledger.record_new(page)
            page = []
    if page:
        ledger.record_new(page)
    ledger.close()
    elapsed = time.perf_counter() - started
    quiet(url)
    return elapsed


def quiet(url: str, max_wait_s: float = 300.0) -> None:
    """Before each measured run: vacuum and analyze the store's tables (PostgreSQL), flush
    PostgreSQL's dirty pages (SQLite runs too: they share the disk) and wait until no
    autovacuum worker runs, so that one run's aftermath (a checkpoint of gigabytes after a
    1M-fact replay, autovacuum of swapped-in tables) does not land on the next run. After
    generation it also sets the fresh rows' hint bits, a write PostgreSQL's first reader
    would otherwise pay, slowing whichever side reads first."""
    from subledger.settings import parse_database_url
    from subledger.store import pg_conninfo

    database = parse_database_url(url if url.startswith("postgresql") else PG)
    import psycopg

    try:
        conn = psycopg.connect(**pg_conninfo(database), autocommit=True)
    except psycopg.OperationalError:
        if url.startswith("postgresql"):
            raise
        return  # a SQLite-only machine: nothing to quiet
    with conn:
        tables = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s", (database.schema,)
        ).fetchall()
        for (table,) in tables if url.startswith("postgresql") else []:
            conn.execute(f'VACUUM (ANALYZE) "{database.schema}"."{table}"')
        conn.execute("CHECKPOINT")  # SQLite runs too: PostgreSQL's flush shares the disk
        deadline = time.monotonic() + max_wait_s
        while time.monotonic() < deadline:
            busy = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'"
            ).fetchone()
            if not busy or not busy[0]:
                return
            time.sleep(0.5)


def baseline(url: str) -> dict[str, Any]:
    """Plain SQL pages of (id, topic, state) + the same decoding the fold starts with."""
    from projections.prefetch import decode_stripe
    from subledger.settings import parse_database_url
    from subledger.store import decode_record, pg_conninfo

    database = parse_database_url(url)
    started = time.perf_counter()
    count = 0
    last = 0
    if database.kind == "sqlite":
        import sqlite3

        conn = sqlite3.connect(database.path)
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


def replay(url: str) -> dict[str, Any]:
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
        "checksums": {c.projection: c.checksum[:16] for c in result.checksums},
    }


def caught_up(url: str) -> dict[str, Any]:
    """`Projector(batch_size=2000).catch_up()` from wherever the live tables are, timed."""
    from projections.runner import Projector
    from subledger.ledger import Ledger
    from subledger.settings import parse_database_url

    ledger = Ledger(parse_database_url(url))
    projector = Projector(ledger, batch_size=2000)
    started = time.perf_counter()
    projector.catch_up()
    elapsed = time.perf_counter() - started
    facts = projector.facts
    projector.close()
    ledger.close()
    return {"facts": facts, "seconds": elapsed, "rate": facts / elapsed, "peak_rss_mb": rss_mb()}


def reset(url: str) -> None:
    """Drop the live read models and their tracking row: the next catch-up starts at 0."""
    from projections.replay import drop_projection
    from projections.runner import UPSTREAM, Projector
    from projections.tables import LIVE
    from subledger.ledger import Ledger
    from subledger.settings import parse_database_url

    ledger = Ledger(parse_database_url(url))
    projector = Projector(ledger)
    drop_projection(projector, LIVE, UPSTREAM)
    projector.close()
    ledger.close()


def alternate(
    url: str, repeat: int, work: str, script: str, before_work: Any = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """`repeat` pairs of child runs, baseline then `work`, each from a quiet store (medians
    count: this VM's speed drifts by ±20 % between runs)."""
    bases, works = [], []
    for _ in range(repeat):
        quiet(url)
        bases.append(child("baseline", url, script=script))
        if before_work is not None:
            before_work(url)
        quiet(url)
        works.append(child(work, url, script=script))
    return bases, works


def compared(bases: list[dict[str, Any]], works: list[dict[str, Any]], name: str) -> dict[str, Any]:
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


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(*args: str, script: str = __file__) -> dict[str, Any]:
    """Run `script --child ARGS…` in a fresh process (its own peak RSS); its last line."""
    output = subprocess.run(
        [sys.executable, script, "--child", *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    return result


def fresh_url(store: str, tmp: Path) -> str:
    if store == "sqlite":
        return f"sqlite:///{tmp / f'replay-{uuid.uuid4().hex[:8]}.db'}"
    return f"{PG}{'&' if '?' in PG else '?'}schema=bench_{uuid.uuid4().hex[:8]}"


def drop(url: str) -> None:
    if url.startswith("sqlite"):
        for suffix in ("", "-wal", "-shm"):
            Path(url.removeprefix("sqlite:///") + suffix).unlink(missing_ok=True)
        return
    import psycopg

    schema = url.rsplit("schema=", 1)[1]
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def machine(*, fold: bool = True) -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    found = f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}"
    if not fold:
        return found
    from projections import native

    return f"{found}, {'compiled fold (mypyc)' if native.active() else 'pure-Python fold'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child", nargs=2, metavar=("KIND", "URL"), help=argparse.SUPPRESS)
    parser.add_argument("--sizes", default="sqlite:100000,postgresql:100000,postgresql:1000000")
    parser.add_argument("--quick", action="store_true", help="sqlite:5000,postgresql:5000")
    parser.add_argument("--repeat", type=int, default=3, help="baseline/replay pairs (median)")
    parser.add_argument("--json", metavar="FILE", help="also write results as JSON")
    parser.add_argument("--tmp", default="/tmp")
    args = parser.parse_args()
    if args.child:
        from subledger.runtime import tune_runtime

        tune_runtime()  # as in every `subledger` process; the baseline gets the same setting
        kind, url = args.child
        work = {"baseline": baseline, "replay": replay, "catchup": caught_up}[kind]
        print(json.dumps(work(url)))
        return
    sizes = "sqlite:5000,postgresql:5000" if args.quick else args.sizes
    print(f"machine: {machine()}")
    print(f"command: scripts/bench/replay {' '.join(sys.argv[1:])}".rstrip())
    results = []
    for spec in sizes.split(","):
        store, count = spec.split(":")
        url = fresh_url(store, Path(args.tmp))
        try:
            generated = generate(url, int(count))
            child("catchup", url)  # a running system's live tables are current (not timed)
            bases, rebuilds = alternate(url, args.repeat, "replay", __file__)
        finally:
            drop(url)
        row = {
            "store": store,
            "generate_s": round(generated, 1),
            **compared(bases, rebuilds, "replay"),
            "replay_s": round(statistics.median(r["seconds"] for r in rebuilds), 1),
            "replay_peak_rss_mb": round(max(r["peak_rss_mb"] for r in rebuilds)),
            "baseline_peak_rss_mb": round(max(b["peak_rss_mb"] for b in bases)),
        }
        results.append(row)
        print(
            f"{store:<10} {row['facts']:>9} facts  baseline {row['baseline_rate']:>7,}/s  "
            f"replay {row['replay_rate']:>6,}/s ({row['replay_s']} s)  ratio {row['ratio']:.2f} "
            f"(medians of {args.repeat}; ratios {row['ratios']})  "
            f"peak RSS replay {row['replay_peak_rss_mb']} MB (baseline {row['baseline_peak_rss_mb']} MB)",
            flush=True,
        )
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine(), "results": results}, indent=2))


if __name__ == "__main__":
    main()
