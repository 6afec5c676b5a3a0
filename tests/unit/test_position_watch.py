"""PositionWatch (src/subledger/service.py): one poller for every receipt waiting on a
projector in another process."""

from __future__ import annotations

import threading
import time

import pytest

from subledger.service import PositionWatch
from subledger.store import StoreUnavailableError


def test_one_poller_wakes_every_waiter_it_satisfies_and_times_out_the_rest() -> None:
    projected = 0
    reads = 0

    def read_position() -> int:
        nonlocal reads
        reads += 1
        return projected

    watch = PositionWatch(read_position, lambda: None)
    answers: dict[int, bool] = {}

    def wait(position: int, timeout_s: float) -> None:
        answers[position] = watch.wait_for(position, timeout_s)

    waiters = [threading.Thread(target=wait, args=(p, 2.0)) for p in range(1, 41)]
    waiters.append(threading.Thread(target=wait, args=(1000, 0.3)))  # never projected
    for thread in waiters:
        thread.start()
    time.sleep(0.1)
    projected = 40
    for thread in waiters:
        thread.join(timeout=5)
    assert answers == {**dict.fromkeys(range(1, 41), True), 1000: False}
    # 41 waiters polling alone (2 ms doubling) would have read about 41 x 6 times by now.
    assert reads < 60, reads
    assert watch.wait_for(40, 0)  # already known: no read, no wait


def test_a_failing_read_fails_the_waiters_and_polling_recovers() -> None:
    state = {"fail": True, "position": 5}
    discarded = []

    def read_position() -> int:
        if state["fail"]:
            raise OSError("store down")
        return state["position"]

    watch = PositionWatch(read_position, lambda: discarded.append(1))
    with pytest.raises(StoreUnavailableError):  # 503 at once, as a failed read answers
        watch.wait_for(5, 2.0)
    assert discarded
    state["fail"] = False
    assert watch.wait_for(5, 2.0)
