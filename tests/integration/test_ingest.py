"""Stripe ingest through litestar's test client, on SQLite and PostgreSQL (SPEC 3)."""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from litestar.testing import TestClient

from subledger.apps import AppConfig
from subledger.facts import NotificationReceived
from subledger.http.app import create_app
from subledger.ledger import Ledger
from subledger.sealing import fingerprint
from subledger.service import Service
from subledger.settings import Settings
from subledger.stripe.payloads import SUPPORTED_EVENT_TYPES, decode_envelope, notification_fact
from tests.samples import SECRET, event_body, scenario_bodies, signature_header


class Ingest:
    def __init__(self, client: TestClient[Any], service: Service) -> None:
        self.client = client
        self.ledger: Ledger = service.ledger
        self.app_id = self.new_app(secrets=[SECRET])

    def new_app(self, secrets: list[str], **config: Any) -> str:
        app, _, _ = self.ledger.create_app("t", AppConfig(**config), webhook_secrets=secrets)
        return app.app_id

    def post(self, body: bytes, header: str | None = "sign", app_id: str | None = None) -> Any:
        headers = {"content-type": "application/json"}
        if header == "sign":
            headers["stripe-signature"] = signature_header(body)
        elif header is not None:
            headers["stripe-signature"] = header
        url = f"/v1/incoming-webhooks/stripe/{app_id or self.app_id}"
        return self.client.post(url, content=body, headers=headers)

    def facts(self) -> list[NotificationReceived]:
        return [r for _, r in self.ledger.records() if isinstance(r, NotificationReceived)]


@pytest.fixture
def ingest(settings: Settings) -> Iterator[Ingest]:
    settings = msgspec.structs.replace(settings, projector="external")  # ingest only
    service = Service(settings)
    with TestClient(create_app(settings, service=service)) as client:
        yield Ingest(client, service)


def refused(ingest: Ingest, response: Any, status: int, code: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"code", "message"}
    assert body["code"] == code
    assert ingest.facts() == []
    return body


BODY = scenario_bodies()[1]


def test_accepts_and_appends_with_everything_the_fact_needs(ingest: Ingest) -> None:
    response = ingest.post(BODY)
    assert response.status_code == 200
    assert response.json() == {
        "received": True,
        "id": "evt_1SLr4hQx7RtY2pLmMb8gT1zX",
        "duplicate": False,
    }
    [fact] = ingest.facts()
    assert fact.body == BODY
    assert (fact.app_id, fact.event_id, fact.type) == (
        ingest.app_id,
        "evt_1SLr4hQx7RtY2pLmMb8gT1zX",
        "customer.subscription.created",
    )
    assert (fact.created, fact.livemode, fact.api_version) == (
        1790845205,
        False,
        "2026-10-28.endive",
    )
    assert fact.secret_fingerprint == fingerprint(SECRET)
    assert fact.received_at_ms > 1_700_000_000_000


def test_unknown_app_is_404(ingest: Ingest) -> None:
    response = ingest.post(BODY, app_id="app_0123456789abcdef0123456789abcdef")
    refused(ingest, response, 404, 8101)
    refused(ingest, ingest.post(BODY, app_id="not-an-app"), 404, 8101)


def test_body_over_the_limit_is_413(ingest: Ingest) -> None:
    big = BODY.replace(
        b'"metadata": {', b'"metadata": {"pad": "' + b"x" * (1024 * 1024) + b'", ', 1
    )
    refused(ingest, ingest.post(big), 413, 8102)


def test_app_without_a_secret_is_told_to_set_one(ingest: Ingest) -> None:
    app_id = ingest.new_app(secrets=[])
    body = refused(ingest, ingest.post(BODY, app_id=app_id), 400, 8103)
    assert "add-webhook-secret" in body["message"]


@pytest.mark.parametrize(
    ("header", "code"),
    [
        (None, 8104),
        ("garbage", 8104),
        ("t=1790845205", 8104),
        ("v1=" + "0" * 64, 8104),
        ("t=1790845205,v0=" + "0" * 64, 8104),
    ],
)
def test_missing_or_malformed_signatures_are_400(
    ingest: Ingest, header: str | None, code: int
) -> None:
    refused(ingest, ingest.post(BODY, header=header), 400, code)


def test_wrong_secret_is_400(ingest: Ingest) -> None:
    refused(
        ingest, ingest.post(BODY, header=signature_header(BODY, "whsec_not_this_one")), 400, 8105
    )


def test_stale_signature_is_400(ingest: Ingest) -> None:
    body = refused(
        ingest, ingest.post(BODY, header=signature_header(BODY, timestamp=1_000)), 400, 8106
    )
    assert "tolerance 300" in body["message"]


def test_an_apps_own_signature_tolerance_applies(ingest: Ingest) -> None:
    strict = ingest.new_app(secrets=[SECRET], signature_tolerance_s=60)
    now = int(time.time())
    old = ingest.post(BODY, header=signature_header(BODY, timestamp=now - 120), app_id=strict)
    assert "tolerance 60" in refused(ingest, old, 400, 8106)["message"]
    fresh = ingest.post(BODY, header=signature_header(BODY, timestamp=now - 30), app_id=strict)
    assert fresh.status_code == 200, fresh.text
    # the same 120-second-old signature is within the default 300 s of another app
    lenient = ingest.post(BODY, header=signature_header(BODY, timestamp=now - 120))
    assert lenient.status_code == 200, lenient.text


