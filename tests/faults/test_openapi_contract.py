"""The served OpenAPI document tells the truth: schemathesis drives a real `subledger serve`
from `/schema/openapi.json`, with the public key on SQLite and the secret key on PostgreSQL
(the contract does not depend on the store; each key and each store is run once, to keep
the suite short), webhooks signed like Stripe's (tests/faults/stripe_signing.py). Every stateless check must pass: no
5xx; status codes, headers, content types and bodies as documented; schema-valid requests
accepted and invalid ones refused; undeclared methods 405 with `Allow`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.processes import new_app, start_server, stop_server

EXAMPLES = "10"  # per operation and generation mode; bounded so the suite stays quick
NOT_STATELESS = "use_after_free,ensure_resource_availability,object_level_authorization"


def schemathesis_run(
    url: str, key: str, app_id: str, tmp: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            *(sys.executable, "-m", "schemathesis.cli", "run", f"{url}/schema/openapi.json"),
            *("--url", url, "--header", f"Authorization: Bearer {key}"),
            *("--phases", "examples,coverage,fuzzing", "--checks", "all"),
            *("--exclude-checks", NOT_STATELESS, "--max-examples", EXAMPLES),
            *("--seed", "17", "--generation-database", "none", "--no-color"),
            *("--report-dir", str(tmp / "schemathesis"), "--workers", "1"),
        ],
        env={
            **os.environ,
            "SCHEMATHESIS_HOOKS": "tests.faults.stripe_signing",
            "CONTRACT_APP_ID": app_id,
            "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        },
        cwd=tmp,  # whatever it writes stays out of the checkout
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_served_api_keeps_its_contract(database_url: str, tmp_path: Path) -> None:
    app_id, public, secret = new_app(database_url)
    # An in-process projector answers read-your-writes posts fastest; the contract is the
    # same whoever projects.
    server = start_server(
        database_url, tmp_path, SUBLEDGER_LOG_LEVEL="WARNING", SUBLEDGER_PROJECTOR="thread"
    )
    try:
        key = public if database_url.startswith("sqlite") else secret
        run = schemathesis_run(server.url, key, app_id, tmp_path)
        assert run.returncode == 0, run.stdout[-20_000:] + run.stderr[-5_000:]
    finally:
        stop_server(server)
    assert "Traceback" not in server.logs(), server.logs()[-5_000:]
