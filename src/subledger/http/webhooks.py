"""`POST /v1/incoming-webhooks/stripe/{app_id}`: verify, check, append once, answer (SPEC 3)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import anyio
import msgspec
from litestar import MediaType, Request, Response, post
from litestar.params import FromPath

from subledger.facts import NotificationReceived
from subledger.http import errors
from subledger.http.errors import ApiError
from subledger.registry import LoadedApp
from subledger.service import Service
from subledger.stripe.payloads import (
    SUPPORTED_EVENT_TYPES,
    PayloadError,
    decode_envelope,
    notification_fact,
)
from subledger.stripe.signature import SignatureError, verify

log = logging.getLogger("subledger.webhooks")

_SIGNATURE_CODES = {
    "malformed": errors.BAD_SIGNATURE_HEADER,
    "mismatch": errors.SIGNATURE_MISMATCH,
    "too_old": errors.SIGNATURE_TOO_OLD,
}


@post(
    "/v1/incoming-webhooks/stripe/{app_id:str}",
    operation_id="receiveStripeWebhook",
    tags=["stripe"],
    status_code=200,
    summary="Stripe posts its signed notifications here",
)
async def receive_stripe_webhook(
    app_id: FromPath[str], request: Request[Any, Any, Any]
) -> Response[bytes]:
    service: Service = request.app.state.service
    started = time.perf_counter()
    fields: dict[str, Any] = {"app_id": app_id}
    try:
        fact = await _verified_fact(service, app_id, request, fields)
        position = await _append(service, fact)
    except ApiError as error:
        _log(fields, started, error.status, f"refused:{error.code}")
        raise
    except Exception:
        _log(fields, started, 500, "error")
        raise
    duplicate = position is None
    _log(fields, started, 200, "duplicate" if duplicate else "appended", position=position)
    body = msgspec.json.encode({"received": True, "id": fact.event_id, "duplicate": duplicate})
    return Response(body, status_code=200, media_type=MediaType.JSON)


async def _verified_fact(
    service: Service, app_id: str, request: Request[Any, Any, Any], fields: dict[str, Any]
) -> NotificationReceived:
    """Checks in SPEC order; each refusal raises before anything is appended."""
    loaded = service.registry.cached(app_id) or await _load(service, app_id)
    if loaded is None:
        raise ApiError(404, errors.UNKNOWN_APP, f"no app {app_id!r}")
    body = await request.body()
    if not loaded.webhook_secrets:
        raise ApiError(
            400,
            errors.NO_WEBHOOK_SECRET,
            "this app has no webhook secret: set one with "
            "`subledger apps add-webhook-secret APP_ID whsec_…`",
        )
    try:
        matched = verify(
            body,
            request.headers.get("stripe-signature"),
            loaded.webhook_secrets,
            tolerance_s=loaded.app.config.signature_tolerance_s,
            now_s=time.time(),
        )
    except SignatureError as error:
        raise ApiError(400, _SIGNATURE_CODES[error.reason], str(error)) from None
    try:
        event = decode_envelope(body)
    except PayloadError as error:
        raise ApiError(400, errors.NOT_A_STRIPE_EVENT, str(error)) from None
    fields |= {"event_id": event.id, "type": event.type}
    if event.type not in SUPPORTED_EVENT_TYPES:
        raise ApiError(
            400,
            errors.UNSUPPORTED_EVENT_TYPE,
            f"event type {event.type!r} is not supported; send only: "
            + ", ".join(SUPPORTED_EVENT_TYPES),
        )
    return notification_fact(
        app_id, event, body, received_at_ms=time.time_ns() // 1_000_000, secret_fingerprint=matched
    )


async def _load(service: Service, app_id: str) -> LoadedApp | None:
    return await anyio.to_thread.run_sync(service.registry.get, app_id)


async def _append(service: Service, fact: NotificationReceived) -> int | None:
    """Wait for the shared commit, at most the store timeout (then 503; Stripe retries)."""
    try:
        async with asyncio.timeout(service.settings.store_timeout_s):
            return await service.committer.submit(fact)
    except TimeoutError:
        raise ApiError(
            503, errors.STORE_UNAVAILABLE, "the store did not confirm in time; retry"
        ) from None


def _log(fields: dict[str, Any], started: float, status: int, outcome: str, **more: Any) -> None:
    if not log.isEnabledFor(logging.INFO):
        return
    duration_ms = round((time.perf_counter() - started) * 1000, 2)
    log.info(
        "stripe webhook",
        extra={**fields, "status": status, "outcome": outcome, "duration_ms": duration_ms, **more},
    )
