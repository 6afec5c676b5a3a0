"""State as of any moment (issue 22 item 1): what the document versions cost in rows and
bytes, and how fast `GET /v1/subscribers/{id}?as_of=` answers next to a plain GET.

A. Real fold: per store, generated facts (benchlib/facts.py) in a fresh store, projected
   (untimed); the rows and bytes of `document_versions` and `user_versions` beside the
   live `documents`. Then a real `subledger serve`, and from this process, one request at
   a time on one connection, alternating blocks: plain GETs of random customers (the bare
   baseline), as_of GETs at a random log position, at a random time of the log.
B. Scale: 100,000 customers with 10 document versions each, written in bulk straight into
   the tables (SQL, not the fold: generating and folding a million facts takes far longer
   than this benchmark should; each version is a real document from part A with its ids
   replaced), with their `users`, `documents` and `user_versions` rows. The same alternating
   blocks, as_of by time (the log itself is empty here, so positions would find no fact to
   date them). Goal: as_of p99 < 100 ms.

PostgreSQL: SUBLEDGER_BENCH_DATABASE_URL, else SUBLEDGER_TEST_DATABASE_URL, else
postgresql://postgres@127.0.0.1:5432/test.
"""

from __future__ import annotations

import argparse
import http.client
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "scripts" / "bench"), str(ROOT)]

from benchlib import catchup, facts, load, run, stores  # noqa: E402

from tests.serverprocess import Server, free_port, serve_argv, start  # noqa: E402

T0_MS = 1_780_000_000_000  # part B: version k of customer c is received at T0 + its position s


def keys_of(url: str) -> tuple[str, str]:
    """(app id, a fresh secret key) of the store's one app."""
    from subledger.ledger import Ledger
    from subledger.settings import parse_database_url

    ledger = Ledger(parse_database_url(url))
    try:
        app_id = ledger.list_apps()[0].app_id
        _, keys = ledger.change_app(app_id, rotate_keys=True)
    finally:
        ledger.close()
    assert keys is not None
    return app_id, keys[1]


