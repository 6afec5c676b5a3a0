"""Outbound events (SPEC 10) derived by the fold, in memory: which events a log gives, with
which fields, for which integrations, under which ids."""

from __future__ import annotations

import json
import uuid
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from projections.model import OUTBOUND_EVENTS
from projections.storage.memory import MemoryTables
from subledger import apps
from subledger.facts import DeliveryAttempted, Fact, TokenPosted
from subledger.integrations import Integration
from tests.memory import MemoryLog
from tests.samples import (
    DAY,
    PRODUCT,
    charge_event,
    invoice_event,
    notification,
    scenario_bodies,
    session_event,
    subscription_created,
    subscription_event,
)
from tests.unit.test_fold_properties import APP, logs

T0 = 1_795_000_000_000
C = 1_795_000_000
P1 = (C, C + 30 * DAY)
P2 = (P1[1], P1[1] + 30 * DAY)
P3 = (P2[1], P2[1] + 30 * DAY)
SUB = "sub_Test0001"
OTHER = "prod_OtherProduct01"


def token(app_id: str, at: int, user: str = "user_1", fetch: str = SUB, **extra: Any) -> Fact:
    return TokenPosted(
        originator_id=uuid.uuid5(uuid.NAMESPACE_OID, f"{user}/{fetch}/{at}"),
        app_id=app_id,
        received_at_ms=at,
        app_user_id=user,
        fetch_token=fetch,
        **extra,
    )


def sub(n: int, period: tuple[int, int] = P1, **fields: Any) -> bytes:
    """A subscription update, `n` seconds after C (its event id and order)."""
    return subscription_event(event_id=f"evt_s{n:03d}", created=C + n, period=period, **fields)


def events(tables: MemoryTables, app_id: str) -> list[dict[str, Any]]:
    """The derived events' bodies, in the order the fold derived them."""
    return [
        json.loads(raw)["body"]
        for (app, _), raw in tables.tables[OUTBOUND_EVENTS].items()
        if app == app_id
    ]


def kinds(tables: MemoryTables, app_id: str) -> list[str]:
    found = []
    for e in events(tables, app_id):
        reason = e["cancel_reason"] or e["expiration_reason"]
        found.append(f"{e['type']}:{reason}" if reason else e["type"])
    return found


def run(*bodies: bytes, integrate: bool = True, **filters: Any) -> tuple[MemoryLog, str]:
    """An app with an integration, a token for SUB, then `bodies` in order."""
    log = MemoryLog()
    app_id = log.new_app()
    if integrate:
        log.add_integration(app_id, **filters)
    log.append(token(app_id, T0))
    log.append(*(notification(app_id, body, T0 + 1000 * (k + 1)) for k, body in enumerate(bodies)))
    return log, app_id


def test_a_subscription_lifecycle_gives_revenuecats_events_with_stripe_data() -> None:
    log, app_id = run(
        subscription_created(event_id="evt_c", created=C, period=P1),
        sub(10, P2),
        sub(20, P2, cancel_at_period_end=True, cancel_at=P2[1]),
        sub(30, P2, status="canceled", ended_at=P2[1], canceled_at=C + 20),
    )
    tables = log.fold()
    assert kinds(tables, app_id) == [
        "INITIAL_PURCHASE",
        "RENEWAL",
        "CANCELLATION:UNSUBSCRIBE",
        "EXPIRATION:UNSUBSCRIBE",
    ]
    first, renewal = events(tables, app_id)[:2]
    assert first["app_user_id"] == "user_1"
    assert first["aliases"] == ["user_1"]
    assert first["store"] == "STRIPE"
    assert first["environment"] == "SANDBOX"  # livemode false
    assert first["product_id"] == PRODUCT
    assert first["entitlement_ids"] == ["pro"]
    assert first["period_type"] == "NORMAL"
    assert first["purchased_at_ms"] == P1[0] * 1000
    assert first["expiration_at_ms"] == P1[1] * 1000
    assert (first["price"], first["currency"], first["price_in_purchased_currency"]) == (
        9.99,
        "USD",
        9.99,
    )
    assert first["original_transaction_id"] == SUB
    assert first["renewal_number"] == 1
    assert first["event_timestamp_ms"] == T0 + 1000  # the fact's receive time
    assert first["is_trial_conversion"] is None
    assert renewal["renewal_number"] == 2
    assert renewal["is_trial_conversion"] is False
    assert renewal["purchased_at_ms"] == P2[0] * 1000
    # Every field RevenueCat documents is present, null where Stripe cannot fill it.
    assert first["country_code"] is None
    assert first["grace_period_expiration_at_ms"] is None
    assert len(first) == 38


