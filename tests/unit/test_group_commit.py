"""Group commit (src/subledger/ingest.py): how concurrent facts are grouped."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

from subledger.facts import Fact, NotificationReceived
from subledger.ingest import GROUP_MAX_BYTES, GroupCommitter


def notification(n: int, size: int) -> NotificationReceived:
    return NotificationReceived(
        originator_id=uuid.uuid4(),
        app_id="app",
        received_at_ms=0,
        event_id=f"evt_{n}",
        type="invoice.updated",
        created=0,
        livemode=False,
        api_version=None,
        body=b"x" * size,
        secret_fingerprint="fp",
    )


def groups_for(facts: list[Fact], max_group: int) -> list[int]:
    sizes: list[int] = []

    def record(group: Sequence[Fact]) -> list[int | None]:
        sizes.append(len(group))
        return list(range(len(group)))

    async def run() -> None:
        committer = GroupCommitter(record, max_group=max_group)
        await asyncio.gather(*(committer.submit(f) for f in facts))
        await committer.close()

    asyncio.run(run())
    return sizes


def test_a_group_stops_growing_at_its_byte_limit() -> None:
    big = GROUP_MAX_BYTES // 4 + 1  # four of them pass the limit
    sizes = groups_for([notification(n, big) for n in range(10)], max_group=256)
    assert sum(sizes) == 10
    assert max(sizes) == 4  # the first reaches the writer alone; then groups of four
    assert all(size * big <= GROUP_MAX_BYTES + big for size in sizes)


def test_small_facts_group_up_to_the_count_limit() -> None:
    sizes = groups_for([notification(n, 100) for n in range(20)], max_group=8)
    assert sum(sizes) == 20
    assert max(sizes) == 8
