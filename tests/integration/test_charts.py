"""Charts on SQLite and PostgreSQL (SPEC 11): the seed scenario through the HTTP API with
hand-computed numbers, and a generated month of lifecycles through the projector, equal
to the hand-computed charts and to the in-memory fold, and the same after `replay`."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest

from projections.chartreads import chart_drilldown, chart_series
from projections.charts import CHARTS, ChartQuery, Series, series
from projections.replay import Replay
from subledger.cli import main
from subledger.settings import Database, Settings
from tests.harness import FoldStore, Harness, harness
from tests.lifecycles import expected_day, facts
from tests.samples import scenario_bodies
from tests.unit.test_charts import FIRST, LAST, TODAY, day_rows, folded, month_of_lifecycles

SUB = "sub_1SLr4eQx7RtY2pLmVb2NcQ8s"


@pytest.fixture
def h(settings: Settings) -> Iterator[Harness]:
    with harness(settings) as running:
        yield running


def chart(h: Harness, secret: str, path: str, **params: str) -> Any:
    response = h.client.get(
        f"/v1/charts/{path}", params=params, headers={"authorization": f"Bearer {secret}"}
    )
    return response.status_code, response.json()


def test_the_seed_scenario_charted_by_hand(h: Harness) -> None:
    keys = h.app()
    assert h.receipt(keys, "user_123", SUB).status_code == 200
    for body in scenario_bodies():
        h.webhook(keys, body)
    h.settle()
    s = keys.secret_key
    october = {"start": "2026-09-30", "end": "2026-10-12"}
    _, active = chart(h, s, "active_subscriptions", **october)
    by_day = {b["bucket"]: b["value"] for b in active["buckets"]}
    # Paid from the period start on Oct 1; the full refund at 10:11 on Oct 11 ends access.
    assert by_day["2026-09-30"] == 0
    assert by_day["2026-10-01"] == by_day["2026-10-10"] == 1
    assert by_day["2026-10-11"] == 0
    _, mrr = chart(h, s, "mrr", currency="USD", **october)
    assert {b["bucket"]: b["value"] for b in mrr["buckets"]}["2026-10-05"] == 999
    # Revenue of October: 9.99 paid on Oct 1, refunded on Oct 11, charged back to Oct 1.
    status, revenue = chart(h, s, "revenue/2026-10-01", currency="usd")
    assert status == 200
    assert revenue["bucket"]["value"] == 0
    (paid,) = revenue["items"]
    assert paid["transaction"] == "in_1SLr4eQx7RtY2pLmT3kW9uZa"
    assert paid["charges"] == ["ch_3SLr4fQx7RtY2pLm1Xq0sE4m"]
    assert len(paid["positions"]) == 2  # the invoice's notification and the refund's
    _, rate = chart(h, s, "refund_rate/2026-10")
    assert rate["bucket"]["values"] == {"transactions": 1, "refunded": 1}
    assert rate["bucket"]["value"] == 100.0
    _, churn = chart(h, s, "churn/2026-10-11")
    assert churn["bucket"]["values"] == {"expired": 1, "resubscribed": 0, "active_at_start": 1}
    assert churn["bucket"]["value"] == 100.0
    today = dt.datetime.now(dt.UTC).date().isoformat()  # first seen: when the token came
    _, new = chart(h, s, f"new_customers/{today}")
    assert [i["customer"] for i in new["items"]] == ["user_123"]
    assert len(new["items"][0]["positions"]) == 1  # the token that first named user_123
    _, trials = chart(
        h, s, "active_trials", start="2026-10-01", end="2026-10-31", resolution="month"
    )
    assert [b["value"] for b in trials["buckets"]] == [0]


def test_chart_refusals_name_their_codes(h: Harness) -> None:
    keys = h.app()
    assert chart(h, keys.public_key, "mrr")[0] == 403
    for path, params, status, code in (
        ("profit", {}, 404, 8201),
        ("mrr/2026-13", {}, 404, 8202),
        ("mrr/1969-12-31", {}, 404, 8202),
        ("mrr", {"currency": "euro"}, 400, 8203),
    ):
        answer = chart(h, keys.secret_key, path, **params)
        assert (answer[0], answer[1]["code"]) == (status, code), path
    status, body = chart(h, keys.secret_key, "mrr", start="2026-01-01", end="2030-01-01")
    assert status == 200 and body["truncated"] is True and len(body["buckets"]) == 1000


def series_of(store: FoldStore, app_id: str) -> dict[tuple[str, str | None], Series]:
    found = {}
    for name in CHARTS:
        for currency in ("usd", "eur") if name in ("mrr", "revenue") else (None,):
            q = ChartQuery(name=name, today=TODAY, start=FIRST, end=LAST, currency=currency)
            found[(name, currency)] = chart_series(store.reader, app_id, q)
    return found


def test_a_generated_month_on_the_store_and_after_replay(
    database: Database,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    lcs = month_of_lifecycles(28)
    store = FoldStore(database)
    try:
        app_id = store.run(lambda a: [f for lc in lcs for f in facts(a, lc)])
        live = series_of(store, app_id)
        memory, memory_app = folded(lcs)
        rows = day_rows(memory, memory_app)
        for key, got in live.items():
            name, currency = key
            q = ChartQuery(name=name, today=TODAY, start=FIRST, end=LAST, currency=currency)
            assert got == series(rows, q), key
        for bucket in live["active_subscriptions", None].buckets:
            assert bucket.values == expected_day(lcs, "active_subscriptions", bucket.bucket)
        for bucket in live["revenue", "eur"].buckets:
            assert bucket.value == expected_day(lcs, "revenue", bucket.bucket, "eur").get("eur", 0)
        q = ChartQuery(name="mrr", today=TODAY, currency="usd")
        down = chart_drilldown(store.reader, app_id, q, "2026-12-20")
        assert down.bucket == live["mrr", "usd"].buckets[19]
        assert Replay(store.ledger).run(verify=True).verified
        assert Replay(store.ledger).run().swapped
        assert series_of(store, app_id) == live
        monkeypatch.setenv("SUBLEDGER_DATABASE_URL", database_url)
        argv = ["charts", "active_subscriptions", "--app", app_id, "--from", "2026-12-01"]
        assert main([*argv, "--to", "2027-01-31"]) == 0  # piped: `bucket value` lines
        shown = capsys.readouterr().out.splitlines()
        buckets = live["active_subscriptions", None].buckets
        assert shown == [f"{b.bucket} {int(b.value or 0)}" for b in buckets]
        assert main(["charts", "mrr", "--app", app_id, "--at", "2026-12-20", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["items"] == msgspec.to_builtins(
            chart_drilldown(
                store.reader, app_id, ChartQuery(name="mrr", today=TODAY), "2026-12-20"
            ).items
        )
        assert main(["charts", "mrr", "--app", "nope"]) == 1
    finally:
        store.close()
