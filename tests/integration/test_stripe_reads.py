"""Stripe API reads recorded as facts, against a local stand-in for Stripe (SPEC 6, issue 6)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest

from projections.replay import Replay
from subledger.facts import StripeObjectRead
from subledger.settings import Settings
from tests.harness import Harness, harness
from tests.samples import PRODUCT, scenario_bodies, scenario_event, session_event, stripe_object
from tests.stripe_standin import Scripted, StripeStandIn, running_stand_in, stripe_error

SUB = "sub_1SLr4eQx7RtY2pLmVb2NcQ8s"
SESSION = "cs_test_b1Vq8ZkT3rWc5NxL0aPd7YgE2hJm9sUf4QeR6tKy1oBi3XwCn8Lz5MvAa0Dp"
KEY = "rk_test_standin0001"


@pytest.fixture
def stand_in() -> Iterator[StripeStandIn]:
    with running_stand_in() as running:
        running.put(f"/v1/subscriptions/{SUB}", scenario_event(2)["data"]["object"])
        running.put(f"/v1/checkout/sessions/{SESSION}", scenario_event(1)["data"]["object"])
        yield running


@pytest.fixture
def h(settings: Settings, stand_in: StripeStandIn) -> Iterator[Harness]:
    configured = msgspec.structs.replace(
        settings, stripe_api_base=stand_in.url, stripe_timeout_s=0.5
    )
    with harness(configured) as running:
        yield running


def reads(h: Harness) -> list[StripeObjectRead]:
    return [r for _, r in h.service.ledger.records() if isinstance(r, StripeObjectRead)]


def texts(h: Harness, keys: Any, user: str) -> list[str]:
    return [e["what_changed"] for e in h.history(keys, user)]


def test_a_token_without_facts_reads_the_subscription_and_answers_real_state(
    h: Harness, stand_in: StripeStandIn
) -> None:
    keys = h.app(stripe_api_key=KEY)
    answer = h.receipt(keys, "user_123", SUB)
    assert answer.status_code == 200
    entry = answer.json()["subscriber"]["subscriptions"][PRODUCT]
    assert entry["expires_date"] == "2026-11-01T09:00:00Z"
    assert entry["store_transaction_id"] == SUB
    [read] = reads(h)
    assert (read.request, read.status, read.subject) == (f"GET /v1/subscriptions/{SUB}", 200, SUB)
    assert json.loads(read.body)["id"] == SUB
    found = h.history(keys, "user_123")
    assert [e["kind"] for e in found] == ["stripe-read", "token"]  # one entry per fact
    assert "applied at position" in found[-1]["what_changed"]
    # a second token for the same purchase does not read again
    h.receipt(keys, "user_123", SUB)
    assert len(reads(h)) == 1
    assert stand_in.requests == [f"/v1/subscriptions/{SUB}"]


def test_a_checkout_session_token_reads_the_session_then_its_subscription(
    h: Harness, stand_in: StripeStandIn
) -> None:
    keys = h.app(stripe_api_key=KEY)
    answer = h.receipt(keys, "user_123", SESSION)
    assert answer.status_code == 200
    assert PRODUCT in answer.json()["subscriber"]["subscriptions"]
    assert [r.subject for r in reads(h)] == [SESSION, SUB]
    assert "expand[0]=line_items" in reads(h)[0].request


@pytest.mark.parametrize("webhook_first", [False, True], ids=["token-first", "webhook-first"])
def test_a_one_time_session_read_names_its_product_from_the_line_items(
    h: Harness, stand_in: StripeStandIn, webhook_first: bool
) -> None:
    """SPEC 7.1: `non_subscriptions[product]`, the product from the session's line items.
    Webhook sessions carry no line items, so when `checkout.session.completed` came first
    the token still reads the session: both orders end with the product."""
    paid = "cs_test_onetime0001"
    session = {
        **scenario_event(1)["data"]["object"],
        "id": paid,
        "mode": "payment",
        "payment_status": "paid",
        "subscription": None,
        "line_items": {
            "object": "list",
            "data": [{"object": "item", "price": {"id": "price_1", "product": "prod_lifetime"}}],
        },
    }
    stand_in.put(f"/v1/checkout/sessions/{paid}", session)
    keys = h.app(stripe_api_key=KEY, entitlements={"forever": ["prod_lifetime"]})
    if webhook_first:
        completed = session_event(
            event_id="evt_onetime0001",
            created=int(time.time()) - 60,
            session_id=paid,
            mode="payment",
        )
        h.webhook(keys, completed)
        h.settle()
        assert reads(h) == []
    answer = h.receipt(keys, "user_123", paid)
    assert answer.status_code == 200, answer.text
    document = answer.json()["subscriber"]
    [entry] = document["non_subscriptions"]["prod_lifetime"]
    assert entry["store_transaction_id"] == paid
    assert document["entitlements"]["forever"]["product_identifier"] == "prod_lifetime"
    assert document["subscriptions"] == {}
    [read] = reads(h)
    assert read.subject == paid and "expand[0]=line_items" in read.request
    # Known with its product now: a second token reads nothing more.
    assert h.receipt(keys, "user_123", paid).status_code == 200
    assert len(reads(h)) == 1


def test_without_a_key_nothing_is_read(h: Harness, stand_in: StripeStandIn) -> None:
    keys = h.app()
    answer = h.receipt(keys, "user_123", SUB)
    assert answer.status_code == 200
    assert answer.json()["subscriber"]["subscriptions"] == {}
    assert reads(h) == []
    assert stand_in.requests == []


@pytest.mark.parametrize(
    ("scripted", "status", "error", "fragment"),
    [
        (
            stripe_error(404, "invalid_request_error", "resource_missing", "No such subscription"),
            404,
            "resource_missing",
            "failed (404 resource_missing)",
        ),
        (
            stripe_error(
                403,
                "invalid_request_error",
                "permission_error",
                "The provided key does not have access",
            ),
            403,
            "permission_error",
            "failed (403 permission_error)",
        ),
    ],
)
def test_stripe_errors_are_recorded_and_the_token_still_answers(
    h: Harness, stand_in: StripeStandIn, scripted: Scripted, status: int, error: str, fragment: str
) -> None:
    stand_in.script(f"/v1/subscriptions/{SUB}", scripted)
    keys = h.app(stripe_api_key=KEY)
    answer = h.receipt(keys, "user_123", SUB)
    assert answer.status_code == 200
    assert answer.json()["subscriber"]["subscriptions"] == {}
    [read] = reads(h)
    assert (read.status, read.error) == (status, error)
    assert any(fragment in t for t in texts(h, keys, "user_123"))
    # the notification that arrives later still applies
    for body in scenario_bodies()[:3]:
        h.webhook(keys, body)
    h.settle()
    assert PRODUCT in h.subscriber(keys, "user_123")["subscriber"]["subscriptions"]


def test_429_is_retried_after_retry_after(h: Harness, stand_in: StripeStandIn) -> None:
    limited = stripe_error(429, "invalid_request_error", "rate_limit", "Too many requests")
    limited.headers = {"Retry-After": "1"}
    stand_in.script(f"/v1/subscriptions/{SUB}", limited)
    keys = h.app(stripe_api_key=KEY)
    started = time.monotonic()
    answer = h.receipt(keys, "user_123", SUB)
    elapsed = time.monotonic() - started
    assert answer.status_code == 200
    assert PRODUCT in answer.json()["subscriber"]["subscriptions"]
    assert elapsed >= 1.0
    assert stand_in.requests == [f"/v1/subscriptions/{SUB}"] * 2
    [read] = reads(h)
    assert read.status == 200


def test_timeouts_are_bounded_and_recorded(h: Harness, stand_in: StripeStandIn) -> None:
    slow = Scripted(200, scenario_event(2)["data"]["object"], delay_s=2.0)
    stand_in.script(f"/v1/subscriptions/{SUB}", slow, slow, slow)
    keys = h.app(stripe_api_key=KEY)
    started = time.monotonic()
    answer = h.receipt(keys, "user_123", SUB)
    elapsed = time.monotonic() - started
    assert answer.status_code == 200
    assert elapsed < 5
    [read] = reads(h)
    assert (read.status, read.error) == (0, "timeout")
    assert any("failed (0 timeout)" in t for t in texts(h, keys, "user_123"))


def _refund_setup(h: Harness, keys: Any) -> None:
    """Token, subscription, and an invoice whose paid time is too far from the charge for a
    match: only Stripe's invoice payment can link the refund."""
    h.receipt(keys, "user_123", SUB)
    bodies = scenario_bodies()
    h.webhook(keys, bodies[1])
    invoice = scenario_event(3)
    invoice["data"]["object"]["status_transitions"]["paid_at"] += 7200
    from tests.samples import event_body

    h.webhook(
        keys,
        event_body(
            "invoice.updated",
            invoice["data"]["object"],
            event_id=invoice["id"],
            created=invoice["created"],
        ),
    )
    h.webhook(keys, bodies[4])
    h.settle()


