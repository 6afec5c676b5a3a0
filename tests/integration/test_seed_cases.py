"""The seed's cases end to end through the HTTP API, on SQLite and PostgreSQL (SPEC 4-8):
each runs through litestar's test client and against a real `subledger serve` process
(one per store and module: every test makes its own app, and apps share nothing)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from subledger.identity import anonymous_id
from subledger.settings import Settings
from tests.conftest import fresh_postgres_url
from tests.harness import AppKeys, Harness, harness, served_harness, stored_document
from tests.processes import Server, start_server, stop_server
from tests.samples import (
    DAY,
    PRODUCT,
    charge_event,
    invoice_event,
    scenario_bodies,
    session_event,
    subscription_created,
    subscription_event,
)

SUB = "sub_1SLr4eQx7RtY2pLmVb2NcQ8s"
SESSION = "cs_test_b1Vq8ZkT3rWc5NxL0aPd7YgE2hJm9sUf4QeR6tKy1oBi3XwCn8Lz5MvAa0Dp"
NOW = int(time.time())


@pytest.fixture(scope="module")
def served_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    folder = tmp_path_factory.mktemp("served")
    url = f"sqlite:///{folder / 'subledger.db'}"
    server = start_server(url, folder)
    yield server, url
    stop_server(server)


@pytest.fixture(scope="module")
def served_postgresql(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    with fresh_postgres_url() as url:
        server = start_server(url, tmp_path_factory.mktemp("served"))
        yield server, url
        stop_server(server)


@pytest.fixture(params=["test-client", "server"])
def h(request: pytest.FixtureRequest, settings: Settings) -> Iterator[Harness]:
    if request.param == "test-client":
        with harness(settings) as running:
            yield running
        return
    server, url = request.getfixturevalue(f"served_{settings.database.kind}")
    with served_harness(server.url, url) as running:
        yield running


def stable(doc: dict[str, Any]) -> dict[str, Any]:
    """The document without request and first/last-seen times (they are receive times)."""
    sub = dict(doc["subscriber"])
    for key in ("first_seen", "last_seen"):
        sub.pop(key)
    return sub


def scenario_subscription(doc: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = doc["subscriber"]["subscriptions"][PRODUCT]
    return entry


def iso(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def entry_of(h: Harness, keys: Any, app_user_id: str = "u1") -> dict[str, Any]:
    """The customer's subscription entry for PRODUCT."""
    found: dict[str, Any] = h.subscriber(keys, app_user_id)["subscriber"]["subscriptions"][PRODUCT]
    return found


def metadata_app(h: Harness) -> AppKeys:
    """A new app tracking new purchases, its owners detected from metadata key `uid`."""
    return h.app(track_new_purchases=True, app_user_id_detection="metadata", metadata_key="uid")


def subscribed(h: Harness, event_id: str, period: tuple[int, int]) -> Any:
    """A new app whose user u1 posted the token, then the subscription's first notification
    (created when `period` starts); returns the app's keys."""
    keys = h.app()
    h.receipt(keys, "u1", "sub_Test0001")
    h.webhook(keys, subscription_event(event_id=event_id, created=period[0], period=period))
    return keys


def paid_for(h: Harness, prefix: str, period: tuple[int, int]) -> Any:
    """`subscribed`, then the period's invoice paid a second after it started (events
    `{prefix}1` and `{prefix}2`)."""
    keys = subscribed(h, f"{prefix}1", period)
    paid = invoice_event(
        event_id=f"{prefix}2", created=period[0] + 2, paid_at=period[0] + 1, period=period
    )
    h.webhook(keys, paid)
    return keys