def test_a_trial_converts_with_a_renewal_and_its_initial_purchase_costs_nothing() -> None:
    log, app_id = run(
        subscription_created(event_id="evt_c", created=C, period=P1, status="trialing"),
        sub(10, P2),
        sub(20, P3),
    )
    found = events(log.fold(), app_id)
    assert [e["type"] for e in found] == ["INITIAL_PURCHASE", "RENEWAL", "RENEWAL"]
    assert found[0]["period_type"] == "TRIAL"
    assert found[0]["price"] == 0
    assert [e["is_trial_conversion"] for e in found[1:]] == [True, False]
    assert [e["renewal_number"] for e in found] == [1, 2, 3]


def test_a_billing_issue_recovers_with_a_renewal_or_ends_with_a_billing_error() -> None:
    log, app_id = run(
        subscription_created(event_id="evt_c", created=C, period=P1),
        sub(10, P2, status="past_due"),
        sub(20, P2),
        sub(30, P3, status="past_due"),
        sub(40, P3, status="unpaid"),
    )
    assert kinds(log.fold(), app_id) == [
        "INITIAL_PURCHASE",
        "BILLING_ISSUE",
        "RENEWAL",  # the payment recovered
        "BILLING_ISSUE",
        "EXPIRATION:BILLING_ERROR",
    ]


def test_stripe_says_why_a_subscription_ended() -> None:
    body = json.loads(sub(10, status="canceled", ended_at=C + 10))
    body["data"]["object"]["cancellation_details"] = {"reason": "payment_failed"}
    log, app_id = run(
        subscription_created(event_id="evt_c", created=C, period=P1),
        json.dumps(body).encode(),
    )
    assert kinds(log.fold(), app_id) == [
        "INITIAL_PURCHASE",
        "CANCELLATION:BILLING_ERROR",
        "EXPIRATION:BILLING_ERROR",
    ]


def test_a_resumed_subscription_is_uncancelled() -> None:
    log, app_id = run(
        subscription_created(event_id="evt_c", created=C, period=P1),
        sub(10, cancel_at_period_end=True),
        sub(20),
    )
    assert kinds(log.fold(), app_id) == [
        "INITIAL_PURCHASE",
        "CANCELLATION:UNSUBSCRIBE",
        "UNCANCELLATION",
    ]


def test_an_immediate_product_change_is_a_product_change_and_a_renewal() -> None:
    log, app_id = run(
        subscription_created(event_id="evt_c", created=C, period=P1),
        sub(10, (C + 10, C + 10 + 30 * DAY), product=OTHER),
    )
    found = events(log.fold(), app_id)
    assert [e["type"] for e in found] == ["INITIAL_PURCHASE", "PRODUCT_CHANGE", "RENEWAL"]
    change = found[1]
    assert (change["product_id"], change["new_product_id"]) == (PRODUCT, OTHER)
    assert found[2]["product_id"] == OTHER
    assert found[2]["entitlement_ids"] is None  # OTHER grants nothing


