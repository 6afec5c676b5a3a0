"""Ingest benchmark: subledger's webhook route against a verify + INSERT/COMMIT baseline.

For each store (SQLite in a temp dir, PostgreSQL in fresh schemas dropped at the end) and each
variant (VARIANTS: the naive server with N workers and with one process; `subledger serve`
with N workers or one, with the projector or without, for an app that tracks new purchases
or not), it starts the real server process, drives it with wrk over loopback with distinct
pre-signed events (peak, closed loop), then with an open-loop client at half the measured
peak (p50/p99 at a fixed rate), then (receipt variants) POST /v1/receipts for subscriptions
the warm-up stored at half the peak rate, and checks that the stored rows match the 200
non-duplicate answers. CPU is reported per process role (HTTP, projector, deliverer,
PostgreSQL, wrk). N: --workers, default the cores. PostgreSQL: SUBLEDGER_BENCH_DATABASE_URL,
else SUBLEDGER_TEST_DATABASE_URL, else postgresql://postgres@127.0.0.1:5432/test.
"""

from __future__ import annotations

import argparse
import json
import math
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "scripts" / "bench"), str(ROOT)]

from benchlib import load, machine, source, stores, webhooks  # noqa: E402
from benchlib.load import OpenLoopResult, WrkResult  # noqa: E402
from benchlib.machine import log  # noqa: E402
from benchlib.webhooks import EventFactory  # noqa: E402

from subledger.settings import usable_cores  # noqa: E402
from tests.serverprocess import Server, free_port, serve_argv, start  # noqa: E402

HERE = ROOT / "scripts" / "bench"


@dataclass(frozen=True)
class Variant:
    label: str
    baseline: bool = False
    workers: int | None = None  # None: --workers of the benchmark (cores); 1: one process
    projector: bool = True
    track: bool = False  # the app tracks new purchases: every event is fully projected
    max_group: int | None = None
    receipts: bool = False  # then POST /v1/receipts at half the peak ingest rate


VARIANTS = {
    "baseline-n": Variant("naive, N workers (verify + INSERT/COMMIT)", baseline=True),
    "baseline": Variant("naive, 1 process (verify + INSERT/COMMIT)", baseline=True, workers=1),
    "before": Variant("before (max_group=1)", workers=1, max_group=1),
    "after": Variant("serve --workers 1", workers=1),
    "after-track": Variant("serve --workers 1, tracking", workers=1, track=True, receipts=True),
    "after-noproj": Variant("serve --workers 1, projector external", workers=1, projector=False),
    "workers": Variant("serve --workers N", receipts=True),
    "workers-track": Variant("serve --workers N, tracking", track=True, receipts=True),
    "workers-noproj": Variant("serve --workers N, projector external", projector=False),
    "workers-noproj-track": Variant(
        "serve --workers N, projector external, tracking", projector=False, track=True
    ),
}
# Issue 21: the naive server with as many workers as the product, and with one process.
DEFAULT_VARIANTS = (
    "baseline-n",
    "baseline",
    "after",
    "after-track",
    "workers",
    "workers-track",
    "workers-noproj",
    "workers-noproj-track",
)
STORES = ("sqlite", "postgresql")


@dataclass
class VariantResult:
    store: str
    variant: str
    label: str
    peak: WrkResult
    half: OpenLoopResult
    notes: list[str] = field(default_factory=list)
    checks: dict[str, Any] = field(default_factory=dict)
    ratio_to_baseline: float | None = None  # to the naive server with N workers
    ratio_to_single: float | None = None  # to the naive server in one process
    workers: int = 1
    receipts: OpenLoopResult | None = None
    interference: float = 0.0  # the most CPU (in cores) other processes took in one phase


@dataclass
class Plan:
    connections: int
    threads: int
    warmup_s: float
    duration_s: float
    half_duration_s: float
    pg_mode: str
    pg_pool: int
    tmp: Path
    workers: int = 2
    quiet_wait_s: float = 120.0
    retries: int = 1
    stores: list[str] = field(default_factory=list)  # URLs to drop at the end


