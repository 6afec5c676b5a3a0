"""kill -9 (issue #17): a server killed during concurrent signed ingest, with senders that
retry as Stripe does, stores every acknowledged event exactly once; a projector killed in
the middle of a catch-up applies every fact exactly once. Either way `replay --verify` is
clean and the documents equal those of a run without faults."""

from __future__ import annotations

import json
import queue
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from projections.reader import Reader
from subledger.facts import NotificationReceived
from subledger.identity import anonymous_id
from subledger.ledger import Ledger
from subledger.settings import parse_database_url
from tests.harness import FoldStore
from tests.processes import (
    Server,
    cli,
    new_app,
    start_projector,
    start_server,
    stop_projector,
    stop_server,
)
from tests.samples import notification, signature_header, subscription_event
from tests.serverprocess import kill_service

SUBSCRIPTIONS = 8
STATUSES = ("trialing", "active", "past_due", "active", "canceled")
DAY = 86_400


def events(count: int) -> list[bytes]:
    """`count` distinct notifications about SUBSCRIPTIONS subscriptions, in Stripe's order."""
    bodies = []
    for n in range(count):
        start = 1_760_000_000 + (n // SUBSCRIPTIONS) * 30 * DAY
        bodies.append(
            subscription_event(
                event_type="customer.subscription.created"
                if n < SUBSCRIPTIONS
                else "customer.subscription.updated",
                event_id=f"evt_crash{n:05d}",
                created=start + n,
                sub_id=f"sub_crash{n % SUBSCRIPTIONS}",
                status=STATUSES[(n // SUBSCRIPTIONS) % len(STATUSES)],
                period=(start, start + 30 * DAY),
            )
        )
    return bodies


def documents(url: str, app_id: str) -> dict[str, Any]:
    """What the customer documents say about each subscription (owners are the purchases'
    anonymous ids; first/last seen are receive times, so they are left out)."""
    reader = Reader(parse_database_url(url))
    try:
        found = {}
        for n in range(SUBSCRIPTIONS):
            raw = reader.document(app_id, anonymous_id(app_id, f"sub_crash{n}"))
            doc = json.loads(raw) if raw else {}
            found[f"sub_crash{n}"] = (doc.get("subscriptions"), doc.get("entitlements"))
        return found
    finally:
        reader.close()


def without_faults(tmp: Path, bodies: list[bytes]) -> dict[str, Any]:
    """The same notifications appended one by one and projected, in another order; every
    subscription shows in its owner's document (else comparing proves nothing)."""
    url = f"sqlite:///{tmp / 'clean.db'}"
    store = FoldStore(parse_database_url(url))
    try:
        app_id = store.run(
            lambda app: [notification(app, b, 1_000 + i) for i, b in enumerate(reversed(bodies))],
            track_new_purchases=True,
        )
    finally:
        store.close()
    found = documents(url, app_id)
    assert all(subscriptions for subscriptions, _ in found.values()), found
    return found


def ledger_records(url: str, start: int = 1) -> list[Any]:
    ledger = Ledger(parse_database_url(url))
    try:
        return [record for _, record in ledger.records(start)]
    finally:
        ledger.close()


def stored_event_ids(url: str) -> list[str]:
    return [r.event_id for r in ledger_records(url) if isinstance(r, NotificationReceived)]


def replay_verified(url: str) -> None:
    verify = cli(url, "replay", "--verify", "--json")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert json.loads(verify.stdout)["verified"] is True


def projected_to_the_end(server: Server, url: str, within_s: float = 30) -> None:
    deadline = time.monotonic() + within_s
    ledger = Ledger(parse_database_url(url))
    try:
        end = ledger.last_position()
    finally:
        ledger.close()
    while time.monotonic() < deadline:
        if httpx.get(f"{server.url}/ready", timeout=10).json()["projection"]["position"] >= end:
            return
        time.sleep(0.1)
    raise AssertionError(f"the projection did not reach position {end}")


class Senders:
    """Threads that post each event until it is acknowledged (Stripe's retries), to
    whichever server is current; they record what was acknowledged."""

    def __init__(self, bodies: list[bytes], app_id: str, threads: int = 4) -> None:
        self.todo: queue.Queue[bytes] = queue.Queue()
        for body in bodies:
            self.todo.put(body)
        self.app_id = app_id
        self.url = ""
        self.acked: list[str] = []
        self.duplicates = 0  # acknowledged as already stored: committed before the kill
        self.errors = 0
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._send) for _ in range(threads)]

    def start(self, url: str) -> None:
        self.url = url
        for thread in self.threads:
            thread.start()

    def _send(self) -> None:
        with httpx.Client(timeout=10) as client:
            while True:
                try:
                    body = self.todo.get_nowait()
                except queue.Empty:
                    return
                while not self._delivered(client, body):
                    time.sleep(0.05)

    def _delivered(self, client: httpx.Client, body: bytes) -> bool:
        try:
            response = client.post(
                f"{self.url}/v1/incoming-webhooks/stripe/{self.app_id}",
                content=body,
                headers={"stripe-signature": signature_header(body)},
            )
        except httpx.TransportError:
            with self.lock:
                self.errors += 1
            return False
        assert response.status_code in (200, 503), response.text
        if response.status_code != 200:
            return False
        with self.lock:
            self.acked.append(response.json()["id"])
            self.duplicates += response.json()["duplicate"]
        return True

    def join(self) -> None:
        for thread in self.threads:
            thread.join(timeout=120)


def test_a_server_killed_during_ingest_stores_every_acknowledged_event_once(
    database_url: str, tmp_path: Path
) -> None:
    bodies = events(240)
    app_id, _, _ = new_app(database_url, track_new_purchases=True)
    server = start_server(database_url, tmp_path)
    senders = Senders(bodies, app_id)
    senders.start(server.url)
    try:
        while len(senders.acked) < len(bodies) // 3:
            time.sleep(0.01)
        kill_service(server)
        killed_at = len(senders.acked)
        server = start_server(database_url, tmp_path)
        senders.url = server.url
        senders.join()
        assert killed_at < len(bodies), "the kill came after the last event"
        assert senders.errors > 0, "no sender saw the server die"
        projected_to_the_end(server, database_url)
    finally:
        stop_server(server)
    stored = stored_event_ids(database_url)
    figures = {"events": len(bodies), "acked_before_kill": killed_at, "stored": len(stored)}
    figures |= {"transport_errors": senders.errors, "acked_as_duplicate": senders.duplicates}
    (tmp_path / "figures.json").write_text(json.dumps(figures))
    assert sorted(senders.acked) == sorted(stored) == sorted(set(stored))
    assert len(stored) == len(bodies)
    replay_verified(database_url)
    assert documents(database_url, app_id) == without_faults(tmp_path, bodies)


def test_a_projector_killed_mid_catch_up_applies_every_fact_once(
    database_url: str, tmp_path: Path
) -> None:
    bodies = events(400)
    app_id, _, _ = new_app(database_url, track_new_purchases=True)
    ledger = Ledger(parse_database_url(database_url))
    reader = Reader(parse_database_url(database_url))
    try:
        for at in range(0, len(bodies), 50):
            ledger.record_new([notification(app_id, b, 1_000) for b in bodies[at : at + 50]])
        end = ledger.last_position()
        first = start_projector(database_url, tmp_path / "first.log", "--batch-size", "10")
        while not 0 < reader.position() < end and first.poll() is None:
            time.sleep(0.005)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        killed_at = reader.position()
        assert 0 < killed_at < end, (killed_at, end)
        second = start_projector(database_url, tmp_path / "second.log", "--batch-size", "10")
        deadline = time.monotonic() + 60
        while reader.position() < end and time.monotonic() < deadline:
            time.sleep(0.05)
        applied = stop_projector(second, tmp_path / "second.log")
    finally:
        reader.close()
        ledger.close()
    after_kill = sum(1 for _ in ledger_records(database_url, killed_at + 1))
    (tmp_path / "figures.json").write_text(
        json.dumps({"facts": end, "killed_at": killed_at, "applied_after": applied})
    )
    assert applied == after_kill, (applied, after_kill)  # nothing applied twice, none skipped
    replay_verified(database_url)
    assert documents(database_url, app_id) == without_faults(tmp_path, bodies)
