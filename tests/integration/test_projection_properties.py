"""Properties of the projector on real stores: rebuilds, restarts, concurrent projectors and
replays never change the result. Arrival order is a property of the fold, tested in
memory with thousands of examples (tests/unit/test_fold_properties.py); every store of
these tests is compared with that fold byte for byte (tests/conftest.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from projections.replay import Replay, drop_projection
from projections.runner import UPSTREAM, Projector
from projections.storage.tables import LIVE
from subledger.facts import Fact, TestEventRequested
from subledger.settings import Database
from tests.harness import FoldStore
from tests.samples import notification, scenario_bodies, subscription_event, token

SUB = "sub_1SLr4eQx7RtY2pLmVb2NcQ8s"
BODIES = scenario_bodies()
T0 = 1_795_000_000_000  # fixed receive times: documents must be byte-identical


@pytest.fixture
def store(database: Database) -> Iterator[FoldStore]:
    running = FoldStore(database)
    yield running
    running.close()


def document_after(store: FoldStore, order: list[int], token_at: int) -> str | None:
    """Token at index `token_at` of the delivery sequence, notifications in `order`."""
    app_id = store.new_app()
    facts: list[Fact] = [
        notification(app_id, BODIES[i], T0 + 1000 + k) for k, i in enumerate(order)
    ]
    facts.insert(token_at, token(app_id, T0))
    for fact in facts:
        store.ledger.record_new([fact])
    store.projector.catch_up()
    return store.reader.document(app_id, "user_123")


def test_reference_document_has_the_scenario(store: FoldStore) -> None:
    doc = document_after(store, list(range(6)), 0)
    assert doc is not None
    assert '"expires_date":"2026-10-11T10:11:00Z"' in doc


def test_rebuild_from_empty_tables_matches_live(store: FoldStore) -> None:
    for token_at in (0, 3, 6):
        document_after(store, [5, 2, 0, 4, 1, 3], token_at)
    tracked = store.new_app(track_new_purchases=True)
    store.ledger.add_integration(tracked, "http://127.0.0.1:9/hook")  # outbound rows too
    for k, body in enumerate(BODIES):
        store.ledger.record_new([notification(tracked, body, T0 + k)])
    store.ledger.record(token(tracked, T0 + 100, user="someone_else"))
    store.projector.catch_up()
    result = Replay(store.ledger, batch_size=4).run(verify=True)
    assert result.verified is True, result.differences
    assert [c.projection for c in result.checksums] == [
        "purchases",
        "ownership",
        "customers",
        "history",
        "outbound",
        "charts",
    ]
    assert all(c.rows > 0 for c in result.checksums)
    swapped = Replay(store.ledger, batch_size=1000).run()
    assert swapped.swapped
    assert [c.checksum for c in swapped.checksums] == [c.checksum for c in result.checksums]
    store.projector.catch_up()
    assert Replay(store.ledger).run(verify=True).verified is True


def test_a_projector_stopped_midway_resumes_where_it_stopped(store: FoldStore) -> None:
    """A restarted projector (a new process: nothing cached) continues from the tracked
    position; the tables end up as a rebuild from empty makes them, nothing applied twice."""
    app_id = store.new_app(track_new_purchases=True)
    for k, body in enumerate(BODIES):
        store.ledger.record_new([notification(app_id, body, T0 + k)])
    store.ledger.record(token(app_id, T0 + 100))
    store.ledger.record(token(app_id, T0 + 101, user="someone_else"))
    for _ in range(2):
        assert store.projector.step() == 3  # two batches of three, then "crash"
    stopped_at = store.projector.position
    assert 0 < stopped_at < store.ledger.last_position()
    store.projector.close()

    restarted = Projector(store.ledger, batch_size=3)
    store.projector = restarted
    with restarted.db.read() as cur:
        assert restarted.stored_state(cur)[0] == stopped_at
    total = len(store.ledger.log_page(1, 1000))
    assert restarted.catch_up() == total - 6  # all the rest, at once, none again
    assert restarted.position == store.ledger.last_position()
    result = Replay(store.ledger).run(verify=True)
    assert result.verified is True, result.differences


def test_a_projector_whose_stored_position_went_back_reads_from_there(store: FoldStore) -> None:
    """The store's tables and tracking went back to an earlier position (a restored
    backup, or commits a crash lost) while a projector ran ahead: its next batch must
    start after the stored position, not after its own, or the facts between are lost."""
    app_id = store.new_app(track_new_purchases=True)
    for k, body in enumerate(BODIES):
        store.ledger.record_new([notification(app_id, body, T0 + k)])
    store.ledger.record(token(app_id, T0 + 100))
    store.projector.catch_up()
    ahead = store.projector.position
    drop_projection(store.projector, LIVE, UPSTREAM)  # "restore" to an earlier state:
    restored = Projector(store.ledger, batch_size=3)
    assert restored.step() == 3  # tables and tracking consistent at the third fact
    restored.close()
    store.ledger.record(token(app_id, T0 + 200, user="someone_else"))
    store.projector.catch_up()  # still believes it is at `ahead`
    assert store.projector.position == store.ledger.last_position() > ahead
    result = Replay(store.ledger).run(verify=True)
    assert result.verified is True, result.differences


@pytest.mark.parametrize("verify", [True, False])
def test_a_replay_applies_what_arrived_during_its_rebuild(
    store: FoldStore, monkeypatch: pytest.MonkeyPatch, verify: bool
) -> None:
    """Facts that arrive after the rebuild caught up (the live projector applied them) are
    applied to the rebuilt tables under the lock, and their checksums must include them:
    they are read in the locked transaction, not apart from it."""
    from projections.storage.tables import REBUILD

    app_id = store.new_app(track_new_purchases=True)
    for k, body in enumerate(BODIES[:3]):
        store.ledger.record_new([notification(app_id, body, T0 + k)])
    store.projector.catch_up()
    caught_up = Projector.catch_up

    arrived: list[int] = []  # the position where the rebuild had caught up

    def then_more_arrive(projector: Projector) -> int:
        applied = caught_up(projector)
        if projector.prefix == REBUILD:
            arrived.append(projector.position)
            for k, body in enumerate(BODIES[3:]):
                store.ledger.record_new([notification(app_id, body, T0 + 10 + k)])
            store.ledger.record(token(app_id, T0 + 100, user="someone_else"))
            caught_up(store.projector)  # the live tables move ahead of the rebuild
        return applied

    monkeypatch.setattr(Projector, "catch_up", then_more_arrive)
    result = Replay(store.ledger, batch_size=2).run(verify=verify)
    monkeypatch.undo()
    assert arrived and arrived[0] < store.ledger.last_position()  # facts came after it
    assert result.position == store.ledger.last_position()
    if verify:
        assert result.verified is True, result.differences
    else:
        assert result.swapped
        again = Replay(store.ledger).run(verify=True)
        assert again.verified is True, again.differences
        assert [c.checksum for c in again.checksums] == [c.checksum for c in result.checksums]


def test_a_tiny_row_cache_gives_the_same_tables(
    store: FoldStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows evicted after every batch, and the known-absent key set given up at once: the
    projector then reads rows back from the store, and must write what a rebuild writes."""
    monkeypatch.setattr("projections.runner.MAX_TRACKED_KEYS", 1)
    for track in (False, True):
        app_id = store.new_app(track_new_purchases=track)
        for k, body in enumerate(BODIES):
            store.ledger.record_new([notification(app_id, body, T0 + k)])
        store.ledger.record(token(app_id, T0 + 100))
        store.ledger.record(token(app_id, T0 + 101, user="someone_else"))
    small = Projector(store.ledger, batch_size=2, cache_rows=1)
    try:
        assert small.catch_up() == len(store.ledger.log_page(1, 1000))
    finally:
        small.close()
    result = Replay(store.ledger).run(verify=True)
    assert result.verified is True, result.differences