def test_a_full_refund_of_the_latest_period_is_a_customer_support_cancellation() -> None:
    log, app_id = run(
        subscription_created(event_id="evt_c", created=C, period=P1),
        invoice_event(event_id="evt_i", created=C + 1, period=P1, paid_at=C + 1),
        charge_event(event_id="evt_r", created=C + 50, charge_created=C + 1, invoice="in_Test0001"),
    )
    found = events(log.fold(), app_id)
    assert [e["type"] for e in found] == ["INITIAL_PURCHASE", "CANCELLATION"]
    refund = found[1]
    assert refund["cancel_reason"] == "CUSTOMER_SUPPORT"
    assert (refund["price"], refund["price_in_purchased_currency"]) == (-9.99, -9.99)
    assert refund["transaction_id"] == "in_Test0001"
    assert refund["expiration_at_ms"] is not None


def test_a_token_after_the_end_tells_the_whole_story_at_once() -> None:
    log = MemoryLog()
    app_id = log.new_app()
    log.add_integration(app_id)
    log.append(
        notification(app_id, subscription_created(event_id="evt_c", created=C, period=P1), T0),
        notification(app_id, sub(10, status="canceled", ended_at=C + 10), T0 + 1),
        token(app_id, T0 + 2),
    )
    found = events(log.fold(), app_id)
    assert [e["type"] for e in found] == ["INITIAL_PURCHASE", "CANCELLATION", "EXPIRATION"]
    assert {e["event_timestamp_ms"] for e in found} == {T0 + 2}  # all caused by the token


def test_a_transfer_names_both_sides_and_no_app_user_id() -> None:
    log, app_id = run(subscription_created(event_id="evt_c", created=C, period=P1))
    log.append(token(app_id, T0 + 10_000, user="user_2"))
    found = events(log.fold(), app_id)
    assert [e["type"] for e in found] == ["INITIAL_PURCHASE", "TRANSFER"]
    moved = found[1]
    assert moved["transferred_from"] == ["user_1"]
    assert moved["transferred_to"] == ["user_2"]
    assert moved["app_user_id"] is None
    assert moved["original_app_user_id"] == "user_2"


def test_an_anonymous_owner_aliased_by_a_token_is_no_transfer() -> None:
    log = MemoryLog()
    app_id = log.new_app(track_new_purchases=True)
    log.add_integration(app_id)
    log.append(
        notification(app_id, subscription_created(event_id="evt_c", created=C, period=P1), T0),
        token(app_id, T0 + 1, user="user_1"),
    )
    found = events(log.fold(), app_id)
    assert [e["type"] for e in found] == ["INITIAL_PURCHASE"]
    assert found[0]["app_user_id"].startswith("$RCAnonymousID:")


def test_a_one_time_checkout_is_a_non_renewing_purchase() -> None:
    log = MemoryLog()
    app_id = log.new_app()
    log.add_integration(app_id)
    session = session_event(event_id="evt_p", created=C, mode="payment", session_id="cs_test_P1")
    log.append(token(app_id, T0, fetch="cs_test_P1"), notification(app_id, session, T0 + 1))
    found = events(log.fold(), app_id)
    assert [e["type"] for e in found] == ["NON_RENEWING_PURCHASE"]
    assert found[0]["expiration_at_ms"] is None
    assert found[0]["transaction_id"] == "cs_test_P1"
    assert found[0]["price_in_purchased_currency"] == 9.99


def test_prices_are_usd_only_when_the_currency_is_usd() -> None:
    bodies = []
    for n, (currency, amount) in enumerate((("eur", 999), ("jpy", 1200), ("kwd", 1500))):
        body = json.loads(
            subscription_created(
                event_id=f"evt_{n}", created=C, period=P1, sub_id=f"sub_{currency}"
            )
        )
        price = body["data"]["object"]["items"]["data"][0]["price"]
        price.update(currency=currency, unit_amount=amount)
        bodies.append(json.dumps(body).encode())
    log = MemoryLog()
    app_id = log.new_app()
    log.add_integration(app_id)
    for n, body in enumerate(bodies):
        log.append(token(app_id, T0 + n, fetch=json.loads(body)["data"]["object"]["id"]))
        log.append(notification(app_id, body, T0 + 10 + n))
    found = {e["product_id"] and e["currency"]: e for e in events(log.fold(), app_id)}
    assert found["EUR"]["price"] is None
    assert found["EUR"]["price_in_purchased_currency"] == 9.99
    assert found["JPY"]["price_in_purchased_currency"] == 1200
    assert found["KWD"]["price_in_purchased_currency"] == 1.5


