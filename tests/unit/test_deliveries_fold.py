"""Deliveries in the fold (SPEC 10): queued per integration, moved by recorded attempts and
operator requests; the outbox holds exactly what is pending, keyed by when it is due."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from projections.model import DELIVERIES, OUTBOUND_EVENTS, OUTBOX
from projections.rules.subjects import outbox_key, outbox_range
from projections.storage.memory import MemoryTables
from projections.storage.tables import ROW_TYPES
from subledger import apps
from subledger.facts import DeliveryAttempted, RedeliveryRequested, TestEventRequested
from tests.memory import MemoryLog, history
from tests.samples import notification, subscription_created
from tests.unit.test_outbound_events import P1, T0, C, token

SUB = "sub_Test0001"


def attempt(app_id: str, event: str, n: int, status: int, at: int, **extra: Any) -> Any:
    return DeliveryAttempted(
        originator_id=uuid.uuid4(),
        app_id=app_id,
        received_at_ms=at,
        integration_id=extra.pop("integration", "int_a"),
        outbound_event_id=event,
        attempt=n,
        status=status,
        **extra,
    )


def purchase_log(*integrations: str) -> tuple[MemoryLog, str]:
    log = MemoryLog()
    app_id = log.new_app()
    for integration in integrations:
        log.add_integration(app_id, integration)
    log.append(
        token(app_id, T0),
        notification(app_id, subscription_created(event_id="evt_c", created=C, period=P1), T0 + 1),
    )
    return log, app_id


def rows(tables: MemoryTables, table: str) -> dict[str, Any]:
    """Rows decoded (stored rows omit default values)."""
    decode = msgspec.json.Decoder(ROW_TYPES[table]).decode
    return {key[1]: decode(raw) for key, raw in tables.tables[table].items()}


def only_event(tables: MemoryTables) -> str:
    (event,) = rows(tables, OUTBOUND_EVENTS)
    return str(event)


def test_an_event_is_one_pending_delivery_per_integration_due_at_once() -> None:
    log, _ = purchase_log("int_a", "int_b")
    tables = log.fold()
    event = only_event(tables)
    deliveries = rows(tables, DELIVERIES)
    assert set(deliveries) == {f"int_a/{event}", f"int_b/{event}"}
    assert {d.status for d in deliveries.values()} == {"pending"}
    assert set(rows(tables, OUTBOX)) == {
        f"int_a/{T0 + 1:015d}/{event}",
        f"int_b/{T0 + 1:015d}/{event}",
    }
    low, high = outbox_range("int_a", T0 + 1)
    assert [k for k in rows(tables, OUTBOX) if low <= k < high] == [f"int_a/{T0 + 1:015d}/{event}"]
    assert not [
        k
        for k in rows(tables, OUTBOX)
        if outbox_range("int_a", T0)[0] <= k < outbox_range("int_a", T0)[1]
    ]


def test_attempts_move_a_delivery_through_retries_to_delivered() -> None:
    log, app_id = purchase_log("int_a")
    event = only_event(log.fold())
    log.append(attempt(app_id, event, 1, 500, T0 + 10, next_attempt_at_ms=T0 + 5000))
    tables = log.fold()
    (key,) = rows(tables, OUTBOX)
    assert key == f"int_a/{T0 + 5000:015d}/{event}"
    assert rows(tables, OUTBOX)[key].attempt == 2
    assert rows(tables, OUTBOX)[key].retry == 1
    log.append(attempt(app_id, event, 2, 200, T0 + 5010, duration_ms=12))
    tables = log.fold()
    assert rows(tables, OUTBOX) == {}
    delivery = rows(tables, DELIVERIES)[f"int_a/{event}"]
    assert delivery.status == "delivered"
    assert [a.attempt for a in delivery.attempts] == [1, 2]
    texts = [e.text for e in history(tables, app_id, [SUB])]
    assert any("attempt 1 answered 500; retry at" in t for t in texts)
    assert any("attempt 2 delivered in 12 ms" in t for t in texts)


def test_a_given_up_delivery_fails_and_an_operator_can_send_it_again() -> None:
    log, app_id = purchase_log("int_a")
    event = only_event(log.fold())
    log.append(attempt(app_id, event, 1, 0, T0 + 10, error="timeout"))
    tables = log.fold()
    assert rows(tables, DELIVERIES)[f"int_a/{event}"].status == "failed"
    assert rows(tables, OUTBOX) == {}
    log.append(
        RedeliveryRequested(
            originator_id=uuid.uuid4(),
            app_id=app_id,
            received_at_ms=T0 + 99,
            integration_id="int_a",
            outbound_event_id=event,
        )
    )
    tables = log.fold()
    delivery = rows(tables, DELIVERIES)[f"int_a/{event}"]
    assert (delivery.status, delivery.retry) == ("pending", 0)
    assert rows(tables, OUTBOX)[f"int_a/{T0 + 99:015d}/{event}"].attempt == 2


def test_a_late_attempt_never_undoes_a_delivery() -> None:
    log, app_id = purchase_log("int_a")
    event = only_event(log.fold())
    log.append(
        attempt(app_id, event, 1, 200, T0 + 10),
        attempt(app_id, event, 1, 503, T0 + 11, next_attempt_at_ms=T0 + 99),
    )
    tables = log.fold()
    delivery = rows(tables, DELIVERIES)[f"int_a/{event}"]
    assert delivery.status == "delivered"
    assert len(delivery.attempts) == 2
    assert rows(tables, OUTBOX) == {}


def test_removing_an_integration_cancels_what_it_had_pending() -> None:
    log, app_id = purchase_log("int_a", "int_b")
    event = only_event(log.fold())
    log.settings(app_id, apps.IntegrationRemoved, integration_id="int_a")
    tables = log.fold()
    deliveries = rows(tables, DELIVERIES)
    assert deliveries[f"int_a/{event}"].status == "canceled"
    assert deliveries[f"int_b/{event}"].status == "pending"
    assert [k.split("/")[0] for k in rows(tables, OUTBOX)] == ["int_b"]


def test_a_test_event_goes_to_the_one_integration_asked_for() -> None:
    log = MemoryLog()
    app_id = log.new_app()
    log.add_integration(app_id, "int_a", event_types=("RENEWAL",))
    log.add_integration(app_id, "int_b")
    log.append(
        TestEventRequested(
            originator_id=uuid.uuid4(), app_id=app_id, received_at_ms=T0, integration_id="int_a"
        )
    )
    tables = log.fold()
    (body,) = [row.body for row in rows(tables, OUTBOUND_EVENTS).values()]
    assert body.type == "TEST"
    assert list(rows(tables, DELIVERIES)) == [f"int_a/{body.id}"]


# --- properties ----------------------------------------------------------------------------

Step = tuple[str, int, int | None]  # (kind, status, retry at)


@settings(max_examples=400, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from(["attempt", "attempt", "attempt", "resend", "remove"]),
            st.sampled_from([200, 500, 0]),
            st.none() | st.integers(0, 10**6),
        ),
        max_size=12,
    ),
    batch_size=st.integers(1, 5),
)
def test_the_outbox_holds_exactly_the_pending_deliveries(
    steps: list[Step], batch_size: int
) -> None:
    """Whatever attempts, re-sends and removals are recorded, in whatever batches: every
    pending delivery has one outbox entry at its due time and nothing else is there; a
    delivery once delivered stays delivered until re-sent; every attempt is kept."""
    log, app_id = purchase_log("int_a", "int_b")
    event = only_event(log.fold())
    attempts = 0
    for n, (kind, status, retry_at) in enumerate(steps):
        at = T0 + 10 + n
        if kind == "attempt":
            log.append(attempt(app_id, event, n + 1, status, at, next_attempt_at_ms=retry_at))
            attempts += 1
        elif kind == "resend":
            log.append(
                RedeliveryRequested(
                    originator_id=uuid.uuid5(uuid.NAMESPACE_OID, f"resend/{n}"),
                    app_id=app_id,
                    received_at_ms=at,
                    integration_id="int_a",
                    outbound_event_id=event,
                )
            )
        else:
            log.settings(app_id, apps.IntegrationRemoved, integration_id="int_b")
    tables = log.fold(batch_size=batch_size)
    deliveries = rows(tables, DELIVERIES)
    expected = {
        outbox_key(d.integration, d.due_ms, d.event)
        for d in deliveries.values()
        if d.status == "pending" and d.due_ms is not None
    }
    assert set(rows(tables, OUTBOX)) == expected
    assert all((d.status == "pending") == (d.due_ms is not None) for d in deliveries.values())
    assert len(deliveries[f"int_a/{event}"].attempts) == attempts
    assert tables.rows() == log.fold(batch_size=1000).rows()