def test_two_projectors_taking_turns_apply_every_fact_once(store: FoldStore) -> None:
    """Two projectors (own connections and row caches, as two processes) take batches in
    turns over one log. Each must see that the other moved the position (its cached rows
    are stale: every batch touches the same purchase), apply only what lies beyond it, and
    the tables must end up exactly as a rebuild from empty makes them."""
    app_id = store.new_app(track_new_purchases=True)
    for k, body in enumerate(BODIES):
        store.ledger.record_new([notification(app_id, body, T0 + k)])
    store.ledger.record(token(app_id, T0 + 100))
    store.ledger.record(token(app_id, T0 + 101, user="someone_else"))
    other = Projector(store.ledger, batch_size=3)
    applied = [0, 0]
    try:
        while True:
            moved = [projector.step() for projector in (store.projector, other)]
            applied = [a + m for a, m in zip(applied, moved, strict=True)]
            if not any(moved):
                break
    finally:
        other.close()
    total = len(store.ledger.log_page(1, 1000))
    assert min(applied) >= 3, applied  # the batches fell to both
    assert sum(applied) == total  # and none twice
    result = Replay(store.ledger).run(verify=True)
    assert result.verified is True, result.differences


@pytest.mark.parametrize(("claimed_after_end", "moves"), [(False, False), (True, True)])
def test_transfer_if_no_active_judges_at_the_tokens_receive_time(
    store: FoldStore, claimed_after_end: bool, moves: bool
) -> None:
    """Deterministic: "active" is decided at the token's receive time, never the wall clock
    (the subscription here ended years before this test runs)."""
    app_id = store.new_app(transfer_behavior="transfer_if_no_active")
    start, end = 1_600_000_000, 1_600_000_000 + 30 * 86_400  # September 2020
    body = subscription_event(event_id="evt_t1", created=start + 5, period=(start, end))
    store.ledger.record_new([notification(app_id, body, (start + 5) * 1000)])
    store.ledger.record(token(app_id, (start + 60) * 1000, user="owner_1", fetch="sub_Test0001"))
    claimed_at = end + 60 if claimed_after_end else end - 60
    store.ledger.record(token(app_id, claimed_at * 1000, user="other_2", fetch="sub_Test0001"))
    store.projector.catch_up()
    purchase = store.reader.purchase(app_id, "sub_Test0001")
    assert purchase is not None
    assert purchase.owner == ("other_2" if moves else "owner_1")


