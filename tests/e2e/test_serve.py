"""`subledger serve` as a real process answers liveness and readiness."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.processes import Server, start_server, stop_server
from tests.samples import SECRET, signature_header, subscription_event


def test_serve_answers_health_and_ready(server: Server) -> None:
    assert httpx.get(f"{server.url}/health").json() == {"status": "ok"}
    ready = httpx.get(f"{server.url}/ready")
    assert ready.status_code == 200, server.logs()
    assert ready.json()["status"] == "ready"


def test_with_projector_keeps_a_forced_projector_mode(database_url: str, tmp_path: Path) -> None:
    forced = "process" if database_url.startswith("sqlite") else "thread"  # not the default
    running = start_server(database_url, tmp_path, "--with-projector", SUBLEDGER_PROJECTOR=forced)
    try:
        assert httpx.get(f"{running.url}/ready").status_code == 200, running.logs()
        assert f"projector: {forced})" in running.logs()
    finally:
        stop_server(running)


def test_serve_reports_a_bad_database_url_in_one_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = subprocess.run(
        [sys.executable, "-m", "subledger.cli", "serve"],
        env={**os.environ, "SUBLEDGER_DATABASE_URL": "mysql://nope/db"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "subledger: configuration: unsupported database URL 'mysql://nope/db': "
        "expected sqlite:///… or postgresql://…"
    )


def _cli(database_url: str, *argv: str) -> dict[str, Any]:
    """`subledger apps …` as an operator runs it: its own process, beside the server."""
    result = subprocess.run(
        [sys.executable, "-m", "subledger.cli", "apps", *argv, "--json"],
        env={**os.environ, "SUBLEDGER_DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    found: dict[str, Any] = json.loads(result.stdout)
    return found


def _eventually(check: Callable[[], bool], what: str, server: Server) -> None:
    """SPEC 2: a change applies on running servers within about a second. The deadline is
    generous (a loaded CI machine); the point is that no restart is needed."""
    deadline = time.monotonic() + 10
    while not check():
        assert time.monotonic() < deadline, f"{what}: not applied after 10 s\n{server.logs()}"
        time.sleep(0.1)


def test_app_changes_reach_a_running_server_without_a_restart(
    server: Server, database_url: str
) -> None:
    created = _cli(database_url, "create", "--name", "Live", "--webhook-secret", SECRET)
    app_id, old_key = created["app_id"], created["public_key"]

    def receipt(key: str) -> int:
        answer = httpx.post(
            f"{server.url}/v1/receipts",
            json={"app_user_id": "user_1", "fetch_token": "sub_Live0001"},
            headers={"authorization": f"Bearer {key}", "x-platform": "stripe"},
        )
        return answer.status_code

    def webhook(secret: str, event_id: str) -> int:
        body = subscription_event(event_id=event_id, created=int(time.time()), period=(0, 1))
        answer = httpx.post(
            f"{server.url}/v1/incoming-webhooks/stripe/{app_id}",
            content=body,
            headers={"stripe-signature": signature_header(body, secret)},
        )
        return answer.status_code

    _eventually(lambda: receipt(old_key) == 200, "a new app's key", server)
    new_key = _cli(database_url, "rotate-keys", app_id)["public_key"]
    _eventually(lambda: receipt(old_key) == 401, "rotated keys refusing the old key", server)
    assert receipt(new_key) == 200

    _cli(database_url, "add-webhook-secret", app_id, "whsec_added_0001")
    _eventually(lambda: webhook("whsec_added_0001", "evt_live_1") == 200, "a new secret", server)
    _cli(database_url, "remove-webhook-secret", app_id, SECRET)
    _eventually(lambda: webhook(SECRET, "evt_live_2") == 400, "a removed secret", server)