def test_token_then_webhooks(h: Harness) -> None:
    keys = h.app()
    first = h.receipt(keys, "user_123", SUB)
    assert first.status_code == 200
    assert first.json()["subscriber"]["subscriptions"] == {}  # nothing from Stripe yet
    for body in scenario_bodies():
        h.webhook(keys, body)
    h.settle()
    doc = h.subscriber(keys, "user_123")
    entry = scenario_subscription(doc)
    assert entry == {
        "store": "stripe",
        "is_sandbox": True,
        "ownership_type": "PURCHASED",
        "period_type": "normal",
        "purchase_date": "2026-10-01T09:00:00Z",
        "original_purchase_date": "2026-10-01T09:00:00Z",
        "expires_date": "2026-10-11T10:11:00Z",  # the refund of the latest period ends access
        "unsubscribe_detected_at": "2026-10-11T09:10:00Z",
        "billing_issues_detected_at": None,
        "grace_period_expires_date": None,
        "refunded_at": "2026-10-11T10:11:00Z",
        "auto_resume_date": None,
        "store_transaction_id": SUB,
        "management_url": None,
    }
    assert doc["subscriber"]["entitlements"]["pro"] == {
        "expires_date": "2026-10-11T10:11:00Z",
        "grace_period_expires_date": None,
        "product_identifier": PRODUCT,
        "purchase_date": "2026-10-01T09:00:00Z",
    }
    assert doc["subscriber"]["original_app_user_id"] == "user_123"


def test_webhooks_then_token_wait_and_give_the_same_document(
    h: Harness, settings: Settings
) -> None:
    keys = h.app()
    for body in reversed(scenario_bodies()):
        h.webhook(keys, body)
    h.settle()
    before = h.subscriber(keys, "user_123")
    assert before["subscriber"]["subscriptions"] == {}  # facts wait for their token
    assert not stored_document(h, keys, "user_123")
    answer = h.receipt(keys, "user_123", SUB)
    assert answer.status_code == 200
    assert "subscriber_attributes" not in answer.json()["subscriber"]  # public key
    waited = stable(h.subscriber(keys, "user_123"))
    assert PRODUCT in waited["subscriptions"]

    other = h.app()
    h.receipt(other, "user_123", SUB)
    for body in scenario_bodies():
        h.webhook(other, body)
    h.settle()
    assert stable(h.subscriber(other, "user_123")) == waited


def test_token_for_the_checkout_session_finds_the_subscription(h: Harness) -> None:
    keys = h.app()
    assert h.receipt(keys, "user_123", SESSION).status_code == 200
    for body in scenario_bodies():
        h.webhook(keys, body)
    h.settle()
    assert scenario_subscription(h.subscriber(keys, "user_123"))["store_transaction_id"] == SUB
    # and the other way round: the session is already known when its token arrives
    other = h.app()
    for body in scenario_bodies():
        h.webhook(other, body)
    answer = h.receipt(other, "user_123", SESSION)
    assert answer.status_code == 200
    assert PRODUCT in answer.json()["subscriber"]["subscriptions"]


@pytest.mark.parametrize(
    ("detection", "metadata_key", "owner"),
    [
        ("anonymous", None, None),
        ("stripe_customer_id", None, "cus_TKd8fQ2wZr5LsN"),
        ("metadata", "rc_app_user_id", "user_123"),
    ],
)
def test_tracking_on_detects_the_owner(
    h: Harness, detection: str, metadata_key: str | None, owner: str | None
) -> None:
    config: dict[str, Any] = {"track_new_purchases": True, "app_user_id_detection": detection}
    if metadata_key:
        config["metadata_key"] = metadata_key
    keys = h.app(**config)
    h.webhook(keys, scenario_bodies()[1])  # customer.subscription.created
    h.settle()
    expected = owner or anonymous_id(keys.app_id, SUB)
    doc = h.subscriber(keys, expected)
    assert doc["subscriber"]["original_app_user_id"] == expected
    assert scenario_subscription(doc)["expires_date"] == "2026-11-01T09:00:00Z"


def metadata_named_purchase(h: Harness, session_first: bool) -> AppKeys:
    """A tracked subscription whose owner only its Checkout Session's metadata names."""
    keys = metadata_app(h)
    period = (NOW - DAY, NOW + 29 * DAY)
    session = session_event(event_id="evt_s1", created=NOW - DAY + 5, metadata={"uid": "alice"})
    created = subscription_created(event_id="evt_s2", created=NOW - DAY + 4, period=period)
    for body in (session, created) if session_first else (created, session):
        h.webhook(keys, body)
    h.settle()
    return keys


