"""Signed Stripe deliveries as raw HTTP requests, and the files wrk sends them from."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "scenario-basic"
WEBHOOK_PATH = "/v1/incoming-webhooks/stripe/{app_id}"

# Ids in the fixtures that one "customer lifecycle" shares; each lifecycle gets fresh ones.
_SUBSCRIPTION_ID = "sub_1SLr4eQx7RtY2pLmVb2NcQ8s"
_CUSTOMER_ID = "cus_TKd8fQ2wZr5LsN"


class EventFactory:
    """Distinct, correctly signed Stripe notifications built from the scenario fixtures.

    Event k uses fixture k % 6 with a fresh event id; every six events share a fresh
    subscription and customer id (one lifecycle), so bodies are realistic (1.5-6 KB) and unique.
    """

    def __init__(self, secret: str, tag: str | None = None) -> None:
        self.secret = secret
        self.tag = tag or secrets.token_hex(4)
        self.templates = [p.read_text() for p in sorted(FIXTURES.glob("*.json"))]
        if not self.templates:
            raise RuntimeError(f"no fixtures in {FIXTURES}")
        self.event_ids = [json.loads(t)["id"] for t in self.templates]
        self.next = 0

    def bodies(self, count: int) -> Iterator[bytes]:
        for _ in range(count):
            k = self.next
            self.next += 1
            text = self.templates[k % len(self.templates)]
            lifecycle = f"{self.tag}{k // len(self.templates):010d}"
            text = (
                text.replace(self.event_ids[k % len(self.templates)], f"evt_B{self.tag}{k:012d}")
                .replace(_SUBSCRIPTION_ID, f"sub_B{lifecycle}")
                .replace(_CUSTOMER_ID, f"cus_B{lifecycle}")
            )
            yield text.encode()

    def requests(self, count: int, *, host: str, port: int, app_id: str) -> list[bytes]:
        from subledger.stripe.signature import sign

        path = WEBHOOK_PATH.format(app_id=app_id)
        now = int(time.time())
        out = []
        for body in self.bodies(count):
            signature = f"t={now},v1={sign(body, self.secret, now)}"
            out.append(raw_request(host, port, path, body, signature))
        return out


def raw_request(host: str, port: int, path: str, body: bytes, signature: str) -> bytes:
    """The bytes Stripe would send (its usual headers, keep-alive)."""
    head = (
        f"POST {path} HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\n"
        "User-Agent: Stripe/1.0 (+https://stripe.com/docs/webhooks)\r\n"
        "Accept: */*; q=0.5, application/xml\r\n"
        "Cache-Control: no-cache\r\n"
        "Content-Type: application/json; charset=utf-8\r\n"
        f"Stripe-Signature: {signature}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "\r\n"
    )
    return head.encode() + body


def write_pool(prefix: Path, threads: int, factory: EventFactory, count: int, **where: Any) -> None:
    """Generate `count` signed requests in chunks straight into wrk's per-thread files
    (thread i of wrk sends requests i, i + threads, ... in order)."""
    files = [open(f"{prefix}.{t}", "wb") for t in range(threads)]  # noqa: SIM115
    lengths = [open(f"{prefix}.{t}.len", "w") for t in range(threads)]  # noqa: SIM115
    try:
        made = 0
        while made < count:
            for raw in factory.requests(min(5000, count - made), **where):
                files[made % threads].write(raw)
                lengths[made % threads].write(f"{len(raw)}\n")
                made += 1
    finally:
        for f in (*files, *lengths):
            f.close()


def remove_pool(prefix: Path, threads: int) -> None:
    for t in range(threads):
        Path(f"{prefix}.{t}").unlink(missing_ok=True)
        Path(f"{prefix}.{t}.len").unlink(missing_ok=True)


def create_app(url: str, secret: str, *, track: bool = False) -> tuple[str, str]:
    """A new app in the store at `url` that accepts deliveries signed with `secret` (a day's
    tolerance: requests are signed before the run), tracking new purchases or not (then
    every event is fully projected); its id and public key."""
    from subledger.apps import AppConfig
    from subledger.ledger import Ledger
    from subledger.settings import parse_database_url

    ledger = Ledger(parse_database_url(url))
    try:
        app, public_key, _ = ledger.create_app(
            "bench",
            AppConfig(signature_tolerance_s=86400, track_new_purchases=track),
            webhook_secrets=[secret],
        )
    finally:
        ledger.close()
    return app.app_id, public_key


def receipt_requests(
    count: int, tag: str, known: int, *, host: str, port: int, public_key: str
) -> list[bytes]:
    """POST /v1/receipts for the subscriptions of lifecycles 0 .. known - 1 of an
    EventFactory with `tag`, in turn (a repeat is the same user and token again)."""
    out = []
    for i in range(count):
        lifecycle = f"{tag}{i % known:010d}"
        body = json.dumps(
            {"app_user_id": f"user_{lifecycle}", "fetch_token": f"sub_B{lifecycle}"}
        ).encode()
        head = (
            f"POST /v1/receipts HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Authorization: Bearer {public_key}\r\nX-Platform: stripe\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        out.append(head.encode() + body)
    return out
