"""Outbound delivery under the ingest benchmark's load (issue 20 item 7, part C).

A running `subledger serve` (its projector and its sender), an app tracking new purchases,
and either no integration ("off") or two ("on") posting to a recording receiver. Per
variant: the ingest benchmark's peak (wrk, every request a new signed notification), then,
once the backlog is delivered (`/ready`), its open loop at half that peak. The receiver
notes, for every request, the event's `event_timestamp_ms` (the receive time of the fact
that caused it, taken before its commit) and the time it writes its 200; latency = the
difference (so it includes the commit). Run the receiver as `python -m benchlib.live
receiver FILE`: it prints its base URL and, on SIGTERM, writes `timestamp answered` lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from benchlib import catchup, delivery, load, stores

_STAMP = re.compile(rb'"event_timestamp_ms":(\d+)')
_SEEN: list[tuple[int, int]] = []


class _Recorder(delivery._Answer):
    """The benchmark's receiver, noting each event's timestamp and when it answers."""

    def received(self, body: bytes) -> None:
        stamp = _STAMP.search(body)
        _SEEN.append((int(stamp.group(1)) if stamp else 0, time.time_ns() // 1_000_000))


async def _receive(out: Path) -> None:
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, stop.set_result, None)
    server = await loop.create_server(_Recorder, "127.0.0.1", 0)
    print(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
    await stop
    server.close()
    out.write_text("".join(f"{s} {a}\n" for s, a in _SEEN))


class Receiver:
    """The recording receiver, in a process of its own (its CPU is not the server's)."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchlib.live", "receiver", str(out)],
            env=catchup.child_env(),
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.base = self.process.stdout.readline().strip()

    def stop(self) -> list[tuple[int, int]]:
        self.process.terminate()
        self.process.wait(timeout=30)
        lines = self.out.read_text().split() if self.out.exists() else []
        return [(int(a), int(b)) for a, b in zip(lines[::2], lines[1::2], strict=True)]


def create_app(url: str, secret: str, receiver: str | None) -> str:
    """An app that tracks new purchases (so the load's notifications make events), with two
    integrations posting to `receiver` when given."""
    from subledger.apps import AppConfig
    from subledger.ledger import Ledger
    from subledger.settings import parse_database_url

    ledger = Ledger(parse_database_url(url))
    try:
        app, _, _ = ledger.create_app(
            "bench",
            AppConfig(signature_tolerance_s=86400, track_new_purchases=True),
            webhook_secrets=[secret],
        )
        for path in ("/a", "/b") if receiver else ():
            ledger.add_integration(app.app_id, f"{receiver}{path}")
    finally:
        ledger.close()
    return app.app_id


def wait_delivered(server_url: str, timeout_s: float) -> dict[str, Any]:
    """Poll /ready until no delivery is pending (or the time is up); the last backlog, with
    the projection's lag (receive to projected) as the server measured it."""
    deadline = time.monotonic() + timeout_s
    backlog: dict[str, Any] = {}
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            ready = httpx.get(f"{server_url}/ready", timeout=10).json()
            projection = ready["projection"]
            backlog = ready["deliveries"] | {
                "projection_lag_p50_ms": projection.get("lag_ms_p50"),
                "projection_lag_p99_ms": projection.get("lag_ms_p99"),
            }
            if backlog["pending"] == 0:
                break
        time.sleep(0.5)
    return backlog


def latencies(seen: list[tuple[int, int]], start_ms: int, end_ms: int) -> dict[str, Any]:
    """p50/p99 (ms) of the requests whose event was caused within [start, end]."""
    values = sorted(a - s for s, a in seen if start_ms <= s <= end_ms)
    if not values:
        return {"deliveries": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}
    return {
        "deliveries": len(values),
        "p50_ms": round(load.percentile(values, 50)),
        "p99_ms": round(load.percentile(values, 99)),
        "max_ms": values[-1],
    }


def count_outbound(url: str) -> int:
    return stores.count_rows(url, "sl_outbound_events")


def main(argv: list[str]) -> None:
    if argv[:1] == ["receiver"]:
        asyncio.run(_receive(Path(argv[1])))
        return
    raise SystemExit(f"unknown kind {argv!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