@pytest.mark.parametrize(
    "session_first", [True, False], ids=["session-first", "subscription-first"]
)
def test_metadata_from_the_checkout_session_names_the_owner_in_either_order(
    h: Harness, session_first: bool
) -> None:
    """Subscription first, detection has only an anonymous placeholder until the session
    names alice; alice then replaces it, so both orders end the same."""
    keys = metadata_named_purchase(h, session_first)
    doc = h.subscriber(keys, "alice")["subscriber"]
    assert doc["original_app_user_id"] == "alice"
    assert PRODUCT in doc["subscriptions"]
    placeholder = h.subscriber(keys, anonymous_id(keys.app_id, "sub_Test0001"))["subscriber"]
    assert placeholder["subscriptions"] == {}
    assert not stored_document(h, keys, anonymous_id(keys.app_id, "sub_Test0001"))
    told = [e["what_changed"] for e in h.history(keys, "alice")]
    assert any("replaces the placeholder owner" in t for t in told) == (not session_first)


def test_both_orders_give_the_same_document(h: Harness) -> None:
    documents = [
        stable(h.subscriber(metadata_named_purchase(h, session_first), "alice"))
        for session_first in (True, False)
    ]
    assert documents[0] == documents[1]


def test_metadata_missing_falls_back_to_anonymous(h: Harness) -> None:
    keys = metadata_app(h)
    period = (NOW - DAY, NOW + 29 * DAY)
    h.webhook(
        keys,
        subscription_created(
            event_id="evt_m1",
            created=NOW,
            period=period,
        ),
    )
    h.settle()
    doc = h.subscriber(keys, anonymous_id(keys.app_id, "sub_Test0001"))
    assert PRODUCT in doc["subscriber"]["subscriptions"]


def test_guest_checkout_gets_an_anonymous_one_time_purchase(h: Harness) -> None:
    keys = h.app(
        entitlements={"lifetime": ["cs_test_guest1"]},
        track_new_purchases=True,
        app_user_id_detection="stripe_customer_id",
    )
    h.webhook(
        keys,
        session_event(
            event_id="evt_g1",
            created=NOW,
            session_id="cs_test_guest1",
            mode="payment",
            customer=None,
        ),
    )
    h.settle()
    owner = anonymous_id(keys.app_id, "cs_test_guest1")
    doc = h.subscriber(keys, owner)["subscriber"]
    [entry] = doc["non_subscriptions"]["cs_test_guest1"]
    assert entry["store_transaction_id"] == "cs_test_guest1"
    assert entry["is_sandbox"] is True
    assert doc["entitlements"]["lifetime"]["expires_date"] is None


def test_anonymous_owner_then_token_is_an_alias_not_a_transfer(h: Harness) -> None:
    keys = h.app(track_new_purchases=True)
    h.webhook(keys, scenario_bodies()[1])
    h.settle()
    anonymous = anonymous_id(keys.app_id, SUB)
    answer = h.receipt(keys, "user_123", SUB)
    assert answer.status_code == 200
    doc = answer.json()["subscriber"]
    assert doc["original_app_user_id"] == anonymous
    assert PRODUCT in doc["subscriptions"]
    assert (
        h.subscriber(keys, anonymous)["subscriber"] == h.subscriber(keys, "user_123")["subscriber"]
    )


def _identified_owner(h: Harness, behavior: str, *, active: bool) -> Any:
    keys = h.app(
        track_new_purchases=True,
        app_user_id_detection="metadata",
        metadata_key="rc_app_user_id",
        transfer_behavior=behavior,
    )
    end = NOW + 20 * DAY if active else NOW - DAY
    h.webhook(
        keys,
        subscription_created(
            event_id="evt_o1",
            created=end - 30 * DAY,
            period=(end - 30 * DAY, end),
            metadata={"rc_app_user_id": "owner_1"},
        ),
    )
    h.settle()
    return keys


