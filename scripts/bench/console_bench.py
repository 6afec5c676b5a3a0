"""The console's pages (SPEC 13, issue 23): load time of each page for a customer with
1,000 facts (goal < 300 ms), beside two baselines measured in the same run against the same
server: GET /health (the HTTP stack alone) and the customer's JSON history
(`GET /v1/subscribers/{id}/history`, the data the timeline shows, as JSON).

Per store: a fresh store with an app, an outbound integration (its deliveries stay pending:
SUBLEDGER_DELIVERY=external) and one customer whose every fact is in its timeline (a token,
then subscription updates and paid invoices in turn); one `subledger serve`; once it has
projected everything, a signed-in client times each page REPEAT times after two warm-ups
(one request at a time, keep-alive, wall time to the last byte). Ratio = page / history.

PostgreSQL: SUBLEDGER_BENCH_DATABASE_URL, else SUBLEDGER_TEST_DATABASE_URL, else
postgresql://postgres@127.0.0.1:5432/test.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "scripts" / "bench"), str(ROOT)]

import httpx  # noqa: E402
from benchlib import console, run, stores  # noqa: E402

from subledger.http.console.pages import PAGE_SIZE  # noqa: E402
from tests.serverprocess import start_server  # noqa: E402

TODAY = dt.datetime.now(dt.UTC).date().isoformat()


def pages(positions: list[int]) -> list[tuple[str, str]]:
    """(name, path) of every page; the as-of page at the middle entry of the timeline."""
    user, sub = console.USER, console.SUB
    index = len(positions) // 2
    page, middle = index // PAGE_SIZE + 1, positions[index]
    return [
        ("search (cus_ id)", f"/console/?q={console.CUSTOMER}"),
        ("customer (document + 250 entries)", f"/console/customers/{user}"),
        ("customer, as of an entry", f"/console/customers/{user}?page={page}&at={middle}"),
        ("purchase (snapshots in merge order)", f"/console/purchases/{sub}"),
        ("deliveries (200 of them)", "/console/deliveries"),
        ("charts (30 days by day)", "/console/charts"),
        ("charts: a bucket's drill-down", "/console/charts?bucket=" + TODAY),
    ]


def measure(store: str, count: int, repeat: int, tmp: Path) -> dict[str, Any]:
    url = stores.fresh_url(store, tmp)
    server = None
    try:
        app_id, secret, last = console.fill(url, count)
        server = start_server(url, tmp, SUBLEDGER_DELIVERY="external")
        with httpx.Client(base_url=server.url, timeout=60, follow_redirects=True) as client:
            console.wait_projected(client, last)
            history = f"/v1/subscribers/{console.USER}/history"
            auth = {"authorization": f"Bearer {secret}"}
            facts = len(client.get(history, headers=auth).json()["history"])
            base = {
                "health": console.timed(client, "/health", repeat),
                "history": console.timed(client, history, repeat, **auth),
            }
            console.sign_in(client, secret)
            positions = [e["position"] for e in client.get(history, headers=auth).json()["history"]]
            found = client.get(f"/console/?q={console.CUSTOMER}").text
            assert f"/console/purchases/{console.SUB}" in found, "the search found nothing"
            shown = {}
            for name, path in pages(positions):
                shown[name] = console.timed(client, path, repeat)
    finally:
        if server is not None:
            server.stop()
        stores.drop(url)
    reference = base["history"]["median_ms"]
    for result in shown.values():
        result["ratio"] = round(result["median_ms"] / reference, 2)
    return {"store": store, "facts": facts, "app": app_id, "baselines": base, "pages": shown}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/bench/console",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 200 facts, 5 repeats")
    parser.add_argument("--facts", type=int, default=1000, help="facts of the customer (1,000)")
    parser.add_argument("--stores", default="sqlite,postgresql")
    parser.add_argument("--repeat", type=int, default=30, help="timed loads a page (30)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)
    if args.quick:
        args.facts, args.repeat = 200, 5
    names = [s.strip() for s in args.stores.split(",") if s.strip()]
    started = run.begin("console", argv, names)
    if isinstance(started, str):
        print(started, file=sys.stderr)
        return 1
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for store in names:
            found = measure(store, args.facts, args.repeat, Path(tmp))
            results.append(found)
            print(f"\n{store}: a customer with {found['facts']} facts")
            for name, b in found["baselines"].items():
                print(
                    f"  baseline {name:<36} median {b['median_ms']:>7.1f} ms  p90 {b['p90_ms']:>7.1f} ms"
                )
            for name, p in found["pages"].items():
                print(
                    f"  {name:<45} median {p['median_ms']:>7.1f} ms  p90 {p['p90_ms']:>7.1f} ms"
                    f"  {p['bytes']:>8} B  {p['ratio']:.2f}x history"
                )
    run.end(started, {"results": results}, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
