"""Ingest against a real `subledger serve` process: concurrency, outages, recovery."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg

from subledger.apps import AppConfig
from subledger.facts import NotificationReceived
from subledger.ledger import Ledger
from subledger.settings import Database, parse_database_url
from tests.e2e.proxy import TcpProxy
from tests.processes import Server, start_server, stop_server
from tests.samples import SECRET, scenario_bodies, signature_header


def new_app(database: Database) -> str:
    ledger = Ledger(database)
    try:
        app, _, _ = ledger.create_app("e2e", AppConfig(), webhook_secrets=[SECRET])
        return app.app_id
    finally:
        ledger.close()


def stored(database: Database) -> list[NotificationReceived]:
    ledger = Ledger(database)
    try:
        return [r for _, r in ledger.records() if isinstance(r, NotificationReceived)]
    finally:
        ledger.close()


def post(server: Server, app_id: str, body: bytes, timeout: float = 30) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/incoming-webhooks/stripe/{app_id}",
        content=body,
        headers={"stripe-signature": signature_header(body), "content-type": "application/json"},
        timeout=timeout,
    )


def test_fifty_concurrent_copies_are_one_fact(server: Server, database: Database) -> None:
    app_id = new_app(database)
    body = scenario_bodies()[1]

    async def burst() -> list[httpx.Response]:
        headers = {"stripe-signature": signature_header(body), "content-type": "application/json"}
        limits = httpx.Limits(max_connections=50)
        async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=30) as client:
            url = f"/v1/incoming-webhooks/stripe/{app_id}"
            return await asyncio.gather(
                *(client.post(url, content=body, headers=headers) for _ in range(50))
            )

    responses = asyncio.run(burst())
    assert [r.status_code for r in responses] == [200] * 50, server.logs()
    flags = sorted(r.json()["duplicate"] for r in responses)
    assert flags == [False] + [True] * 49
    assert len(stored(database)) == 1


def _wait_for_200(server: Server, app_id: str, body: bytes, within_s: float) -> httpx.Response:
    deadline = time.monotonic() + within_s
    while True:
        response = post(server, app_id, body)
        if response.status_code == 200 or time.monotonic() > deadline:
            return response
        time.sleep(0.5)


def _assert_quick_503(server: Server, app_id: str, body: bytes) -> None:
    started = time.monotonic()
    response = post(server, app_id, body)
    elapsed = time.monotonic() - started
    assert response.status_code == 503, (response.text, server.logs())
    assert response.json()["code"] == 8503
    assert elapsed < 8, f"503 took {elapsed:.1f} s"


def test_locked_store_answers_503_then_recovers(server: Server, database: Database) -> None:
    app_id = new_app(database)
    first, second = scenario_bodies()[:2]
    assert post(server, app_id, first).status_code == 200
    if database.kind == "sqlite":
        holder = sqlite3.connect(database.path, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            _assert_quick_503(server, app_id, second)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
    else:
        with psycopg.connect(database.url.split("?")[0]) as holder:
            holder.execute(f"SET search_path TO {database.schema}")
            holder.execute("LOCK TABLE ledger_events IN ACCESS EXCLUSIVE MODE")
            _assert_quick_503(server, app_id, second)
            holder.rollback()
    response = _wait_for_200(server, app_id, second, within_s=15)
    assert response.status_code == 200, server.logs()
    assert sorted(f.body for f in stored(database)) == sorted([first, second])


def test_unreachable_postgres_answers_503_then_recovers(postgres_url: str, tmp_path: Path) -> None:
    """PostgreSQL only: SQLite has no network to lose (its outage is the lock test above)."""
    database_url = postgres_url
    direct = parse_database_url(database_url)
    proxy = TcpProxy(direct.host, direct.port)
    port = proxy.start()
    parts = urlsplit(database_url)
    netloc = parts.netloc.rsplit("@", 1)
    proxied_netloc = f"{netloc[0]}@127.0.0.1:{port}" if len(netloc) == 2 else f"127.0.0.1:{port}"
    proxied = urlunsplit(parts._replace(netloc=proxied_netloc))
    app_id = new_app(direct)
    server = start_server(proxied, tmp_path)
    try:
        first, second = scenario_bodies()[:2]
        assert post(server, app_id, first).status_code == 200
        proxy.stop()
        _assert_quick_503(server, app_id, second)
        proxy.start()
        response = _wait_for_200(server, app_id, second, within_s=20)
        assert response.status_code == 200, server.logs()
        assert response.json()["duplicate"] is False
    finally:
        stop_server(server)
        proxy.stop()
    assert sorted(f.body for f in stored(direct)) == sorted([first, second])