@pytest.mark.parametrize(
    ("behavior", "active", "moves"),
    [
        ("transfer", True, True),
        ("transfer_if_no_active", False, True),
        ("transfer_if_no_active", True, False),
        ("keep_with_original", False, False),
    ],
)
def test_identified_owner_then_another_user(
    h: Harness, behavior: str, active: bool, moves: bool
) -> None:
    keys = _identified_owner(h, behavior, active=active)
    before = h.ledger.last_position()
    answer = h.receipt(keys, "other_2", "sub_Test0001")
    assert h.ledger.last_position() > before  # recorded, whatever the outcome
    owner_doc = h.subscriber(keys, "owner_1")["subscriber"]
    other_doc = h.subscriber(keys, "other_2")["subscriber"]
    if moves:
        assert answer.status_code == 200
        assert PRODUCT in other_doc["subscriptions"]
        assert owner_doc["subscriptions"] == {}
    else:
        assert answer.status_code == 409
        assert answer.json() == {
            "code": 7102,
            "message": "There is already another active subscriber using the same receipt.",
        }
        assert PRODUCT in owner_doc["subscriptions"]
        assert other_doc["subscriptions"] == {}
    assert other_doc["original_app_user_id"] == "other_2"
    assert stored_document(h, keys, "other_2")  # the claimant is a stored customer either way


def test_posting_the_same_token_again_is_harmless(h: Harness) -> None:
    keys = h.app(transfer_behavior="keep_with_original")
    for body in scenario_bodies():
        h.webhook(keys, body)
    first = h.receipt(keys, "user_123", SUB)
    again = h.receipt(keys, "user_123", SUB)
    assert (first.status_code, again.status_code) == (200, 200)
    assert stable(first.json()) == stable(again.json())
    assert PRODUCT in stable(again.json())["subscriptions"]


@pytest.mark.parametrize(
    "cancellation",
    [{"cancel_at": NOW + 10 * DAY}, {"cancel_at_period_end": True}],
    ids=["cancel_at", "cancel_at_period_end"],
)
def test_either_cancellation_signal_alone_is_an_unsubscribe(
    h: Harness, cancellation: dict[str, Any]
) -> None:
    period = (NOW - DAY, NOW + 29 * DAY)
    keys = subscribed(h, "evt_c1", period)
    h.webhook(
        keys,
        subscription_event(event_id="evt_c2", created=NOW - 100, period=period, **cancellation),
    )
    h.settle()
    entry = entry_of(h, keys)
    assert entry["unsubscribe_detected_at"] == iso(NOW - 100)
    # a cancel_at inside the period is when access ends; cancel_at_period_end: the period's end
    assert entry["expires_date"] == iso(cancellation.get("cancel_at", period[1]))
    # resuming clears it
    h.webhook(keys, subscription_event(event_id="evt_c3", created=NOW - 50, period=period))
    h.settle()
    assert entry_of(h, keys)["unsubscribe_detected_at"] is None
    assert entry_of(h, keys)["expires_date"] == iso(period[1])


def test_past_due_is_a_billing_issue_that_keeps_access(h: Harness) -> None:
    period = (NOW - DAY, NOW + 29 * DAY)
    keys = subscribed(h, "evt_p1", period)
    h.webhook(
        keys,
        subscription_event(event_id="evt_p2", created=NOW - 60, period=period, status="past_due"),
    )
    h.settle()
    entry = entry_of(h, keys)
    assert entry["billing_issues_detected_at"] == iso(NOW - 60)
    assert entry["expires_date"] == iso(NOW + 29 * DAY)
    h.webhook(keys, subscription_event(event_id="evt_p3", created=NOW - 30, period=period))
    h.settle()
    assert entry_of(h, keys)["billing_issues_detected_at"] is None


