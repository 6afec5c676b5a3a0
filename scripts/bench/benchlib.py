"""Shared pieces of the benchmarks: servers, signed events, wrk, an open-loop client, stores."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import platform
import secrets
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "scenario-basic"
WRK_SCRIPT = HERE / "wrk_requests.lua"
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
WEBHOOK_PATH = "/v1/incoming-webhooks/stripe/{app_id}"

# Ids in the fixtures that one "customer lifecycle" shares; each lifecycle gets fresh ones.
_SUBSCRIPTION_ID = "sub_1SLr4eQx7RtY2pLmVb2NcQ8s"
_CUSTOMER_ID = "cus_TKd8fQ2wZr5LsN"


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- machine ------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info(extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    info: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3],
        "wrk": wrk_version(),
    }
    info.update(extra or {})
    return info


def source_state() -> str:
    """The commit benchmarked and whether src/ or projections/ had uncommitted changes."""

    def git(*argv: str) -> str:
        out = subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True, check=False)
        return out.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--", "src", "projections").splitlines()
    return f"commit {commit}" + (f" + uncommitted changes in {len(dirty)} file(s)" if dirty else "")


def wrk_version() -> str | None:
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    out = subprocess.run([wrk, "-v"], capture_output=True, text=True, check=False)
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0].split(" Copyright")[0] if text else wrk


def require_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk is None:
        sys.exit("bench: wrk is not installed (apt-get install wrk); the peak runs need it")
    return wrk


# --- processes -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            found.append(int(entry.name))
    return found


def _cpu_of(pid: int, *, user_only: bool = False, exited: bool = False) -> float:
    """`exited`: also the CPU of its children that have exited and been reaped."""
    try:
        fields = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    own = int(fields[11]) + (0 if user_only else int(fields[12]))
    reaped = int(fields[13]) + (0 if user_only else int(fields[14])) if exited else 0
    return (own + reaped) / ticks


def tree_cpu(pid: int, *, user_only: bool = False) -> float:
    """CPU seconds (user+system, or user only) of a process and its descendants."""
    total = _cpu_of(pid, user_only=user_only)
    for child in _children(pid):
        total += tree_cpu(child, user_only=user_only)
    return total


def machine_busy(*, user_only: bool = False) -> float:
    """CPU seconds the whole machine spent busy (all cores) since boot, from /proc/stat;
    user_only: user-space time only (kernel work done for the benchmark itself, such as
    fsync journaling or loopback networking, is system time and belongs to no process)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    busy = user + nice if user_only else user + nice + system + irq + softirq + steal
    return busy / os.sysconf("SC_CLK_TCK")


def wait_quiet(max_wait_s: float, *, window_s: float = 2.0, cores: float = 0.15) -> bool:
    """Wait (at most max_wait_s) until the machine is nearly idle: other work (tests, other
    benchmarks) would take CPU from the server under test. True when it became quiet."""
    deadline = time.monotonic() + max_wait_s
    while True:
        before = machine_busy(user_only=True)
        time.sleep(window_s)
        if machine_busy(user_only=True) - before < cores * window_s:
            return True
        if time.monotonic() >= deadline:
            return False


