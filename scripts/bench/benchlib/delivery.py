"""Outbound delivery, measured in child processes: a receiver that answers 200 at once, the
baseline (the same event bodies POSTed with the sender's own `post`, nothing recorded) and
a drain (the projector and the sender of `serve`, until nothing is pending).
Run as `python -m benchlib.delivery KIND ARGS…`; it prints one JSON line (the receiver
prints its URL, then serves until killed).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import threading
import time
from typing import Any

from benchlib import catchup

_LENGTH = re.compile(rb"content-length:\s*(\d+)")


class _Answer(asyncio.Protocol):
    """HTTP/1.1 with keep-alive, reduced to what a receiver must do: read a request, 200."""

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (head := self.buffer.find(b"\r\n\r\n")) >= 0:
            found = _LENGTH.search(self.buffer[:head].lower())
            end = head + 4 + (int(found.group(1)) if found else 0)
            if len(self.buffer) < end:
                return
            self.received(self.buffer[head:end])
            self.buffer = self.buffer[end:]
            self.transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")

    def received(self, body: bytes) -> None:
        """A whole request has arrived (its body, after the blank line); answered next."""


async def _receive() -> None:
    server = await asyncio.get_running_loop().create_server(_Answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    print(f"http://127.0.0.1:{port}/hook", flush=True)
    await server.serve_forever()


def start_receiver() -> tuple[subprocess.Popen[str], str]:
    """A receiver process (its own core time, not the measured process's) and its URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "benchlib.delivery", "receiver"],
        env=catchup.child_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


def _settings(url: str, concurrency: int) -> Any:
    from subledger.settings import Settings, parse_database_url

    # The generated facts are from 2026-05: never "too old to send" here.
    return Settings(
        database=parse_database_url(url),
        delivery_concurrency=concurrency,
        delivery_max_age_s=1e12,
    )


def posts(url: str, concurrency: int) -> dict[str, Any]:
    """Every stored event's body POSTed to its integration's URL, `concurrency` at a time,
    with the sender's own function: the HTTP work alone (bodies read untimed)."""
    import httpx
    import msgspec

    from projections.model import OutboundEvent
    from projections.reader import Reader
    from projections.views import WebhookBody
    from subledger.delivery.sender import post
    from subledger.ledger import Ledger

    settings = _settings(url, concurrency)
    ledger = Ledger(settings.database)
    [app] = ledger.list_apps()
    target = app.integrations[0].url
    reader = Reader(settings.database)
    decode = msgspec.json.Decoder(OutboundEvent).decode
    with reader.db.read() as cur:
        cur.execute("SELECT state FROM sl_outbound_events")
        bodies = [
            msgspec.json.encode(WebhookBody(event=decode(row[0]).body)) for row in cur.fetchall()
        ]
    reader.close()
    ledger.close()

    async def send_all() -> int:
        slots = asyncio.Semaphore(concurrency)
        async with httpx.AsyncClient() as client:

            async def one(body: bytes) -> int:
                async with slots:
                    return (await post(client, target, None, body, 60.0)).status

            statuses = await asyncio.gather(*(one(b) for b in bodies))
        return sum(1 for s in statuses if s == 200)

    usage = os.times()
    started = time.perf_counter()
    ok = asyncio.run(send_all())
    elapsed = time.perf_counter() - started
    ended = os.times()
    cpu = (ended.user + ended.system) - (usage.user + usage.system)
    assert ok == len(bodies), f"{len(bodies) - ok} posts failed"
    return {"events": ok, "seconds": elapsed, "rate": ok / elapsed, "cpu_s": cpu}


def drain(url: str, concurrency: int) -> dict[str, Any]:
    """The projector (a thread, woken by each recorded attempt) and the sender, from a full
    outbox until every delivery is delivered; this process's CPU too."""
    from projections.reader import Reader
    from projections.runner import Projector
    from subledger.delivery.deliverer import Deliverer
    from subledger.ledger import Ledger
    from subledger.registry import AppRegistry
    from subledger.sealing import Sealer

    settings = _settings(url, concurrency)
    ledger = Ledger(settings.database)
    reader = Reader(settings.database)
    projector = Projector(ledger)
    projector.catch_up()  # already current: the outbox holds every delivery
    registry = AppRegistry(ledger, Sealer())
    registry.refresh()

    def pending() -> int:
        with reader.db.read() as cur:
            cur.execute("SELECT count(*) FROM sl_outbox")
            return int(cur.fetchone()[0])

    events = pending()
    # Generated facts run up to a year ahead of today: the sender's clock is a year on, so
    # every delivery is due.
    ahead_ms = 366 * 86_400_000
    deliverer = Deliverer(
        ledger,
        reader,
        registry,
        settings,
        appended=projector.wake.set,
        poll_s=0.05,
        clock=lambda: time.time_ns() // 1_000_000 + ahead_ms,
    )
    stop = threading.Event()
    threads = [
        threading.Thread(target=projector.run, args=(stop,)),
        threading.Thread(target=deliverer.run, args=(stop,)),
    ]
    usage = os.times()
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    while pending():
        time.sleep(0.01)
    elapsed = time.perf_counter() - started
    ended = os.times()
    stop.set()
    for thread in threads:
        thread.join()
    with reader.db.read() as cur:
        cur.execute("SELECT count(*) FROM sl_deliveries WHERE state LIKE '%\"delivered\"%'")
        delivered = int(cur.fetchone()[0])
    projector.close()
    reader.close()
    ledger.close()
    cpu = (ended.user + ended.system) - (usage.user + usage.system)
    assert delivered == events, f"{events - delivered} of {events} not delivered"
    return {"events": events, "seconds": elapsed, "rate": events / elapsed, "cpu_s": cpu}


def child(kind: str, url: str, concurrency: int) -> dict[str, Any]:
    argv = [sys.executable, "-m", "benchlib.delivery", kind, url, str(concurrency)]
    return catchup.json_child(argv)


if __name__ == "__main__":
    from subledger.runtime import tune_runtime

    tune_runtime()  # as every `subledger` process does
    kind, *rest = sys.argv[1:]
    if kind == "receiver":
        asyncio.run(_receive())
    else:
        work = {"posts": posts, "drain": drain}[kind]
        print(json.dumps(work(rest[0], int(rest[1]))))
