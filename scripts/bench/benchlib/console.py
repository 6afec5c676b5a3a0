"""The console benchmark's pieces: a customer with N facts in a store, a signed-in client,
and the load time of a page (SPEC 13: < 300 ms for a customer with 1,000 facts)."""

from __future__ import annotations

import re
import statistics
import time
from typing import Any

import httpx

from subledger.apps import AppConfig
from subledger.ledger import Ledger
from subledger.settings import parse_database_url
from tests.samples import DAY, SECRET, invoice_event, notification, subscription_event, token

USER, SUB, CUSTOMER = "bench_user", "sub_Bench0001", "cus_Bench0001"
START = 1_767_225_600  # 2026-01-01 UTC


def customer_facts(app_id: str, count: int) -> list[Any]:
    """A token, then subscription updates and paid invoices in turn: `count` facts, every
    one in the customer's timeline, the purchase holding one snapshot per update."""
    facts: list[Any] = [token(app_id, START * 1000, user=USER, fetch=SUB)]
    for n in range(count - 1):
        at = START + n * DAY
        period = (at, at + 30 * DAY)
        if n % 2 == 0:
            body = subscription_event(
                event_type="customer.subscription.created"
                if n == 0
                else "customer.subscription.updated",
                event_id=f"evt_b{n:06d}",
                created=at,
                sub_id=SUB,
                customer=CUSTOMER,
                period=period,
            )
        else:
            body = invoice_event(
                event_id=f"evt_b{n:06d}",
                created=at,
                invoice_id=f"in_B{n:06d}",
                sub_id=SUB,
                customer=CUSTOMER,
                period=period,
                paid_at=at,
            )
        facts.append(notification(app_id, body, (at + 1) * 1000))
    return facts


def fill(url: str, count: int) -> tuple[str, str, int]:
    """An app with an integration (its deliveries stay pending: no sender runs) and a
    customer with `count` facts; (app id, secret key, last position)."""
    ledger = Ledger(parse_database_url(url))
    try:
        app, _, secret = ledger.create_app(
            "bench",
            AppConfig(),
            webhook_secrets=[SECRET],
            entitlements={"pro": ["prod_TKbE3nVq8YhXcM"]},
        )
        ledger.add_integration(app.app_id, "http://127.0.0.1:9/hook")
        facts = customer_facts(app.app_id, count)
        for start in range(0, len(facts), 200):
            ledger.record(*facts[start : start + 200])
        return app.app_id, secret, ledger.last_position()
    finally:
        ledger.close()


def wait_projected(client: httpx.Client, position: int, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while client.get("/ready").json()["projection"]["position"] < position:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the projection did not reach {position}")
        time.sleep(0.2)


def sign_in(client: httpx.Client, secret: str) -> None:
    form = client.get("/console/sign-in")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf
    answer = client.post("/console/sign-in", data={"csrf": csrf.group(1), "key": secret})
    assert answer.status_code == 200, answer.text
    assert "/console/sign-in" not in str(answer.url), answer.text


def timed(client: httpx.Client, path: str, repeat: int, **headers: str) -> dict[str, Any]:
    """Wall time of a whole answer (request sent → body read), after two warm-ups."""
    times = []
    size = 0
    for n in range(repeat + 2):
        began = time.perf_counter()
        answer = client.get(path, headers=headers)
        elapsed = time.perf_counter() - began
        assert answer.status_code == 200, (path, answer.status_code, answer.text[:300])
        size = len(answer.content)
        if n >= 2:
            times.append(elapsed * 1000)
    times.sort()
    return {
        "path": path,
        "median_ms": round(statistics.median(times), 1),
        "p90_ms": round(times[int(0.9 * (len(times) - 1))], 1),
        "bytes": size,
    }
