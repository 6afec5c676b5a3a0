"""A fact the fold cannot apply never stops the ledger (issue 17): it is recorded as
unprojectable with its reason, the projection moves on, a rebuild does the same, and store
failures are retried instead of being taken for such a fact.

The facts are appended straight to the store, as an older version (which validated less at
the boundary) or a rule bug would have left them.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from eventsourcing.persistence import StoredEvent

from projections.replay import Replay
from projections.storage.db import ViewDb
from subledger.facts import Fact, received_notification
from subledger.settings import Database
from tests.harness import FoldStore, Harness
from tests.samples import DAY, notification, subscription_created, token

T0 = 1_795_000_000_000
C = 1_795_000_000
PERIOD = (C - 100, C - 100 + 30 * DAY)


@pytest.fixture
def store(database: Database) -> Iterator[FoldStore]:
    opened = FoldStore(database)
    yield opened
    opened.close()


def valid_purchase(app_id: str, sub_id: str = "sub_Good0001") -> list[Fact]:
    created = subscription_created(
        event_id=f"evt_{sub_id}", created=C, sub_id=sub_id, period=PERIOD
    )
    return [token(app_id, T0, user="alice", fetch=sub_id), notification(app_id, created, T0 + 1)]


def stored_as_is(app_id: str, event_id: str, body: bytes) -> Fact:
    """A `customer.subscription.created` notification as an older version stored it, before
    the boundary refused what the fold and the stores cannot hold."""
    return received_notification(
        app_id,
        event_id=event_id,
        event_type="customer.subscription.created",
        created=C,
        livemode=False,
        api_version=None,
        body=body,
        received_at_ms=T0,
        secret_fingerprint="test",
    )


def with_invalid_utf8(app_id: str) -> Fact:
    """A signed body with an invalid UTF-8 byte inside a string value."""
    body = subscription_created(
        event_id="evt_bad_utf8", created=C, sub_id="sub_Bad0001", period=PERIOD
    )
    return stored_as_is(
        app_id, "evt_bad_utf8", body.replace(b'"sub_Bad0001"', b'"sub_Bad\xff0001"', 1)
    )


def test_a_fact_the_fold_cannot_read_is_recorded_and_the_projection_moves_on(
    store: FoldStore,
) -> None:
    app_id = store.new_app()
    store.ledger.record_new([with_invalid_utf8(app_id)])
    for fact in valid_purchase(app_id):
        store.ledger.record_new([fact])
    store.projector.catch_up()
    assert store.projector.position == store.ledger.last_position()
    doc = store.doc(app_id, "alice")
    assert doc is not None and doc["subscriptions"]  # the facts after it applied
    count, [found] = store.reader.unprojectable()
    assert count == 1
    assert found.kind == "stripe:customer.subscription.created"
    assert "UTF-8" in found.reason
    [entry] = store.reader.history(app_id, ["event:evt_bad_utf8"])
    assert "could not be applied" in entry.text


def test_a_rebuild_skips_the_same_facts_and_verifies(store: FoldStore) -> None:
    app_id = store.new_app()
    store.ledger.record_new([with_invalid_utf8(app_id)])
    for fact in valid_purchase(app_id):
        store.ledger.record_new([fact])
    store.projector.catch_up()
    result = Replay(store.ledger, batch_size=2).run(verify=True)
    assert result.verified is True, result.differences


def test_a_record_that_does_not_decode_is_unprojectable(store: FoldStore) -> None:
    """A stored record no fact class can read (a store written by another version)."""
    app_id = store.new_app()
    store.ledger.recorder.insert_events(
        [StoredEvent(uuid.uuid4(), 1, "subledger.facts:TokenPosted", b"\xc1 not msgpack")]
    )
    for fact in valid_purchase(app_id):
        store.ledger.record_new([fact])
    store.projector.catch_up()
    count, [found] = store.reader.unprojectable()
    assert (count, found.kind) == (1, "unreadable")
    assert store.doc(app_id, "alice") is not None


@pytest.mark.tampers_read_models  # PostgreSQL cannot hold what memory and SQLite hold
def test_an_id_the_store_cannot_hold_is_set_apart_inside_a_batch(store: FoldStore) -> None:
    """NUL in a purchase key: PostgreSQL refuses it when the batch is written (SQLite
    keeps it). Either way the other facts of the same batch apply."""
    app_id = store.new_app(track_new_purchases=True)
    body = subscription_created(event_id="evt_nul", created=C, sub_id="sub_Nul0001", period=PERIOD)
    facts = [
        stored_as_is(app_id, "evt_nul", body.replace(b"sub_Nul0001", b"sub_Nul\\u00000001")),
        *valid_purchase(app_id),
    ]
    store.ledger.record_new(facts)  # one batch of the projector holds all three
    store.projector.catch_up()
    assert store.projector.position == store.ledger.last_position()
    assert store.doc(app_id, "alice") is not None
    count, found = store.reader.unprojectable()
    if store.ledger.database.kind == "postgresql":
        assert count == 1 and "0x00" in found[0].reason
    else:
        assert count == 0


def test_a_store_failure_is_retried_not_taken_for_a_bad_fact(store: FoldStore) -> None:
    """The projection lock held elsewhere past the lock timeout: the batch fails, nothing
    is marked, and the next attempt applies it."""
    app_id = store.new_app()
    for fact in valid_purchase(app_id):
        store.ledger.record_new([fact])
    store.projector.db.lock_timeout_s = 0.2
    holder = ViewDb(store.ledger.database)
    with holder.write(), pytest.raises((sqlite3.OperationalError, psycopg.OperationalError)):
        store.projector.catch_up()
    holder.close()
    assert store.reader.unprojectable()[0] == 0
    store.projector.catch_up()
    assert store.doc(app_id, "alice") is not None
    assert store.reader.unprojectable()[0] == 0


def test_events_lists_the_reason(store: FoldStore, capsys: pytest.CaptureFixture[str]) -> None:
    from subledger.cli import main

    app_id = store.new_app()
    store.ledger.record_new([with_invalid_utf8(app_id)])
    store.projector.catch_up()
    with contextlib.suppress(SystemExit):
        main_env = {"SUBLEDGER_DATABASE_URL": store.ledger.database.url}
        with pytest.MonkeyPatch.context() as patch:
            for key, value in main_env.items():
                patch.setenv(key, value)
            assert main(["events", "--app", app_id, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    [bad] = [row for row in rows if row["fact"] == "NotificationReceived"]
    assert "UTF-8" in bad["unprojectable"]


def test_ready_and_metrics_count_what_could_not_be_applied(h: Harness) -> None:
    keys = h.app()
    h.ledger.record_new([with_invalid_utf8(keys.app_id)])
    h.settle()
    ready = h.client.get("/ready").json()["projection"]
    assert ready["unprojectable"] == 1
    assert ready["latest_unprojectable"]["kind"] == "stripe:customer.subscription.created"
    metrics = h.client.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    assert "\nsubledger_unprojectable_facts 1\n" in metrics.text
    position = h.ledger.last_position()
    assert f"\nsubledger_projection_position {position}\n" in metrics.text