def test_failed_invoice_is_a_billing_issue_until_paid(h: Harness) -> None:
    period = (NOW - DAY, NOW + 29 * DAY)
    keys = subscribed(h, "evt_f1", period)
    h.webhook(
        keys,
        invoice_event(
            event_id="evt_f2", created=NOW - 90, status="open", period=period, attempt_count=1
        ),
    )
    h.settle()
    entry = entry_of(h, keys)
    assert entry["billing_issues_detected_at"] == iso(NOW - 90)
    h.webhook(
        keys,
        invoice_event(
            event_id="evt_f3", created=NOW - 80, status="paid", paid_at=NOW - 80, period=period
        ),
    )
    h.settle()
    assert entry_of(h, keys)["billing_issues_detected_at"] is None


def test_deleted_subscription_expires_at_its_end(h: Harness) -> None:
    period = (NOW - 10 * DAY, NOW + 20 * DAY)
    keys = subscribed(h, "evt_d1", period)
    h.webhook(
        keys,
        subscription_event(
            event_type="customer.subscription.deleted",
            event_id="evt_d2",
            created=NOW - 3600,
            period=period,
            status="canceled",
            canceled_at=NOW - 3600,
            ended_at=NOW - 3600,
        ),
    )
    h.settle()
    doc = h.subscriber(keys, "u1")["subscriber"]
    ended = iso(NOW - 3600)
    assert doc["subscriptions"][PRODUCT]["expires_date"] == ended
    assert doc["entitlements"]["pro"]["expires_date"] == ended  # listed, no longer active
    # canceled at once, with neither cancel_at_period_end nor cancel_at: still an
    # unsubscribe
    assert doc["subscriptions"][PRODUCT]["unsubscribe_detected_at"] == ended


@pytest.mark.parametrize(
    ("status", "billing_issue"),
    [("unpaid", True), ("incomplete_expired", False), ("paused", False)],
)
def test_unpaid_incomplete_expired_and_paused_end_access_when_seen(
    h: Harness, status: str, billing_issue: bool
) -> None:
    """SPEC 7.1: `expires_date` = the time the state was seen (no `ended_at`), never later
    than the period end; `unpaid` is also a billing issue."""
    period = (NOW - 10 * DAY, NOW + 20 * DAY)
    keys = subscribed(h, "evt_u1", period)
    seen = NOW - 600
    h.webhook(
        keys, subscription_event(event_id="evt_u2", created=seen, period=period, status=status)
    )
    h.settle()
    entry = entry_of(h, keys)
    assert entry["expires_date"] == iso(seen)
    assert entry["billing_issues_detected_at"] == (iso(seen) if billing_issue else None)
    # seen after the period ended: access ends with the period, not later
    late = subscribed(h, "evt_u3", (NOW - 40 * DAY, NOW - 10 * DAY))
    h.webhook(
        late,
        subscription_event(
            event_id="evt_u4",
            created=NOW - 60,
            period=(NOW - 40 * DAY, NOW - 10 * DAY),
            status=status,
        ),
    )
    h.settle()
    assert entry_of(h, late)["expires_date"] == iso(NOW - 10 * DAY)


def test_a_paused_subscription_that_resumes_gets_its_access_back(h: Harness) -> None:
    """`paused` ends access when seen; `active` again restores it."""
    period = (NOW - 10 * DAY, NOW + 20 * DAY)
    keys = subscribed(h, "evt_p1", period)
    for event_id, created, status in (
        ("evt_p2", NOW - 900, "paused"),
        ("evt_p3", NOW - 300, "active"),
    ):
        h.webhook(
            keys,
            subscription_event(event_id=event_id, created=created, period=period, status=status),
        )
        h.settle()
        expected = iso(NOW - 900) if status == "paused" else iso(period[1])
        assert entry_of(h, keys)["expires_date"] == expected


