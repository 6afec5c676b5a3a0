"""Real processes for tests: `subledger serve` on a free port (tests/serverprocess.py, shared
with the benchmarks), `subledger project`, the CLI, and an app to talk to them with (shared
by the e2e and fault suites)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from subledger.apps import AppConfig
from subledger.ledger import Ledger
from subledger.settings import parse_database_url
from tests.samples import SECRET, signature_header
from tests.serverprocess import Server, free_port, start_server, stop_server

__all__ = ["Server", "cli", "free_port", "new_app", "post", "start_projector", "start_server"]
__all__ += ["stop_projector", "stop_server"]


def new_app(url: str, **config: object) -> tuple[str, str, str]:
    """An app with the test secret and the `pro` entitlement: (app_id, public, secret)."""
    ledger = Ledger(parse_database_url(url))
    try:
        app, pk, sk = ledger.create_app(
            "e2e",
            AppConfig(**config),  # type: ignore[arg-type]
            webhook_secrets=[SECRET],
            entitlements={"pro": ["prod_TKbE3nVq8YhXcM"]},
        )
    finally:
        ledger.close()
    return app.app_id, pk, sk


def post(server: Server, app_id: str, bodies: list[bytes]) -> None:
    for body in bodies:
        response = httpx.post(
            f"{server.url}/v1/incoming-webhooks/stripe/{app_id}",
            content=body,
            headers={"stripe-signature": signature_header(body)},
        )
        assert response.status_code == 200, server.logs()


def cli(url: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "subledger.cli", *argv],
        env={**os.environ, "SUBLEDGER_DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def start_projector(url: str, log: Path, *argv: str) -> subprocess.Popen[bytes]:
    """A `subledger project` process, returned once it follows the log."""
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "subledger.cli", "project", *argv],
            env={**os.environ, "SUBLEDGER_DATABASE_URL": url, "SUBLEDGER_LOG_LEVEL": "INFO"},
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
    deadline = time.monotonic() + 30
    while "following the log" not in log.read_text() and time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        time.sleep(0.05)
    assert "following the log" in log.read_text(), log.read_text()
    return process


def stop_projector(process: subprocess.Popen[bytes], log: Path) -> int:
    """Stop a projector cleanly; returns how many facts it applied (its last log line)."""
    process.terminate()
    assert process.wait(timeout=20) == 0, log.read_text()
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    stopped = [line for line in lines if line["msg"] == "projector stopped"]
    assert len(stopped) == 1, log.read_text()
    applied: int = stopped[0]["applied"]
    return applied
