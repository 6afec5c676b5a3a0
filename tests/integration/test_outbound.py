"""Outbound webhooks end to end (SPEC 10), on SQLite and PostgreSQL: the service derives
events, its sender POSTs them to a real receiver, retries on its schedule (seconds here),
records every attempt as a fact, and never lets one receiver hold up another."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest

from projections.deliveries import DeliveryReader
from projections.model import Delivery
from projections.replay import Replay
from projections.storage.db import ViewDb
from subledger.delivery.deliverer import Deliverer
from subledger.delivery.lease import Lease
from subledger.facts import DeliveryAttempted
from subledger.ledger import Ledger
from subledger.registry import AppRegistry
from subledger.settings import Settings, parse_database_url
from tests.harness import AppKeys, Harness, harness
from tests.integration.test_apps_cli import Cli
from tests.receiver import Receiver, running_receiver
from tests.samples import DAY, scenario_bodies, subscription_created, subscription_event

SCENARIO_SUB = "sub_1SLr4eQx7RtY2pLmVb2NcQ8s"
SUB = "sub_Test0001"
NOW = int(time.time())
PERIOD = (NOW - DAY, NOW + 29 * DAY)


def quick(settings: Settings, **more: Any) -> Settings:
    """RevenueCat's schedule in tenths of a second, and a short timeout."""
    fast: dict[str, Any] = {"delivery_retries_s": (0.1, 0.2), "delivery_timeout_s": 3.0}
    return msgspec.structs.replace(settings, **{**fast, **more})


@pytest.fixture
def rx() -> Iterator[Receiver]:
    with running_receiver() as receiver:
        yield receiver


def integrate(h: Harness, keys: AppKeys, url: str, **options: Any) -> str:
    _, integration = h.ledger.add_integration(keys.app_id, url, **options)
    h.refresh()
    return integration.id


def deliveries(h: Harness, keys: AppKeys) -> list[Delivery]:
    return [d for _, d in DeliveryReader(h.service.reader).deliveries(keys.app_id, limit=0)]


