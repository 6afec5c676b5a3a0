"""`POST /v1/subscribers/identify` (SPEC 5): RevenueCat's logIn merge rules, applied by the
fold in log order, answered with the new id's document (201 when the id is new)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from projections.replay import Replay
from subledger.settings import Settings
from tests.harness import AppKeys, Harness, harness
from tests.samples import PRODUCT, subscription_created

ANON = "$RCAnonymousID:" + "a" * 32
ANON_2 = "$RCAnonymousID:" + "b" * 32
DAY = 86_400


@pytest.fixture
def h(settings: Settings) -> Iterator[Harness]:
    with harness(settings) as running:
        yield running


def identify(
    h: Harness, keys: AppKeys, current: Any, new: Any, key: str | None = None, raw: bytes = b""
) -> Any:
    body = raw or json.dumps({"app_user_id": current, "new_app_user_id": new}).encode()
    return h.client.post(
        "/v1/subscribers/identify",
        content=body,
        headers={
            "authorization": f"Bearer {key or keys.public_key}",
            "content-type": "application/json",
            "x-platform": "web",
        },
    )


def buy(h: Harness, keys: AppKeys, user: str, sub_id: str, *, active: bool = True) -> None:
    """A subscription known by its token, posted for `user`; its own product (documents
    list one subscription per product), except the first, which grants "pro"."""
    now = int(time.time())
    period = (now - DAY, now + 30 * DAY) if active else (now - 60 * DAY, now - 30 * DAY)
    product = PRODUCT if sub_id.endswith("01") else f"prod_{sub_id[4:]}"
    body = subscription_created(
        event_id=f"evt_{sub_id}", created=now, period=period, sub_id=sub_id, product=product
    )
    h.webhook(keys, body)
    answer = h.receipt(keys, user, sub_id)
    assert answer.status_code == 200, answer.text


def subscriptions(h: Harness, keys: AppKeys, user: str) -> list[str]:
    subs = h.subscriber(keys, user)["subscriber"]["subscriptions"]
    return sorted(entry["store_transaction_id"] for entry in subs.values())


def last_entry(h: Harness, keys: AppKeys, user: str) -> dict[str, Any]:
    entry: dict[str, Any] = h.history(keys, user)[-1]
    assert entry["kind"] == "identify"
    return entry


def verified(h: Harness) -> None:
    result = Replay(h.ledger).run(verify=True)
    assert result.verified is True, result.differences


def test_anonymous_and_new_unknown_are_aliased_and_answered_201(h: Harness) -> None:
    keys = h.app()
    buy(h, keys, ANON, "sub_Anon0001")
    answer = identify(h, keys, ANON, "user_123")
    assert answer.status_code == 201, answer.text
    subscriber = answer.json()["subscriber"]
    assert subscriber["original_app_user_id"] == ANON  # the first id of the customer
    assert "pro" in subscriber["entitlements"]
    assert "subscriber_attributes" not in subscriber  # public key
    assert h.subscriber(keys, ANON)["subscriber"] == h.subscriber(keys, "user_123")["subscriber"]
    entry = last_entry(h, keys, "user_123")
    assert entry["what_changed"].startswith(f"anonymous id {ANON} identified as user_123: aliased")
    assert entry["transfer"] is None
    again = identify(h, keys, ANON, "user_123")
    assert again.status_code == 200  # known now
    assert last_entry(h, keys, "user_123")["what_changed"].endswith(
        "already one customer: no change"
    )
    verified(h)


def test_an_unknown_anonymous_id_is_aliased_so_its_later_purchases_reach_the_user(
    h: Harness,
) -> None:
    """Applied in log order: the token for the anonymous id comes after the identify, and
    finds the anonymous id already aliased with the user."""
    keys = h.app()
    assert identify(h, keys, ANON, "user_123").status_code == 201
    buy(h, keys, ANON, "sub_Late0001")
    assert subscriptions(h, keys, "user_123") == ["sub_Late0001"]
    verified(h)


def test_anonymous_and_a_known_new_id_without_an_anonymous_alias_are_aliased(h: Harness) -> None:
    keys = h.app()
    h.attributes(keys, "user_123", {"plan": {"value": "gold"}})
    buy(h, keys, ANON, "sub_Anon0001")
    answer = identify(h, keys, ANON, "user_123", key=keys.secret_key)
    assert answer.status_code == 200, answer.text
    subscriber = answer.json()["subscriber"]
    assert subscriber["subscriber_attributes"]["plan"]["value"] == "gold"
    assert [e["store_transaction_id"] for e in subscriber["subscriptions"].values()] == [
        "sub_Anon0001"
    ]
    assert subscriber["original_app_user_id"] == "user_123"  # it appeared first
    assert "aliased" in last_entry(h, keys, ANON)["what_changed"]
    verified(h)


def test_anonymous_into_a_user_with_an_anonymous_alias_transfers_without_aliasing(
    h: Harness,
) -> None:
    keys = h.app()
    buy(h, keys, ANON_2, "sub_Old00002")
    assert identify(h, keys, ANON_2, "user_123").status_code == 201  # user_123's own alias
    buy(h, keys, ANON, "sub_New00003")
    answer = identify(h, keys, ANON, "user_123")
    assert answer.status_code == 200, answer.text
    assert subscriptions(h, keys, "user_123") == ["sub_New00003", "sub_Old00002"]
    assert subscriptions(h, keys, ANON) == []
    assert h.subscriber(keys, ANON)["subscriber"]["original_app_user_id"] == ANON  # no alias
    entry = last_entry(h, keys, "user_123")
    assert "sub_New00003 transferred from" in entry["what_changed"]
    assert entry["transfer"] == {
        "transferred_from": [ANON],
        "transferred_to": [ANON_2, "user_123"],
    }
    verified(h)


def test_an_identified_current_user_hands_its_purchases_to_the_new_id(h: Harness) -> None:
    keys = h.app()
    buy(h, keys, "user_old", "sub_Ident001")
    answer = identify(h, keys, "user_old", "user_new")
    assert answer.status_code == 201, answer.text
    assert [
        e["store_transaction_id"] for e in answer.json()["subscriber"]["subscriptions"].values()
    ] == ["sub_Ident001"]
    assert subscriptions(h, keys, "user_old") == []
    assert h.subscriber(keys, "user_old")["subscriber"]["original_app_user_id"] == "user_old"
    entry = last_entry(h, keys, "user_new")
    assert entry["what_changed"] == (
        "user_old identified as user_new: sub_Ident001 transferred from user_old to user_new"
    )
    assert entry["transfer"] == {"transferred_from": ["user_old"], "transferred_to": ["user_new"]}
    assert last_entry(h, keys, "user_old") == entry
    verified(h)


def test_identify_respects_the_transfer_behavior_for_identified_owners(h: Harness) -> None:
    keys = h.app(transfer_behavior="transfer_if_no_active")
    buy(h, keys, "user_old", "sub_Active01")
    buy(h, keys, "user_old", "sub_Ended002", active=False)
    answer = identify(h, keys, "user_old", "user_new")
    assert answer.status_code == 201  # the login itself always succeeds
    assert subscriptions(h, keys, "user_new") == ["sub_Ended002"]
    assert subscriptions(h, keys, "user_old") == ["sub_Active01"]
    assert last_entry(h, keys, "user_new")["what_changed"].endswith(
        "; sub_Active01 kept by transfer_if_no_active"
    )
    h.configure(keys, transfer_behavior="keep_with_original")
    assert identify(h, keys, "user_old", "user_other").status_code == 201
    assert subscriptions(h, keys, "user_other") == []
    nothing_moved = last_entry(h, keys, "user_other")
    assert nothing_moved["transfer"] is None
    assert nothing_moved["what_changed"].endswith(
        "no purchase transferred from user_old to user_other; sub_Active01 kept by keep_with_original"
    )
    assert subscriptions(h, keys, "user_old") == ["sub_Active01"]
    h.configure(keys, transfer_behavior="transfer")
    buy(h, keys, ANON, "sub_Anon0001")
    h.configure(keys, transfer_behavior="keep_with_original")
    identify(h, keys, ANON_2, "user_x")  # user_x now has an anonymous alias
    identify(h, keys, ANON, "user_x")  # anonymous purchases move whatever the behaviour
    assert subscriptions(h, keys, "user_x") == ["sub_Anon0001"]
    verified(h)


def test_same_customer_unknown_current_and_same_id_change_nothing_but_the_new_id(
    h: Harness,
) -> None:
    keys = h.app()
    assert identify(h, keys, "user_a", "user_a").status_code == 201  # now known
    assert identify(h, keys, "user_a", "user_a").status_code == 200
    assert identify(h, keys, "ghost", "user_b").status_code == 201
    assert h.subscriber(keys, "user_b")["subscriber"]["original_app_user_id"] == "user_b"
    entry = last_entry(h, keys, "user_b")
    assert (
        entry["what_changed"]
        == "ghost identified as user_b: ghost holds nothing to carry over: no change"
    )
    verified(h)


def test_identify_validates_like_receipts(h: Harness) -> None:
    keys = h.app()
    cases: list[tuple[Any, Any, str | None, bytes, int, int]] = [
        (ANON, "", None, b"", 400, 7220),
        ("", "user_1", None, b"", 400, 7220),
        (ANON, "anonymous", None, b"", 400, 7256),
        (ANON, "a/b", None, b"", 400, 7256),
        ("x" * 101, "user_1", None, b"", 400, 7256),
        (ANON, "user_1", "strp_nope", b"", 401, 7225),
        (None, None, None, b"{", 400, 7226),
        (None, None, None, b'{"app_user_id": 1, "new_app_user_id": "u"}', 400, 7226),
    ]
    for current, new, key, raw, status, code in cases:
        answer = identify(h, keys, current, new, key=key, raw=raw)
        assert (answer.status_code, answer.json()["code"]) == (status, code), (current, new, raw)
    missing_key = h.client.post("/v1/subscribers/identify", content=b"{}")
    assert (missing_key.status_code, missing_key.json()["code"]) == (401, 7225)
    assert h.ledger.last_position() == 1 + 1 + 1  # the app's events only: nothing appended


def test_the_app_user_id_identify_can_still_be_read(h: Harness) -> None:
    """`POST /v1/subscribers/identify` shadows the path of the (valid) App User ID
    "identify": its GET, attributes and history routes must still answer."""
    keys = h.app()
    h.attributes(keys, "identify", {"plan": {"value": "gold"}})
    doc = h.subscriber(keys, "identify")["subscriber"]
    assert doc["original_app_user_id"] == "identify"
    assert doc["subscriber_attributes"]["plan"]["value"] == "gold"
    assert h.history(keys, "identify")[0]["kind"] == "attributes"
