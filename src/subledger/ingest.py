"""Group commit: concurrent webhook requests share one store transaction.

One eventsourcing save costs an exclusive table lock, a NOTIFY and an insert (~2.7 ms CPU on
PostgreSQL here), so one save per request caps ingest far below a plain INSERT. The writer
takes whatever arrived while the previous commit was running — no fixed delay, so a lone
request waits for nothing — and every request is answered only after the shared commit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

import anyio

from subledger.facts import Fact

log = logging.getLogger("subledger.ingest")

Recorder = Callable[[Sequence[Fact]], list[int | None]]
# A group stops growing at this many body bytes: 256 bodies of 1 MiB in one INSERT would
# hold a quarter of a gigabyte in one statement, and fail or stall every request in it.
GROUP_MAX_BYTES = 16 * 1024 * 1024
Noter = Callable[[Sequence[Fact]], None]
# One request's facts, committed in one transaction, and the future its positions go to.
Item = tuple[tuple[Fact, ...], "asyncio.Future[list[int | None]]"]


class GroupCommitter:
    """Queue facts from the event loop; one writer commits them in groups."""

    def __init__(
        self,
        record_new: Recorder,
        *,
        max_group: int = 256,
        note_duplicates: Noter = lambda facts: None,
    ) -> None:
        self._record_new = record_new
        self._note_duplicates = note_duplicates
        self._max_group = max_group
        self._queue: asyncio.Queue[Item] | None = None
        self._writer: asyncio.Task[None] | None = None
        # The writer's own thread slot: in anyio's shared pool (40 threads) it queued behind
        # receipts waiting for the projection, and webhooks answered 503 while the store
        # was fine.
        self._thread: anyio.CapacityLimiter | None = None

    async def submit(self, fact: Fact) -> int | None:
        """Position of the durable fact, or None when it was already stored (duplicate)."""
        return (await self.submit_all((fact,)))[0]

    async def submit_all(self, facts: Sequence[Fact]) -> list[int | None]:
        """One request's facts (a receipt's token and its Stripe reads), committed together
        in one group: their positions, None for those already stored."""
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._thread = anyio.CapacityLimiter(1)
            self._writer = asyncio.create_task(self._run(self._queue), name="group-committer")
        future: asyncio.Future[list[int | None]] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((tuple(facts), future))
        return await future

    async def _run(self, queue: asyncio.Queue[Item]) -> None:
        while True:
            group = [await queue.get()]
            count, size = len(group[0][0]), _size(group[0][0])
            while count < self._max_group and size < GROUP_MAX_BYTES and not queue.empty():
                group.append(queue.get_nowait())
                count, size = count + len(group[-1][0]), size + _size(group[-1][0])
            live = [(facts, future) for facts, future in group if not future.cancelled()]
            if live:
                await self._commit(live)

    async def _commit(self, group: list[Item]) -> None:
        try:
            positions = await anyio.to_thread.run_sync(
                self._write, [fact for facts, _ in group for fact in facts], limiter=self._thread
            )
        except Exception as error:  # noqa: BLE001 - every waiter gets the store's failure
            for _, future in group:
                if not future.done():
                    future.set_exception(error)
            return
        start = 0
        for facts, future in group:
            if not future.done():
                future.set_result(positions[start : start + len(facts)])
            start += len(facts)

    def _write(self, facts: list[Fact]) -> list[int | None]:
        """Commit the group; then note the copies that were already stored (audit trail)."""
        positions = self._record_new(facts)
        duplicates = [f for f, p in zip(facts, positions, strict=True) if p is None]
        if duplicates:
            self._note_duplicates(duplicates)
        return positions

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)
            self._writer = None
            self._queue = None


def _size(facts: Sequence[Fact]) -> int:
    # Notifications carry a body; other facts are small.
    return sum(len(getattr(fact, "body", b"")) for fact in facts)