def postgres_cpu(*, user_only: bool = False, exited: bool = False) -> float:
    """CPU seconds of every local process named postgres (the server and all backends).
    `exited`: also backends that have exited since the server started (the postmaster
    accumulates its reaped children's time), for measurements across which connections
    close."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() == "postgres":
                total += _cpu_of(int(entry.name), user_only=user_only, exited=exited)
        except OSError:
            continue
    return total


class Interference:
    """User CPU time of processes other than the server, PostgreSQL and this process (with
    its children, e.g. wrk) between start() and stop(): other work competing for the cores."""

    def __init__(self, server: Server | None) -> None:
        self.server = server

    def _mine(self) -> float:
        me = os.times()
        server = self.server.cpu_user() if self.server else 0.0
        return server + postgres_cpu(user_only=True) + me.user + me.children_user

    def start(self) -> None:
        self.machine0, self.mine0 = machine_busy(user_only=True), self._mine()

    def stop(self) -> float:
        machine = machine_busy(user_only=True) - self.machine0
        return max(0.0, machine - (self._mine() - self.mine0))


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def cpu(self) -> float:
        return tree_cpu(self.process.pid)

    def cpu_user(self) -> float:
        return tree_cpu(self.process.pid, user_only=True)

    def wait_idle(self, timeout_s: float = 120.0, window_s: float = 0.5) -> float:
        """Wait until the server uses < 5 % of a core (background work such as the in-process
        projector has caught up); returns the seconds waited."""
        started = time.monotonic()
        before = self.cpu()
        while time.monotonic() - started < timeout_s:
            time.sleep(window_s)
            now = self.cpu()
            if now - before < 0.05 * window_s:
                break
            before = now
        return time.monotonic() - started

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def start_server(
    name: str,
    argv: Sequence[str],
    env: Mapping[str, str],
    port: int,
    log_dir: Path,
    *,
    cwd: Path | None = None,
    ready_path: str = "/health",
) -> Server:
    log_path = log_dir / f"{name}-{port}.log"
    if cwd is None:  # `python -m` imports from the current directory first
        cwd = Path(SOURCE_PATHS[1]) if SOURCE_PATHS else ROOT
    with log_path.open("wb") as sink:
        process = subprocess.Popen(
            list(argv), env=dict(env), stdout=sink, stderr=sink, cwd=cwd, stdin=subprocess.DEVNULL
        )
    server = Server(name, process, port, log_path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited early:\n{server.logs()}")
        try:
            with urllib.request.urlopen(f"{server.base_url}{ready_path}", timeout=1) as answer:
                if answer.status == 200:
                    return server
        except OSError:
            time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"{name} did not answer {ready_path} in 60 s:\n{server.logs()}")


# Where servers import subledger from: empty = the working tree (the venv's editable install);
# use_source() fills it with an exported commit so concurrent edits cannot change the code.
SOURCE_PATHS: list[str] = []


def use_source(rev: str, tmp: Path) -> str:
    """Benchmark `rev` ("worktree" or a git revision); returns a description of the code."""
    if rev == "worktree":
        return source_state()
    target = tmp / "source"
    export_source(rev, target)
    SOURCE_PATHS[:] = [str(target / "src"), str(target)]
    sys.path[:0] = SOURCE_PATHS
    commit = subprocess.run(
        ["git", "rev-parse", "--short", rev], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    return f"commit {commit} ({rev}), exported to a temp dir (working tree not used)"


def export_source(rev: str, target: Path) -> None:
    """`src/` and `projections/` of git revision `rev`, extracted into `target`."""
    target.mkdir()
    archive = subprocess.run(
        ["git", "archive", "--format=tar", rev, "src", "projections"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    )
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without SUBLEDGER_* (so a developer's shell cannot leak in),
    with PYTHONPATH pointing at the exported source when use_source() chose a commit."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUBLEDGER_")}
    if SOURCE_PATHS:
        env["PYTHONPATH"] = os.pathsep.join([*SOURCE_PATHS, env.get("PYTHONPATH", "")]).rstrip(
            os.pathsep
        )
    env.update(extra)
    return env


# --- events ----------------------------------------------------------------------------------


class EventFactory:
    """Distinct, correctly signed Stripe notifications built from the scenario fixtures.

    Event k uses fixture k % 6 with a fresh event id; every six events share a fresh
    subscription and customer id (one lifecycle), so bodies are realistic (1.5-6 KB) and unique.
    """

    def __init__(self, secret: str, tag: str | None = None) -> None:
        self.secret = secret
        self.tag = tag or secrets.token_hex(4)
        self.templates = [p.read_text() for p in sorted(FIXTURES.glob("*.json"))]
        if not self.templates:
            raise RuntimeError(f"no fixtures in {FIXTURES}")
        self.event_ids = [json.loads(t)["id"] for t in self.templates]
        self.next = 0

    def bodies(self, count: int) -> Iterator[bytes]:
        for _ in range(count):
            k = self.next
            self.next += 1
            text = self.templates[k % len(self.templates)]
            lifecycle = f"{self.tag}{k // len(self.templates):010d}"
            text = (
                text.replace(self.event_ids[k % len(self.templates)], f"evt_B{self.tag}{k:012d}")
                .replace(_SUBSCRIPTION_ID, f"sub_B{lifecycle}")
                .replace(_CUSTOMER_ID, f"cus_B{lifecycle}")
            )
            yield text.encode()

    def requests(self, count: int, *, host: str, port: int, app_id: str) -> list[bytes]:
        from subledger.stripe.signature import sign

        path = WEBHOOK_PATH.format(app_id=app_id)
        now = int(time.time())
        out = []
        for body in self.bodies(count):
            signature = f"t={now},v1={sign(body, self.secret, now)}"
            out.append(raw_request(host, port, path, body, signature))
        return out


def raw_request(host: str, port: int, path: str, body: bytes, signature: str) -> bytes:
    """The bytes Stripe would send (its usual headers, keep-alive)."""
    head = (
        f"POST {path} HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\n"
        "User-Agent: Stripe/1.0 (+https://stripe.com/docs/webhooks)\r\n"
        "Accept: */*; q=0.5, application/xml\r\n"
        "Cache-Control: no-cache\r\n"
        "Content-Type: application/json; charset=utf-8\r\n"
        f"Stripe-Signature: {signature}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "\r\n"
    )
    return head.encode() + body


# --- wrk (peak, closed loop) ----------------------------------------------------------------


@dataclass
class WrkResult:
    duration_s: float
    requests: int
    ok: int
    dup: int
    bad: int
    wrapped: int
    errors: dict[str, int]
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    server_cpu_s: float = 0.0
    postgres_cpu_s: float = 0.0
    wrk_cpu_s: float = 0.0
    other_cpu_s: float = 0.0  # the machine's busy time not spent by these (interference)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def accepted_per_s(self) -> float:
        return self.ok / self.duration_s if self.duration_s else 0.0


def write_wrk_pool(
    prefix: Path, threads: int, factory: EventFactory, count: int, **where: Any
) -> None:
    """Generate `count` signed requests in chunks straight into wrk's per-thread files
    (thread i of wrk sends requests i, i + threads, ... in order)."""
    files = [open(f"{prefix}.{t}", "wb") for t in range(threads)]  # noqa: SIM115
    lengths = [open(f"{prefix}.{t}.len", "w") for t in range(threads)]  # noqa: SIM115
    try:
        made = 0
        while made < count:
            for raw in factory.requests(min(5000, count - made), **where):
                files[made % threads].write(raw)
                lengths[made % threads].write(f"{len(raw)}\n")
                made += 1
    finally:
        for f in (*files, *lengths):
            f.close()


def remove_wrk_pool(prefix: Path, threads: int) -> None:
    for t in range(threads):
        Path(f"{prefix}.{t}").unlink(missing_ok=True)
        Path(f"{prefix}.{t}.len").unlink(missing_ok=True)


def run_wrk(
    url: str,
    prefix: Path,
    *,
    threads: int,
    connections: int,
    duration_s: float,
    server: Server | None = None,
    timeout_s: int = 10,
) -> WrkResult:
    wrk = require_wrk()
    argv = [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration_s))}s",
        f"--timeout={timeout_s}s",
        "-s",
        str(WRK_SCRIPT),
        url,
        "--",
        str(prefix),
    ]
    cpu0 = server.cpu() if server else 0.0
    pg0, others = postgres_cpu(), Interference(server)
    others.start()
    started = os.times()
    out = subprocess.run(argv, capture_output=True, text=True, check=False)
    ended = os.times()
    other_cpu = others.stop()
    pg1 = postgres_cpu()
    cpu1 = server.cpu() if server else 0.0
    line = next((x for x in out.stdout.splitlines() if x.startswith("BENCHJSON ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    data = json.loads(line.removeprefix("BENCHJSON "))
    lat = data["latency_us"]
    wrk_cpu = (ended.children_user + ended.children_system) - (
        started.children_user + started.children_system
    )
    return WrkResult(
        duration_s=data["duration_us"] / 1e6,
        requests=data["requests"],
        ok=data["ok"],
        dup=data["dup"],
        bad=data["bad"],
        wrapped=data["wrapped"],
        errors=data["errors"],
        p50_ms=lat["p50"] / 1000,
        p90_ms=lat["p90"] / 1000,
        p99_ms=lat["p99"] / 1000,
        max_ms=lat["max"] / 1000,
        server_cpu_s=cpu1 - cpu0,
        postgres_cpu_s=pg1 - pg0,
        wrk_cpu_s=wrk_cpu,
        other_cpu_s=other_cpu,
    )


# --- open loop (fixed rate) -----------------------------------------------------------------


@dataclass
class OpenLoopResult:
    target_rate: float
    sent: int
    ok: int
    dup: int
    other: dict[str, int]
    achieved_rate: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    max_send_lag_ms: float
    connections_opened: int
    server_cpu_s: float = 0.0
    postgres_cpu_s: float = 0.0
    client_cpu_s: float = 0.0
    other_cpu_s: float = 0.0  # the machine's busy time not spent by these (interference)
    extra: dict[str, Any] = field(default_factory=dict)


def percentile(sorted_values: Sequence[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return 0


IDLE_MAX_S = 2.0


class _OpenLoop:
    """Send request i at start + i/rate whatever the server does (no coordinated omission):
    latency counts from the intended send time; a busy connection never delays a send, a new
    keep-alive connection is opened instead."""

    def __init__(self, host: str, port: int, timeout_s: float) -> None:
        self.host, self.port, self.timeout_s = host, port, timeout_s
        # (reader, writer, last used); servers close keep-alive connections idle for a few
        # seconds (uvicorn: 5 s), so connections idle longer than IDLE_MAX_S are dropped.
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []
        self.latencies: list[float] = []
        self.counts: Counter[str] = Counter()
        self.opened = 0
        self.finished_at = 0.0

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        self.opened += 1
        return await asyncio.open_connection(self.host, self.port)

    async def checkout(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        now = asyncio.get_running_loop().time()
        while self.idle:
            reader, writer, used = self.idle.pop()
            if now - used < IDLE_MAX_S:
                return reader, writer
            writer.close()
        return await self.connect()

    async def exchange(self, raw: bytes, due: float) -> None:
        reader, writer = await self.checkout()
        writer.write(raw)
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        body = await reader.readexactly(_content_length(head))
        self.finished_at = asyncio.get_running_loop().time()
        self.latencies.append(self.finished_at - due)
        if status == 200:
            self.counts["dup" if b'"duplicate":true' in body else "ok"] += 1
        else:
            self.counts[f"status_{status}"] += 1
        if b"connection: close" in head.lower():
            writer.close()
        else:
            self.idle.append((reader, writer, self.finished_at))

    async def one(self, raw: bytes, due: float) -> None:
        try:
            await asyncio.wait_for(self.exchange(raw, due), self.timeout_s)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as e:
            self.counts[f"error {type(e).__name__}"] += 1
        except TimeoutError:
            self.counts["timeout"] += 1

    async def run(self, requests: Sequence[bytes], rate: float) -> OpenLoopResult:
        loop = asyncio.get_running_loop()
        for _ in range(16):
            self.idle.append((*await self.connect(), loop.time()))
        tasks: set[asyncio.Task[None]] = set()
        max_lag = 0.0
        start = loop.time() + 0.1
        for i, raw in enumerate(requests):
            due = start + i / rate
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                max_lag = max(max_lag, -delay)
            task = asyncio.create_task(self.one(raw, due))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        while tasks:
            await asyncio.gather(*list(tasks))
        for _, writer, _ in self.idle:
            writer.close()
        latencies = sorted(self.latencies)
        counts = Counter(self.counts)
        done = sum(counts.values())
        return OpenLoopResult(
            target_rate=rate,
            sent=len(requests),
            ok=counts.pop("ok", 0),
            dup=counts.pop("dup", 0),
            other=dict(counts),
            achieved_rate=done / max(self.finished_at - start, 1e-9),
            p50_ms=percentile(latencies, 50) * 1000,
            p99_ms=percentile(latencies, 99) * 1000,
            max_ms=(latencies[-1] if latencies else float("nan")) * 1000,
            max_send_lag_ms=max_lag * 1000,
            connections_opened=self.opened,
        )


def open_loop(
    host: str,
    port: int,
    requests: Sequence[bytes],
    rate: float,
    *,
    server: Server | None = None,
    timeout_s: float = 10.0,
) -> OpenLoopResult:
    cpu0 = server.cpu() if server else 0.0
    pg0, me0, others = postgres_cpu(), os.times(), Interference(server)
    gc.collect()
    gc.disable()
    others.start()
    try:
        result = asyncio.run(_OpenLoop(host, port, timeout_s).run(requests, rate))
    finally:
        gc.enable()
    result.other_cpu_s = others.stop()
    me1 = os.times()
    result.server_cpu_s = (server.cpu() if server else 0.0) - cpu0
    result.postgres_cpu_s = postgres_cpu() - pg0
    result.client_cpu_s = (me1.user + me1.system) - (me0.user + me0.system)
    return result


# --- stores ----------------------------------------------------------------------------------


def pg_url_with_schema(base: str, schema: str) -> str:
    parts = urlsplit(base)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, f"schema={schema}", ""))


def pg_connect(base: str) -> Any:
    import psycopg

    from subledger.settings import parse_database_url
    from subledger.store import pg_conninfo

    return psycopg.connect(**pg_conninfo(parse_database_url(base)), autocommit=True)


def pg_drop_schema(base: str, schema: str) -> None:
    from psycopg import sql

    with pg_connect(base) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def pg_settings(base: str) -> dict[str, str]:
    names = ("server_version", "synchronous_commit", "fsync", "shared_buffers", "wal_sync_method")
    try:
        with pg_connect(base) as conn:
            return {n: str(conn.execute(f"SHOW {n}").fetchone()[0]) for n in names}
    except Exception as error:  # noqa: BLE001 - reported, not fatal
        return {"error": str(error)}


def count_rows(kind: str, location: str, table: str, schema: str = "") -> int:
    """Rows in a table: location is a SQLite path or a PostgreSQL base URL."""
    if kind == "sqlite":
        with sqlite3.connect(f"file:{location}?mode=ro", uri=True) as conn:
            return int(conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0])
    from psycopg import sql

    with pg_connect(location) as conn:
        query = sql.SQL("SELECT count(*) FROM {}.{}").format(
            sql.Identifier(schema), sql.Identifier(table)
        )
        return int(conn.execute(query).fetchone()[0])


def pg_transactions(base: str, schema: str, table: str, after_position: int) -> tuple[int, int]:
    """(rows, distinct writing transactions) of ledger rows past a position: xmin tells which
    rows one transaction inserted, so rows/transactions is the real commit group size."""
    from psycopg import sql

    with pg_connect(base) as conn:
        query = sql.SQL(
            "SELECT count(*), count(DISTINCT xmin::text) FROM {}.{} WHERE notification_id > %s"
        ).format(sql.Identifier(schema), sql.Identifier(table))
        rows, transactions = conn.execute(query, (after_position,)).fetchone()
        return int(rows), int(transactions)


def pg_max_position(base: str, schema: str, table: str) -> int:
    from psycopg import sql

    with pg_connect(base) as conn:
        query = sql.SQL("SELECT coalesce(max(notification_id), 0) FROM {}.{}").format(
            sql.Identifier(schema), sql.Identifier(table)
        )
        return int(conn.execute(query).fetchone()[0])
