"""Load on a server: wrk at full speed (closed loop) and an open-loop client at a fixed rate.

Both report the server's CPU, PostgreSQL's and what other processes took meanwhile.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchlib import machine
from tests.serverprocess import Server

WRK_SCRIPT = Path(__file__).resolve().parents[1] / "wrk_requests.lua"


def server_cpu(server: Server | None, *, user_only: bool = False) -> float:
    return machine.tree_cpu(server.process.pid, user_only=user_only) if server else 0.0


def server_roles(server: Server | None) -> dict[str, float]:
    return machine.role_cpu(server.process.pid) if server else {}


def require_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk is None:
        sys.exit("bench: wrk is not installed (apt-get install wrk); the peak runs need it")
    return wrk


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
    roles_cpu_s: dict[str, float] = field(default_factory=dict)  # the server's, by process role
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def accepted_per_s(self) -> float:
        return self.ok / self.duration_s if self.duration_s else 0.0


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
    cpu0, roles0 = server_cpu(server), server_roles(server)
    pg0 = machine.postgres_cpu()
    others = machine.OtherLoad(lambda: server_cpu(server, user_only=True)).start()
    started = os.times()
    out = subprocess.run(argv, capture_output=True, text=True, check=False)
    ended = os.times()
    other_cpu = others.stop()
    pg1 = machine.postgres_cpu()
    cpu1, roles1 = server_cpu(server), server_roles(server)
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
        roles_cpu_s=machine.role_delta(roles0, roles1),
    )


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
    roles_cpu_s: dict[str, float] = field(default_factory=dict)  # the server's, by process role
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
    cpu0, roles0 = server_cpu(server), server_roles(server)
    pg0, me0 = machine.postgres_cpu(), os.times()
    gc.collect()
    gc.disable()
    others = machine.OtherLoad(lambda: server_cpu(server, user_only=True)).start()
    try:
        result = asyncio.run(_OpenLoop(host, port, timeout_s).run(requests, rate))
    finally:
        gc.enable()
    result.other_cpu_s = others.stop()
    me1 = os.times()
    result.server_cpu_s = server_cpu(server) - cpu0
    result.roles_cpu_s = machine.role_delta(roles0, server_roles(server))
    result.postgres_cpu_s = machine.postgres_cpu() - pg0
    result.client_cpu_s = (me1.user + me1.system) - (me0.user + me0.system)
    return result


def wait_idle(server: Server, timeout_s: float = 120.0, window_s: float = 0.5) -> float:
    """Wait until the server uses < 5 % of a core (background work such as the projector
    has caught up); the seconds waited."""
    started = time.monotonic()
    before = server_cpu(server)
    while time.monotonic() - started < timeout_s:
        time.sleep(window_s)
        now = server_cpu(server)
        if now - before < 0.05 * window_s:
            break
        before = now
    return time.monotonic() - started