@dataclass
class Target:
    """A running server under test and where it stores what it accepts."""

    server: Server
    app_id: str
    secret: str
    url: str
    table: str
    public_key: str = ""
    known: int = 0  # lifecycles (subscriptions) the warm-up surely stored: 0 .. known - 1

    @property
    def where(self) -> dict[str, Any]:
        return {"host": "127.0.0.1", "port": self.server.port, "app_id": self.app_id}

    def rows(self) -> int:
        return stores.count_rows(self.url, self.table)

    def settle(self, timeout_s: float = 15.0) -> int:
        """Wait until requests still queued from a finished run are stored; the row count."""
        deadline = time.monotonic() + timeout_s
        count = self.rows()
        while time.monotonic() < deadline:
            time.sleep(0.3)
            now = self.rows()
            if now == count:
                break
            count = now
        return count

    @property
    def has_xmin(self) -> bool:
        return self.url.startswith("postgresql") and self.table == "ledger_events"

    def position(self) -> int:
        return stores.log_position(self.url) if self.has_xmin else 0

    def commits_since(self, position: int) -> dict[str, int]:
        """Facts and the transactions that wrote them (PostgreSQL subledger only, via xmin)."""
        if not self.has_xmin:
            return {}
        facts, commits = stores.commits_since(self.url, position)
        return {"facts": facts, "commits": commits}


def start_target(store: str, variant: str, plan: Plan) -> Target:
    spec = VARIANTS[variant]
    workers = spec.workers or plan.workers
    secret = "whsec_bench" + secrets.token_hex(16)
    port = free_port()
    url = stores.fresh_url(store, plan.tmp)
    plan.stores.append(url)
    public_key = ""
    if spec.baseline:
        app_id, table = "app_bench_baseline", "bench_baseline"
        env = source.clean_env(
            BENCH_DATABASE_URL=url,
            BENCH_APP_ID=app_id,
            BENCH_WEBHOOK_SECRET=secret,
            BENCH_PG_MODE=plan.pg_mode,
            BENCH_PG_POOL=str(plan.pg_pool),
        )
        argv = [sys.executable, str(HERE / "baseline_app.py"), "--port", str(port)]
        argv += ["--workers", str(workers)]
    else:
        app_id, public_key = webhooks.create_app(url, secret, track=spec.track)
        table = "stored_events" if store == "sqlite" else "ledger_events"
        env = source.clean_env(
            SUBLEDGER_DATABASE_URL=url,
            SUBLEDGER_HOST="127.0.0.1",
            SUBLEDGER_PORT=str(port),
            SUBLEDGER_LOG_LEVEL="WARNING",
        )
        if spec.max_group is not None:
            env["SUBLEDGER_INGEST_MAX_GROUP"] = str(spec.max_group)
        if not spec.projector:
            env["SUBLEDGER_PROJECTOR"] = "external"
        argv = serve_argv("--workers", str(workers))
    log_path = plan.tmp / f"{store}-{variant}-{port}.log"
    server = start(argv, port, log_path, env=env, cwd=source.workdir())
    return Target(server, app_id, secret, url, table, public_key)