def test_a_time_beyond_gmtime_neither_stops_the_projection_nor_the_history(h: Harness) -> None:
    """A signed notification may carry any 64-bit time. 10**17 s (year 3,168,875,820) made
    `time.gmtime` raise in the fold, which retried the batch forever: nothing after it was
    projected and every receipt answered 503."""
    far = 10**17
    keys = subscribed(h, "evt_far1", (NOW - DAY, far))
    h.settle()
    assert entry_of(h, keys)["expires_date"] == "3168875820-09-06T09:46:40Z"
    later = h.receipt(keys, "u2", "sub_Other0001")
    assert later.status_code == 200, later.text  # the projection went on
    assert any("3168875820-09-06" in e["what_changed"] for e in h.history(keys, "u1"))


@pytest.mark.parametrize("in_order", [True, False], ids=["in-order", "change-first"])
def test_a_product_change_keeps_the_old_product_listed_as_expired(
    h: Harness, in_order: bool
) -> None:
    """SPEC 7.5: expired entitlements stay listed. Basic until the upgrade is seen, then
    pro; the same document whichever snapshot arrives first."""
    keys = h.app(entitlements={"basic": ["prod_Basic"], "pro": [PRODUCT]})
    h.receipt(keys, "u1", "sub_Test0001")
    period = (NOW - 10 * DAY, NOW + 20 * DAY)
    changed = NOW - 5 * DAY
    snapshots = [
        subscription_event(
            event_id="evt_b1", created=period[0], period=period, product="prod_Basic"
        ),
        subscription_event(
            event_id="evt_b2", created=changed, period=(changed, changed + 30 * DAY)
        ),
    ]
    for body in snapshots if in_order else reversed(snapshots):
        h.webhook(keys, body)
    h.settle()
    doc = h.subscriber(keys, "u1")["subscriber"]
    assert doc["subscriptions"]["prod_Basic"]["expires_date"] == iso(changed)
    assert doc["subscriptions"]["prod_Basic"]["purchase_date"] == iso(period[0])
    assert doc["subscriptions"][PRODUCT]["expires_date"] == iso(changed + 30 * DAY)
    assert doc["entitlements"]["basic"]["expires_date"] == iso(changed)  # listed, expired
    assert doc["entitlements"]["pro"]["product_identifier"] == PRODUCT
    told = [e["what_changed"] for e in h.history(keys, "u1")]
    changed_text = f"product prod_Basic → {PRODUCT} (access to basic ended)"
    assert any(changed_text in t for t in told) == in_order  # else: an older snapshot came last


def test_trialing_is_a_trial_period_and_livemode_is_production(h: Harness) -> None:
    keys = h.app()
    h.receipt(keys, "u1", "sub_Test0001")
    period = (NOW - DAY, NOW + 6 * DAY)
    h.webhook(
        keys,
        subscription_event(
            event_id="evt_t1", created=NOW - DAY, period=period, status="trialing", livemode=True
        ),
    )
    h.settle()
    entry = entry_of(h, keys)
    assert entry["period_type"] == "trial"
    assert entry["is_sandbox"] is False


def test_legacy_payloads_decode_by_field_presence(h: Harness) -> None:
    keys = h.app()
    h.receipt(keys, "u1", "sub_Test0001")
    period = (NOW - DAY, NOW + 29 * DAY)
    h.webhook(
        keys, subscription_event(event_id="evt_l1", created=NOW - DAY, period=period, legacy=True)
    )
    h.webhook(
        keys,
        invoice_event(
            event_id="evt_l2",
            created=NOW - DAY + 2,
            status="paid",
            paid_at=NOW - DAY + 1,
            period=period,
            legacy=True,
        ),
    )
    h.webhook(
        keys,
        charge_event(
            event_id="evt_l3", created=NOW - 10, charge_created=NOW - DAY, invoice="in_Test0001"
        ),
    )
    h.settle()
    entry = entry_of(h, keys)
    refunded = iso(NOW - 10)
    assert entry["expires_date"] == refunded
    assert entry["refunded_at"] == refunded