def query(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
    from projections.storage.db import ViewDb
    from subledger.settings import parse_database_url

    db = ViewDb(parse_database_url(url))
    try:
        with db.read() as cur:
            cur.execute(db.q(sql), params)
            return list(cur.fetchall())
    finally:
        db.close()


def sizes(url: str) -> dict[str, Any]:
    """Rows and bytes (the JSON text; on PostgreSQL also the table with its index)."""
    found: dict[str, Any] = {}
    for table, value in (
        ("documents", "state"),
        ("document_versions", "document"),
        ("users", "state"),
        ("user_versions", "customer"),
    ):
        rows, size = query(url, f"SELECT count(*), sum(length({value})) FROM sl_{table}")[0]
        found[table] = {"rows": int(rows), "json_bytes": int(size or 0)}
        if url.startswith("postgresql"):
            total = query(url, f"SELECT pg_total_relation_size('sl_{table}')")[0][0]
            found[table]["disk_bytes"] = int(total)
    return found


def serve(url: str, tmp: Path) -> Server:
    import os

    port = free_port()
    env = {**os.environ, "SUBLEDGER_DATABASE_URL": url, "SUBLEDGER_LOG_LEVEL": "WARNING"}
    argv = serve_argv("--host", "127.0.0.1", "--port", str(port))
    return start(argv, port, tmp / f"serve-{port}.log", env=env)


def timed_gets(server: Server, paths: list[str], key: str) -> list[float]:
    """Milliseconds per GET, one at a time on one kept-alive connection."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    headers = {"authorization": f"Bearer {key}"}
    took = []
    try:
        for path in paths:
            started = time.perf_counter()
            conn.request("GET", path, headers=headers)
            answer = conn.getresponse()
            body = answer.read()
            took.append((time.perf_counter() - started) * 1000)
            if answer.status != 200:
                raise RuntimeError(f"GET {path}: {answer.status} {body[:300]!r}")
    finally:
        conn.close()
    return took


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "n": len(ordered),
        "p50_ms": round(load.percentile(ordered, 50), 2),
        "p99_ms": round(load.percentile(ordered, 99), 2),
    }


def reads(server: Server, key: str, kinds: dict[str, list[str]], repeat: int) -> dict[str, Any]:
    """Alternating blocks of each kind of path (the order rotates each round)."""
    samples: dict[str, list[float]] = {kind: [] for kind in kinds}
    names = list(kinds)
    for kind in names:  # warm the server and the store's caches (not counted)
        timed_gets(server, kinds[kind][:100], key)
    for round_number in range(repeat):
        for kind in names[round_number % len(names) :] + names[: round_number % len(names)]:
            samples[kind] += timed_gets(server, kinds[kind], key)
    found = {kind: summary(values) for kind, values in samples.items()}
    base = found["plain"]["p99_ms"]
    for kind in names:
        found[kind]["p99_ratio"] = round(found[kind]["p99_ms"] / base, 2)
    return found


def served_reads(url: str, tmp: Path, kinds: dict[str, list[str]], repeat: int) -> dict[str, Any]:
    """`reads` against a fresh `subledger serve` on a quiet store, with the app's secret key."""
    _, key = keys_of(url)
    stores.quiet(url)
    server = serve(url, tmp)
    try:
        return reads(server, key, kinds, repeat)
    finally:
        server.stop()


def user_path(user: str, as_of: str | None = None) -> str:
    path = f"/v1/subscribers/{quote(user, safe='')}"
    return path if as_of is None else f"{path}?as_of={quote(as_of, safe='')}"


def iso_ms(ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def part_a(store: str, count: int, requests: int, repeat: int, tmp: Path) -> dict[str, Any]:
    url = stores.fresh_url(store, tmp)
    try:
        facts.fill(url, count)
        catchup.child("catchup", url)
        found: dict[str, Any] = {"store": store, "facts": count, "sizes": sizes(url)}
        users = [row[0] for row in query(url, "SELECT id FROM sl_users")]
        first, last = query(
            url, "SELECT min(received_at_ms), max(received_at_ms) FROM sl_document_versions"
        )[0]
        last = min(last, time.time_ns() // 1_000_000)  # generated receive times run ahead
        top = query(url, "SELECT max(position) FROM sl_document_versions")[0][0]
        template = query(
            url,
            "SELECT customer, document FROM sl_document_versions "
            "ORDER BY length(document) DESC LIMIT 1",
        )[0]
        found["template"] = {"customer": template[0], "document": str(template[1])}
        rng = random.Random(3)
        picks = [rng.choice(users) for _ in range(requests)]
        kinds = {
            "plain": [user_path(u) for u in picks],
            "as_of_position": [user_path(u, str(rng.randint(1, top))) for u in picks],
            "as_of_time": [user_path(u, iso_ms(rng.randint(first, last))) for u in picks],
        }
        found["reads"] = served_reads(url, tmp, kinds, repeat)
        return found
    finally:
        stores.drop(url)


COUNT = "WITH RECURSIVE cs(c) AS (SELECT 0 UNION ALL SELECT c + 1 FROM cs WHERE c < ?), "
COUNT += "ks(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM ks WHERE k < ?) "


def fill_versions(url: str, template: dict[str, str], customers: int, versions: int) -> float:
    """`customers` x `versions` document versions (and the live rows) in bulk; seconds.
    Customer c is `u<c>`; its version k sits at position k x customers + c + 10."""
    from projections.storage.db import ViewDb
    from subledger.settings import parse_database_url

    app_id, _ = keys_of(url)
    doc = template["document"].replace(template["customer"], "__C__")
    name = "('u' || c)"
    position = f"(k * {customers} + c + 10)"
    started = time.perf_counter()
    db = ViewDb(parse_database_url(url))
    try:
        with db.write() as cur:
            cur.execute(
                db.q(
                    f"{COUNT}INSERT INTO sl_document_versions "
                    "(app_id, customer, position, received_at_ms, document) "
                    f"SELECT ?, {name}, {position}, {T0_MS} + {position} * 1000, "
                    f"replace(?, '__C__', {name}) FROM cs, ks"
                ),
                (customers - 1, versions - 1, app_id, doc),
            )
            cur.execute(
                db.q(
                    f"{COUNT}INSERT INTO sl_documents (app_id, id, state) "
                    f"SELECT ?, {name}, replace(?, '__C__', {name}) FROM cs, ks WHERE k = 0"
                ),
                (customers - 1, 0, app_id, doc),
            )
            for table in ("users", "user_versions"):
                cur.execute(
                    db.q(
                        f"{COUNT}INSERT INTO sl_{table} SELECT ?, {name}, "
                        + ("" if table == "users" else f"10, {T0_MS}, ")
                        + f"'\"' || {name} || '\"' FROM cs, ks"
                    ),
                    (customers - 1, 0, app_id),
                )
    finally:
        db.close()
    return time.perf_counter() - started


def store_of(url: str) -> str:
    return "sqlite" if url.startswith("sqlite") else "postgresql"


def part_b(
    store: str,
    template: dict[str, str],
    *,
    customers: int,
    versions: int,
    requests: int,
    repeat: int,
    tmp: Path,
) -> dict[str, Any]:
    url = stores.fresh_url(store, tmp)
    try:
        from projections.reader import Reader
        from subledger.apps import AppConfig
        from subledger.ledger import Ledger
        from subledger.settings import parse_database_url

        database = parse_database_url(url)
        ledger = Ledger(database)
        ledger.create_app("bench", AppConfig(), entitlements={"pro": [facts.PRODUCT]})
        ledger.close()
        Reader(database).close()  # creates the read-model tables
        filled = fill_versions(url, template, customers, versions)
        found: dict[str, Any] = {
            "store": store,
            "customers": customers,
            "versions_each": versions,
            "fill_s": round(filled, 1),
            "sizes": sizes(url),
        }
        rng = random.Random(5)
        picks = [f"u{rng.randrange(customers)}" for _ in range(requests)]
        last = 10 + customers * versions
        kinds = {
            "plain": [user_path(u) for u in picks],
            "as_of_time": [
                user_path(u, iso_ms(T0_MS + rng.randint(10, last) * 1000)) for u in picks
            ],
        }
        found["reads"] = served_reads(url, tmp, kinds, repeat)
        return found
    finally:
        stores.drop(url)


def print_a(row: dict[str, Any]) -> None:
    s = row["sizes"]
    docs, versions = s["documents"], s["document_versions"]
    print(
        f"A {row['store']:<10} {row['facts']} facts: documents {docs['rows']:,} rows "
        f"{docs['json_bytes'] / 1e6:.1f} MB; document_versions {versions['rows']:,} rows "
        f"{versions['json_bytes'] / 1e6:.1f} MB ({versions['rows'] / max(1, docs['rows']):.2f} "
        f"a customer, {versions['json_bytes'] / max(1, versions['rows']):.0f} B each"
        + (f", {versions['disk_bytes'] / 1e6:.1f} MB on disk" if "disk_bytes" in versions else "")
        + f"); user_versions {s['user_versions']['rows']:,} rows",
        flush=True,
    )
    print_reads("A", row)


def print_reads(part: str, row: dict[str, Any]) -> None:
    for kind, r in row["reads"].items():
        print(
            f"{part} {row['store']:<10} {kind:<15} n={r['n']:>6} p50 {r['p50_ms']:>7.2f} ms  "
            f"p99 {r['p99_ms']:>7.2f} ms  (p99 / plain {r['p99_ratio']:.2f})",
            flush=True,
        )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/bench/asof",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--stores", default="sqlite,postgresql")
    parser.add_argument("--facts", type=int, default=20_000, help="part A facts (20,000)")
    parser.add_argument("--customers", type=int, default=100_000, help="part B (100,000)")
    parser.add_argument("--versions", type=int, default=10, help="part B, a customer (10)")
    parser.add_argument("--requests", type=int, default=1000, help="GETs a block (1,000)")
    parser.add_argument("--repeat", type=int, default=3, help="blocks of each kind (3)")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 2,000 facts, 2,000 x 10, 200 GETs"
    )
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)
    if args.quick:
        args.facts, args.customers, args.requests, args.repeat = 2000, 2000, 200, 1
    names = args.stores.split(",")
    begun = run.begin("asof", argv, names)
    if isinstance(begun, str):
        print(begun, file=sys.stderr)
        return 1
    results: dict[str, Any] = {"a": [], "b": []}
    with tempfile.TemporaryDirectory(prefix="bench-asof-") as tmp_name:
        tmp = Path(tmp_name)
        for store in names:
            a = part_a(store, args.facts, args.requests, args.repeat, tmp)
            template = a.pop("template")
            print_a(a)
            results["a"].append(a)
            b = part_b(
                store,
                template,
                customers=args.customers,
                versions=args.versions,
                requests=args.requests,
                repeat=args.repeat,
                tmp=tmp,
            )
            s = b["sizes"]["document_versions"]
            print(
                f"B {store:<10} {b['customers']:,} customers x {b['versions_each']} versions "
                f"(bulk, {b['fill_s']} s): {s['rows']:,} rows, {s['json_bytes'] / 1e6:.0f} MB"
                + (f", {s['disk_bytes'] / 1e6:.0f} MB on disk" if "disk_bytes" in s else ""),
                flush=True,
            )
            print_reads("B", b)
            results["b"].append(b)
    run.end(begun, results, args.json)
    goal = all(b["reads"]["as_of_time"]["p99_ms"] < 100 for b in results["b"])
    print(f"goal as_of p99 < 100 ms at scale: {'met' if goal else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
