"""Every derived event type through the real service to a real receiver, on SQLite and
PostgreSQL (issue 20 item 6): each flow of the seed cases and scenarios runs in an app of
its own, and what its receiver got must be exactly what the fold derives in memory for the
same steps (tests/unit/test_outbound_events.py pins those types and fields one by one):
the same types, in the same order per purchase, with the same field values, only the ids,
app and receive times being this run's."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from projections.model import OUTBOUND_EVENTS
from subledger.integrations import EVENT_TYPES
from subledger.settings import Settings
from tests.harness import harness
from tests.integration.test_outbound import quick
from tests.memory import MemoryLog
from tests.receiver import Received, running_receiver
from tests.samples import (
    DAY,
    charge_event,
    invoice_event,
    notification,
    session_event,
    subscription_created,
)
from tests.unit.test_outbound_events import OTHER, P1, P2, P3, T0, C, sub, token

Step = tuple[str, str, str] | bytes  # ("token", user, fetch token) or a Stripe notification
CREATED = subscription_created(event_id="evt_c", created=C, period=P1)
FLOWS: dict[str, list[Step]] = {
    "trial-conversion": [
        ("token", "user_1", "sub_Test0001"),
        subscription_created(event_id="evt_c", created=C, period=P1, status="trialing"),
        sub(10, P2),
        sub(20, P3),
    ],
    "cancel-expire": [
        ("token", "user_1", "sub_Test0001"),
        CREATED,
        sub(20, P1, cancel_at_period_end=True, cancel_at=P1[1]),
        sub(30, P1, status="canceled", ended_at=P1[1], canceled_at=C + 20),
    ],
    "refund": [
        ("token", "user_1", "sub_Test0001"),
        CREATED,
        invoice_event(event_id="evt_i", created=C + 1, period=P1, paid_at=C + 1),
        charge_event(event_id="evt_r", created=C + 50, charge_created=C + 1, invoice="in_Test0001"),
    ],
    "billing-issue-recovery": [
        ("token", "user_1", "sub_Test0001"),
        CREATED,
        sub(10, P2, status="past_due"),
        sub(20, P2),
        sub(30, P3, status="past_due"),
        sub(40, P3, status="unpaid"),
    ],
    "product-change": [
        ("token", "user_1", "sub_Test0001"),
        CREATED,
        sub(10, (C + 10, C + 10 + 30 * DAY), product=OTHER),
    ],
    "transfer": [
        ("token", "user_1", "sub_Test0001"),
        CREATED,
        ("token", "user_2", "sub_Test0001"),
    ],
    "guest-one-time-purchase": [
        ("token", "guest_1", "cs_test_P1"),
        session_event(event_id="evt_p", created=C, mode="payment", session_id="cs_test_P1"),
    ],
    "resume-after-cancel": [
        ("token", "user_1", "sub_Test0001"),
        CREATED,
        sub(10, cancel_at_period_end=True),
        sub(20),
    ],
}
EVERY_TYPE = set(EVENT_TYPES) - {"TEST"}  # every type Stripe data derives
THIS_RUN = ("id", "app_id", "event_timestamp_ms")  # the fact's id, the app, receive time


def in_memory(steps: list[Step]) -> list[dict[str, Any]]:
    """The bodies the fold derives for `steps`, in the order it derives them."""
    log = MemoryLog()
    app_id = log.new_app()
    log.add_integration(app_id)
    for k, step in enumerate(steps):
        at = T0 + 1000 * k
        if isinstance(step, bytes):
            log.append(notification(app_id, step, at))
        else:
            log.append(token(app_id, at, user=step[1], fetch=step[2]))
    tables = log.fold()
    return [json.loads(raw)["body"] for (app, _), raw in tables.tables[OUTBOUND_EVENTS].items()]


def per_fact(events: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Events grouped by the fact that caused them (its receive time), facts in log order;
    within a fact by type and reason (a receiver gets them concurrently, in any order)."""
    groups: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        groups[event["event_timestamp_ms"]].append(event)
    key: Callable[[dict[str, Any]], tuple[str, str]] = lambda e: (  # noqa: E731
        e["type"],
        e["cancel_reason"] or e["expiration_reason"] or "",
    )
    return [
        [{k: v for k, v in e.items() if k not in THIS_RUN} for e in sorted(groups[t], key=key)]
        for t in sorted(groups)
    ]


def test_every_flow_reaches_its_receiver_as_the_fold_derives_it(settings: Settings) -> None:
    expected = {name: in_memory(steps) for name, steps in FLOWS.items()}
    assert {e["type"] for found in expected.values() for e in found} == EVERY_TYPE
    with running_receiver() as rx, harness(quick(settings)) as h:
        for name, steps in FLOWS.items():
            keys = h.app()
            h.ledger.add_integration(keys.app_id, rx.url(f"/{name}"))
            h.refresh()
            for step in steps:
                if isinstance(step, bytes):
                    h.webhook(keys, step)
                else:
                    assert h.receipt(keys, step[1], step[2]).status_code == 200
                time.sleep(0.002)  # each fact its own receive time (the grouping above)
        got: dict[str, list[Received]] = {
            name: rx.wait_for(f"/{name}", len(expected[name])) for name in FLOWS
        }
        time.sleep(0.3)  # nothing more arrives
        for name in FLOWS:
            assert len(rx.at(f"/{name}")) == len(expected[name]), name
    for name, received in got.items():
        assert per_fact([r.event for r in received]) == per_fact(expected[name]), name
