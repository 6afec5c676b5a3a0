"""Outbound webhooks from real processes (SPEC 10): `subledger serve` sends by default; with
SUBLEDGER_DELIVERY=external a `subledger deliver` process does, and one killed mid-delivery
is replaced by another that sends again (at least once, the same event id)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import start_server, stop_server
from tests.receiver import Receiver, running_receiver
from tests.samples import SECRET, signature_header, subscription_created

SUB = "sub_Test0001"
NOW = int(time.time())
QUICK = {"SUBLEDGER_DELIVERY_RETRIES_S": "0.2,0.2", "SUBLEDGER_DELIVERY_TIMEOUT_S": "10"}


@pytest.fixture
def rx() -> Iterator[Receiver]:
    with running_receiver() as receiver:
        yield receiver


def cli(database_url: str, *argv: str, stdin: str = "") -> Any:
    """`subledger …` as an operator runs it, in its own process."""
    result = subprocess.run(
        [sys.executable, "-m", "subledger.cli", *argv, "--json"],
        env={**os.environ, "SUBLEDGER_DATABASE_URL": database_url},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def buy(url: str, app: dict[str, Any]) -> None:
    """A token, then the notification that shows the subscription active."""
    token = httpx.post(
        f"{url}/v1/receipts",
        json={"app_user_id": "user_123", "fetch_token": SUB},
        headers={"authorization": f"Bearer {app['public_key']}", "x-platform": "stripe"},
        timeout=30,
    )
    assert token.status_code == 200, token.text
    body = subscription_created(event_id="evt_e2e", created=NOW, period=(NOW, NOW + 86_400))
    posted = httpx.post(
        f"{url}/v1/incoming-webhooks/stripe/{app['app_id']}",
        content=body,
        headers={"stripe-signature": signature_header(body), "content-type": "application/json"},
        timeout=30,
    )
    assert posted.status_code == 200, posted.text


def delivered(database_url: str, app_id: str, timeout_s: float = 30) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found: list[dict[str, Any]] = cli(database_url, "deliveries", "--app", app_id)
        if found and all(d["status"] == "delivered" for d in found):
            return found
        time.sleep(0.2)
    raise AssertionError(f"not delivered: {found}")


def new_app(database_url: str, rx: Receiver, **add: str) -> dict[str, Any]:
    app: dict[str, Any] = cli(
        database_url, "apps", "create", "--name", "e2e", "--webhook-secret", SECRET
    )
    options = [f"--{k}={v}" for k, v in add.items()]
    cli(
        database_url,
        "apps",
        "add-integration",
        app["app_id"],
        "--url",
        rx.url(),
        *options,
        stdin="Bearer from-stdin\n",
    )
    return app


def test_serve_sends_with_the_authorization_read_from_stdin(
    database_url: str, tmp_path: Path, rx: Receiver
) -> None:
    server = start_server(database_url, tmp_path, **QUICK)
    try:
        app = new_app(database_url, rx, authorization="-")
        buy(server.url, app)
        (got,) = rx.wait_for("/hook", 1, timeout_s=30)
        (delivery,) = delivered(database_url, app["app_id"])
    finally:
        stop_server(server)
    assert got.headers["authorization"] == "Bearer from-stdin"
    assert got.event["type"] == "INITIAL_PURCHASE"
    assert delivery["event"] == got.event["id"]
    shown = cli(database_url, "apps", "show", app["app_id"])
    assert "from-stdin" not in json.dumps(shown)  # listed by its fingerprint only


def test_a_killed_deliver_process_is_replaced_and_the_event_sent_again(
    database_url: str, tmp_path: Path, rx: Receiver
) -> None:
    rx.delays["/hook"] = 3.0  # the first sender dies while its POST is answered
    server = start_server(database_url, tmp_path, SUBLEDGER_DELIVERY="external", **QUICK)
    env = {**os.environ, "SUBLEDGER_DATABASE_URL": database_url, **QUICK}
    argv = [sys.executable, "-m", "subledger.cli", "deliver"]
    log = (tmp_path / "deliver.log").open("wb")
    first = subprocess.Popen(argv, env=env, stdout=log, stderr=log)
    second = None
    try:
        app = new_app(database_url, rx)
        buy(server.url, app)
        rx.wait_for("/hook", 1, timeout_s=30)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        rx.delays["/hook"] = 0.0
        second = subprocess.Popen(argv, env=env, stdout=log, stderr=log)
        # The dead sender's lease expires (15 s), then the event goes again.
        got = rx.wait_for("/hook", 2, timeout_s=40)
        (delivery,) = delivered(database_url, app["app_id"])
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(timeout=15)
        log.close()
        stop_server(server)
    assert got[0].body == got[1].body  # at least once: the same id and timestamp
    assert [a["status"] for a in delivery["attempts"]] == [200]
