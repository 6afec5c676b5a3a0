"""State as of any moment (SPEC 12, issue 22 item 1): the document `GET /v1/subscribers/{id}`
answered after each fact is what `?as_of=` answers for that position, and for any time up to
the next fact, for every alias; the same after a rebuild; dated then, not now."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import pytest

from projections.replay import Replay
from projections.rules.dates import iso
from subledger.facts import AttributesPosted, AttributeValue, Fact, UserIdentified
from tests.harness import AppKeys, Harness
from tests.integration.test_audit import Cli, cli  # noqa: F401 - the `cli` fixture
from tests.samples import DAY, notification, subscription_created, subscription_event, token

SUB = "sub_AsOf0001"
ANON = "$RCAnonymousID:" + "ab" * 16
USER = "user_asof"
IDS = (ANON, USER, "nobody")
T0 = 1_788_220_800  # 2026-09-01T00:00:00Z: every fact is received in the past
PERIOD = (T0, T0 + 30 * DAY)
RENEWED = (T0 + 30 * DAY, T0 + 60 * DAY)


def facts(app_id: str) -> list[tuple[int, Fact]]:
    """(receive time in s, fact): an anonymous purchase, attributes, the login that aliases
    it, a renewal, a cancellation and the end, each received when Stripe created it."""
    sub = {"sub_id": SUB, "customer": "cus_AsOf0001"}

    def event(at: int, n: int, **fields: Any) -> tuple[int, Fact]:
        body = subscription_event(event_id=f"evt_asof_{n}", created=at, **sub, **fields)
        return at, notification(app_id, body, at * 1000)

    def posted(at: int, fact: type[Any], **fields: Any) -> tuple[int, Fact]:
        return at, fact(
            originator_id=uuid.uuid4(), app_id=app_id, received_at_ms=at * 1000, **fields
        )

    created = subscription_created(event_id="evt_asof_0", created=T0 + 60, period=PERIOD, **sub)
    return [
        (T0 + 30, token(app_id, (T0 + 30) * 1000, user=ANON, fetch=SUB)),
        (T0 + 60, notification(app_id, created, (T0 + 60) * 1000)),
        posted(
            T0 + 90,
            AttributesPosted,
            app_user_id=ANON,
            attributes={"plan": AttributeValue(value="gold")},
        ),
        posted(T0 + DAY, UserIdentified, app_user_id=ANON, new_app_user_id=USER),
        event(T0 + 30 * DAY, 1, period=RENEWED),
        event(T0 + 45 * DAY, 2, period=RENEWED, cancel_at_period_end=True),
        event(
            T0 + 60 * DAY,
            3,
            event_type="customer.subscription.deleted",
            period=RENEWED,
            status="canceled",
            ended_at=T0 + 60 * DAY,
            canceled_at=T0 + 45 * DAY,
        ),
    ]


def as_of(h: Harness, keys: AppKeys, user: str, value: str, key: str | None = None) -> Any:
    return h.client.get(
        f"/v1/subscribers/{quote(user, safe='')}",
        params={"as_of": value},
        headers={"authorization": f"Bearer {key or keys.secret_key}"},
    )


def time_text(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def expected(live: dict[str, Any], at_ms: int) -> dict[str, Any]:
    """The live answer as it reads at `at_ms`: only an id nobody held (the empty document,
    first seen "now") has dates of the request itself."""
    subscriber = dict(live["subscriber"])
    if subscriber["first_seen"] == live["request_date"]:
        subscriber["first_seen"] = subscriber["last_seen"] = iso(at_ms // 1000)
    return {"request_date": iso(at_ms // 1000), "request_date_ms": at_ms, "subscriber": subscriber}


def check_every_moment(
    h: Harness, keys: AppKeys, steps: list[tuple[int, int, dict[str, Any]]]
) -> int:
    """Every position and times between: what the live route answered then. Returns the
    number of answers compared."""
    compared = 0
    for k, (position, received_ms, live) in enumerate(steps):
        following = steps[k + 1][1] if k + 1 < len(steps) else received_ms + 1000
        moments = [(str(position), received_ms), (time_text(received_ms), received_ms)]
        moments.append((time_text((received_ms + following) // 2), (received_ms + following) // 2))
        for user in IDS:
            for value, at_ms in moments:
                answer = as_of(h, keys, user, value)
                assert answer.status_code == 200, answer.text
                assert answer.json() == expected(live[user], at_ms), (user, value)
                compared += 1
    before = steps[0][1] - 1
    for user in IDS:
        answer = as_of(h, keys, user, time_text(before)).json()
        assert answer["subscriber"]["entitlements"] == {}
        assert answer["subscriber"]["first_seen"] == iso(before // 1000)
    return compared


def test_as_of_answers_what_the_live_document_was_then_also_after_a_rebuild(
    h: Harness,
    cli: Cli,  # noqa: F811
) -> None:
    keys = h.app()
    steps: list[tuple[int, int, dict[str, Any]]] = []
    for at, fact in facts(keys.app_id):
        position = h.ledger.record(fact)
        h.settle()
        live = {user: h.subscriber(keys, user) for user in IDS}
        steps.append((position, at * 1000, live))
    assert check_every_moment(h, keys, steps) == len(steps) * len(IDS) * 3
    # Aliases as they were: before the login the anonymous id's customer was its own.
    assert steps[2][2][USER]["subscriber"]["entitlements"] == {}
    assert steps[3][2][USER]["subscriber"]["original_app_user_id"] == ANON
    # Dated then: active on day 50, long over now.
    day_50 = as_of(h, keys, USER, time_text((T0 + 50 * DAY) * 1000)).json()
    expires = day_50["subscriber"]["entitlements"]["pro"]["expires_date"]
    assert day_50["request_date"] < expires == iso(RENEWED[1])
    assert h.subscriber(keys, USER)["request_date"] > expires
    code, out, _ = cli(
        "explain", "--app", keys.app_id, USER, "--as-of", time_text((T0 + 50 * DAY) * 1000)
    )
    assert code == 0, out
    assert "entitlement" in out and "yes" in out and "evt_asof_2" in out and "evt_asof_3" not in out
    code, out, _ = cli("explain", "--app", keys.app_id, USER, "--as-of", str(steps[4][0]), "--json")
    assert code == 0 and json.loads(out) == as_of(h, keys, USER, str(steps[4][0])).json()
    assert Replay(h.ledger).run().swapped
    check_every_moment(h, keys, steps)
    assert Replay(h.ledger).run(verify=True).verified


BAD = (
    ("yesterday", 400, 8120),
    ("", 400, 8120),
    ("0", 400, 8120),
    ("-3", 400, 8120),
    ("2026-09-01T00:00:00", 400, 8120),  # no offset: which 00:00?
    ("2026-02-30T00:00:00Z", 400, 8120),
    ("2999-01-01T00:00:00Z", 404, 8121),  # the future has no log yet
    ("99999999999", 404, 8121),  # past the projected log
    ("9999999999999999999", 404, 8121),  # past any int64 position, too
)


def test_bad_as_of_values_are_refused_and_the_public_key_may_not_look_back(h: Harness) -> None:
    keys = h.app()
    h.ledger.record(token(keys.app_id, T0 * 1000, user=USER, fetch=SUB))
    h.settle()
    for value, status, code in BAD:
        answer = as_of(h, keys, USER, value)
        assert (answer.status_code, answer.json()["code"]) == (status, code), (value, answer.text)
        assert answer.json()["message"]
    refused = as_of(h, keys, USER, "1", key=keys.public_key)
    assert (refused.status_code, refused.json()["code"]) == (403, 7244)
    today = h.subscriber(keys, USER, key=keys.public_key)
    assert today["subscriber"]["original_app_user_id"] == USER


def test_explain_as_of_refuses_what_is_not_a_moment(
    h: Harness,
    cli: Cli,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    keys = h.app()
    with pytest.raises(SystemExit) as usage:  # argparse: a usage error
        cli("explain", "--app", keys.app_id, USER, "--as-of", "soon")
    assert usage.value.code == 2
    assert "neither a log position" in capsys.readouterr().err
    code, out, _ = cli("explain", "--app", keys.app_id, USER, "--as-of", "12345", "--json")
    assert code == 1 and "past the projected log" in json.loads(out)["error"]
