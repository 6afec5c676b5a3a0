"""`subledger serve --workers 2` (issue 21): several HTTP processes on one port, one projector.

Which worker holds a connection is read from /proc (the kernel spreads connections over the
workers' SO_REUSEPORT sockets), so every check below is made against each worker in turn.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import threading
import time
import uuid
from pathlib import Path

from subledger.facts import NotificationReceived
from subledger.ledger import Ledger
from subledger.settings import parse_database_url
from tests.processes import Server, new_app, start_server, stop_server
from tests.samples import PRODUCT, signature_header, subscription_created
from tests.serverprocess import children

DAY = 86_400


def workers(server: Server) -> list[int]:
    return sorted(p for p, argv in children(server.process.pid).items() if "--worker" in argv)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def owner(client_port: int, pids: list[int]) -> int | None:
    """The worker whose accepted socket has `client_port` as its remote port."""
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[2].split(":")[1], 16) == client_port:
            inode = fields[9]
    for pid in pids:
        if inode is not None and inode in socket_inodes(pid):
            return pid
    return None


class Pinned:
    """A keep-alive HTTP connection held by a known worker."""

    def __init__(self, server: Server, pids: list[int]) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        self.conn.connect()
        assert self.call("GET", "/health")[0] == 200  # accepted: some worker holds it now
        self.worker = owner(self.conn.sock.getsockname()[1], pids)

    def call(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, dict]:  # type: ignore[type-arg]
        self.conn.request(method, path, body=body or None, headers=headers or {})
        answer = self.conn.getresponse()
        return answer.status, json.loads(answer.read() or b"{}")

    def webhook(self, app_id: str, body: bytes) -> tuple[int, dict]:  # type: ignore[type-arg]
        headers = {"stripe-signature": signature_header(body), "content-type": "application/json"}
        return self.call("POST", f"/v1/incoming-webhooks/stripe/{app_id}", body, headers)


def pinned(server: Server, pids: list[int], per_worker: int) -> dict[int, list[Pinned]]:
    """`per_worker` connections held by each worker (new connections until each has them)."""
    held: dict[int, list[Pinned]] = {pid: [] for pid in pids}
    for _ in range(50 * per_worker):
        if all(len(c) >= per_worker for c in held.values()):
            return held
        connection = Pinned(server, pids)
        if connection.worker is not None and len(held[connection.worker]) < per_worker:
            held[connection.worker].append(connection)
        else:
            connection.conn.close()
    raise AssertionError(f"connections did not reach every worker: {held}")


def event(sub: str) -> bytes:
    now = int(time.time())
    return subscription_created(
        event_id=f"evt_{uuid.uuid4().hex[:24]}",
        created=now,
        period=(now, now + 30 * DAY),
        sub_id=sub,
        customer=f"cus_{sub}",
    )


def stored_ids(url: str) -> set[str]:
    ledger = Ledger(parse_database_url(url))
    try:
        return {r.event_id for _, r in ledger.records() if isinstance(r, NotificationReceived)}
    finally:
        ledger.close()


def wait_until(check, within_s: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + within_s
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def test_two_workers(database_url: str, tmp_path: Path) -> None:
    app_id, public_key, _ = new_app(database_url)
    server = start_server(database_url, tmp_path, "--workers", "2")
    try:
        wait_until(lambda: len(workers(server)) == 2, 30, "two workers")
        pids = workers(server)
        held = pinned(server, pids, per_worker=6)

        # Concurrent copies of one event, half through each worker: one fact.
        copy = event("sub_Dup")
        gate = threading.Barrier(12)
        answers: list[tuple[int, dict]] = []  # type: ignore[type-arg]

        def send(connection: Pinned) -> None:
            gate.wait()
            answers.append(connection.webhook(app_id, copy))

        senders = [threading.Thread(target=send, args=(c,)) for cs in held.values() for c in cs]
        for thread in senders:
            thread.start()
        for thread in senders:
            thread.join(timeout=60)
        assert [status for status, _ in answers] == [200] * 12, server.logs()
        assert sorted(a["duplicate"] for _, a in answers) == [False] + [True] * 11
        assert len(stored_ids(database_url)) == 1

        # A fact stored through one worker, then a receipt answered by the other: the
        # receipt sees its subscription (read-your-writes whichever worker answers).
        first, second = (held[pid][0] for pid in pids)
        for via, receipt_by, sub in ((first, second, "sub_ViaA"), (second, first, "sub_ViaB")):
            assert via.webhook(app_id, event(sub))[0] == 200
            status, doc = receipt_by.call(
                "POST",
                "/v1/receipts",
                json.dumps({"app_user_id": f"user_{sub}", "fetch_token": sub}).encode(),
                {
                    "authorization": f"Bearer {public_key}",
                    "x-platform": "stripe",
                    "content-type": "application/json",
                },
            )
            assert status == 200, (doc, server.logs())
            assert PRODUCT in doc["subscriber"]["subscriptions"], doc
        for connections in held.values():
            for connection in connections:
                connection.conn.close()

        # SIGKILL one worker under load: every acknowledged event is stored, the service
        # keeps answering, and the worker is started again.
        acknowledged: list[str] = []
        stop = threading.Event()

        def load() -> None:
            while not stop.is_set():
                body = event(f"sub_L{len(acknowledged)}")
                try:
                    connection = Pinned(server, [])
                    status, _ = connection.webhook(app_id, body)
                    connection.conn.close()
                except (OSError, http.client.HTTPException):
                    continue  # not acknowledged: the sender (Stripe) tries again
                if status == 200:
                    acknowledged.append(json.loads(body)["id"])

        loader = threading.Thread(target=load)
        loader.start()
        try:
            wait_until(lambda: len(acknowledged) >= 20, 30, "load before the kill")
            os.kill(pids[0], signal.SIGKILL)
            before = len(acknowledged)
            wait_until(lambda: len(acknowledged) >= before + 20, 15, "answers after the kill")
            wait_until(
                lambda: len(workers(server)) == 2 and pids[0] not in workers(server),
                30,
                "the killed worker restarted",
            )
        finally:
            stop.set()
            loader.join(timeout=60)
        assert set(acknowledged) <= stored_ids(database_url)

        # SIGKILL of the parent takes every child down (each polls for its parent).
        family = list(children(server.process.pid))
        assert len(family) == 4, family  # two workers, the projector, the deliverer
        server.process.kill()
        server.process.wait(timeout=5)
        wait_until(lambda: not any(alive(pid) for pid in family), 20, "children outlived it")
    finally:
        stop_server(server)
