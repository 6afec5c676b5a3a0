"""ASGI server comparison: plain uvicorn vs uvicorn with httptools + uvloop vs granian.

The servers run from a throwaway venv (default /tmp/subledger-bench-asgi-venv, created on first
use with pip: the project's dependencies + uvicorn[standard] + granian), so the project venv
keeps matching pyproject.toml. "Plain uvicorn" is forced to h11 + asyncio there, which is what
`subledger serve` gets today (uvicorn without extras). Each app is served by
scripts/bench/baseline_app.py (--app trivial|baseline|subledger) and driven by wrk with
distinct pre-signed Stripe events, like scripts/bench/ingest.
Run it as `scripts/bench/asgi` from the repository root (see docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import benchlib
from benchlib import HERE, ROOT, EventFactory, log

SERVERS = {
    "uvicorn-h11": "uvicorn (plain: h11 + asyncio)",
    "uvicorn-fast": "uvicorn + httptools + uvloop",
    "granian": "granian 1 worker (ASGI, loop auto = uvloop)",
}
APPS = {
    "trivial": "trivial litestar app (read body, answer 200)",
    "baseline": "baseline app, PostgreSQL (verify + INSERT/COMMIT)",
    "subledger": "subledger, PostgreSQL (group commit)",
}
EXTRA_PACKAGES = ["uvicorn[standard]", "granian"]


def ensure_venv(venv: Path) -> Path:
    """The throwaway venv with the project's dependencies, uvicorn[standard] and granian."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *EXTRA_PACKAGES]
    stamp_value = hashlib.sha256("\n".join(wanted).encode()).hexdigest()
    stamp = venv / ".bench-stamp"
    python = venv / "bin" / "python"
    if python.exists() and stamp.exists() and stamp.read_text() == stamp_value:
        return python
    log(f"creating {venv} (pip install {' '.join(EXTRA_PACKAGES)} + project dependencies)")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *wanted],
        check=True,
    )
    stamp.write_text(stamp_value)
    return python


def versions(python: Path) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json\n"
        "names = ['uvicorn', 'httptools', 'uvloop', 'h11', 'granian', 'litestar']\n"
        "print(json.dumps({n: m.version(n) for n in names}))"
    )
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True)
    found: dict[str, str] = json.loads(out.stdout)
    return found


def _app_env(app: str, pg_url: str, schemas: list[str]) -> tuple[dict[str, str], str]:
    """Environment for one app (fresh PostgreSQL schema where it stores), and its secret/app."""
    secret = "whsec_bench" + secrets.token_hex(16)
    code = benchlib.SOURCE_PATHS or [str(ROOT / "src"), str(ROOT)]
    env = benchlib.clean_env(PYTHONPATH=os.pathsep.join([*code, str(HERE)]))
    if app == "trivial":
        return {**env, "BENCH_SECRET": secret}, "app_trivial"
    schema = f"bench_{os.getpid()}_asgi_{len(schemas)}"
    benchlib.pg_drop_schema(pg_url, schema)
    schemas.append(schema)
    url = benchlib.pg_url_with_schema(pg_url, schema)
    if app == "baseline":
        env |= {
            "BENCH_DATABASE_URL": url,
            "BENCH_APP_ID": "app_bench",
            "BENCH_WEBHOOK_SECRET": secret,
        }
        return {**env, "BENCH_SECRET": secret}, "app_bench"
    from subledger.apps import AppConfig
    from subledger.ledger import Ledger
    from subledger.settings import parse_database_url

    ledger = Ledger(parse_database_url(url))
    try:
        created, _, _ = ledger.create_app(
            "bench", AppConfig(signature_tolerance_s=86400), webhook_secrets=[secret]
        )
    finally:
        ledger.close()
    env |= {"SUBLEDGER_DATABASE_URL": url, "SUBLEDGER_LOG_LEVEL": "WARNING"}
    return {**env, "BENCH_SECRET": secret}, created.app_id


