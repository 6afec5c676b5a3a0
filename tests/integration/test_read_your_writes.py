"""POST /v1/receipts answers only once its own fact is projected (SPEC 4; issue 4)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import msgspec
import pytest

from projections.reader import Reader
from projections.runner import Projector
from subledger.settings import Settings
from tests.harness import Harness, harness
from tests.samples import scenario_bodies

SUB = "sub_1SLr4eQx7RtY2pLmVb2NcQ8s"


@pytest.fixture
def lagging(settings: Settings) -> Iterator[Harness]:
    """A service whose projector runs elsewhere (`subledger project`) and is not running."""
    with harness(msgspec.structs.replace(settings, projection_wait_s=0.3), "external") as h:
        yield h


@pytest.fixture
def start_projector(lagging: Harness) -> Iterator[Callable[[], None]]:
    """Starts what `subledger project` runs, when the test calls it; stopped afterwards."""
    projector = Projector(lagging.service.ledger)
    stop = threading.Event()
    thread = threading.Thread(target=projector.run, args=(stop,), daemon=True)
    yield thread.start
    stop.set()
    if thread.is_alive():
        thread.join(timeout=10)
    projector.close()


def test_a_lagging_projection_answers_503_and_keeps_the_token(
    lagging: Harness, start_projector: Callable[[], None]
) -> None:
    keys = lagging.app()
    before = lagging.service.ledger.last_position()

    answer = lagging.receipt(keys, "user_123", SUB)

    assert answer.status_code == 503, answer.text
    assert answer.json()["code"] == 8504
    assert "retry" in answer.json()["message"]
    # Recorded before the wait: the answer is an error, but the token is not lost.
    assert lagging.service.ledger.last_position() > before
    reader = Reader(lagging.service.settings.database)
    try:
        assert reader.customer(keys.app_id, "user_123") is None  # nothing projected yet

        start_projector()
        retried = lagging.receipt(keys, "user_123", SUB)

        assert retried.status_code == 200, retried.text
        assert retried.json()["subscriber"]["original_app_user_id"] == "user_123"
        assert reader.document(keys.app_id, "user_123") is not None  # a stored customer
        customer = reader.customer(keys.app_id, "user_123")
        assert customer is not None
        assert list(customer.ids) == ["user_123"]
        assert list(customer.purchases) == [SUB]
        texts = [entry.text for entry in reader.history(keys.app_id, ["user_123"])]
        assert texts == [
            f"user_123 now owns {SUB}",
            f"{SUB} already belongs to user_123: no change",
        ]
    finally:
        reader.close()


def test_receipts_waiting_on_the_projection_never_hold_up_webhooks(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """45 receipts wait for a projection that does not run. They used to take 40 of anyio's
    shared worker threads, so a webhook's commit queued behind them and Stripe got 503
    after SUBLEDGER_STORE_TIMEOUT_S although the store was fine. Past the
    wait slots, a receipt answers 8504 at once; its token is stored all the same."""
    monkeypatch.setattr("subledger.service.WAIT_SLOTS", 45)
    slow = msgspec.structs.replace(settings, projection_wait_s=4.0, store_timeout_s=1.0)
    with harness(slow, "external") as h:
        keys = h.app()
        start = h.service.ledger.last_position()
        answers: list[int] = []
        waiting = [
            threading.Thread(
                target=lambda i=i: answers.append(h.receipt(keys, f"u{i}", SUB).status_code)
            )
            for i in range(45)
        ]
        for thread in waiting:
            thread.start()
        deadline = time.monotonic() + 10
        while h.service.ledger.last_position() < start + 45 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert h.service.ledger.last_position() == start + 45  # all recorded, all waiting
        time.sleep(0.2)

        started = time.monotonic()
        assert h.webhook(keys, scenario_bodies()[0])["received"] is True
        assert time.monotonic() - started < 1.0
        overflow = h.receipt(keys, "u_late", SUB)  # every wait slot is taken
        assert overflow.status_code == 503 and overflow.json()["code"] == 8504
        assert time.monotonic() - started < 1.0  # answered at once, not after the wait
        assert h.service.ledger.last_position() == start + 47  # webhook and late token stored
        for thread in waiting:
            thread.join(timeout=30)
        assert answers == [503] * 45
