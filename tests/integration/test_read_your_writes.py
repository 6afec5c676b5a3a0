"""POST /v1/receipts answers only once its own fact is projected (SPEC 4; issue 4)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import msgspec
import pytest

from projections.reader import Reader
from projections.runner import Projector
from subledger.settings import Settings
from tests.harness import Harness, harness

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
        texts = [entry.text for _, entry in reader.history(keys.app_id, ["user_123"])]
        assert texts == [
            f"user_123 now owns {SUB}",
            f"{SUB} already belongs to user_123: no change",
        ]
    finally:
        reader.close()