def test_reserialised_body_is_400(ingest: Ingest) -> None:
    header = signature_header(BODY)
    compact = json.dumps(json.loads(BODY), separators=(",", ":")).encode()
    refused(ingest, ingest.post(compact, header=header), 400, 8105)


def test_non_utf8_body_is_refused_cleanly(ingest: Ingest) -> None:
    body = b'{"id": "evt_\xff\xfe", "object": "event"}'
    refused(ingest, ingest.post(body), 400, 8107)


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"id": "evt_1", "object": "charge", "type": "charge.refunded", "created": 1, "data": {"object": {}}}',
        b'{"id": "ch_1", "object": "event", "type": "charge.refunded", "created": 1, "data": {"object": {}}}',
        b'{"id": "evt_1", "object": "event", "type": "charge.refunded", "created": 1}',
        b'{"id": "evt_1", "object": "event", "type": "charge.refunded", "created": 1, "data": {"object": 5}}',
    ],
)
def test_bodies_that_are_not_stripe_events_are_400(ingest: Ingest, body: bytes) -> None:
    refused(ingest, ingest.post(body), 400, 8107)


def test_unsupported_type_is_400_naming_it_and_the_supported_ones(ingest: Ingest) -> None:
    body = event_body(
        "invoice.paid", {"id": "in_1", "object": "invoice"}, event_id="evt_x", created=1
    )
    message = refused(ingest, ingest.post(body), 400, 8108)["message"]
    assert "invoice.paid" in message
    assert all(t in message for t in SUPPORTED_EVENT_TYPES)


def test_scenario_in_shuffled_order_then_again_as_duplicates(ingest: Ingest) -> None:
    bodies = scenario_bodies()
    random.Random(7).shuffle(bodies)
    for body in bodies:
        response = ingest.post(body)
        assert response.status_code == 200
        assert response.json()["duplicate"] is False
    for body in bodies:
        assert ingest.post(body).json()["duplicate"] is True
    assert sorted(f.body for f in ingest.facts()) == sorted(bodies)


def test_same_event_under_two_apps_is_two_facts(ingest: Ingest) -> None:
    other = ingest.new_app(secrets=[SECRET])
    assert ingest.post(BODY).json()["duplicate"] is False
    assert ingest.post(BODY, app_id=other).json()["duplicate"] is False
    assert sorted(f.app_id for f in ingest.facts()) == sorted([ingest.app_id, other])


def test_rotated_secret_verifies_and_is_recorded(ingest: Ingest) -> None:
    ingest.ledger.change_app(ingest.app_id, add_secrets=["whsec_rotated_new_1"])
    ingest.client.app.state.service.registry.refresh()
    response = ingest.post(BODY, header=signature_header(BODY, "whsec_rotated_new_1"))
    assert response.status_code == 200
    assert ingest.facts()[0].secret_fingerprint == fingerprint("whsec_rotated_new_1")


def test_one_log_line_per_request_without_secrets_or_payloads(
    ingest: Ingest, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="subledger.webhooks"):
        ingest.post(BODY)
        ingest.post(BODY, header=signature_header(BODY, "whsec_wrong_one"))
        with_pii = scenario_bodies()[0]  # a Checkout Session: the customer's name and email
        assert b"jenny" in with_pii.lower()
        assert ingest.post(with_pii).status_code == 200
    lines = [r for r in caplog.records if r.name == "subledger.webhooks"]
    assert len(lines) == 3
    first, second = (vars(r) for r in lines[:2])
    assert (first["outcome"], first["event_id"], first["status"]) == (
        "appended",
        "evt_1SLr4hQx7RtY2pLmMb8gT1zX",
        200,
    )
    assert first["type"] == "customer.subscription.created"
    assert first["duration_ms"] >= 0
    assert (second["outcome"], second["status"]) == ("refused:8105", 400)
    text = caplog.text + " ".join(str(vars(r)) for r in lines)
    assert SECRET not in text
    assert "jenny" not in text.lower()


def test_a_group_holding_a_stored_copy_still_commits_its_new_facts(ingest: Ingest) -> None:
    """Group commit (ledger.record_new): one copy already stored must not make the store
    refuse, or answer `duplicate`, for the new facts committed beside it."""

    def fact(body: bytes) -> NotificationReceived:
        envelope = decode_envelope(body)
        return notification_fact(
            ingest.app_id, envelope, body, received_at_ms=1, secret_fingerprint="fp"
        )

    stored, new = scenario_bodies()[1], scenario_bodies()[3]
    [first] = ingest.ledger.record_new([fact(stored)])
    assert first is not None
    again, added = ingest.ledger.record_new([fact(stored), fact(new)])
    assert again is None  # the copy: a duplicate
    assert added is not None and added > first  # the new fact: stored
    events = sorted(f.event_id for f in ingest.facts())
    assert events == sorted(json.loads(b)["id"] for b in (stored, new))