def test_filters_choose_the_types_and_the_environment_an_integration_receives() -> None:
    bodies = (subscription_created(event_id="evt_c", created=C, period=P1), sub(10, P2))
    renewals, _ = run(*bodies, event_types=("RENEWAL",))
    app_id = renewals.facts[0].originator_id
    assert kinds(renewals.fold(), apps.app_id_of(app_id)) == ["RENEWAL"]
    production, production_app = run(*bodies, environment="production")
    assert kinds(production.fold(), production_app) == []  # test-mode data is SANDBOX
    live = (
        subscription_created(event_id="evt_c", created=C, period=P1, livemode=True),
        sub(10, P2, livemode=True),
    )
    production, production_app = run(*live, environment="production")
    assert kinds(production.fold(), production_app) == ["INITIAL_PURCHASE", "RENEWAL"]


def test_an_integration_receives_only_what_is_derived_after_it_was_added() -> None:
    log, app_id = run(subscription_created(event_id="evt_c", created=C, period=P1), integrate=False)
    log.add_integration(app_id)
    log.append(notification(app_id, sub(10, P2), T0 + 50_000))
    assert kinds(log.fold(), app_id) == ["RENEWAL"]


def test_a_changed_integration_filters_what_is_derived_from_then_on() -> None:
    """`IntegrationChanged` (set-integration): the new types apply to later facts only."""
    log, app_id = run(
        subscription_created(event_id="evt_c", created=C, period=P1), event_types=("RENEWAL",)
    )
    changed = Integration(id="int_a", url="http://127.0.0.1:9/new", event_types=("EXPIRATION",))
    log.settings(app_id, apps.IntegrationChanged, integration=changed)
    log.append(
        notification(app_id, sub(10, P2), T0 + 50_000),
        notification(app_id, sub(20, P2, status="canceled", ended_at=C + 20), T0 + 60_000),
    )
    assert kinds(log.fold(), app_id) == ["EXPIRATION:UNSUBSCRIBE"]  # no RENEWAL any more


def test_no_integration_no_events() -> None:
    log, app_id = run(*scenario_bodies(), integrate=False)
    assert events(log.fold(), app_id) == []


def test_event_ids_come_from_app_purchase_type_and_fact_so_a_rebuild_repeats_them() -> None:
    log, app_id = run(
        subscription_created(event_id="evt_c", created=C, period=P1),
        sub(10, P2),
    )
    first = [e["id"] for e in events(log.fold(batch_size=1), app_id)]
    again = [e["id"] for e in events(log.fold(batch_size=1000), app_id)]
    assert first == again
    assert len(set(first)) == 2
    assert all(uuid.UUID(i) and i == i.upper() for i in first)
    other, other_app = run(
        subscription_created(event_id="evt_c", created=C, period=P1),
        sub(10, P2),
    )
    assert other_app != app_id
    assert set(first).isdisjoint(e["id"] for e in events(other.fold(), other_app))


# --- properties ----------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(log=logs(integration=True), data=st.data(), batch_size=st.integers(1, 6))
def test_events_and_deliveries_are_the_same_bytes_in_any_batch_size(
    log: MemoryLog, data: st.DataObject, batch_size: int
) -> None:
    """A rebuild derives the same events under the same ids, and applies the recorded
    attempts to the same deliveries, however the log is cut into batches."""
    app_id = apps.app_id_of(APP)
    derived = [e["id"] for e in events(log.fold(), app_id)]
    for n, event in enumerate(data.draw(st.lists(st.sampled_from(derived))) if derived else []):
        status = data.draw(st.sampled_from([200, 500, 0]))
        retry = data.draw(st.sampled_from([None, T0 + 10_000 * n]))
        log.append(
            DeliveryAttempted(
                originator_id=uuid.uuid5(uuid.NAMESPACE_OID, f"attempt/{n}"),
                app_id=app_id,
                received_at_ms=T0 + n,
                integration_id="int_a",
                outbound_event_id=event,
                attempt=n + 1,
                status=status,
                next_attempt_at_ms=retry,
            )
        )
    assert log.fold(batch_size=batch_size).rows() == log.fold(batch_size=1000).rows()


