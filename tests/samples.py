"""Stripe sample payloads (tests/fixtures, copied from shared/stripe) and Stripe-style signing."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

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
