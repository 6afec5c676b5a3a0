"""Real processes for tests: `subledger serve` on a free port, `subledger project`, the CLI,
and an app to talk to them with (shared by the e2e and fault suites)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from subledger.apps import AppConfig
from subledger.ledger import Ledger
from subledger.settings import parse_database_url
from tests.samples import SECRET, signature_header


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Server:
    def __init__(self, url: str, process: subprocess.Popen[bytes], log: Path) -> None:
        self.url = url
        self.process = process
        self.log = log

    def logs(self) -> str:
        return self.log.read_text(errors="replace")


def start_server(database_url: str, tmp_path: Path, *argv: str, **env: str) -> Server:
    port = free_port()
    log = tmp_path / f"server-{port}.log"
    environ = {
        **os.environ,
        "SUBLEDGER_DATABASE_URL": database_url,
        "SUBLEDGER_PORT": str(port),
        "SUBLEDGER_HOST": "127.0.0.1",
        **env,
    }
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "subledger.cli", "serve", *argv],
            env=environ,
            stdout=sink,
            stderr=sink,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return Server(url, process, log)
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"server did not answer /health in 30 s:\n{log.read_text()}")


def stop_server(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()


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
