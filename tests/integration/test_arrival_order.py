"""Two arrival orders of the same Stripe notifications fold to the same documents and rows.

Each test folds both orders into two apps of one store (SQLite and PostgreSQL) and compares
what `GET /v1/subscribers/{id}` serves (the stored document) or the purchase row. Found by
a review of the fold; each failed before its fix.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from subledger.facts import Fact
from subledger.identity import anonymous_id
from subledger.settings import Database
from tests.harness import FoldStore
from tests.samples import (
    DAY,
    PRODUCT,
    invoice_event,
    notification,
    session_event,
    subscription_created,
    subscription_event,
    token,
)

T0 = 1_795_000_000_000  # receive times (ms)
C = 1_795_000_000  # Stripe `created` (s)
PERIOD = (C - 100, C - 100 + 30 * DAY)
SUB = "sub_Test0001"
CS = "cs_test_Test0001"
HOUR_MS = 3_600_000

Facts = Callable[[str], list[Fact]]


@pytest.fixture
def store(database: Database) -> Iterator[FoldStore]:
    opened = FoldStore(database)
    yield opened
    opened.close()


def test_last_seen_does_not_move_with_the_order_notifications_arrive_in(store: FoldStore) -> None:
    """Decision 18: only tokens and attribute posts make a customer "seen". The session
    that links alice's `cs_` token to its subscription used to bump her `last_seen` to its
    own receive time, so the two orders ended an hour apart."""
    session = session_event(event_id="evt_sess", created=C + 2)
    created = subscription_created(event_id="evt_subc", created=C + 1, period=PERIOD)

    def facts(first: bytes, second: bytes) -> Facts:
        return lambda app_id: [
            token(app_id, T0, user="alice", fetch=CS),
            notification(app_id, first, T0 + HOUR_MS),  # the same two receive-time slots
            notification(app_id, second, T0 + 2 * HOUR_MS),
        ]

    a = store.doc(store.run(facts(created, session)), "alice")
    b = store.doc(store.run(facts(session, created)), "alice")
    assert a is not None and b is not None
    assert PRODUCT in a["subscriptions"]
    assert a["subscriptions"] == b["subscriptions"]
    assert (a["first_seen"], a["last_seen"]) == (b["first_seen"], b["last_seen"])
    assert a["last_seen"] == a["first_seen"]  # the token's receive time, nothing later


def test_metadata_detection_is_the_same_whether_a_clearing_update_waited(store: FoldStore) -> None:
    """Tracking with `metadata` detection: `created` names alice, a later update clears
    the metadata. If the update arrived first it waited, and detection used to read the
    newest snapshot (no metadata): an anonymous owner instead of alice."""
    created = subscription_created(
        event_id="evt_c", created=C + 1, period=PERIOD, metadata={"rc_app_user_id": "alice"}
    )
    updated = subscription_event(event_id="evt_u", created=C + 5, period=PERIOD, metadata={})
    config = {"track_new_purchases": True, "app_user_id_detection": "metadata"}

    def facts(first: bytes, second: bytes) -> Facts:
        return lambda app_id: [
            notification(app_id, first, T0),
            notification(app_id, second, T0 + 1000),
        ]

    a = store.doc(store.run(facts(created, updated), **config), "alice")
    b = store.doc(store.run(facts(updated, created), **config), "alice")
    assert a is not None and b is not None
    assert PRODUCT in a["subscriptions"]
    assert a["subscriptions"] == b["subscriptions"]


def test_a_purchase_an_invoice_made_gets_its_kind_from_the_token(store: FoldStore) -> None:
    """An invoice before the `sub_` token left the purchase row's kind "unknown"; the token
    first made it "subscription"."""
    paid = invoice_event(event_id="evt_i", created=C, period=PERIOD, paid_at=C)
    invoice_first = store.run(
        lambda app_id: [notification(app_id, paid, T0), token(app_id, T0 + 1, fetch=SUB)]
    )
    token_first = store.run(
        lambda app_id: [token(app_id, T0, fetch=SUB), notification(app_id, paid, T0 + 1)]
    )
    kinds = []
    for app_id in (invoice_first, token_first):
        purchase = store.reader.purchase(app_id, SUB)
        assert purchase is not None
        kinds.append(purchase.kind)
    assert kinds == ["subscription", "subscription"]


SESSION = session_event(event_id="evt_sess", created=C + 2)  # subscription mode, SUB
CREATED = subscription_created(event_id="evt_subc", created=C + 1, period=PERIOD)


def cs_token_then(first: bytes, second: bytes) -> Facts:
    """alice posts the Checkout Session's token before either notification arrives."""
    return lambda app_id: [
        token(app_id, T0, user="alice", fetch=CS),
        notification(app_id, first, T0 + 1000),
        notification(app_id, second, T0 + 2000),
    ]


@pytest.mark.parametrize(
    "config",
    [
        {"app_user_id_detection": "stripe_customer_id", "transfer_behavior": "keep_with_original"},
        {"app_user_id_detection": "stripe_customer_id"},
        {"app_user_id_detection": "anonymous"},
    ],
    ids=["customer-id-keep", "customer-id-transfer", "anonymous"],
)
def test_a_cs_token_before_its_notifications_owns_whichever_arrives_first(
    store: FoldStore, config: dict[str, str]
) -> None:
    """With tracking on and no API key, the subscription arriving before the session was
    tracked and given a detected owner, and alice's earlier token then had to claim it
    from that owner: refused, transferred or aliased, depending on the settings. The
    token came first, so it owns in both orders, and detection's owner is not left
    behind."""
    session_first = store.run(cs_token_then(SESSION, CREATED), track_new_purchases=True, **config)
    created_first = store.run(cs_token_then(CREATED, SESSION), track_new_purchases=True, **config)
    docs = [store.doc(app_id, "alice") for app_id in (session_first, created_first)]
    assert docs[0] is not None and PRODUCT in docs[0]["subscriptions"]
    assert docs[0] == docs[1]
    detected = "cus_Test0001" if config["app_user_id_detection"] != "anonymous" else None
    for app_id in (session_first, created_first):
        assert store.doc(app_id, detected or anonymous_id(app_id, SUB)) is None


def test_transfer_if_no_active_judges_a_cs_token_as_of_the_token(store: FoldStore) -> None:
    """claimant_v's `cs_` token comes while owner_u's subscription is active; the session
    that names the subscription arrives an hour later, before or after the subscription
    is deleted. Judged at the session's arrival, the claim was refused in one order and
    transferred in the other; judged as of the token, it is refused in both."""
    deleted = subscription_event(
        event_type="customer.subscription.deleted",
        event_id="evt_del",
        created=C + 10,
        period=PERIOD,
        status="canceled",
        canceled_at=C + 10,
        ended_at=C + 10,
    )

    def facts(first: bytes, second: bytes) -> Facts:
        return lambda app_id: [
            token(app_id, T0, user="owner_u", fetch=SUB),
            notification(app_id, CREATED, T0 + 100),
            token(app_id, T0 + 1000, user="claimant_v", fetch=CS),
            notification(app_id, first, T0 + HOUR_MS),
            notification(app_id, second, T0 + 2 * HOUR_MS),
        ]

    config = {"transfer_behavior": "transfer_if_no_active"}
    for app_id in (
        store.run(facts(deleted, SESSION), **config),
        store.run(facts(SESSION, deleted), **config),
    ):
        owner, claimant = store.doc(app_id, "owner_u"), store.doc(app_id, "claimant_v")
        assert owner is not None and claimant is not None
        assert PRODUCT in owner["subscriptions"]
        assert claimant["subscriptions"] == {}
