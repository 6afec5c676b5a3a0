"""A local stand-in for Stripe's API: stripe-python talks to it through `api_base`.

Objects come from the shared Stripe samples' shapes; each path can be scripted to answer
errors (404 resource_missing, 403 permission_error, 429 with Retry-After) or to stall.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


class Scripted:
    def __init__(
        self,
        status: int,
        body: dict[str, Any] | bytes,
        headers: dict[str, str] | None = None,
        delay_s: float = 0.0,
        gate: threading.Event | None = None,
    ) -> None:
        """`body` bytes are sent as they are (a broken proxy's answer, say); with a `gate`
        the answer waits until the test opens it."""
        self.status = status
        self.body = body
        self.headers = headers or {}
        self.delay_s = delay_s
        self.gate = gate


def stripe_error(status: int, kind: str, code: str, message: str) -> Scripted:
    return Scripted(status, {"error": {"type": kind, "code": code, "message": message}})


class StripeStandIn:
    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}  # path → object
        self.lists: dict[str, dict[str, Any]] = {}  # payment_intent → invoice_payment list
        self.scripts: dict[str, list[Scripted]] = {}  # path → answers to give first
        self.requests: list[str] = []
        self.lock = threading.Lock()
        self.url = ""

    def put(self, path: str, obj: dict[str, Any]) -> None:
        self.objects[path] = obj

    def script(self, path: str, *answers: Scripted) -> None:
        self.scripts.setdefault(path, []).extend(answers)

    def answer(self, path: str, query: dict[str, list[str]]) -> Scripted:
        with self.lock:
            queued = self.scripts.get(path)
            if queued:
                return queued.pop(0)
        if path == "/v1/invoice_payments":
            intent = query.get("payment[payment_intent]", [""])[0]
            listing = self.lists.get(
                intent, {"object": "list", "data": [], "has_more": False, "url": path}
            )
            return Scripted(200, listing)
        if path in self.objects:
            return Scripted(200, self.objects[path])
        return stripe_error(
            404,
            "invalid_request_error",
            "resource_missing",
            f"No such object: '{path.rsplit('/', 1)[-1]}'",
        )


def _handler(stand_in: StripeStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            with stand_in.lock:
                stand_in.requests.append(self.path)
            scripted = stand_in.answer(parts.path, parse_qs(parts.query))
            if scripted.delay_s:
                time.sleep(scripted.delay_s)
            if scripted.gate is not None:
                scripted.gate.wait(timeout=30)
            raw = scripted.body
            body = raw if isinstance(raw, bytes) else json.dumps(raw).encode()
            try:
                self.send_response(scripted.status)
                self.send_header("content-type", "application/json")
                self.send_header("request-id", "req_standin")
                for key, value in scripted.headers.items():
                    self.send_header(key, value)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def running_stand_in() -> Iterator[StripeStandIn]:
    stand_in = StripeStandIn()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(stand_in))
    server.daemon_threads = True
    stand_in.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield stand_in
    finally:
        server.shutdown()
        server.server_close()