def test_partial_refund_keeps_access(h: Harness) -> None:
    period = (NOW - DAY, NOW + 29 * DAY)
    keys = paid_for(h, "evt_r", period)
    h.webhook(
        keys,
        charge_event(
            event_id="evt_r3", created=NOW - 10, charge_created=NOW - DAY, amount_refunded=300
        ),
    )
    h.settle()
    entry = entry_of(h, keys)
    assert entry["refunded_at"] is None
    assert entry["expires_date"] == iso(NOW + 29 * DAY)


@pytest.mark.parametrize("refund_first", [False, True], ids=["session-first", "refund-first"])
def test_refunding_a_one_time_payment_never_ends_a_subscription(
    h: Harness, refund_first: bool
) -> None:
    """Same customer, same amount, paid minutes after the subscription's invoice: the
    refund of a one-time Checkout payment used to be matched to that invoice by amount
    and time, ending the subscription's access."""
    period = (NOW - DAY, NOW + 29 * DAY)
    keys = paid_for(h, "evt_o", period)
    h.receipt(keys, "u1", "cs_test_OneTime01")
    session = session_event(
        event_id="evt_o3", created=NOW - DAY + 300, session_id="cs_test_OneTime01", mode="payment"
    )
    refund = charge_event(
        event_id="evt_o4",
        created=NOW - 10,
        charge_id="ch_OneTime01",
        charge_created=NOW - DAY + 300,
        payment_intent=f"pi_{'cs_test_OneTime01'[-8:]}",  # as session_event names it
    )
    for body in (refund, session) if refund_first else (session, refund):
        h.webhook(keys, body)
    h.settle()
    entry = entry_of(h, keys)
    assert entry["refunded_at"] is None
    assert entry["expires_date"] == iso(period[1])


def test_a_refund_is_not_matched_to_an_invoice_paid_by_another_charge(h: Harness) -> None:
    """Pre-2025 invoices name the charge that paid them: a refund of a different charge
    of the same amount and time is not that invoice's refund."""
    period = (NOW - DAY, NOW + 29 * DAY)
    keys = subscribed(h, "evt_n1", period)
    invoice = json.loads(
        invoice_event(
            event_id="evt_n2", created=NOW - DAY + 2, paid_at=NOW - DAY + 1, period=period
        )
    )
    invoice["data"]["object"]["charge"] = "ch_PaidIt"
    h.webhook(keys, json.dumps(invoice).encode())
    other = charge_event(
        event_id="evt_n3", created=NOW - 10, charge_id="ch_Other", charge_created=NOW - DAY + 1
    )
    h.webhook(keys, other)
    h.settle()
    assert entry_of(h, keys)["refunded_at"] is None


def test_a_failed_refund_gives_no_refund_time(h: Harness) -> None:
    """A charge's refunds list (older API versions) may hold refunds that failed: the
    refund time is the latest one that went through."""
    period = (NOW - DAY, NOW + 29 * DAY)
    keys = paid_for(h, "evt_x", period)
    charge = json.loads(
        charge_event(
            event_id="evt_x3", created=NOW - 10, charge_created=NOW - DAY, invoice="in_Test0001"
        )
    )
    charge["data"]["object"]["refunds"] = {
        "object": "list",
        "data": [
            {"id": "re_ok", "object": "refund", "created": NOW - 3600, "status": "succeeded"},
            {"id": "re_bad", "object": "refund", "created": NOW - 60, "status": "failed"},
        ],
    }
    h.webhook(keys, json.dumps(charge).encode())
    h.settle()
    assert entry_of(h, keys)["refunded_at"] == iso(NOW - 3600)