def measure(
    python: Path,
    *,
    app: str,
    server_name: str,
    args: argparse.Namespace,
    tmp: Path,
    schemas: list[str],
) -> dict[str, Any]:
    if not benchlib.wait_quiet(args.quiet_wait):
        log(f"  the machine is still busy after {args.quiet_wait:g} s; measuring anyway")
    env, app_id = _app_env(app, args.pg_url, schemas)
    secret = env.pop("BENCH_SECRET")
    port = benchlib.free_port()
    argv = [str(python), str(HERE / "baseline_app.py"), "--port", str(port)]
    argv += ["--app", app, "--server", server_name]
    server = benchlib.start_server(f"{app}-{server_name}", argv, env, port, tmp)
    try:
        factory = EventFactory(secret)
        target = {"host": "127.0.0.1", "port": port, "app_id": app_id}
        url = f"{server.base_url}/"
        prefix = tmp / "warm"
        benchlib.write_wrk_pool(prefix, args.threads, factory, int(5000 * args.warmup), **target)
        warm = benchlib.run_wrk(
            url, prefix, threads=args.threads, connections=args.connections, duration_s=args.warmup
        )
        benchlib.remove_wrk_pool(prefix, args.threads)
        rate = warm.requests / warm.duration_s
        pool = int(rate * args.duration * 1.6) + 2000
        prefix = tmp / "peak"
        benchlib.write_wrk_pool(prefix, args.threads, factory, pool, **target)
        result = benchlib.run_wrk(
            url,
            prefix,
            threads=args.threads,
            connections=args.connections,
            duration_s=args.duration,
            server=server,
        )
        benchlib.remove_wrk_pool(prefix, args.threads)
    except Exception:
        log(f"server log:\n{server.logs()[-4000:]}")
        raise
    finally:
        server.stop()
    if result.wrapped:
        log("  warning: the request pool ran out (duplicates were sent)")
    row = {
        "app": app,
        "server": server_name,
        "accepted_per_s": result.accepted_per_s,
        "p50_ms": result.p50_ms,
        "p99_ms": result.p99_ms,
        "non_ok": result.bad + result.dup + sum(result.errors.values()),
        "server_cpu_ms_per_req": result.server_cpu_s * 1000 / max(result.requests, 1),
        "other_cpu_cores": result.other_cpu_s / result.duration_s,
    }
    log(
        f"  {app} on {server_name}: {row['accepted_per_s']:.0f}/s, p50 {row['p50_ms']:.1f} ms, "
        f"p99 {row['p99_ms']:.1f} ms"
    )
    return row


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Median over rounds of each (app, server)."""
    out = []
    for app in APPS:
        for server in SERVERS:
            mine = [r for r in rows if r["app"] == app and r["server"] == server]
            if not mine:
                continue
            out.append(
                {
                    "app": app,
                    "server": server,
                    "rounds": len(mine),
                    "accepted_per_s": statistics.median(r["accepted_per_s"] for r in mine),
                    "all_accepted_per_s": [round(r["accepted_per_s"]) for r in mine],
                    "p50_ms": statistics.median(r["p50_ms"] for r in mine),
                    "p99_ms": statistics.median(r["p99_ms"] for r in mine),
                    "server_cpu_ms_per_req": statistics.median(
                        r["server_cpu_ms_per_req"] for r in mine
                    ),
                    "non_ok": sum(r["non_ok"] for r in mine),
                }
            )
    return out


def table(summary: list[dict[str, Any]]) -> str:
    lines = [
        "| app | server | req/s (median; rounds) | p50 ms | p99 ms | x plain uvicorn | "
        "server CPU ms/req |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in summary:
        plain = next(
            (
                r["accepted_per_s"]
                for r in summary
                if r["app"] == row["app"] and r["server"] == "uvicorn-h11"
            ),
            None,
        )
        ratio = f"{row['accepted_per_s'] / plain:.2f}" if plain else "-"
        rounds = ", ".join(str(x) for x in row["all_accepted_per_s"])
        lines.append(
            f"| {APPS[row['app']]} | {SERVERS[row['server']]} | {row['accepted_per_s']:.0f} "
            f"({rounds}) | {row['p50_ms']:.1f} | {row['p99_ms']:.1f} | {ratio} | "
            f"{row['server_cpu_ms_per_req']:.2f} |"
        )
    return "\n".join(lines)


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # run the finally blocks: stop servers, drop schemas


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/bench/asgi", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short smoke run")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--apps", default=",".join(APPS), help="trivial,baseline,subledger")
    parser.add_argument("--servers", default=",".join(SERVERS), help=",".join(SERVERS))
    parser.add_argument("--rounds", type=int, default=2, help="rounds, interleaved (2)")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("SUBLEDGER_BENCH_DATABASE_URL", benchlib.DEFAULT_PG_URL),
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=120.0,
        help="seconds to wait for an idle machine before each measurement (120)",
    )
    parser.add_argument(
        "--source", default="worktree", help="worktree (default) or a git revision, e.g. HEAD"
    )
    parser.add_argument(
        "--venv", type=Path, default=Path(tempfile.gettempdir()) / "subledger-bench-asgi-venv"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.warmup, args.duration, args.rounds = 1.0, 3.0, 1
        args.quiet_wait = min(args.quiet_wait, 10.0)
    args.apps = [a for a in args.apps.split(",") if a]
    args.servers = [s for s in args.servers.split(",") if s]
    if set(args.apps) - set(APPS) or set(args.servers) - set(SERVERS):
        parser.error("unknown app or server")
    return args


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGTERM, _terminate)
    args = parse(argv)
    if shutil.which("wrk") is None:
        print("bench: wrk is not installed (apt-get install wrk): cannot measure throughput")
        return 2
    python = ensure_venv(args.venv)
    tmp = Path(tempfile.mkdtemp(prefix="subledger-bench-asgi-"))
    source = benchlib.use_source(args.source, tmp)
    info = benchlib.machine_info({"packages": versions(python), "source": source})
    schemas: list[str] = []
    rows: list[dict[str, Any]] = []
    try:
        for round_number in range(args.rounds):
            for app in args.apps:
                for server in args.servers:
                    log(f"round {round_number + 1}: {app} on {server}")
                    rows.append(
                        measure(
                            python, app=app, server_name=server, args=args, tmp=tmp, schemas=schemas
                        )
                    )
    finally:
        for schema in schemas:
            try:
                benchlib.pg_drop_schema(args.pg_url, schema)
            except Exception as error:  # noqa: BLE001 - report and go on cleaning
                log(f"could not drop schema {schema}: {error}")
        shutil.rmtree(tmp, ignore_errors=True)
    summary = summarize(rows)
    command = shlex.join(["scripts/bench/asgi", *argv])
    print(f"command: {command}")
    print(f"source: {source}")
    print(
        f"machine: {info['nproc']} cores, {info['cpu_model']}, {info['memory_gib']} GiB, "
        f"Python {info['python']}, "
        f"load at start {' '.join(info['loadavg_at_start'])}"
    )
    print("packages: " + ", ".join(f"{k} {v}" for k, v in info["packages"].items()))
    print(
        f"settings: wrk -t{args.threads} -c{args.connections}, warm-up {args.warmup:g} s, "
        f"{args.duration:g} s measured, {args.rounds} round(s) interleaved"
    )
    print()
    print(table(summary))
    if args.json:
        payload = {"command": command, "machine": info, "rows": rows, "summary": summary}
        Path(args.json).write_text(json.dumps(payload, indent=2) + "\n")
        log(f"wrote {args.json}")
    return 0
