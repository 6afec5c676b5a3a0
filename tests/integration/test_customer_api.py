"""The customer API's contract (SPEC 4, 5, 11): attributes, error codes, app isolation."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote

import pytest

from projections.replay import Replay
from subledger.identity import anonymous_id
from tests.harness import AppKeys, Harness
from tests.samples import scenario_bodies

SUB = "sub_1SLr4eQx7RtY2pLmVb2NcQ8s"


def get_subscriber(h: Harness, user: str, key: str) -> Any:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return h.client.get(f"/v1/subscribers/{quote(user, safe='')}", headers=headers)


def attributes_of(h: Harness, keys: AppKeys, user: str) -> dict[str, Any]:
    found: dict[str, Any] = h.subscriber(keys, user)["subscriber"]["subscriber_attributes"]
    return {k: v["value"] for k, v in found.items()}


def test_attributes_are_stored_shown_to_the_secret_key_and_deleted_by_null_or_empty(
    h: Harness,
) -> None:
    keys = h.app()
    answer = h.attributes(
        keys, "user_1", {"$email": {"value": "a@example.com"}, "plan": {"value": "gold"}}
    )
    assert answer.status_code == 200, answer.text
    assert attributes_of(h, keys, "user_1") == {"$email": "a@example.com", "plan": "gold"}
    public = get_subscriber(h, "user_1", keys.public_key)
    assert public.status_code == 200
    assert "subscriber_attributes" not in public.json()["subscriber"]
    h.attributes(keys, "user_1", {"plan": {"value": None}, "$email": {"value": ""}})
    assert attributes_of(h, keys, "user_1") == {}


def test_an_older_updated_at_ms_is_ignored_and_a_newer_one_wins(h: Harness) -> None:
    keys = h.app()
    h.attributes(keys, "user_1", {"plan": {"value": "gold", "updated_at_ms": 2_000}})
    h.attributes(keys, "user_1", {"plan": {"value": "old", "updated_at_ms": 1_000}})
    assert attributes_of(h, keys, "user_1") == {"plan": "gold"}
    h.attributes(keys, "user_1", {"plan": {"value": "new", "updated_at_ms": 3_000}})
    assert attributes_of(h, keys, "user_1") == {"plan": "new"}
    entry = h.subscriber(keys, "user_1")["subscriber"]["subscriber_attributes"]["plan"]
    assert entry["updated_at_ms"] == 3_000


def test_invalid_attributes_answer_7263_and_the_valid_ones_are_still_stored(h: Harness) -> None:
    keys = h.app()
    answer = h.attributes(
        keys,
        "user_1",
        {
            "plan": {"value": "gold"},
            "9lives": {"value": "x"},
            "$email": {"value": "not an email"},
            "$madeUp": {"value": "x"},
            "long": {"value": "x" * 501},
            "k" * 41: {"value": "x"},
            "k" * 40: {"value": "forty"},
        },
    )
    assert answer.status_code == 400
    body = answer.json()
    assert body["code"] == 7263
    refused = sorted(e["key_name"] for e in body["attribute_errors"])
    assert refused == ["$email", "$madeUp", "9lives", "k" * 41, "long"]
    assert all(e["message"] for e in body["attribute_errors"])
    assert attributes_of(h, keys, "user_1") == {"plan": "gold", "k" * 40: "forty"}


def test_at_most_fifty_custom_keys(h: Harness) -> None:
    keys = h.app()
    many = {f"k{i}": {"value": "v"} for i in range(50)}
    assert h.attributes(keys, "user_1", many).status_code == 200
    answer = h.attributes(keys, "user_1", {"one_more": {"value": "v"}})
    assert answer.status_code == 400
    assert answer.json()["code"] == 7263
    assert len(attributes_of(h, keys, "user_1")) == 50


def receipt(h: Harness, body: Any, headers: dict[str, str]) -> Any:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return h.client.post(
        "/v1/receipts", content=content, headers={"content-type": "application/json", **headers}
    )


def test_receipt_errors_carry_the_spec_codes(h: Harness) -> None:
    keys = h.app()
    good = {"app_user_id": "user_1", "fetch_token": SUB}
    auth = {"authorization": f"Bearer {keys.public_key}", "x-platform": "stripe"}
    cases: list[tuple[Any, dict[str, str], int, int]] = [
        (good, {"x-platform": "stripe"}, 401, 7225),
        (good, {**auth, "authorization": "Bearer slpk_nope"}, 401, 7225),
        (good, {"authorization": auth["authorization"]}, 400, 7000),
        (good, {**auth, "x-platform": "ios"}, 400, 7000),
        ({**good, "fetch_token": "pi_123"}, auth, 400, 7103),
        ({**good, "app_user_id": ""}, auth, 400, 7220),
        ({**good, "app_user_id": "a/b"}, auth, 400, 7256),
        (b'{"app_user_id": "user_1", "fetch_token": ', auth, 400, 7226),
        ({"app_user_id": "user_1"}, auth, 400, 7226),
        ({**good, "attributes": {"9lives": {"value": "x"}}}, auth, 400, 7263),  # no token kept
    ]
    before = h.service.ledger.last_position()
    for body, headers, status, code in cases:
        answer = receipt(h, body, headers)
        assert (answer.status_code, answer.json()["code"]) == (status, code), (body, headers)
        assert answer.json()["message"]
    assert h.service.ledger.last_position() == before  # bad input changes nothing


REFUSED_IDS = [
    *("no_user", "null", "none", "nil", "(null)", "NaN", "unidentified", "undefined"),
    *("unknown", "anonymous", "guest", "-1", "0", "[]", "{}", "[object Object]"),
    *("\x00", "a\x00b", "a/b", "x" * 101),
    # compared ignoring case and surrounding spaces
    *("NULL", "None", "Guest", " null ", "nan", "[OBJECT OBJECT]", "  "),
]


@pytest.mark.parametrize("app_user_id", REFUSED_IDS)
def test_blocked_and_malformed_app_user_ids_are_refused(h: Harness, app_user_id: str) -> None:
    keys = h.app()
    answer = h.receipt(keys, app_user_id, SUB)
    # a NUL anywhere in a JSON body is refused before the fields are read (issue #17)
    code = 7226 if "\x00" in app_user_id else 7256
    assert (answer.status_code, answer.json()["code"]) == (400, code), answer.text
    answer = get_subscriber(h, app_user_id, keys.secret_key)
    # an encoded '/' is decoded before routing, so such a path names no route at all
    expected = (404, 8404) if "/" in app_user_id else (400, 7256)
    assert (answer.status_code, answer.json()["code"]) == expected, answer.text


@pytest.mark.parametrize("app_user_id", ["x" * 100, "Nullable", "guest_42", "0x1", "User"])
def test_ids_near_the_blocked_ones_are_accepted(h: Harness, app_user_id: str) -> None:
    keys = h.app()
    assert h.receipt(keys, app_user_id, SUB).status_code == 200
    assert get_subscriber(h, app_user_id, keys.secret_key).status_code == 200


def test_customer_route_errors_carry_the_spec_codes(h: Harness) -> None:
    keys = h.app()
    assert get_subscriber(h, "user_1", "").json()["code"] == 7225
    assert get_subscriber(h, "user_1", "slsk_nope").status_code == 401
    assert get_subscriber(h, "undefined", keys.secret_key).json()["code"] == 7256
    malformed = h.client.post(
        "/v1/subscribers/user_1/attributes",
        content=b"{",
        headers={"authorization": f"Bearer {keys.secret_key}"},
    )
    assert (malformed.status_code, malformed.json()["code"]) == (400, 7226)
    history = h.client.get(
        "/v1/subscribers/user_1/history", headers={"authorization": f"Bearer {keys.public_key}"}
    )
    assert (history.status_code, history.json()["code"]) == (403, 7244)


def test_a_key_of_one_app_never_reads_or_writes_another_apps_customers(h: Harness) -> None:
    mine, other = h.app(), h.app()
    assert h.receipt(mine, "user_123", SUB).status_code == 200
    for body in scenario_bodies():
        h.webhook(mine, body)
    h.attributes(mine, "user_123", {"plan": {"value": "gold"}})
    h.settle()
    document = h.subscriber(mine, "user_123")["subscriber"]
    assert document["entitlements"]

    answer = h.subscriber(other, "user_123")
    seen_by_other = answer["subscriber"]
    assert seen_by_other["entitlements"] == {}
    assert seen_by_other["subscriptions"] == {}
    assert seen_by_other["subscriber_attributes"] == {}
    # An unknown id: nothing is stored by the read, but the SDKs need a first_seen, so
    # both dates are the request's own.
    assert seen_by_other["first_seen"] == answer["request_date"] == seen_by_other["last_seen"]
    h.attributes(other, "user_123", {"plan": {"value": "lead"}})
    assert h.receipt(other, "user_123", SUB).status_code == 200
    h.settle()
    assert h.subscriber(mine, "user_123")["subscriber"] == document  # last_seen included
    assert attributes_of(h, mine, "user_123") == {"plan": "gold"}
    assert h.subscriber(other, "user_123")["subscriber"]["entitlements"] == {}


def test_anonymous_ids_are_the_prefix_and_32_lowercase_hex_derived_from_app_and_purchase() -> None:
    one = anonymous_id("app_1", SUB)
    assert re.fullmatch(r"\$RCAnonymousID:[0-9a-f]{32}", one)
    assert anonymous_id("app_1", SUB) == one
    assert anonymous_id("app_2", SUB) != one
    assert anonymous_id("app_1", "sub_other") != one


def test_the_document_has_exactly_revenuecats_shape(h: Harness) -> None:
    keys = h.app()
    h.receipt(keys, "user_123", SUB)
    for body in scenario_bodies():
        h.webhook(keys, body)
    h.attributes(keys, "user_123", {"$email": {"value": "a@example.com"}})
    h.settle()
    doc = h.subscriber(keys, "user_123")
    assert set(doc) == {"request_date", "request_date_ms", "subscriber"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", doc["request_date"])
    assert isinstance(doc["request_date_ms"], int)
    subscriber = doc["subscriber"]
    assert set(subscriber) == {
        "original_app_user_id",
        "first_seen",
        "last_seen",
        "management_url",
        "original_application_version",
        "original_purchase_date",
        "entitlements",
        "subscriptions",
        "non_subscriptions",
        "other_purchases",
        "subscriber_attributes",
    }
    assert subscriber["other_purchases"] == {}
    assert subscriber["non_subscriptions"] == {}
    (entitlement,) = subscriber["entitlements"].values()
    assert set(entitlement) == {
        "expires_date",
        "grace_period_expires_date",
        "product_identifier",
        "purchase_date",
    }
    (entry,) = subscriber["subscriptions"].values()
    assert entry["store"] == "stripe"
    assert entry["ownership_type"] == "PURCHASED"
    assert entry["store_transaction_id"] == SUB
    dates = [subscriber["first_seen"], subscriber["last_seen"], *entitlement.values()]
    dates += [v for k, v in entry.items() if k.endswith(("_date", "_at"))]
    for value in dates:
        assert (
            value is None
            or value.startswith("prod_")
            or re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", value)
        ), value
    assert subscriber["subscriber_attributes"]["$email"]["value"] == "a@example.com"


def test_a_settings_change_applies_from_its_place_in_the_log(h: Harness) -> None:
    """SPEC 2: the fact recording a change is the moment it applies, live and in a rebuild:
    the same second token is refused under keep_with_original and moves the purchase
    once the behaviour is back to transfer."""
    keys = h.app()
    h.receipt(keys, "user_1", SUB)
    h.webhook(keys, scenario_bodies()[1])
    h.configure(keys, transfer_behavior="keep_with_original")
    refused = h.receipt(keys, "user_2", SUB)
    assert (refused.status_code, refused.json()["code"]) == (409, 7102)
    h.configure(keys, transfer_behavior="transfer")
    moved = h.receipt(keys, "user_2", SUB)
    assert moved.status_code == 200, moved.text
    assert moved.json()["subscriber"]["subscriptions"]
    assert h.subscriber(keys, "user_1")["subscriber"]["subscriptions"] == {}
    result = Replay(h.ledger).run(verify=True)  # a rebuild applies each setting in order
    assert result.verified is True, result.differences
