"""Hostile but correctly signed or authenticated bodies (issue #17): every answer is 200 or a
documented 4xx, a refusal appends nothing, and whatever was accepted folds: the projection
reaches the end of the log. A fact the fold cannot apply would stop every customer's
projection, so the boundary must refuse it (subledger.storable) or the fold must take it."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from projections.runner import Projector
from subledger.codes import Code
from tests.harness import AppKeys, Harness
from tests.samples import signature_header, subscription_created

EXAMPLES = settings(
    max_examples=int(os.environ.get("SUBLEDGER_FAULT_EXAMPLES", "80")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
REFUSALS = {
    "webhooks": {Code.NOT_A_STRIPE_EVENT, Code.UNSUPPORTED_EVENT_TYPE},
    "receipts": {
        Code.MALFORMED_BODY,
        Code.EMPTY_APP_USER_ID,
        Code.INVALID_APP_USER_ID,
        Code.NOT_A_PURCHASE_TOKEN,
        Code.INVALID_ATTRIBUTES,
        Code.TRANSFER_REFUSED,
    },
    "attributes": {Code.MALFORMED_BODY, Code.INVALID_ATTRIBUTES},
}

texts = st.one_of(
    st.text(st.characters(codec=None, exclude_categories=()), max_size=12),  # NUL, surrogates
    st.sampled_from(["", "null", "a/b", "x" * 101, "\x00", "\ud800", "\U0001f600", "$email"]),
)
numbers = st.one_of(
    st.integers(-(2**70), 2**70),
    st.sampled_from([2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 10**30, 10**40]),
    st.floats(allow_nan=False, allow_infinity=False),
)
values = st.recursive(
    st.none() | st.booleans() | numbers | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=10,
)


class Deep:
    """`value` inside `depth` objects, written out after json.dumps (which recurses)."""

    def __init__(self, value: Any, depth: int) -> None:
        self.value = value
        self.depth = depth
        self.mark = f"deep-{id(self)}"

    def text(self, ascii_only: bool) -> str:
        inner = json.dumps(self.value, ensure_ascii=ascii_only)
        return '{"n": ' * self.depth + inner + "}" * self.depth


def mostly(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Two draws in three plausible, so that hostile parts also reach the fold."""
    return st.integers(0, 2).flatmap(lambda n: bad if n == 0 else good)


@st.composite
def hostile(draw: st.DrawFn) -> Any:
    """A value that may be deep (around the 64-level limit, or far past it)."""
    depth = draw(st.sampled_from([0, 0, 0, 1, 60, 63, 64, 65, 200, 100_000]))
    value = draw(values)
    return value if depth == 0 else Deep(value, depth)


def encode(draw: st.DrawFn, document: Any) -> bytes:
    """JSON as an attacker might send it: \\u escapes or raw UTF-8 (lone surrogates then as
    invalid bytes), sometimes with a duplicated key or a stray invalid byte."""
    ascii_only = draw(st.booleans())
    deep: list[Deep] = []

    def placeholder(part: Deep) -> str:
        deep.append(part)
        return part.mark

    text = json.dumps(document, ensure_ascii=ascii_only, default=placeholder)
    for part in deep:
        text = text.replace(json.dumps(part.mark), part.text(ascii_only))
    body = text.encode("utf-8", errors="surrogatepass")
    trick = draw(st.sampled_from(["none"] * 6 + ["duplicate", "byte", "truncate"]))
    if trick == "duplicate" and body.startswith(b"{") and len(body) > 2:
        body = b'{"id": "evt_dup", ' + body[1:]
    elif trick == "byte":
        at = draw(st.integers(0, len(body)))
        body = (
            body[:at] + draw(st.sampled_from([b"\xff", b"\xc0\x80", b"\xed\xa0\x80"])) + body[at:]
        )
    elif trick == "truncate":
        body = body[: draw(st.integers(0, len(body)))]
    return body


@st.composite
def webhooks(draw: st.DrawFn) -> bytes:
    """A realistic subscription event with one hostile part; metadata detection puts the
    metadata value through ownership, so hostile App User IDs reach the fold."""
    n = draw(st.integers(0, 10**6))
    event = json.loads(
        subscription_created(
            event_id=f"evt_h{n}",
            created=1_760_000_000,
            period=(1_760_000_000, 1_762_600_000),
            sub_id=f"sub_h{n}",
            metadata={"rc_app_user_id": f"user_{n}"},
        )
    )
    obj = event["data"]["object"]
    where = draw(
        st.sampled_from(["metadata", "metadata_key", "field", "time", "created", "type", "id"])
    )
    if where == "metadata":
        obj["metadata"]["rc_app_user_id"] = draw(hostile())
    elif where == "metadata_key":
        obj["metadata"] = {draw(texts): draw(hostile())}
    elif where == "field":
        obj[draw(st.sampled_from(sorted(obj)))] = draw(hostile())
    elif where == "time":  # the fields the fold turns into dates, at int64's edges
        item = obj["items"]["data"][0]
        field = draw(st.sampled_from(["current_period_end", "current_period_start"]))
        target = item if draw(st.booleans()) else obj
        target[draw(st.sampled_from([field, "start_date", "cancel_at", "ended_at"]))] = draw(
            numbers
        )
        obj["status"] = draw(st.sampled_from(["active", "canceled", "trialing", "past_due"]))
    elif where == "created":
        event["created"] = draw(numbers)
    elif where == "type":
        event["type"] = draw(texts)
    else:
        obj["id"] = draw(texts)
    return encode(draw, event)


