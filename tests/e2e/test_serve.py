"""`subledger serve` as a real process answers liveness and readiness."""

from __future__ import annotations

import httpx

from tests.e2e.conftest import Server


def test_serve_answers_health_and_ready(server: Server) -> None:
    assert httpx.get(f"{server.url}/health").json() == {"status": "ok"}
    ready = httpx.get(f"{server.url}/ready")
    assert ready.status_code == 200, server.logs()
    assert ready.json()["status"] == "ready"


def test_serve_reports_a_bad_database_url_in_one_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import os
    import subprocess
    import sys

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