def settled(h: Harness, keys: AppKeys, count: int, timeout_s: float = 15.0) -> list[Delivery]:
    """Wait until `count` deliveries exist and none is pending."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        h.settle()
        found = deliveries(h, keys)
        if len(found) >= count and all(d.status != "pending" for d in found):
            return found
        time.sleep(0.05)
    raise AssertionError(f"deliveries did not settle: {deliveries(h, keys)}")


def purchase(h: Harness, keys: AppKeys, *bodies: bytes) -> None:
    assert h.receipt(keys, "user_123", SUB).status_code == 200
    for body in bodies or (subscription_created(event_id="evt_c", created=NOW, period=PERIOD),):
        h.webhook(keys, body)


def test_the_lifecycle_reaches_the_receiver_with_its_authorization(
    settings: Settings, rx: Receiver
) -> None:
    with harness(quick(settings)) as h:
        keys = h.app()
        integrate(h, keys, rx.url(), authorization="Bearer s3cret")
        assert h.receipt(keys, "user_123", SCENARIO_SUB).status_code == 200
        for body in scenario_bodies():
            h.webhook(keys, body)
        got = rx.wait_for("/hook", 4)
        done = settled(h, keys, 4)
        history = " ".join(e["what_changed"] for e in h.history(keys, "user_123"))
    assert sorted(r.event["type"] for r in got) == [
        "CANCELLATION",
        "CANCELLATION",
        "EXPIRATION",
        "INITIAL_PURCHASE",
    ]
    first = got[0]
    assert first.headers["authorization"] == "Bearer s3cret"
    assert first.headers["content-type"] == "application/json"
    assert list(msgspec.json.decode(first.body)) == ["event", "api_version"]
    assert {d.status for d in done} == {"delivered"}
    assert {r.event["app_user_id"] for r in got} == {"user_123"}
    assert history.count("delivered in") == 4  # explain shows what was sent when


def test_a_failed_attempt_is_retried_with_the_same_id_timestamp_and_bytes(
    settings: Settings, rx: Receiver
) -> None:
    rx.answers["/hook"] = [500, 204]  # only 200 is a success
    with harness(quick(settings)) as h:
        keys = h.app()
        integrate(h, keys, rx.url())
        purchase(h, keys)
        got = rx.wait_for("/hook", 3)
        (delivery,) = settled(h, keys, 1)
    assert len({r.body for r in got}) == 1
    assert delivery.status == "delivered"
    assert [(a.attempt, a.status) for a in delivery.attempts] == [(1, 500), (2, 204), (3, 200)]
    assert got[1].at - got[0].at >= 0.1  # the schedule: 0.1 s, then 0.2 s
    assert got[2].at - got[1].at >= 0.2


def test_refused_500_and_timeout_are_retried_with_the_same_id_and_timestamp(
    settings: Settings, rx: Receiver
) -> None:
    """Issue 20 item 6: connection refused, 500, a timeout, then 200, for one delivery: the
    same body bytes (so the same `id` and `event_timestamp_ms`) every time."""
    with socket.socket() as probe:  # a port nobody listens on: connections are refused
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}/hook"
    rx.answers["/hook"] = [500]
    rx.pauses["/hook"] = [0.0, 1.5]  # the second request outlasts the timeout
    fast = quick(settings, delivery_retries_s=(0.5, 0.3, 0.3), delivery_timeout_s=0.5)
    with harness(fast) as h:
        keys = h.app()
        integration = integrate(h, keys, closed)
        purchase(h, keys)
        deadline = time.monotonic() + 10
        while not any(d.attempts for d in deliveries(h, keys)):
            assert time.monotonic() < deadline, "no first attempt"
            time.sleep(0.02)
            h.settle()
        h.ledger.set_integration(keys.app_id, integration, url=rx.url())  # the receiver is up
        h.refresh()
        got = rx.wait_for("/hook", 3)
        (delivery,) = settled(h, keys, 1)
    outcomes = [(a.attempt, a.status, a.error.split(":")[0]) for a in delivery.attempts]
    assert outcomes == [
        (1, 0, "ConnectError"),
        (2, 500, "HTTP 500 (only 200 is a success)"),
        (3, 0, "no complete answer within 0.5 s"),
        (4, 200, ""),
    ]
    assert delivery.status == "delivered"
    assert len({r.body for r in got}) == 1
    assert got[0].event["id"] == delivery.event


def test_a_delivery_given_up_is_shown_failed_and_an_operator_resends_it(
    settings: Settings,
    rx: Receiver,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rx.answers["/hook"] = [503, 503, 503]
    cli = Cli(database_url, monkeypatch, capsys)
    with harness(quick(settings)) as h:
        keys = h.app()
        integration = integrate(h, keys, rx.url())
        purchase(h, keys)
        (failed,) = settled(h, keys, 1)
        assert failed.status == "failed"
        assert len(failed.attempts) == 3  # the first and the two retries of the schedule
        listed = cli.json("deliveries", "--app", keys.app_id, "--status", "failed")
        assert [d["event"] for d in listed] == [failed.event]
        assert [a["status"] for a in listed[0]["attempts"]] == [503, 503, 503]
        resend = ("deliveries", "resend", failed.event, "--integration", integration)
        assert cli.json(*resend) == {
            "requested": 1,
            "position": h.ledger.last_position(),
        }
        got = rx.wait_for("/hook", 4)
        h.settle()
        (delivery,) = settled(h, keys, 1)
    assert delivery.status == "delivered"
    assert [a.attempt for a in delivery.attempts] == [1, 2, 3, 4]
    assert len({r.body for r in got}) == 1


def test_a_timeout_is_a_failed_attempt(settings: Settings, rx: Receiver) -> None:
    rx.delays["/hook"] = 1.0
    with harness(quick(settings, delivery_timeout_s=0.3, delivery_retries_s=())) as h:
        keys = h.app()
        integrate(h, keys, rx.url())
        purchase(h, keys)
        (delivery,) = settled(h, keys, 1)
    assert delivery.status == "failed"
    (only,) = delivery.attempts
    assert (only.status, only.error) == (0, "no complete answer within 0.3 s")
    assert 300 <= only.duration_ms < 1000


def test_a_slow_receiver_never_delays_another_integration(settings: Settings, rx: Receiver) -> None:
    """Three events; the slow receiver answers each after 1.5 s, one at a time: the fast
    one has all three long before the slow one has its second, and ingest, a receipt and
    the projection go on meanwhile."""
    rx.delays["/slow"] = 1.5
    with harness(quick(settings, delivery_concurrency=1)) as h:
        keys = h.app()
        integrate(h, keys, rx.url("/slow"))
        integrate(h, keys, rx.url("/fast"))
        bodies = [
            subscription_created(event_id="evt_c", created=NOW, period=PERIOD),
            subscription_event(
                event_id="evt_u", created=NOW + 1, period=PERIOD, cancel_at_period_end=True
            ),
            subscription_event(event_id="evt_r", created=NOW + 2, period=PERIOD),
        ]
        purchase(h, keys, *bodies)
        fast = rx.wait_for("/fast", 3)
        slow_so_far = len(rx.at("/slow"))
        # Ingest, receipts and the projection while the slow receiver holds its slot.
        started = time.monotonic()
        h.webhook(keys, bodies[0])  # Stripe sends one again: a fact, no event
        assert h.receipt(keys, "user_123", SUB).status_code == 200
        h.settle()
        meanwhile = time.monotonic() - started
        rx.wait_for("/slow", 3, timeout_s=20)
        settled(h, keys, 6)
    assert slow_so_far <= 2
    assert fast[-1].at - fast[0].at < 1.5
    assert meanwhile < 1.0


def test_a_rebuild_sends_nothing_again(settings: Settings, rx: Receiver) -> None:
    with harness(quick(settings)) as h:
        keys = h.app()
        integrate(h, keys, rx.url())
        purchase(h, keys)
        settled(h, keys, 1)
        assert Replay(h.ledger).run().swapped
        h.settle()
        time.sleep(1.0)  # the sender polls twice a second
        assert [d.status for d in deliveries(h, keys)] == ["delivered"]
    assert len(rx.at("/hook")) == 1


def test_one_sender_at_a_time_across_processes(settings: Settings, rx: Receiver) -> None:
    """Two senders (two processes', here threads with registries of their own) start on a
    full outbox at once: the lease lets one send, so each event is posted once."""
    rx.delays["/hook"] = 0.3  # both would have every event in flight before one recorded
    with harness(quick(settings, delivery="external")) as h:
        keys = h.app()
        integrate(h, keys, rx.url())
        purchase(
            h,
            keys,
            subscription_created(event_id="evt_c", created=NOW, period=PERIOD),
            subscription_event(
                event_id="evt_u", created=NOW + 1, period=PERIOD, cancel_at_period_end=True
            ),
        )
        h.settle()
        senders = []
        for _ in range(2):
            registry = AppRegistry(h.ledger, h.service.sealer)
            registry.refresh()
            reader = h.service.reader
            senders.append(Deliverer(h.ledger, reader, registry, h.service.settings, poll_s=0.02))
        stop = threading.Event()
        threads = [threading.Thread(target=s.run, args=(stop,)) for s in senders]
        for thread in threads:
            thread.start()
        try:
            settled(h, keys, 2)
        finally:
            stop.set()
            for thread in threads:
                thread.join()
    assert len(rx.at("/hook")) == 2
    assert sorted(s.attempts for s in senders) == [0, 2]


def test_a_lease_is_held_by_one_until_released_or_expired(database_url: str) -> None:
    database = parse_database_url(database_url)
    Ledger(database).close()  # the store (and its PostgreSQL schema) exists
    db = ViewDb(database)
    try:
        first, second = Lease(db, "job", "a", ttl_s=10), Lease(db, "job", "b", ttl_s=10)
        assert first.hold(now_ms=1_000)
        assert not second.hold(now_ms=2_000)
        assert first.hold(now_ms=9_000)  # renewed past half of its hold: until 19,000
        assert not second.hold(now_ms=18_000)
        assert second.hold(now_ms=19_001)  # expired: taken over
        assert not first.hold(now_ms=19_002)
        second.release()
        assert first.hold(now_ms=19_003)
    finally:
        db.close()


def test_a_test_event_from_the_cli(
    settings: Settings,
    rx: Receiver,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cli = Cli(database_url, monkeypatch, capsys)
    with harness(quick(settings)) as h:
        keys = h.app()
        added = cli.json(
            "apps", "add-integration", keys.app_id, "--url", rx.url(), "--events", "renewal"
        )
        assert added["event_types"] == ["RENEWAL"]
        h.refresh()
        cli.json("apps", "test-integration", keys.app_id, added["id"])
        (got,) = rx.wait_for("/hook", 1)
        settled(h, keys, 1)
    assert got.event["type"] == "TEST"
    assert got.event["app_id"] == keys.app_id
    assert "authorization" not in got.headers


class Misrecording(Deliverer):
    """A sender whose attempts do not move their delivery (as if the fold could not apply
    them): it must not post the same delivery again and again."""

    async def _append(self, facts: list[DeliveryAttempted]) -> int:
        lost = [msgspec.structs.replace(f, outbound_event_id="not-this-event") for f in facts]
        return await super()._append(lost)


def test_an_attempt_that_does_not_apply_is_never_resent_in_a_loop(
    settings: Settings, rx: Receiver
) -> None:
    with harness(quick(settings, delivery="external")) as h:
        keys = h.app()
        integrate(h, keys, rx.url())
        purchase(h, keys)
        h.settle()
        registry = AppRegistry(h.ledger, h.service.sealer)
        registry.refresh()
        sender = Misrecording(
            h.ledger, h.service.reader, registry, h.service.settings, appended=h.settle, poll_s=0.02
        )
        stop = threading.Event()
        thread = threading.Thread(target=sender.run, args=(stop,))
        thread.start()
        try:
            rx.wait_for("/hook", 1)
            time.sleep(1.0)  # fifty polls
        finally:
            stop.set()
            thread.join()
        h.settle()
        (delivery,) = deliveries(h, keys)
    assert len(rx.at("/hook")) == 1
    assert delivery.status == "pending"  # shown as stuck, for an operator to look at


def test_a_changed_integration_reaches_the_running_sender(settings: Settings, rx: Receiver) -> None:
    """`set-integration` is a settings fact: the fold filters with the new types from there
    on, and the running sender posts to the new URL with the new Authorization."""
    with harness(quick(settings)) as h:
        keys = h.app()
        integration = integrate(h, keys, rx.url("/old"), event_types=["RENEWAL"])
        h.ledger.set_integration(
            keys.app_id,
            integration,
            url=rx.url("/new"),
            authorization="Bearer changed",
            event_types=[],
        )
        h.refresh()
        purchase(h, keys)
        (got,) = rx.wait_for("/new", 1)
        (delivery,) = settled(h, keys, 1)
    assert got.event["type"] == "INITIAL_PURCHASE"  # RENEWAL only no more
    assert got.headers["authorization"] == "Bearer changed"
    assert delivery.integration == integration
    assert rx.at("/old") == []


def test_ready_and_metrics_report_the_delivery_backlog(settings: Settings, rx: Receiver) -> None:
    with harness(quick(settings, delivery="external")) as h:  # no sender: it stays pending
        keys = h.app()
        assert h.client.get("/ready").json()["deliveries"] == {
            "pending": 0,
            "due": 0,
            "oldest_pending_age_ms": 0,
        }
        integrate(h, keys, rx.url())
        integrate(h, keys, rx.url("/other"))
        started = time.time()
        purchase(h, keys)
        h.settle()
        time.sleep(0.3)
        backlog = h.client.get("/ready").json()["deliveries"]
        waited_ms = (time.time() - started) * 1000
        metrics = h.client.get("/metrics").text
    assert backlog["pending"] == backlog["due"] == 2
    assert 300 <= backlog["oldest_pending_age_ms"] <= waited_ms + 50
    assert "subledger_deliveries_pending 2\n" in metrics
    assert "subledger_deliveries_due 2\n" in metrics
    assert "subledger_deliveries_oldest_pending_age_ms " in metrics
    assert rx.at("/hook") == []