def _wait_for(predicate: Any, within_s: float = 10) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_refund_is_linked_by_reading_invoice_payments(h: Harness, stand_in: StripeStandIn) -> None:
    payment = stripe_object("invoice_payment")
    stand_in.lists["pi_3SLr4fQx7RtY2pLm1nG5cV8k"] = {
        "object": "list",
        "data": [payment],
        "has_more": False,
        "url": "/v1/invoice_payments",
    }
    stand_in.put("/v1/invoices/in_1SLr4eQx7RtY2pLmT3kW9uZa", scenario_event(3)["data"]["object"])
    keys = h.app(stripe_api_key=KEY)
    _refund_setup(h, keys)
    assert _wait_for(
        lambda: (
            h.subscriber(keys, "user_123")["subscriber"]["subscriptions"][PRODUCT]["refunded_at"]
            is not None
        )
    )
    h.settle()
    entry = h.subscriber(keys, "user_123")["subscriber"]["subscriptions"][PRODUCT]
    assert entry["refunded_at"] == entry["expires_date"] == "2026-10-11T10:11:00Z"
    assert [r.subject for r in reads(h)][-2:] == [
        "ch_3SLr4fQx7RtY2pLm1Xq0sE4m",
        "in_1SLr4eQx7RtY2pLmT3kW9uZa",
    ]
    told = texts(h, keys, "user_123")
    assert any("by Stripe's invoice payment for its payment intent" in t for t in told)
    assert any(t.startswith("invoice payments read: pi_") for t in told)  # the read itself
    # a rebuild uses the recorded answers and never calls Stripe
    calls = len(stand_in.requests)
    result = Replay(h.service.ledger).run(verify=True)
    assert result.verified is True
    assert len(stand_in.requests) == calls


