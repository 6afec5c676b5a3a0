"""Real processes: the scenario through `subledger serve`, and separate projector processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from subledger.ledger import Ledger
from subledger.settings import parse_database_url
from tests.processes import (
    Server,
    cli,
    new_app,
    post,
    start_projector,
    start_server,
    stop_projector,
    stop_server,
)
from tests.samples import scenario_bodies

SUB = "sub_1SLr4eQx7RtY2pLmVb2NcQ8s"
SMALL_BATCHES = ("--batch-size", "2")  # many batches, so projectors interleave


def synced(server: Server, key: str) -> dict:  # type: ignore[type-arg]
    """A token round trip is read-your-writes: afterwards every earlier fact is projected."""
    receipt = httpx.post(
        f"{server.url}/v1/receipts",
        json={"app_user_id": "user_123", "fetch_token": SUB},
        headers={"authorization": f"Bearer {key}", "x-platform": "stripe"},
        timeout=30,
    )
    assert receipt.status_code == 200, (receipt.text, server.logs())
    doc: dict = receipt.json()["subscriber"]  # type: ignore[type-arg]
    return doc


def run_scenario(server: Server, app_id: str, public_key: str, secret_key: str) -> dict:  # type: ignore[type-arg]
    bodies = scenario_bodies()
    post(server, app_id, bodies[:3])
    assert "prod_TKbE3nVq8YhXcM" in synced(server, public_key)["subscriptions"]
    post(server, app_id, bodies[3:])
    return synced(server, secret_key)


def test_scenario_through_a_real_server_then_rebuild(server: Server, database_url: str) -> None:
    app_id, pk, sk = new_app(database_url)
    doc = run_scenario(server, app_id, pk, sk)
    assert doc["subscriptions"]["prod_TKbE3nVq8YhXcM"]["expires_date"] == "2026-10-11T10:11:00Z"
    verify = cli(database_url, "replay", "--verify", "--json")
    assert verify.returncode == 0, verify.stderr
    assert json.loads(verify.stdout)["verified"] is True


def test_two_projector_processes_never_double_apply(postgres_url: str, tmp_path: Path) -> None:
    """Projector A alone, then B alone after A stopped, then both at once: the facts each
    process reports it applied add up to exactly the log, and the tables equal a rebuild."""
    app_id, pk, sk = new_app(postgres_url)
    bodies = scenario_bodies()
    logs = [tmp_path / name for name in ("a1.log", "b.log", "a2.log")]
    running: list[subprocess.Popen[bytes]] = []
    server = start_server(postgres_url, tmp_path, SUBLEDGER_PROJECTOR="external")
    try:
        running.append(start_projector(postgres_url, logs[0], *SMALL_BATCHES))
        post(server, app_id, bodies[:3])
        assert "prod_TKbE3nVq8YhXcM" in synced(server, pk)["subscriptions"]
        first = stop_projector(running.pop(), logs[0])

        running.append(
            start_projector(postgres_url, logs[1], *SMALL_BATCHES)
        )  # resumes where A stopped
        post(server, app_id, bodies[3:])
        assert "prod_TKbE3nVq8YhXcM" in synced(server, pk)["subscriptions"]

        running.append(
            start_projector(postgres_url, logs[2], *SMALL_BATCHES)
        )  # now both follow the log
        post(server, app_id, bodies)  # redeliveries: new facts, listed in the history
        doc = synced(server, sk)
        assert doc["subscriptions"]["prod_TKbE3nVq8YhXcM"]["refunded_at"] == "2026-10-11T10:11:00Z"
        second = stop_projector(running.pop(0), logs[1])
        third = stop_projector(running.pop(), logs[2])
    finally:
        stop_server(server)
        for process in running:
            process.kill()
            process.wait(timeout=10)
    ledger = Ledger(parse_database_url(postgres_url))
    try:
        in_log = sum(1 for _ in ledger.records())
    finally:
        ledger.close()
    assert first > 0 and second > 0, (first, second, third)
    assert first + second + third == in_log, (first, second, third, in_log)
    verify = cli(postgres_url, "replay", "--verify", "--json")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    result = json.loads(verify.stdout)
    assert result["verified"] is True
    events = cli(postgres_url, "explain", "--app", app_id, "user_123", "--json")
    entries = json.loads(events.stdout)["history"]
    keys = [(e["position"], e["what_changed"]) for e in entries]
    assert len(keys) == len(set(keys)), "an entry was applied twice"
    assert sum("duplicate delivery" in e["what_changed"] for e in entries) >= 6


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        found += [int(c) for c in children]
    return found


def test_serve_on_postgres_supervises_a_projector_process(
    postgres_url: str, tmp_path: Path
) -> None:
    """The default on PostgreSQL: a child `subledger project`, gone when the server is."""
    app_id, pk, sk = new_app(postgres_url)
    server = start_server(postgres_url, tmp_path)
    try:
        ready = httpx.get(f"{server.url}/ready").json()
        assert ready["projection"]["mode"] == "process"
        doc = run_scenario(server, app_id, pk, sk)
        assert doc["subscriptions"]["prod_TKbE3nVq8YhXcM"]["expires_date"] == "2026-10-11T10:11:00Z"
        deadline = time.monotonic() + 10
        while not (children := _children(server.process.pid)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert children, "no projector child process"
        server.process.send_signal(signal.SIGKILL)  # no clean shutdown: the child must notice
        server.process.wait(timeout=10)
        deadline = time.monotonic() + 10
        while any(Path(f"/proc/{c}").exists() for c in children) and time.monotonic() < deadline:
            time.sleep(0.2)
        alive = [
            c
            for c in children
            if Path(f"/proc/{c}/status").exists()
            and "zombie" not in Path(f"/proc/{c}/status").read_text()
        ]
        assert alive == [], "projector outlived its server"
    finally:
        stop_server(server)


def test_a_projector_whose_server_died_during_its_start_exits(
    postgres_url: str, tmp_path: Path
) -> None:
    """The server passes its own pid: a child started after the server already died (its
    parent is then init) must still notice, instead of following the log forever."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait(timeout=10)  # a pid that no longer exists, as a server killed during start-up
    env = {**os.environ, "SUBLEDGER_DATABASE_URL": postgres_url}
    child = subprocess.Popen(
        [sys.executable, "-m", "subledger.cli", "project", "--exit-with-parent", str(gone.pid)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "projector.log").open("wb"),
    )
    try:
        started = time.monotonic()
        code = child.wait(timeout=30)
        assert code == 0, (tmp_path / "projector.log").read_text()
        assert time.monotonic() - started < 30
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=10)


def test_a_burst_of_signals_stops_a_projector_cleanly(database_url: str, tmp_path: Path) -> None:
    """Signals can arrive while the previous one is being handled (a process group killed,
    then its supervisor's own SIGTERM); the handler must never deadlock on them."""
    new_app(database_url)
    log = tmp_path / "projector.log"
    child = start_projector(database_url, log)
    try:
        for _ in range(2000):
            if child.poll() is not None:
                break
            os.kill(child.pid, signal.SIGTERM)
        # 0, or killed by a signal that landed after Python restored the default handlers
        # while finalising; what must never happen is a hang.
        assert child.wait(timeout=20) in (0, -signal.SIGTERM), log.read_text()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=10)
