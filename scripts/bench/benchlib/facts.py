"""Realistic generated facts, and a store filled with them (the projection and replay benchmarks).

Per purchase: a token, customer.subscription.created, checkout.session.completed,
invoice.updated (paid), then renewals (invoice + subscription update), and for some a
refund or a cancellation — the shapes of tests/fixtures/scenario-basic with fresh ids.
Bodies are ~1.5-6 KB like Stripe's. Deterministic for a given seed.
"""

from __future__ import annotations

import copy
import json
import random
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from subledger.facts import Fact, TokenPosted, received_notification

SCENARIO = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "scenario-basic"
PRODUCT = "prod_TKbE3nVq8YhXcM"  # the scenario's product, mapped to the entitlement "pro"
MONTH = 30 * 86_400
T0 = 1_780_000_000


def _templates() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(SCENARIO.glob("0*.json")):
        event = json.loads(path.read_bytes())
        found[event["type"]] = event
    return found


TEMPLATES = _templates()


def _event(kind: str, event_id: str, created: int, mutate: Any) -> bytes:
    event = copy.deepcopy(TEMPLATES[kind])
    event["id"] = event_id
    event["created"] = created
    event["data"].pop("previous_attributes", None)
    mutate(event["data"]["object"])
    return json.dumps(event, separators=(",", ":")).encode()


def purchase_facts(app_id: str, n: int, rng: random.Random) -> list[tuple[int, Fact]]:
    """(sort time, fact) for purchase number n."""
    sub, cus, user = f"sub_B{n:09d}", f"cus_B{n:09d}", f"user_{n:09d}"
    inv, ch, cs = f"in_B{n:09d}", f"ch_B{n:09d}", f"cs_test_B{n:09d}"
    start = T0 + rng.randrange(0, 90 * 86_400)
    facts: list[tuple[int, Fact]] = []

    def note(kind: str, created: int, mutate: Any) -> None:
        event_id = f"evt_B{n:09d}_{len(facts):02d}"
        body = _event(kind, event_id, created, mutate)
        fact = received_notification(
            app_id,
            event_id=event_id,
            event_type=kind,
            created=created,
            livemode=False,
            api_version="2026-10-28.endive",
            body=body,
            received_at_ms=(created + rng.randrange(0, 5)) * 1000,
            secret_fingerprint="bench",
        )
        facts.append((created, fact))

    def subscription(o: dict[str, Any], *, period: int, status: str = "active") -> None:
        o.update(id=sub, customer=cus, status=status, start_date=start, created=start)
        o["metadata"] = {"rc_app_user_id": user}
        item = o["items"]["data"][0]
        item["current_period_start"] = start + period * MONTH
        item["current_period_end"] = start + (period + 1) * MONTH
        item["subscription"] = sub

    def invoice(o: dict[str, Any], *, period: int, invoice_id: str) -> None:
        o.update(id=invoice_id, customer=cus, status="paid")
        o["status_transitions"]["paid_at"] = start + period * MONTH + 2
        o["parent"]["subscription_details"]["subscription"] = sub
        o["lines"]["data"][0]["period"] = {
            "start": start + period * MONTH,
            "end": start + (period + 1) * MONTH,
        }

    token_at = start + rng.choice((-5, 3, 30))  # token before or after the first notifications
    facts.append(
        (
            token_at,
            TokenPosted(
                originator_id=uuid.UUID(int=rng.getrandbits(128)),
                app_id=app_id,
                received_at_ms=token_at * 1000,
                app_user_id=user,
                fetch_token=sub,
            ),
        )
    )
    note("customer.subscription.created", start + 1, lambda o: subscription(o, period=0))
    note(
        "checkout.session.completed",
        start + 2,
        lambda o: o.update(
            id=cs, customer=cus, subscription=sub, metadata={"rc_app_user_id": user}
        ),
    )
    note("invoice.updated", start + 3, lambda o: invoice(o, period=0, invoice_id=inv))
    renewals = rng.choice((0, 1, 1, 2, 3))
    for period in range(1, renewals + 1):
        at = start + period * MONTH
        note(
            "invoice.updated",
            at + 3,
            lambda o, p=period: invoice(o, period=p, invoice_id=f"{inv}_{p}"),
        )
        note("customer.subscription.updated", at + 1, lambda o, p=period: subscription(o, period=p))
    if rng.random() < 0.15:
        note(
            "charge.refunded",
            start + 86_400,
            lambda o: o.update(
                id=ch, customer=cus, payment_intent=f"pi_B{n:09d}", created=start + 2
            ),
        )
    if rng.random() < 0.3:

        def cancel(o: dict[str, Any]) -> None:
            subscription(o, period=renewals, status="canceled")
            o.update(canceled_at=start + 10, ended_at=start + (renewals + 1) * MONTH)

        note("customer.subscription.deleted", start + (renewals + 1) * MONTH, cancel)
    return facts


def generate(app_id: str, count: int, seed: int = 7) -> Iterator[Fact]:
    """About `count` facts, purchases interleaved the way arrival times interleave them."""
    rng = random.Random(seed)
    made = 0
    n = 0
    window: list[tuple[int, Fact]] = []
    while made < count:
        batch = purchase_facts(app_id, n, rng)
        n += 1
        made += len(batch)
        window += batch
        if len(window) >= 2000:
            window.sort(key=lambda pair: pair[0])
            yield from (fact for _, fact in window[:1000])
            window = window[1000:]
    window.sort(key=lambda pair: pair[0])
    yield from (fact for _, fact in window)


def fill(url: str, count: int, integration: str | None = None) -> float:
    """A new app and about `count` generated facts in the store at `url`; seconds taken.
    `integration`: the app sends its outbound events to this URL (added before the facts)."""
    from subledger.apps import AppConfig
    from subledger.ledger import Ledger
    from subledger.settings import parse_database_url

    ledger = Ledger(parse_database_url(url))
    app, _, _ = ledger.create_app("bench", AppConfig(), entitlements={"pro": [PRODUCT]})
    if integration is not None:
        ledger.add_integration(app.app_id, integration)
    started = time.perf_counter()
    page: list[Fact] = []
    for fact in generate(app.app_id, count):
        page.append(fact)
        if len(page) == 2000:
            ledger.record_new(page)
            page = []
    if page:
        ledger.record_new(page)
    ledger.close()
    return time.perf_counter() - started