def test_a_malformed_answer_never_costs_the_token(h: Harness, stand_in: StripeStandIn) -> None:
    """A proxy answering 200 with HTML: the read is recorded as it came, the session's
    subscription is not read, and the token is stored and answered."""
    stand_in.script(f"/v1/checkout/sessions/{SESSION}", Scripted(200, b"<html>oops</html>"))
    keys = h.app(stripe_api_key=KEY)
    answer = h.receipt(keys, "user_123", SESSION)
    assert answer.status_code == 200, answer.text
    [read] = reads(h)
    assert (read.subject, read.status, read.body) == (SESSION, 200, b"<html>oops</html>")
    assert any("unexpected" in t for t in texts(h, keys, "user_123"))


def test_a_malformed_invoice_payments_list_does_not_stop_the_projection(
    h: Harness, stand_in: StripeStandIn
) -> None:
    """A list whose items are not invoice payments is recorded, explained and skipped:
    a fact the fold could not read would stop every later fact (and every receipt)."""
    stand_in.lists["pi_3SLr4fQx7RtY2pLm1nG5cV8k"] = {
        "object": "list",
        "data": [{"id": 7, "invoice": ["not", "an", "id"]}],
        "has_more": False,
        "url": "/v1/invoice_payments",
    }
    keys = h.app(stripe_api_key=KEY)
    _refund_setup(h, keys)
    assert _wait_for(lambda: any(r.subject.startswith("ch_") for r in reads(h)))
    h.settle()  # the projection passed the list's fact
    assert h.receipt(keys, "user_123", SUB).status_code == 200


def test_busy_read_slots_store_the_token_without_reading(
    h: Harness, stand_in: StripeStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A slow Stripe holds every read slot: the next token is stored without a read rather
    than waiting on (and taking) a worker thread that webhooks need."""
    monkeypatch.setattr("subledger.service.READ_SLOTS", 1)
    monkeypatch.setattr(h.service.reads, "timeout_s", 20.0)  # the read waits for the gate
    gate = threading.Event()
    stand_in.script(
        f"/v1/subscriptions/{SUB}", Scripted(200, scenario_event(2)["data"]["object"], gate=gate)
    )
    keys = h.app(stripe_api_key=KEY)
    first: list[int] = []
    reading = threading.Thread(target=lambda: first.append(h.receipt(keys, "u1", SUB).status_code))
    reading.start()
    try:
        assert _wait_for(lambda: len(stand_in.requests) == 1)  # the read holds the one slot
        assert h.receipt(keys, "u2", "sub_Other0001").status_code == 200
    finally:
        gate.set()
        reading.join(timeout=30)
    assert first == [200]
    assert stand_in.requests == [f"/v1/subscriptions/{SUB}"]  # the second never read


def test_without_a_key_the_refund_stays_unlinked(h: Harness, stand_in: StripeStandIn) -> None:
    h.app(stripe_api_key=KEY)  # another app has a key, so the linker does look at refunds
    keys = h.app()
    _refund_setup(h, keys)
    h.service.registry.refresh()
    assert h.service.refunds.step() == 0  # (its background thread may have run first)
    h.settle()
    entry = h.subscriber(keys, "user_123")["subscriber"]["subscriptions"][PRODUCT]
    assert entry["refunded_at"] is None
    assert entry["expires_date"] == "2026-11-01T09:00:00Z"
    assert stand_in.requests == []
    history = h.history(keys, "user_123")
    assert any(
        "not linked to an invoice yet (unlinked refund)" in e["what_changed"] for e in history
    )
