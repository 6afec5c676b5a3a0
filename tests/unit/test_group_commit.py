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


def test_one_requests_facts_commit_together_and_get_their_own_positions() -> None:
    """A receipt's token and its Stripe reads (submit_all) share one transaction, beside
    other requests' facts, and each request gets the positions of its own facts."""
    groups: list[list[Fact]] = []
    log: list[Fact] = []

    def record(group: Sequence[Fact]) -> list[int | None]:
        groups.append(list(group))
        log.extend(group)
        return [log.index(f) + 1 for f in group]

    submitted: list[list[Fact]] = [
        [notification(0, 10)],
        [notification(n, 10) for n in range(1, 4)],  # with the first, past max_group
        [notification(4, 10)],
    ]

    async def run() -> list[list[int | None]]:
        committer = GroupCommitter(record, max_group=3)
        answers = await asyncio.gather(*(committer.submit_all(facts) for facts in submitted))
        await committer.close()
        return list(answers)

    answers = asyncio.run(run())
    assert [[log[p - 1] for p in a if p is not None] for a in answers] == submitted
    together = submitted[1]
    assert any(all(f in group for f in together) for group in groups), groups
