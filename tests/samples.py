"""Stripe sample payloads (tests/fixtures, copied from shared/stripe) and Stripe-style signing."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

from subledger.facts import Fact, TokenPosted
from subledger.stripe.payloads import decode_envelope, notification_fact
from subledger.stripe.signature import sign

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SCENARIO = FIXTURES / "scenario-basic"
SECRET = "whsec_test_4eC39HqLyjWDarjtT1zdp7dc"


def scenario_files() -> list[Path]:
    return sorted(SCENARIO.glob("0*.json"))


def scenario_bodies() -> list[bytes]:
    """The six scenario notifications, as raw bytes exactly as stored on disk."""
    return [path.read_bytes() for path in scenario_files()]


def scenario_event(number: int) -> dict[str, Any]:
    event: dict[str, Any] = json.loads(scenario_files()[number - 1].read_bytes())
    return event


def stripe_object(name: str) -> dict[str, Any]:
    obj: dict[str, Any] = json.loads((SCENARIO / "objects" / f"{name}.json").read_bytes())
    return obj


def signature_header(body: bytes, *secrets: str, timestamp: int | None = None) -> str:
    """`t=…,v1=…` with one v1 per secret, as Stripe sends during a secret roll."""
    ts = int(time.time()) if timestamp is None else timestamp
    return ",".join([f"t={ts}", *(f"v1={sign(body, s, ts)}" for s in (secrets or (SECRET,)))])


def event_body(
    event_type: str,
    obj: dict[str, Any],
    *,
    event_id: str,
    created: int,
    livemode: bool = False,
    previous: dict[str, Any] | None = None,
) -> bytes:
    data: dict[str, Any] = {"object": obj}
    if previous is not None:
        data["previous_attributes"] = previous
    event = {
        "id": event_id,
        "object": "event",
        "api_version": "2026-10-28.endive",
        "created": created,
        "data": data,
        "livemode": livemode,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }
    return json.dumps(event, indent=2).encode()


# --- generated events: the scenario's objects as templates, with the fields a test varies ---

PRODUCT = "prod_TKbE3nVq8YhXcM"
DAY = 86_400


def _template(number: int) -> dict[str, Any]:
    obj: dict[str, Any] = scenario_event(number)["data"]["object"]
    return obj


def subscription_event(
    *,
    event_type: str = "customer.subscription.updated",
    event_id: str,
    created: int,
    sub_id: str = "sub_Test0001",
    customer: str | None = "cus_Test0001",
    status: str = "active",
    period: tuple[int, int],
    start_date: int | None = None,
    livemode: bool = False,
    metadata: dict[str, str] | None = None,
    cancel_at_period_end: bool = False,
    cancel_at: int | None = None,
    canceled_at: int | None = None,
    ended_at: int | None = None,
    product: str = PRODUCT,
    legacy: bool = False,
    price: dict[str, Any] | None = None,
) -> bytes:
    """A subscription notification; `legacy` puts the period on the subscription (pre-2025-03-31);
    `price` replaces fields of the item's price (unit_amount, currency, recurring)."""
    obj = _template(2)
    item = obj["items"]["data"][0]
    obj.update(
        id=sub_id,
        customer=customer,
        status=status,
        livemode=livemode,
        metadata=metadata or {},
        cancel_at_period_end=cancel_at_period_end,
        cancel_at=cancel_at,
        canceled_at=canceled_at,
        ended_at=ended_at,
        start_date=period[0] if start_date is None else start_date,
        created=period[0] if start_date is None else start_date,
    )
    item["price"]["product"] = item["plan"]["product"] = product
    if price:
        item["price"].update(price)
        obj["currency"] = item["price"]["currency"]
    item["subscription"] = sub_id
    if legacy:
        del item["current_period_start"], item["current_period_end"]
        obj["current_period_start"], obj["current_period_end"] = period
    else:
        item["current_period_start"], item["current_period_end"] = period
    return event_body(event_type, obj, event_id=event_id, created=created, livemode=livemode)


def subscription_created(
    *, event_id: str, created: int, period: tuple[int, int], **fields: Any
) -> bytes:
    """`customer.subscription.created`: the notification that can make a purchase known."""
    return subscription_event(
        event_type="customer.subscription.created",
        event_id=event_id,
        created=created,
        period=period,
        **fields,
    )


def session_event(
    *,
    event_id: str,
    created: int,
    session_id: str = "cs_test_Test0001",
    mode: str = "subscription",
    sub_id: str | None = "sub_Test0001",
    customer: str | None = "cus_Test0001",
    metadata: dict[str, str] | None = None,
    payment_status: str = "paid",
    livemode: bool = False,
) -> bytes:
    obj = _template(1)
    obj.update(
        id=session_id,
        mode=mode,
        subscription=sub_id if mode == "subscription" else None,
        customer=customer,
        metadata=metadata or {},
        payment_status=payment_status,
        livemode=livemode,
        created=created - 60,
        payment_intent=None if mode == "subscription" else f"pi_{session_id[-8:]}",
        invoice=None,
    )
    return event_body(
        "checkout.session.completed", obj, event_id=event_id, created=created, livemode=livemode
    )


def invoice_event(
    *,
    event_id: str,
    created: int,
    invoice_id: str = "in_Test0001",
    sub_id: str = "sub_Test0001",
    customer: str | None = "cus_Test0001",
    status: str = "paid",
    amount_paid: int = 999,
    paid_at: int | None = None,
    period: tuple[int, int],
    attempt_count: int = 1,
    legacy: bool = False,
    currency: str = "usd",
) -> bytes:
    obj = _template(3)
    obj.update(
        id=invoice_id,
        currency=currency,
        customer=customer,
        status=status,
        amount_paid=amount_paid,
        attempted=attempt_count > 0,
        attempt_count=attempt_count,
    )
    obj["status_transitions"]["paid_at"] = paid_at
    line = obj["lines"]["data"][0]
    line["period"] = {"start": period[0], "end": period[1]}
    line["invoice"] = invoice_id
    if legacy:
        obj["parent"] = None
        obj["subscription"] = sub_id
    else:
        obj["parent"]["subscription_details"]["subscription"] = sub_id
    return event_body("invoice.updated", obj, event_id=event_id, created=created)


def charge_event(
    *,
    event_id: str,
    created: int,
    charge_id: str = "ch_Test0001",
    customer: str | None = "cus_Test0001",
    amount: int = 999,
    amount_refunded: int = 999,
    charge_created: int,
    payment_intent: str = "pi_Test0001",
    invoice: str | None = None,
) -> bytes:
    obj = _template(5)
    obj.update(
        id=charge_id,
        customer=customer,
        amount=amount,
        amount_captured=amount,
        amount_refunded=amount_refunded,
        refunded=amount_refunded >= amount,
        created=charge_created,
        payment_intent=payment_intent,
    )
    if invoice is not None:
        obj["invoice"] = invoice
    return event_body("charge.refunded", obj, event_id=event_id, created=created)


def notification(app_id: str, body: bytes, at: int) -> Fact:
    """A verified notification as ingest stores it (for tests that append facts directly)."""
    return notification_fact(
        app_id, decode_envelope(body), body, received_at_ms=at, secret_fingerprint="test"
    )


def token(
    app_id: str, at: int, user: str = "user_123", fetch: str = "sub_1SLr4eQx7RtY2pLmVb2NcQ8s"
) -> Fact:
    return TokenPosted(
        originator_id=uuid.uuid4(),
        app_id=app_id,
        received_at_ms=at,
        app_user_id=user,
        fetch_token=fetch,
    )
