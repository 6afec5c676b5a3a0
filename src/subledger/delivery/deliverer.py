"""The sender of outbound events (SPEC 10): at least once, every attempt a fact.

One process at a time sends (a lease in the store). It reads what the fold queued in the
outbox, per integration, and POSTs it on an event loop of its own: each integration has
its own number of requests in flight, so a slow or failing receiver only ever holds its
own slots, never another integration's, and never ingest, receipts or the projection.
Each attempt's outcome, with the retry decided for it, is appended as `DeliveryAttempted`
(many attempts to one append); the fold moves the delivery, so a rebuild knows what was
delivered and a restart resends only what has no recorded success.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

import httpx
import msgspec

from projections.deliveries import DeliveryReader
from projections.model import OutboxEntry
from projections.reader import Reader
from projections.views import WebhookBody, WebhookEvent
from subledger.delivery.lease import Lease
from subledger.delivery.recorder import AttemptRecorder
from subledger.delivery.sender import Outcome, post
from subledger.facts import DeliveryAttempted
from subledger.ledger import Ledger, now_ms
from subledger.registry import AppRegistry, Receiver
from subledger.settings import Settings

log = logging.getLogger("subledger.delivery")
LEASE = "outbound-deliveries"
MAX_FINISHED = 100_000  # keys remembered as done (a few MB)
WATCH_S = 0.05  # how often the projection's position is read (new deliveries follow it)
_encoder = msgspec.json.Encoder()  # a struct's fields in their fixed order: the same bytes
T = TypeVar("T")


def next_attempt_at(ended_ms: int, retry: int, schedule: tuple[float, ...]) -> int | None:
    """When to try again after the attempt that ended at `ended_ms`, `retry` attempts into
    its round (RevenueCat: 5, 10, 20, 40, 80 minutes); None once the schedule is spent."""
    if retry >= len(schedule):
        return None
    return ended_ms + int(schedule[retry] * 1000)


class Deliverer:
    def __init__(
        self,
        ledger: Ledger,
        reader: Reader,
        registry: AppRegistry,
        settings: Settings,
        *,
        appended: Callable[[], None] = lambda: None,
        poll_s: float = 0.5,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.ledger = ledger
        self.reader = reader
        self.outbox = DeliveryReader(reader)
        self.registry = registry
        self.settings = settings
        self.appended = appended  # wakes an in-process projector
        self.poll_s = poll_s
        self.watch_s = min(WATCH_S, poll_s)
        self.clock = clock
        holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease = Lease(reader.db, LEASE, holder)
        self.attempts = 0  # attempts recorded by this process (for logs and tests)
        self._ready_at: int | None = None  # the log end when the lease was taken
        self._busy: dict[str, str] = {}  # outbox key → integration, being sent
        # Sent, its attempt being appended: the slot is free again (the POST is over), the
        # key not yet to be sent again.
        self._recording: dict[str, str] = {}
        self._recorded: dict[str, tuple[str, int]] = {}  # key → (integration, fact position)
        # Keys whose attempt the projection applied: such a key never comes back unless its
        # attempt could not be applied (an unprojectable fact). Never sent twice, so a fold
        # bug cannot make the sender hammer a receiver.
        self._finished: OrderedDict[str, str] = OrderedDict()
        self._stuck: dict[str, str] = {}
        self._io = ThreadPoolExecutor(max_workers=4, thread_name_prefix="delivery-io")
        self._recorder: AttemptRecorder | None = None  # made on the event loop
        self._wake: asyncio.Event | None = None

    def run(self, stop: threading.Event) -> None:
        """Send until `stop` (a thread of `serve`, or `subledger deliver`)."""
        try:
            asyncio.run(self._main(stop))
        finally:
            self._io.shutdown(wait=True)

    async def _io_call(self, fn: Callable[..., T], *args: Any) -> T:
        """Blocking store work on this sender's own few threads (one connection each)."""
        return await asyncio.get_running_loop().run_in_executor(self._io, partial(fn, *args))

    async def _append(self, facts: list[DeliveryAttempted]) -> int:
        return await self._io_call(self.ledger.record, *facts)

    def _appended(self, count: int) -> None:
        self.attempts += count
        self.appended()

    async def _main(self, stop: threading.Event) -> None:
        self._recorder = AttemptRecorder(self._append, self._appended)
        self._wake = asyncio.Event()
        tasks: set[asyncio.Task[None]] = set()
        recorder = asyncio.create_task(self._recorder.run())
        timeout = httpx.Timeout(self.settings.delivery_timeout_s)
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client:
            seen, looked = -1, 0.0
            while not stop.is_set():
                try:
                    # New deliveries appear when the projection moves: watch its position
                    # often (one cheap read), look for due deliveries when it moved, when a
                    # slot freed, and every poll_s (retries fall due with time).
                    position = await self._io_call(self.reader.position)
                    if (
                        self._wake.is_set()
                        or position != seen
                        or time.monotonic() - looked >= self.poll_s
                    ):
                        self._wake.clear()
                        seen, looked = position, time.monotonic()
                        await self._tick(client, tasks)
                except Exception as error:  # noqa: BLE001 - the store may be down: next tick
                    log.warning("outbound delivery round failed, retrying: %s", error)
                    self._ready_at = None
                    seen = -1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.watch_s)
            if tasks:  # in-flight sends may finish and be recorded; the rest are resent
                await asyncio.wait(tasks, timeout=5)
        for task in tasks:
            task.cancel()
        await self._recorder.drain()
        recorder.cancel()
        try:
            await self._io_call(self.lease.release)
        except Exception as error:  # noqa: BLE001 - the lease expires by itself
            log.warning("could not release the delivery lease: %s", error)

    async def _tick(self, client: httpx.AsyncClient, tasks: set[asyncio.Task[None]]) -> None:
        if not await self._io_call(self.lease.hold):
            self._ready_at = None  # another process sends
            return
        if self._ready_at is None:
            self._ready_at = await self._io_call(self.ledger.last_position)
        position = await self._io_call(self.reader.position)
        if position < self._ready_at:
            return  # attempts recorded before this sender took over are not applied yet
        # An attempt the projection has applied has moved its delivery out of that key.
        for key, (integration, at) in list(self._recorded.items()):
            if at <= position:
                del self._recorded[key]
                self._finished[key] = integration
        while len(self._finished) > MAX_FINISHED:
            self._finished.popitem(last=False)
        now = self.clock()
        for loaded in self.registry.loaded():
            for receiver in loaded.receivers:
                await self._dispatch(client, tasks, loaded.app_id, receiver, now)

    async def _dispatch(
        self,
        client: httpx.AsyncClient,
        tasks: set[asyncio.Task[None]],
        app_id: str,
        receiver: Receiver,
        now: int,
    ) -> None:
        """Start as many of the receiver's due deliveries as it has free slots."""
        busy = sum(1 for i in self._busy.values() if i == receiver.id)
        free = self.settings.delivery_concurrency - busy
        if free <= 0:
            return
        waiting = sum(1 for i, _ in self._recorded.values() if i == receiver.id)
        waiting += sum(1 for i in self._stuck.values() if i == receiver.id)
        waiting += sum(1 for i in self._recording.values() if i == receiver.id)
        due = await self._io_call(self.outbox.due, app_id, receiver.id, now, free + busy + waiting)
        for key, entry in due:
            if free <= 0:
                break
            if key in self._finished and key not in self._stuck:
                self._stuck[key] = receiver.id
                log.error("outbound %s: its recorded attempt was not applied; not resent", key)
            if key in self._busy or key in self._recording or key in self._recorded:
                continue
            if key in self._stuck:
                continue
            free -= 1
            self._busy[key] = receiver.id
            task = asyncio.create_task(self._deliver(client, app_id, receiver, key, entry))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    async def _deliver(
        self,
        client: httpx.AsyncClient,
        app_id: str,
        receiver: Receiver,
        key: str,
        entry: OutboxEntry,
    ) -> None:
        try:
            stored = await self._io_call(self.outbox.event, app_id, entry.event)
            if stored is None:
                log.error("outbox entry %s names no stored event", key)
                return
            outcome, final = await self._attempt(client, receiver, stored.body, entry)
            ended = self.clock()
            schedule = self.settings.delivery_retries_s
            retry_at = None if final else next_attempt_at(ended, entry.retry, schedule)
            fact = DeliveryAttempted(
                originator_id=uuid.uuid4(),
                app_id=app_id,
                received_at_ms=ended,
                integration_id=receiver.id,
                outbound_event_id=entry.event,
                attempt=entry.attempt,
                status=outcome.status,
                error=outcome.error,
                duration_ms=outcome.duration_ms,
                next_attempt_at_ms=retry_at,
            )
            level = logging.DEBUG if outcome.status == 200 else logging.WARNING
            log.log(level, "outbound %s to %s: %s", entry.event, receiver.id, outcome)
            assert self._recorder is not None
            # The request is over: its slot serves the next delivery while the attempt is
            # appended (appends wait for the log's lock, which ingest holds too).
            self._recording[key] = receiver.id
            self._free(key)
            position = await self._recorder.record(fact)
            if position is not None:
                self._recorded[key] = (receiver.id, position)
        finally:
            self._recording.pop(key, None)
            self._free(key)

    def _free(self, key: str) -> None:
        if self._busy.pop(key, None) is not None and self._wake is not None:
            self._wake.set()  # a slot is free: look for more at once

    async def _attempt(
        self, client: httpx.AsyncClient, receiver: Receiver, body: WebhookEvent, entry: OutboxEntry
    ) -> tuple[Outcome, bool]:
        """(outcome, final): an event never tried and older than the maximum age is not
        sent (a rebuild after an upgrade may derive events for old facts); an operator can
        re-send it."""
        age_s = (self.clock() - body.event_timestamp_ms) // 1000
        if entry.attempt == 1 and age_s > self.settings.delivery_max_age_s:
            why = f"not sent: {age_s} s old, over SUBLEDGER_DELIVERY_MAX_AGE_S; re-send it"
            return Outcome(0, why, 0), True
        payload = _encoder.encode(WebhookBody(event=body))
        timeout = self.settings.delivery_timeout_s
        outcome = await post(client, receiver.url, receiver.authorization, payload, timeout)
        return outcome, outcome.status == 200
