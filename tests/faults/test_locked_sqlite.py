"""SQLite's store fault is its lock: while another process holds the database exclusively,
every write route answers 503/8503 with Retry-After and stores nothing, reads and /ready go
on (WAL readers never wait), and once the lock is gone the same posts succeed."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from subledger.codes import Code
from subledger.settings import Settings, parse_database_url
from tests.harness import Harness, harness
from tests.samples import scenario_bodies, signature_header


def writes(h: Harness, app_id: str, secret: str) -> dict[str, Any]:
    auth = {"authorization": f"Bearer {secret}"}
    body = scenario_bodies()[1]
    return {
        "webhook": lambda: h.client.post(
            f"/v1/incoming-webhooks/stripe/{app_id}",
            content=body,
            headers={"stripe-signature": signature_header(body)},
        ),
        "receipt": lambda: h.client.post(
            "/v1/receipts",
            json={"app_user_id": "user_1", "fetch_token": "sub_Locked0001"},
            headers={**auth, "x-platform": "stripe"},
        ),
        "attributes": lambda: h.client.post(
            "/v1/subscribers/user_1/attributes",
            json={"attributes": {"plan": {"value": "gold"}}},
            headers=auth,
        ),
    }


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    """SQLite only: PostgreSQL's outages are test_postgres_restart's."""
    with harness(
        Settings(database=parse_database_url(f"sqlite:///{tmp_path / 's.db'}"))
    ) as running:
        yield running


def test_a_locked_sqlite_store_refuses_writes_with_503_and_serves_reads(h: Harness) -> None:
    keys = h.app()
    posts = writes(h, keys.app_id, keys.secret_key)
    before = h.ledger.last_position()
    holder = sqlite3.connect(h.ledger.database.path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with ThreadPoolExecutor(len(posts)) as pool:
            answers = dict(zip(posts, pool.map(lambda send: send(), posts.values()), strict=True))
        read = h.client.get(
            "/v1/subscribers/user_1", headers={"authorization": f"Bearer {keys.public_key}"}
        )
        ready = h.client.get("/ready")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    for name, answer in answers.items():
        assert answer.status_code == 503, (name, answer.text)
        assert answer.json()["code"] == Code.STORE_UNAVAILABLE, (name, answer.text)
        assert answer.headers["retry-after"] == "1"
    assert (read.status_code, ready.status_code) == (200, 200)
    assert h.ledger.last_position() == before
    for name, send in posts.items():
        assert send().status_code == 200, name
