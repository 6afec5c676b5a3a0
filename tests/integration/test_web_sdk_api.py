"""What RevenueCat's web SDK needs from the API (SPEC 5): keys it accepts, keys issued before,
its headers, and CORS for the public routes only (SUBLEDGER_CORS_ORIGINS)."""

from __future__ import annotations

from collections.abc import Iterator

import msgspec
import pytest

from subledger import apps
from subledger.ledger import Ledger
from subledger.registry import AppRegistry
from subledger.sealing import Sealer
from subledger.settings import Database, Settings
from tests.harness import AppKeys, Harness, harness

ALLOWED = "http://shop.example.test:3000"
OTHER = "http://elsewhere.example.test"
ANONYMOUS = "$RCAnonymousID:" + "a" * 32
# Every header @revenuecat/purchases-js 1.63.1 sends (http-client getHeaders).
SDK_HEADERS = {
    "Content-Type": "application/json",
    "Accept": "application/json",
    "X-Platform": "web",
    "X-Version": "1.63.1",
    "X-Is-Sandbox": "false",
    "X-Platform-Flavor": "native",
    "X-Platform-Flavor-Version": "1.0.0",
}


@pytest.fixture
def h(settings: Settings) -> Iterator[Harness]:
    with harness(msgspec.structs.replace(settings, cors_origins=(ALLOWED,))) as running:
        yield running


def preflight(h: Harness, path: str, origin: str, method: str = "GET") -> dict[str, str]:
    response = h.client.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": ", ".join(["Authorization", *SDK_HEADERS]),
        },
    )
    found = {k.lower(): v for k, v in response.headers.items()}
    return found | {":status": str(response.status_code)}


def sdk_call(
    h: Harness, keys: AppKeys, method: str, path: str, origin: str | None = None, **body: object
) -> tuple[int, dict[str, str]]:
    headers = {"Authorization": f"Bearer {keys.public_key}", **SDK_HEADERS}
    if origin:
        headers["Origin"] = origin
    response = h.client.request(
        method, path, headers=headers, content=msgspec.json.encode(body) if body else None
    )
    return response.status_code, {k.lower(): v for k, v in response.headers.items()}


def test_keys_issued_before_the_strp_prefix_are_still_looked_up(database: Database) -> None:
    """A server that has not seen an app's keys yet looks an unknown key up in the store
    only for subledger's prefixes: the old `slpk_` prefix must stay one of them."""
    ledger = Ledger(database)
    try:
        app, _, _ = ledger.create_app("old", apps.AppConfig())
        registry = AppRegistry(ledger, Sealer())
        registry.refresh()
        old_public, old_secret = "slpk_" + "P" * 32, "slsk_" + "S" * 43
        ledger.save(
            apps.ApiKeysRotated(
                originator_id=app.id,
                originator_version=app.version + 1,
                received_at_ms=1,
                public_key_hash=apps.key_hash(old_public),
                secret_key_hash=apps.key_hash(old_secret),
            )
        )
        found = registry.authenticate(old_public)
        assert found is not None and found[0].app_id == app.app_id and found[1] is False
        assert registry.authenticate("strp_unknown0000") is None
    finally:
        ledger.close()


def test_the_sdks_headers_are_accepted_on_every_route_it_calls(h: Harness) -> None:
    keys = h.app()
    assert sdk_call(h, keys, "GET", "/v1/subscribers/user_1")[0] == 200
    assert sdk_call(h, keys, "POST", "/v1/subscribers/user_1/attributes", attributes={})[0] == 200
    status, _ = sdk_call(
        h, keys, "POST", "/v1/subscribers/identify", app_user_id=ANONYMOUS, new_app_user_id="u_2"
    )
    assert status == 201


def test_an_allowed_origin_gets_cors_headers_on_preflight_and_on_the_request(h: Harness) -> None:
    keys = h.app()
    for path, method in (
        ("/v1/subscribers/user_1", "GET"),
        ("/v1/subscribers/user_1/attributes", "POST"),
        ("/v1/subscribers/identify", "POST"),
        ("/v1/receipts", "POST"),
    ):
        answer = preflight(h, path, ALLOWED, method)
        assert answer[":status"] == "204", (path, answer)
        assert answer["access-control-allow-origin"] == ALLOWED
        assert method in answer["access-control-allow-methods"]
        allowed = {x.strip().lower() for x in answer["access-control-allow-headers"].split(",")}
        assert {"authorization", *(k.lower() for k in SDK_HEADERS)} <= allowed
    status, headers = sdk_call(h, keys, "GET", "/v1/subscribers/user_1", ALLOWED)
    assert status == 200 and headers["access-control-allow-origin"] == ALLOWED
    assert "origin" in headers["vary"].lower()
    wrong = h.client.get("/v1/subscribers/user_1", headers={"Origin": ALLOWED})
    assert wrong.status_code == 401  # the SDK can read the error, so it says "credentials"
    assert wrong.headers["access-control-allow-origin"] == ALLOWED


def test_other_origins_ingest_history_and_operations_routes_get_no_cors(h: Harness) -> None:
    keys = h.app()
    refused = preflight(h, "/v1/subscribers/user_1", OTHER)
    assert "access-control-allow-origin" not in refused and refused[":status"] == "400"
    status, headers = sdk_call(h, keys, "GET", "/v1/subscribers/user_1", OTHER)
    assert status == 200 and "access-control-allow-origin" not in headers
    for path in (
        f"/v1/incoming-webhooks/stripe/{keys.app_id}",
        "/v1/subscribers/user_1/history",
        "/health",
        "/ready",
    ):
        for method in ("GET", "POST"):
            answer = preflight(h, path, ALLOWED, method)
            assert not [k for k in answer if k.startswith("access-control-")], (path, answer)
    webhook = h.client.post(
        f"/v1/incoming-webhooks/stripe/{keys.app_id}", headers={"Origin": ALLOWED}, content=b"{}"
    )
    assert not [k for k in webhook.headers if k.lower().startswith("access-control-")]


def test_without_configured_origins_there_is_no_cors_at_all(settings: Settings) -> None:
    with harness(settings) as h:
        keys = h.app()
        answer = preflight(h, "/v1/subscribers/user_1", ALLOWED)
        assert not [k for k in answer if k.startswith("access-control-")]
        _, headers = sdk_call(h, keys, "GET", "/v1/subscribers/user_1", ALLOWED)
        assert not [k for k in headers if k.startswith("access-control-")]