def test_a_full_refund_of_an_earlier_period_keeps_access(h: Harness) -> None:
    """SPEC 7.1: only the charge paying the latest period ends access when refunded."""
    keys = h.app()
    h.receipt(keys, "u1", "sub_Test0001")
    first, latest = (NOW - 31 * DAY, NOW - DAY), (NOW - DAY, NOW + 29 * DAY)
    h.webhook(keys, subscription_event(event_id="evt_f1", created=NOW - DAY + 1, period=latest))
    for n, period in enumerate((first, latest)):
        h.webhook(
            keys,
            invoice_event(
                event_id=f"evt_fi{n}",
                created=period[0] + 2,
                invoice_id=f"in_Period{n}",
                paid_at=period[0] + 1,
                period=period,
            ),
        )

    def refund(n: int, period: tuple[int, int]) -> None:
        """Fully refund the charge that paid `period` (linked to its invoice)."""
        charge = charge_event(
            event_id=f"evt_fc{n}",
            created=NOW - 10 + n,
            charge_id=f"ch_Period{n}",
            charge_created=period[0] + 1,
            payment_intent=f"pi_Period{n}",
            invoice=f"in_Period{n}",
        )
        h.webhook(keys, charge)
        h.settle()

    refund(0, first)
    entry = entry_of(h, keys)
    assert entry["refunded_at"] is None
    assert entry["expires_date"] == iso(latest[1])
    refund(1, latest)
    entry = entry_of(h, keys)
    assert entry["refunded_at"] is not None  # the latest period's charge: access ends
    assert entry["expires_date"] == entry["refunded_at"]


def test_app_user_ids_with_control_characters_project_like_any_other(h: Harness) -> None:
    """PostgreSQL writes text columns split on U+001F; an id holding one must still land."""
    keys = h.app()
    users = ["user\x1fsplit", "x\x1f", "tab\tand\x1fmore"]
    for n, user in enumerate(users):
        assert h.receipt(keys, user, f"{SUB}{n}").status_code == 200
    for body in scenario_bodies():
        h.webhook(keys, body)
    h.receipt(keys, users[0], SUB)
    h.settle()
    for n, user in enumerate(users):
        doc = h.subscriber(keys, user)
        assert doc["subscriber"]["original_app_user_id"] == user
        kinds = [e["kind"] for e in h.history(keys, user)]
        assert kinds[0] == "token", kinds
        assert (PRODUCT in doc["subscriber"]["subscriptions"]) == (n == 0)


def test_tracking_on_an_update_alone_does_not_make_a_purchase_known(h: Harness) -> None:
    """SPEC 7.2: only `created`/`completed` notifications create purchases; an update of a
    subscription subledger never saw created waits for a token like with tracking off."""
    keys = h.app(track_new_purchases=True, app_user_id_detection="anonymous")
    period = (NOW - DAY, NOW + 29 * DAY)
    h.webhook(keys, subscription_event(event_id="evt_u1", created=NOW - 100, period=period))
    h.settle()
    assert not stored_document(h, keys, anonymous_id(keys.app_id, "sub_Test0001"))
    answer = h.receipt(keys, "u1", "sub_Test0001")
    assert PRODUCT in answer.json()["subscriber"]["subscriptions"]  # the update applied now


def test_an_entitlement_shows_the_purchase_reaching_furthest_and_unmapped_products_grant_nothing(
    h: Harness,
) -> None:
    keys = h.app(entitlements={"pro": [PRODUCT, "prod_Other"], "gold": ["prod_Unsold"]})
    near = (NOW - DAY, NOW + 5 * DAY)
    far = (NOW - 2 * DAY, NOW + 40 * DAY)
    purchases = [
        ("sub_Near0001", near, PRODUCT),
        ("sub_Far0001", far, "prod_Other"),
        ("sub_Plain0001", far, "prod_Free"),  # mapped to no entitlement
    ]
    for k, (sub, period, product) in enumerate(purchases):
        assert h.receipt(keys, "u1", sub).status_code == 200
        event = subscription_event(
            event_id=f"evt_e{k}", created=NOW - 50, sub_id=sub, period=period, product=product
        )
        h.webhook(keys, event)
    h.settle()
    doc = h.subscriber(keys, "u1")["subscriber"]
    assert set(doc["subscriptions"]) == {PRODUCT, "prod_Other", "prod_Free"}
    assert set(doc["entitlements"]) == {"pro"}  # gold's product was never bought
    pro = doc["entitlements"]["pro"]
    assert pro["product_identifier"] == "prod_Other"
    assert pro["expires_date"] == iso(far[1])
