"""Attempts appended together: one append (one lock on the log) for many attempts, each
caller told its fact's position, or that it could not be recorded."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from subledger.facts import DeliveryAttempted

log = logging.getLogger("subledger.delivery")
MAX_GROUP = 256  # attempts appended together at most
PAUSES_S = (0.1, 0.5, 1.0, 2.0)  # between tries of one append, while the store recovers

Append = Callable[[list[DeliveryAttempted]], Awaitable[int]]


class AttemptRecorder:
    def __init__(self, append: Append, appended: Callable[[int], None]) -> None:
        self.append = append  # the facts' last log position once stored
        self.appended = appended  # told how many were stored
        self._queue: asyncio.Queue[tuple[DeliveryAttempted, asyncio.Future[int]]] = asyncio.Queue()

    async def record(self, fact: DeliveryAttempted) -> int | None:
        """The attempt's log position once appended; None when it could not be stored
        (then the delivery is sent again: at least once)."""
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        await self._queue.put((fact, done))
        try:
            return await done
        except Exception as error:  # noqa: BLE001 - logged; the caller resends later
            log.error("outbound attempt %s not recorded, will resend: %s", fact.attempt, error)
            return None

    async def run(self) -> None:
        """Append what waits, group by group, until cancelled."""
        while True:
            group = [await self._queue.get()]
            while len(group) < MAX_GROUP and not self._queue.empty():
                group.append(self._queue.get_nowait())
            try:
                position = await self._append([fact for fact, _ in group])
            except Exception as error:  # noqa: BLE001 - each waiting caller learns it
                for _, done in group:
                    done.set_exception(error)
            else:
                self.appended(len(group))
                for _, done in group:
                    done.set_result(position)
            for _ in group:
                self._queue.task_done()

    async def drain(self) -> None:
        """Wait until every attempt handed in was appended (or failed)."""
        await self._queue.join()

    async def _append(self, facts: list[DeliveryAttempted]) -> int:
        for pause in PAUSES_S:
            try:
                return await self.append(facts)
            except Exception as error:  # noqa: BLE001 - the store may be back in a moment
                log.warning("appending %d outbound attempts failed: %s", len(facts), error)
                await asyncio.sleep(pause)
        return await self.append(facts)
