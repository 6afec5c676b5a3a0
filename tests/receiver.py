"""A webhook receiver for tests: a real HTTP server on a free port that records what it is
sent and answers as told (a status per request, a delay)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Received:
    def __init__(self, path: str, headers: dict[str, str], body: bytes) -> None:
        self.path = path
        self.headers = headers
        self.body = body
        self.at = time.monotonic()

    @property
    def event(self) -> dict[str, Any]:
        found: dict[str, Any] = json.loads(self.body)["event"]
        return found


class Receiver:
    """`answers[path]`: statuses to give in turn (then 200); `delays[path]`: seconds to wait
    before answering; `pauses[path]`: seconds to wait, request by request (then `delays`)."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.answers: dict[str, list[int]] = {}
        self.delays: dict[str, float] = {}
        self.pauses: dict[str, list[float]] = {}
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None

    def url(self, path: str = "/hook") -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def at(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path == path]

    def wait_for(self, path: str, count: int, timeout_s: float = 15.0) -> list[Received]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = self.at(path)
            if len(found) >= count:
                return found
            time.sleep(0.02)
        raise AssertionError(f"{path} got {len(self.at(path))} requests, not {count}")

    def answer(self, path: str) -> int:
        with self.lock:
            queued = self.answers.get(path)
            return queued.pop(0) if queued else 200


@contextmanager
def running_receiver() -> Iterator[Receiver]:
    receiver = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            with receiver.lock:
                receiver.received.append(Received(self.path, headers, body))
            with receiver.lock:
                pauses = receiver.pauses.get(self.path)
                pause = pauses.pop(0) if pauses else receiver.delays.get(self.path, 0.0)
            time.sleep(pause)
            status = receiver.answer(self.path)
            try:
                self.send_response(status)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
            except OSError:  # the sender gave up waiting and closed the connection
                pass

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver.server = server
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