def test_checksums_are_sha256_of_the_rows_in_key_order(store: FoldStore) -> None:
    """The store concatenates and encodes rows for the checksum; it must hash exactly
    `key 0x1F value 0x1E` in UTF-8, page by page, non-ASCII ids included."""
    import hashlib

    from projections.replay import checksum, rows
    from projections.storage.tables import LIVE, PROJECTIONS, tables_of

    app_id = store.new_app()
    for k, user in enumerate(["user_é", "ユーザー", "user_\U0001f600", "plain"]):
        store.ledger.record(token(app_id, T0 + k, user=user, fetch=f"sub_{k}"))
    _, integration = store.ledger.add_integration(app_id, "http://127.0.0.1:9/hook")
    store.ledger.record(  # an outbound event, its delivery and outbox entry
        TestEventRequested(
            originator_id=uuid.uuid4(),
            app_id=app_id,
            received_at_ms=T0,
            integration_id=integration.id,
        )
    )
    store.projector.catch_up()
    db = store.projector.db
    with db.write() as cur:  # as in a replay: streams need a transaction on PostgreSQL
        for projection in PROJECTIONS:
            digest, count = hashlib.sha256(), 0
            for table in tables_of(projection):
                digest.update(f"\x00table:{table.name}\x00".encode())
                for _, key, value in rows(db, cur, LIVE, table):
                    digest.update(key.encode() + b"\x1f" + value.encode() + b"\x1e")
                    count += 1
            expected = checksum(db, cur, LIVE, projection)
            assert (expected.checksum, expected.rows) == (digest.hexdigest(), count)
            assert count > 0


def test_a_folded_batch_is_freed_without_the_cyclic_collector(store: FoldStore) -> None:
    """Batches must not form reference cycles: subledger collects garbage rarely
    , and a cycle would keep every batch's rows alive until it did."""
    import gc

    from projections.fold.state import Batch
    from projections.storage.workingset import WorkingSet

    app_id = store.new_app()
    store.ledger.record_new([token(app_id, T0)])
    store.ledger.record_new([notification(app_id, body, T0 + k) for k, body in enumerate(BODIES)])
    gc.collect()
    gc.disable()
    try:
        store.projector.catch_up()
        alive = [o for o in gc.get_objects() if isinstance(o, Batch | WorkingSet)]
    finally:
        gc.enable()
    assert store.projector.position > 0
    assert alive == []