@st.composite
def receipts(draw: st.DrawFn) -> bytes:
    token = f"sub_r{draw(st.integers(0, 10**6))}"
    body: dict[Any, Any] = {
        "app_user_id": draw(mostly(st.sampled_from(["user_1", "user_2", "ü\U0001f600"]), texts)),
        "fetch_token": draw(mostly(st.just(token), texts)),
        "attributes": draw(mostly(st.none(), attribute_maps())),
    }
    body[draw(texts)] = draw(mostly(st.integers(), hostile()))
    return encode(draw, body)


@st.composite
def attribute_maps(draw: st.DrawFn) -> Any:
    key = draw(mostly(st.sampled_from(["plan", "$email", "$displayName", "k" * 40]), texts))
    value = draw(mostly(st.sampled_from(["gold", "a@b.co", "", None, "\U0001f600" * 3]), texts))
    stamp = draw(mostly(st.integers(0, 2**62), numbers))
    entry = {"value": value, "updated_at_ms": stamp}
    return draw(
        mostly(st.just({key: entry}), st.sampled_from([{key: draw(hostile())}, draw(hostile())]))
    )


@st.composite
def attribute_posts(draw: st.DrawFn) -> bytes:
    extra = draw(mostly(st.just({}), st.builds(lambda k, v: {k: v}, texts, hostile())))
    return encode(draw, {"attributes": draw(attribute_maps()), **extra})


@pytest.fixture
def keys(h: Harness) -> AppKeys:
    return h.app(track_new_purchases=True, app_user_id_detection="metadata")


def caught_up(h: Harness) -> None:
    """The projection reaches the log's end; if not, fold once here to show why."""
    end = h.ledger.last_position()
    if h.service.wait_projected(end, 10):
        return
    projector = Projector(h.ledger)
    try:
        projector.catch_up()  # raises the fold's error, with its traceback
    finally:
        projector.close()
    raise AssertionError(f"the projection did not reach position {end}")


def answered(h: Harness, route: str, response: Any, before: int) -> None:
    assert response.status_code < 500, response.text
    if response.status_code == 200:
        event(f"{route}: 200")
    else:
        body = response.json()
        event(f"{route}: {response.status_code} code {body['code']}")
        assert body["code"] in {*REFUSALS[route], Code.BODY_TOO_LARGE}, body
        assert body["message"]
        stored_part = route == "attributes" and body["code"] == Code.INVALID_ATTRIBUTES
        if not stored_part and body["code"] != Code.TRANSFER_REFUSED:
            assert h.ledger.last_position() == before, "a refused request appended a fact"
    caught_up(h)


@EXAMPLES
@given(body=webhooks())
def test_signed_hostile_webhooks(h: Harness, keys: AppKeys, body: bytes) -> None:
    before = h.ledger.last_position()
    response = h.client.post(
        f"/v1/incoming-webhooks/stripe/{keys.app_id}",
        content=body,
        headers={"stripe-signature": signature_header(body), "content-type": "application/json"},
    )
    answered(h, "webhooks", response, before)


@EXAMPLES
@given(body=receipts())
def test_hostile_receipts(h: Harness, keys: AppKeys, body: bytes) -> None:
    before = h.ledger.last_position()
    response = h.client.post(
        "/v1/receipts",
        content=body,
        headers={"authorization": f"Bearer {keys.secret_key}", "x-platform": "stripe"},
    )
    answered(h, "receipts", response, before)


@EXAMPLES
@given(body=attribute_posts(), user=st.sampled_from(["user_1", "$RCAnonymousID:" + "a" * 32]))
def test_hostile_attributes(h: Harness, keys: AppKeys, body: bytes, user: str) -> None:
    before = h.ledger.last_position()
    response = h.client.post(
        f"/v1/subscribers/{user}/attributes",
        content=body,
        headers={"authorization": f"Bearer {keys.secret_key}"},
    )
    answered(h, "attributes", response, before)


def test_the_issues_examples_are_refused_and_nothing_is_stored(h: Harness, keys: AppKeys) -> None:
    """Issue #17's own reports, each a documented 4xx that stores nothing."""
    sub = json.loads(
        subscription_created(
            event_id="evt_i17", created=1_760_000_000, period=(1_760_000_000, 1_762_600_000)
        )
    )
    bad_utf8 = json.dumps(sub).replace('"sub_Test0001"', '"sub_Test\\u00e9"').encode()
    bad_utf8 = bad_utf8.replace(b"sub_Test\\u00e9", b"sub_Test\xe9")
    nul = json.dumps(
        {**sub, "data": {"object": {**sub["data"]["object"], "id": "sub_\x00"}}}
    ).encode()
    huge = json.dumps({**sub, "created": 10**30}).encode()
    deep = (
        json.dumps(sub)
        .replace('"metadata": {}', '"metadata": ' + "[" * 100_000 + "]" * 100_000)
        .encode()
    )
    before = h.ledger.last_position()
    for body in (bad_utf8, nul, huge, deep):
        response = h.client.post(
            f"/v1/incoming-webhooks/stripe/{keys.app_id}",
            content=body,
            headers={"stripe-signature": signature_header(body)},
        )
        assert (response.status_code, response.json()["code"]) == (400, Code.NOT_A_STRIPE_EVENT)
    auth = {"authorization": f"Bearer {keys.secret_key}"}
    big = {"plan": {"value": "gold", "updated_at_ms": 10**40}}
    answers = [
        h.client.post("/v1/subscribers/user_1/attributes", json={"attributes": big}, headers=auth),
        h.client.post(
            "/v1/receipts",
            json={"app_user_id": "user_1", "fetch_token": "sub_Test0001", "attributes": big},
            headers={**auth, "x-platform": "stripe"},
        ),
    ]
    assert [(a.status_code, a.json()["code"]) for a in answers] == [(400, Code.MALFORMED_BODY)] * 2
    assert h.ledger.last_position() == before