def measure_peak(target: Target, factory: EventFactory, plan: Plan, name: str) -> WrkResult:
    """Warm up, then wrk at full speed; every request is a new event (pool sized with margin)."""
    url = f"{target.server.url}/"
    prefix = plan.tmp / f"{name}-warm"
    warm_count = int(6000 * plan.warmup_s) + 1000
    webhooks.write_pool(prefix, plan.threads, factory, warm_count, **target.where)
    warm = load.run_wrk(
        url, prefix, threads=plan.threads, connections=plan.connections, duration_s=plan.warmup_s
    )
    webhooks.remove_pool(prefix, plan.threads)
    target.known = warm.ok // 6 // plan.threads  # each wrk thread sends its share in order
    estimate = max(warm.requests / warm.duration_s, 100.0)
    log(f"  warm-up: {estimate:.0f} req/s")
    pool = int(estimate * plan.duration_s * 1.6) + 2000
    prefix = plan.tmp / f"{name}-peak"
    while True:
        webhooks.write_pool(prefix, plan.threads, factory, pool, **target.where)
        rows0, position = target.settle(), target.position()
        peak = load.run_wrk(
            url,
            prefix,
            threads=plan.threads,
            connections=plan.connections,
            duration_s=plan.duration_s,
            server=target.server,
        )
        webhooks.remove_pool(prefix, plan.threads)
        rows1 = target.settle()  # requests in flight when wrk stopped are stored too
        if peak.wrapped == 0 or pool > 2_000_000:
            break
        log(f"  the pool of {pool} requests ran out; measuring again with a larger one")
        pool *= 2
    stored = rows1 - rows0
    slack = plan.connections + sum(peak.errors.values())
    peak.extra["check"] = {
        "stored": stored,
        "answered_ok": peak.ok,
        "in_flight_allowance": slack,
        "consistent": peak.ok <= stored <= peak.ok + slack and peak.wrapped == 0,
    }
    peak.extra |= target.commits_since(position)
    log(
        f"  peak: {peak.accepted_per_s:.0f} accepted/s, p50 {peak.p50_ms:.1f} ms, "
        f"p99 {peak.p99_ms:.1f} ms (stored {stored}, answered {peak.ok}; "
        f"other processes {peak.other_cpu_s / peak.duration_s:.2f} cores)"
    )
    return peak


def measure_half(target: Target, factory: EventFactory, plan: Plan, rate: float) -> OpenLoopResult:
    """Open loop at a fixed rate; every request a new event."""
    count = max(int(rate * plan.half_duration_s), 10)
    requests = factory.requests(count, **target.where)
    busy_s = load.wait_idle(target.server)
    log(f"  server idle {busy_s:.1f} s after the peak run (background work caught up)")
    rows0, position = target.settle(), target.position()
    half = load.open_loop("127.0.0.1", target.server.port, requests, rate, server=target.server)
    del requests
    stored = target.settle() - rows0
    half.extra["check"] = {
        "stored": stored,
        "answered_ok": half.ok,
        "consistent": stored == half.ok,
    }
    half.extra |= target.commits_since(position)
    half.extra["idle_after_peak_s"] = round(busy_s, 1)
    log(
        f"  half peak: target {rate:.0f}/s achieved {half.achieved_rate:.0f}/s, "
        f"p50 {half.p50_ms:.1f} ms, p99 {half.p99_ms:.1f} ms "
        f"(other processes {half.other_cpu_s / plan.half_duration_s:.2f} cores)"
    )
    return half


def measure_receipts(
    target: Target, factory: EventFactory, plan: Plan, rate: float
) -> OpenLoopResult:
    """Open loop of POST /v1/receipts at `rate` for subscriptions the peak run stored (each
    answers once its token is projected: read-your-writes)."""
    count = max(int(rate * plan.half_duration_s), 10)
    requests = webhooks.receipt_requests(
        count,
        factory.tag,
        max(target.known, 1),
        host="127.0.0.1",
        port=target.server.port,
        public_key=target.public_key,
    )
    busy_s = load.wait_idle(target.server)
    log(f"  server idle {busy_s:.1f} s before the receipts")
    result = load.open_loop("127.0.0.1", target.server.port, requests, rate, server=target.server)
    log(
        f"  receipts: target {rate:.0f}/s achieved {result.achieved_rate:.0f}/s, "
        f"p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms, not 200: {result.other}"
    )
    return result


def run_variant(store: str, variant: str, plan: Plan) -> VariantResult:
    """Measure one variant; again (up to plan.retries) when other processes took CPU meanwhile."""
    best: VariantResult | None = None
    for attempt in range(plan.retries + 1):
        if not machine.wait_quiet(plan.quiet_wait_s):
            log(f"  the machine is still busy after {plan.quiet_wait_s:g} s; measuring anyway")
        result = run_variant_once(store, variant, plan)
        if best is None or result.interference < best.interference:
            best = result
        if result.interference == 0:
            break
        if attempt < plan.retries:
            log("  other processes took CPU during the measurement: measuring again")
    assert best is not None
    return best


