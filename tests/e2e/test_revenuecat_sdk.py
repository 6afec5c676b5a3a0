"""RevenueCat's own web SDK (@revenuecat/purchases-js, pinned in tests/sdk) works against a
real `subledger serve` unchanged (SPEC 5, issue #19): in Node on both stores, and in
headless Chromium from a page on another origin, allowed by SUBLEDGER_CORS_ORIGINS."""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.conftest import REPO, unavailable
from tests.e2e.conftest import Server, start_server, stop_server
from tests.harness import AppKeys, Harness, served_harness
from tests.samples import PRODUCT, session_event, subscription_created

SDK = REPO / "tests" / "sdk"
CHROMIUM = Path("/usr/bin/chromium")
ANONYMOUS = "$RCAnonymousID:0123456789abcdef0123456789abcdef"
DAY = 86_400


def node_ready() -> None:
    """Node and the pinned packages (installed once per checkout by tests/sdk/install)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        unavailable("REVENUECAT SDK TESTS", "node/npm are not on PATH")
    done = subprocess.run(
        [SDK / "install", "npm"], capture_output=True, text=True, timeout=300, check=False
    )
    if done.returncode != 0:
        unavailable("REVENUECAT SDK TESTS", f"tests/sdk/install failed: {done.stderr.strip()}")


def run_node(script: str, plan: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run(
        ["node", SDK / script, json.dumps(plan)],
        cwd=SDK,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def customers(h: Harness, keys: AppKeys) -> dict[str, str]:
    """An active and an expired subscriber, and an anonymous one-time buyer."""
    now = int(time.time())
    for user, sub, period in (
        ("user_active", "sub_SdkActive1", (now - DAY, now + 30 * DAY)),
        ("user_expired", "sub_SdkExpired", (now - 60 * DAY, now - 30 * DAY)),
    ):
        h.webhook(
            keys,
            subscription_created(event_id=f"evt_{sub}", created=now, sub_id=sub, period=period),
        )
        assert h.receipt(keys, user, sub).status_code == 200
    session = "cs_test_SdkOneTime1"
    h.webhook(
        keys, session_event(event_id="evt_once", created=now, session_id=session, mode="payment")
    )
    assert h.receipt(keys, ANONYMOUS, session).status_code == 200
    return {
        "active": "user_active",
        "expired": "user_expired",
        "unknown": "user_never_seen",
        "anonymous": ANONYMOUS,
        "identifyAs": "user_after_login",
        "oneTime": session,
    }


def test_the_web_sdk_works_against_subledger_unchanged(database_url: str, tmp_path: Path) -> None:
    node_ready()
    server = start_server(database_url, tmp_path)
    try:
        with served_harness(server.url, database_url) as h:
            keys = h.app()
            users = customers(h, keys)
            out = run_node(
                "sdk_run.mjs",
                {
                    "url": server.url,
                    "key": keys.public_key,
                    "oldKey": "slpk_" + keys.public_key[5:],
                    "unknownKey": "strp_" + "x" * 32,
                    "users": users,
                    "entitlement": "pro",
                    "attributes": {"$email": "buyer@example.com", "plan": "gold"},
                },
            )
            after = h.subscriber(keys, users["identifyAs"])["subscriber"]
    finally:
        stop_server(server)
    # The SDK's own key check refuses anything but its prefixes before sending a request.
    assert out["configureWithOldKey"]["name"] == "InvalidCredentialsError"
    assert out["active"]["active"] == ["pro"] and out["activeEntitled"] is True
    assert out["active"]["activeSubscriptions"] == [PRODUCT]
    assert out["active"]["managementURL"] is None
    assert out["expired"]["all"] == ["pro"] and out["expired"]["active"] == []
    assert out["expiredEntitled"] is False and out["expired"]["subscriptions"] == [PRODUCT]
    assert out["unknown"] == {
        "originalAppUserId": "user_never_seen",
        "active": [],
        "all": [],
        "activeSubscriptions": [],
        "subscriptions": [],
        "nonSubscriptions": [],
        "managementURL": None,
    }
    assert out["anonymous"]["nonSubscriptions"] == [users["oneTime"]]
    assert out["isAnonymous"] is True
    # identifyUser from the anonymous id: a new id, so aliased (201 → wasCreated)
    assert out["identify"]["wasCreated"] is True
    assert out["identify"]["appUserId"] == users["identifyAs"]
    assert out["identify"]["info"]["originalAppUserId"] == ANONYMOUS
    assert out["identify"]["info"]["nonSubscriptions"] == [users["oneTime"]]
    assert out["anonymousAfterIdentify"] == out["identify"]["info"]
    # setAttributes reached the customer, which the alias carried over
    assert {k: v["value"] for k, v in after["subscriber_attributes"].items()} == {
        "$email": "buyer@example.com",
        "plan": "gold",
    }
    assert out["unknownKey"]["name"] == "InvalidCredentialsError"  # 7225 → the SDK's error
    # every request went to subledger (analytics off: nothing to RevenueCat's hosts)
    assert out["requested"] and all(
        r.split(" ", 1)[1].startswith(server.url + "/v1/subscribers/") for r in out["requested"]
    ), out["requested"]


@pytest.fixture
def page_server() -> Iterator[str]:
    """tests/sdk (page.html and the SDK's bundle) on its own port: another origin."""
    handler = functools.partial(_QuietHandler, directory=str(SDK))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_a_page_on_another_origin_uses_the_sdk_only_where_cors_allows_it(
    tmp_path: Path, page_server: str
) -> None:
    node_ready()
    if not CHROMIUM.exists():
        unavailable("BROWSER TEST", f"{CHROMIUM} is missing (tests/sdk/install installs it)")
    database_url = f"sqlite:///{tmp_path / 'subledger.db'}"
    allowed = start_server(database_url, tmp_path, SUBLEDGER_CORS_ORIGINS=page_server)
    closed = start_server(database_url, tmp_path)
    servers: list[Server] = [allowed, closed]
    try:
        with served_harness(allowed.url, database_url) as h:
            keys = h.app()
            users = customers(h, keys)

        def page(server: Server, identify_as: str) -> str:
            query = {"api": server.url, "key": keys.public_key, "user": ANONYMOUS}
            return f"{page_server}/page.html?{urlencode({**query, 'identifyAs': identify_as})}"

        out = run_node(
            "browser_run.mjs",
            {
                "chromium": str(CHROMIUM),
                "pages": [
                    {"name": "allowed", "url": page(allowed, users["identifyAs"])},
                    {"name": "refused", "url": page(closed, "user_other")},
                ],
            },
        )
    finally:
        for server in servers:
            stop_server(server)
    assert out["allowed"]["result"] == {
        "nonSubscriptions": [users["oneTime"]],
        "wasCreated": True,
    }, out["allowed"]
    # Without CORS the browser hides the answer: the SDK sees a network error.
    assert out["refused"]["result"]["error"]["code"] == 10, out["refused"]  # NetworkError
    assert any("blocked by CORS policy" in line for line in out["refused"]["logged"])
    for name, origin in (("allowed", allowed.url), ("refused", closed.url)):
        elsewhere = [
            r
            for r in out[name]["requested"]
            if not r.split(" ", 1)[1].startswith((page_server, origin))
        ]
        assert elsewhere == [], elsewhere