@settings(max_examples=300, deadline=None)
@given(log=logs(integration=True))
def test_outbound_events_change_no_other_read_model(log: MemoryLog) -> None:
    """With or without an integration, purchases, owners and documents are the same bytes:
    deriving events only reads them."""
    with_integration = log.fold().rows()
    log.facts = [  # the same positions, but a settings event the fold ignores
        apps.WebhookSecretRemoved(
            originator_id=f.originator_id,
            originator_version=f.originator_version,
            received_at_ms=f.received_at_ms,
            fingerprint="-",
        )
        if isinstance(f, apps.IntegrationAdded)
        else f
        for f in log.facts
    ]
    without = log.fold().rows()
    for table in ("purchases", "payments", "users", "customers", "documents", "tokens"):
        assert with_integration[table] == without[table], table


# --- arrival order -----------------------------------------------------------------------
# Event ids name the fact that caused the event, and events follow what the document shows,
# so two arrival orders of ONE purchase's notifications can derive different events (a late
# snapshot that changes nothing shown sends nothing; docs/decisions.md, "Arrival order and
# event ids"). What holds: a purchase's events depend on its own notifications' order only,
# never on how they interleave with other purchases' (nor on receive times).

OTHER_SUB = "sub_Test0002"
INTERLEAVED = {
    "a": [
        subscription_created(event_id="evt_a1", created=C, period=P1),
        sub(10, P2),
        sub(20, P2, cancel_at_period_end=True, cancel_at=P2[1]),
        sub(30, P2, status="canceled", ended_at=P2[1], canceled_at=C + 20),
    ],
    "b": [
        subscription_created(
            event_id="evt_b1",
            created=C,
            period=P1,
            status="trialing",
            sub_id=OTHER_SUB,
            customer="cus_Test0002",
        ),
        *(
            subscription_event(
                event_id=f"evt_b{n}",
                created=C + 10 * n,
                period=period,
                sub_id=OTHER_SUB,
                customer="cus_Test0002",
                status=status,
            )
            for n, period, status in ((2, P2, "active"), (3, P3, "past_due"), (4, P3, "active"))
        ),
    ],
}


def interleaved_events(picks: list[bool], gap_ms: int) -> dict[str, dict[str, Any]]:
    """Both purchases' notifications merged as `picks` says (True: the next of "a"), each
    purchase's own order kept; the events by id, without their receive times."""
    log = MemoryLog()
    app_id = log.new_app(aggregate=uuid.UUID(int=20))
    log.add_integration(app_id)
    log.append(token(app_id, T0), token(app_id, T0 + 1, user="user_2", fetch=OTHER_SUB))
    queues = {name: list(bodies) for name, bodies in INTERLEAVED.items()}
    order = [queues["a" if pick else "b"].pop(0) for pick in picks]
    order += queues["a"] + queues["b"]
    at = T0 + 10
    for body in order:
        at += gap_ms
        log.append(notification(app_id, body, at))
    found = {}
    for e in events(log.fold(), app_id):
        del e["event_timestamp_ms"]
        found[e["id"]] = e
    return found


@settings(max_examples=100, deadline=None)
@given(picks=st.permutations([True] * 4 + [False] * 4), gap_ms=st.integers(1, 10_000))
def test_other_purchases_arriving_in_between_change_no_event_id(
    picks: list[bool], gap_ms: int
) -> None:
    reference = interleaved_events([True] * 4 + [False] * 4, 1000)
    assert len(reference) == 8  # a: 4 events; b: INITIAL_PURCHASE, 2 RENEWAL, BILLING_ISSUE
    assert interleaved_events(picks, gap_ms) == reference