def run_variant_once(store: str, variant: str, plan: Plan) -> VariantResult:
    spec = VARIANTS[variant]
    log(f"{store} / {spec.label}: starting server")
    target = start_target(store, variant, plan)
    receipts = None
    try:
        factory = EventFactory(target.secret)
        peak = measure_peak(target, factory, plan, f"{store}-{variant}")
        half = measure_half(target, factory, plan, max(peak.accepted_per_s * 0.5, 1.0))
        if spec.receipts:
            receipts = measure_receipts(target, factory, plan, max(peak.accepted_per_s * 0.5, 1.0))
    except Exception:
        log(f"server log of {store}/{variant}:\n{target.server.logs()[-4000:]}")
        raise
    finally:
        target.server.stop()
    notes = []
    interference = 0.0
    not_new = peak.bad + peak.dup + sum(peak.errors.values())
    if not_new:
        notes.append(f"peak: {not_new} answers were not 200 new: {peak.errors}")
    if half.dup or half.other:
        notes.append(f"half: answers that were not 200 new: dup {half.dup}, {half.other}")
    for phase, seconds, other in (
        ("peak", peak.duration_s, peak.other_cpu_s),
        ("half", plan.half_duration_s, half.other_cpu_s),
    ):
        if other > 0.1 * seconds:
            interference = max(interference, other / seconds)
            notes.append(
                f"{phase}: other processes used {other / seconds:.0%} of a core meanwhile "
                "(interference; rerun on a quiet machine)"
            )
    checks = {"peak": peak.extra["check"], "half": half.extra["check"]}
    result = VariantResult(store, variant, spec.label, peak, half, notes, checks)
    result.interference = interference
    result.workers = spec.workers or plan.workers
    result.receipts = receipts
    return result


# --- report -----------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _group(extra: dict[str, Any]) -> str:
    return f"{extra['facts'] / max(extra['commits'], 1):.1f}" if "commits" in extra else "-"


def _per_request(seconds: float, requests: int) -> str:
    return _fmt(seconds * 1000 / max(requests, 1), 2)


def cpu_split(r: VariantResult) -> str:
    """CPU ms per request of the peak run: HTTP (the one process, or supervisor + workers);
    projector; deliverer; PostgreSQL; wrk."""
    roles, per = r.peak.roles_cpu_s, r.peak.requests
    http = roles.get("main", 0.0) + roles.get("workers", 0.0)
    parts = [
        _per_request(http, per),
        _per_request(roles.get("projector", 0.0), per),
        _per_request(roles.get("deliverer", 0.0), per),
        _per_request(r.peak.postgres_cpu_s, per) if r.store == "postgresql" else "-",
        _per_request(r.peak.wrk_cpu_s, per),
    ]
    return " / ".join(parts)


