"""Drive subledger through its HTTP API: apps, webhooks, tokens. `harness` runs the app in
this process behind litestar's test client; `served_harness` talks to a real
`subledger serve` process over a socket."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import msgspec
from litestar.testing import TestClient

from projections.reader import Reader
from projections.runner import Projector
from subledger.apps import AppConfig
from subledger.facts import Fact
from subledger.http.app import create_app
from subledger.ledger import Ledger
from subledger.service import Service
from subledger.settings import Database, Settings, parse_database_url
from tests.samples import PRODUCT, SECRET, signature_header


class AppKeys:
    def __init__(self, app_id: str, public_key: str, secret_key: str) -> None:
        self.app_id = app_id
        self.public_key = public_key
        self.secret_key = secret_key


class Harness:
    def __init__(self, client: httpx.Client, service: Service) -> None:
        self.client = client
        self.service = service

    @property
    def ledger(self) -> Ledger:
        return self.service.ledger

    def app(
        self,
        entitlements: dict[str, list[str]] | None = None,
        stripe_api_key: str | None = None,
        **config: Any,
    ) -> AppKeys:
        mapping = entitlements if entitlements is not None else {"pro": ["prod_TKbE3nVq8YhXcM"]}
        app, pk, sk = self.ledger.create_app(
            "test",
            AppConfig(**config),
            webhook_secrets=[SECRET],
            entitlements=mapping,
            stripe_api_key=stripe_api_key,
        )
        self.refresh()
        return AppKeys(app.app_id, pk, sk)

    def refresh(self) -> None:
        """Make new apps known to the service at once."""
        self.service.registry.refresh()

    def configure(self, keys: AppKeys, **config: Any) -> None:
        current = self.service.ledger.get_app(keys.app_id).config
        self.service.ledger.change_app(
            keys.app_id, config=msgspec.structs.replace(current, **config)
        )
        self.service.registry.refresh()

    def webhook(self, keys: AppKeys, body: bytes) -> Any:
        response = self.client.post(
            f"/v1/incoming-webhooks/stripe/{keys.app_id}",
            content=body,
            headers={
                "stripe-signature": signature_header(body),
                "content-type": "application/json",
            },
        )
        assert response.status_code == 200, response.text
        return response.json()

    def receipt(
        self, keys: AppKeys, app_user_id: str, token: str, key: str | None = None, **extra: Any
    ) -> Any:
        return self.client.post(
            "/v1/receipts",
            content=json.dumps({"app_user_id": app_user_id, "fetch_token": token, **extra}),
            headers={
                "authorization": f"Bearer {key or keys.public_key}",
                "x-platform": "stripe",
                "content-type": "application/json",
            },
        )

    def attributes(
        self, keys: AppKeys, app_user_id: str, attributes: Any, key: str | None = None
    ) -> Any:
        """POST /v1/subscribers/{id}/attributes (secret key unless `key`); the response."""
        from urllib.parse import quote

        return self.client.post(
            f"/v1/subscribers/{quote(app_user_id, safe='')}/attributes",
            content=json.dumps({"attributes": attributes}),
            headers={
                "authorization": f"Bearer {key or keys.secret_key}",
                "content-type": "application/json",
            },
        )

    def subscriber(self, keys: AppKeys, app_user_id: str, key: str | None = None) -> Any:
        from urllib.parse import quote

        response = self.client.get(
            f"/v1/subscribers/{quote(app_user_id, safe='')}",
            headers={"authorization": f"Bearer {key or keys.secret_key}"},
        )
        assert response.status_code == 200, response.text
        return response.json()

    def history(self, keys: AppKeys, app_user_id: str) -> list[dict[str, Any]]:
        from urllib.parse import quote

        response = self.client.get(
            f"/v1/subscribers/{quote(app_user_id, safe='')}/history",
            headers={"authorization": f"Bearer {keys.secret_key}"},
        )
        assert response.status_code == 200, response.text
        entries: list[dict[str, Any]] = response.json()["history"]
        return entries

    def settle(self) -> None:
        """Let the projection apply everything appended so far (for webhook-only steps)."""
        assert self.service.wait_projected(self.service.ledger.last_position(), 10)


class ServedHarness(Harness):
    """The same calls against a real `subledger serve` (its own process, projector and app
    registry); apps are created in the shared store, which the server picks up on first
    use of their id or key."""

    def __init__(self, client: httpx.Client, ledger: Ledger) -> None:
        self.client = client
        self._ledger = ledger

    @property
    def ledger(self) -> Ledger:
        return self._ledger

    def refresh(self) -> None:
        """Nothing to do: the server looks an unknown app id or key up in the store."""

    def configure(self, keys: AppKeys, **config: Any) -> None:
        raise NotImplementedError("a served app's settings reach the server on its next refresh")

    def settle(self) -> None:
        """Wait until the server's projection has applied everything appended so far."""
        target = self._ledger.last_position()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            ready = self.client.get("/ready").json()
            if ready["projection"]["position"] >= target:
                return
            time.sleep(0.01)
        raise AssertionError(f"the server's projection did not reach position {target}")


@contextmanager
def served_harness(url: str, database_url: str) -> Iterator[Harness]:
    """A harness on the `subledger serve` listening at `url` over `database_url`."""
    ledger = Ledger(parse_database_url(database_url))
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            yield ServedHarness(client, ledger)
    finally:
        ledger.close()


@contextmanager
def harness(settings: Settings, projector: str = "thread") -> Iterator[Harness]:
    """In-process (thread) projector by default: deterministic and fast for API-level tests;
    the process mode is covered by the e2e tests against `subledger serve`. `external`: no
    projector at all unless the test runs one."""
    settings = msgspec.structs.replace(settings, projector=projector)
    service = Service(settings)
    with TestClient(create_app(settings, service=service)) as client:
        yield Harness(client, service)


def stored_document(h: Harness, keys: AppKeys, app_user_id: str) -> bool:
    """Whether the projection holds a customer document for `app_user_id` (an unknown id
    is answered with an empty document that is never stored)."""
    reader = Reader(h.ledger.database)
    try:
        return reader.document(keys.app_id, app_user_id) is not None
    finally:
        reader.close()


class FoldStore:
    """A store, its projector (small batches on purpose) and a reader, without HTTP: for
    tests that append facts directly and compare what the fold makes of them."""

    def __init__(self, database: Database) -> None:
        self.ledger = Ledger(database)
        self.projector = Projector(self.ledger, batch_size=3)
        self.reader = Reader(database)

    def new_app(self, **config: Any) -> str:
        app, _, _ = self.ledger.create_app(
            "p", AppConfig(**config), entitlements={"pro": [PRODUCT]}
        )
        return app.app_id

    def run(self, make: Callable[[str], list[Fact]], **config: Any) -> str:
        """A new app, `make`'s facts appended one by one, projected; returns its id."""
        app_id = self.new_app(**config)
        for fact in make(app_id):
            self.ledger.record_new([fact])
        self.projector.catch_up()
        return app_id

    def doc(self, app_id: str, user: str) -> dict[str, Any] | None:
        raw = self.reader.document(app_id, user)
        return None if raw is None else dict(json.loads(raw))

    def close(self) -> None:
        self.projector.close()
        self.reader.close()
        self.ledger.close()