def table(results: list[VariantResult]) -> str:
    lines = [
        "| store | variant | workers | peak accepted/s | x naive N | x naive 1 | "
        "peak p50 ms | peak p99 ms | half-peak rate target -> achieved | half p50 ms | "
        "half p99 ms | receipts at half peak: rate; p50; p99 ms | facts/commit peak; half | "
        "peak CPU ms/req: http / projector / deliverer / postgres / wrk | "
        "other load (cores) peak; half |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        groups = "-"
        if r.store == "postgresql" and not VARIANTS[r.variant].baseline:
            groups = f"{_group(r.peak.extra)}; {_group(r.half.extra)}"
        receipts = "-"
        if r.receipts is not None:
            bad = sum(r.receipts.other.values())
            receipts = (
                f"{r.receipts.achieved_rate:.0f}/s; {_fmt(r.receipts.p50_ms)}; "
                f"{_fmt(r.receipts.p99_ms)}" + (f" ({bad} not 200)" if bad else "")
            )
        lines.append(
            f"| {r.store} | {r.label} | {r.workers} | {r.peak.accepted_per_s:.0f} | "
            f"{_fmt(r.ratio_to_baseline, 2)} | {_fmt(r.ratio_to_single, 2)} | "
            f"{_fmt(r.peak.p50_ms)} | {_fmt(r.peak.p99_ms)} | "
            f"{r.half.target_rate:.0f} -> {r.half.achieved_rate:.0f} | "
            f"{_fmt(r.half.p50_ms)} | {_fmt(r.half.p99_ms)} | {receipts} | {groups} | "
            f"{cpu_split(r)} | "
            f"{r.peak.other_cpu_s / r.peak.duration_s:.2f}; "
            f"{r.half.other_cpu_s / max(r.half.sent / r.half.target_rate, 1e-9):.2f} |"
        )
    return "\n".join(lines)


def goal_lines(results: list[VariantResult]) -> list[str]:
    """Issue 21's goals, on PostgreSQL with an app that tracks new purchases."""
    found = {r.variant: r for r in results if r.store == "postgresql"}
    lines = []
    for variant, goal in (("workers-track", 1.0), ("workers-noproj-track", 1.5)):
        r = found.get(variant)
        if r is None or r.ratio_to_baseline is None:
            lines.append(f"goal {variant} >= {goal}x naive N: not evaluated (not run)")
            continue
        met = "MET" if r.ratio_to_baseline >= goal else "NOT MET"
        lines.append(
            f"goal PostgreSQL {r.label} >= {goal}x naive N workers: "
            f"{r.ratio_to_baseline:.2f}x -> {met}"
        )
    r = found.get("workers-track")
    if r is not None:
        met = "MET" if r.half.p99_ms < 50 else "NOT MET"
        lines.append(f"goal half-peak p99 < 50 ms: {r.half.p99_ms:.1f} ms -> {met}")
        if r.receipts is not None:
            met = "MET" if r.receipts.p99_ms < 100 else "NOT MET"
            lines.append(f"goal receipts p99 < 100 ms: {r.receipts.p99_ms:.1f} ms -> {met}")
    return lines


def report(results: list[VariantResult], info: dict[str, Any], plan: Plan, command: str) -> str:
    settings = (
        f"wrk -t{plan.threads} -c{plan.connections}, warm-up {plan.warmup_s:g} s, peak "
        f"{plan.duration_s:g} s; half peak: open loop at 0.5 x peak accepted/s for "
        f"{plan.half_duration_s:g} s; baseline PostgreSQL mode {plan.pg_mode}, pool {plan.pg_pool}"
    )
    out = [*machine.header(command, info), f"settings: {settings}", "", table(results), ""]
    out += goal_lines(results)
    for r in results:
        out += [f"note {r.store}/{r.variant}: {note}" for note in r.notes]
        out += [
            f"CHECK FAILED {r.store}/{r.variant} {phase}: {check}"
            for phase, check in r.checks.items()
            if not check["consistent"]
        ]
    return "\n".join(out)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/bench/ingest",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 1 s/3 s/3 s phases, no retries"
    )
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--stores", default=",".join(stores.STORES), help="sqlite,postgresql")
    parser.add_argument("--variants", default=",".join(DEFAULT_VARIANTS), help=",".join(VARIANTS))
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="N: the HTTP workers of subledger and of the naive server (default: cores)",
    )
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (64)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    parser.add_argument("--warmup", type=float, default=3.0, help="warm-up seconds (3)")
    parser.add_argument("--duration", type=float, default=12.0, help="peak seconds (12)")
    parser.add_argument("--half-duration", type=float, default=12.0, help="half-peak s (12)")
    parser.add_argument(
        "--pg-mode", default="async", choices=["async", "async-tx", "thread"], help="baseline"
    )
    parser.add_argument("--pg-pool", type=int, default=8, help="baseline pool size (8)")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=120.0,
        help="seconds to wait for an idle machine before each variant (120)",
    )
    parser.add_argument(
        "--retries", type=int, default=1, help="re-measure a variant disturbed by others (1)"
    )
    parser.add_argument(
        "--source",
        default="worktree",
        help="code to benchmark: worktree (default) or a git revision such as HEAD, exported "
        "to the temp dir so edits made meanwhile cannot change it",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (server logs)")
    args = parser.parse_args(argv)
    if args.quick:  # shorter phases, unless given explicitly
        quick_values = (
            ("warmup", 1.0),
            ("duration", 3.0),
            ("half_duration", 3.0),
            ("quiet_wait", 10.0),
            ("retries", 0),
        )
        for name, quick in quick_values:
            if getattr(args, name) == parser.get_default(name):
                setattr(args, name, quick)
    args.stores = [s for s in args.stores.split(",") if s]
    args.variants = [v for v in args.variants.split(",") if v]
    if set(args.stores) - set(stores.STORES) or set(args.variants) - set(VARIANTS):
        parser.error("unknown store or variant")
    if args.connections % args.threads:
        parser.error("--connections must be a multiple of --threads")
    return args


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # run the finally blocks: stop servers, drop schemas


def prepare(args: argparse.Namespace) -> tuple[Plan, dict[str, Any]] | str:
    """The plan and machine facts, or why the benchmark cannot run (one line)."""
    if shutil.which("wrk") is None:
        return "bench: wrk is not installed (apt-get install wrk): cannot measure peak throughput"
    if "postgresql" in args.stores and (problem := stores.reachable()):
        return f"bench: {problem}"
    tmp = Path(tempfile.mkdtemp(prefix="subledger-bench-"))
    try:
        code = source.use(args.source, tmp)
    except subprocess.CalledProcessError as error:
        shutil.rmtree(tmp, ignore_errors=True)
        return f"bench: cannot export {args.source!r} from git: {error.stderr.decode().strip()}"
    info = machine.describe({"source": code})
    if "postgresql" in args.stores:
        info["postgresql"] = stores.settings()
    plan = Plan(
        connections=args.connections,
        threads=args.threads,
        warmup_s=args.warmup,
        duration_s=args.duration,
        half_duration_s=args.half_duration,
        pg_mode=args.pg_mode,
        pg_pool=args.pg_pool,
        tmp=tmp,
        quiet_wait_s=args.quiet_wait,
        retries=args.retries,
        workers=args.workers or usable_cores(),
    )
    info["workers"] = plan.workers
    return plan, info


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGTERM, _terminate)
    args = parse(argv)
    command = machine.command("ingest", argv)
    prepared = prepare(args)
    if isinstance(prepared, str):
        print(prepared)
        return 2
    plan, info = prepared
    log(f"temp dir {plan.tmp}")
    results: list[VariantResult] = []
    try:
        for store in args.stores:
            results += [run_variant(store, variant, plan) for variant in args.variants]
    finally:
        for url in plan.stores:
            try:
                stores.drop(url)
            except Exception as error:  # noqa: BLE001 - report and go on cleaning
                log(f"could not drop {url}: {error}")
        if args.keep:
            log(f"kept {plan.tmp}")
        else:
            shutil.rmtree(plan.tmp, ignore_errors=True)
    for r in results:
        for variant, attribute in (
            ("baseline-n", "ratio_to_baseline"),
            ("baseline", "ratio_to_single"),
        ):
            base = next((b for b in results if (b.store, b.variant) == (r.store, variant)), None)
            if base is not None and base.peak.accepted_per_s:
                setattr(r, attribute, r.peak.accepted_per_s / base.peak.accepted_per_s)
    print(report(results, info, plan, command))
    if args.json:
        payload = {
            "command": command,
            "machine": info,
            "results": [asdict(r) for r in results],
            "goal": goal_lines(results),
        }
        Path(args.json).write_text(json.dumps(payload, indent=2) + "\n")
        log(f"wrote {args.json}")
    return 0 if all(c["consistent"] for r in results for c in r.checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
