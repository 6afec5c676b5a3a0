"""`POST /v1/incoming-webhooks/stripe/{app_id}`: verify, check, append once, answer (SPEC 3)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Annotated, Any

from litestar import Request, post
from litestar.di import NamedDependency
from litestar.params import FromPath, HeaderParameter

from subledger.codes import Code
from subledger.facts import NotificationReceived
from subledger.http.answers import WebhookAnswer
from subledger.http.errors import ApiError, refusal
from subledger.http.openapi import errors
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
    "malformed": Code.BAD_SIGNATURE_HEADER,
    "mismatch": Code.SIGNATURE_MISMATCH,
    "too_old": Code.SIGNATURE_TOO_OLD,
}
Signature = Annotated[
    str | None,
    HeaderParameter(
        name="Stripe-Signature",
        required=False,
        description="t=<unix seconds>,v1=<hex HMAC-SHA256 of `t.` + the raw body>[,v1=…]",
    ),
]


@post(
    "/v1/incoming-webhooks/stripe/{app_id:str}",
    operation_id="receiveStripeWebhook",
    tags=["stripe"],
    status_code=200,
    summary="Stripe posts its signed notifications here",
    responses=errors(
        Code.UNKNOWN_APP,
        Code.BODY_TOO_LARGE,
        Code.NO_WEBHOOK_SECRET,
        Code.BAD_SIGNATURE_HEADER,
        Code.SIGNATURE_MISMATCH,
        Code.SIGNATURE_TOO_OLD,
        Code.NOT_A_STRIPE_EVENT,
        Code.UNSUPPORTED_EVENT_TYPE,
    ),
)
async def receive_stripe_webhook(
    app_id: FromPath[str],
    request: Request[Any, Any, Any],
    service: NamedDependency[Service],
    stripe_signature: Signature,
) -> WebhookAnswer:
    """The raw bytes are read from the request: the signature covers them, not a decoding."""
    started = time.perf_counter()
    fields: dict[str, Any] = {"app_id": app_id}
    try:
        fact = await _verified_fact(service, app_id, request, stripe_signature, fields)
        position = await _append(service, fact)
    except Exception as error:
        answer = refusal(error)
        outcome = "error" if answer.code == Code.INTERNAL else f"refused:{answer.code}"
        _log(fields, started, answer.status, outcome)
        raise
    duplicate = position is None
    _log(fields, started, 200, "duplicate" if duplicate else "appended", position=position)
    return WebhookAnswer(received=True, id=fact.event_id, duplicate=duplicate)


async def _verified_fact(
    service: Service,
    app_id: str,
    request: Request[Any, Any, Any],
    signature: str | None,
    fields: dict[str, Any],
) -> NotificationReceived:
    """Checks in SPEC order; each refusal raises before anything is appended."""
    loaded = service.registry.cached(app_id) or await service.read(service.registry.get, app_id)
    if loaded is None:
        raise ApiError(Code.UNKNOWN_APP, f"no app {app_id!r}")
    body = await request.body()
    if not loaded.webhook_secrets:
        raise ApiError(
            Code.NO_WEBHOOK_SECRET,
            "this app has no webhook secret: set one with "
            "`subledger apps add-webhook-secret APP_ID whsec_…`",
        )
    try:
        matched = verify(
            body,
            signature,
            loaded.webhook_secrets,
            tolerance_s=loaded.app.config.signature_tolerance_s,
            now_s=time.time(),
        )
    except SignatureError as error:
        raise ApiError(_SIGNATURE_CODES[error.reason], str(error)) from None
    try:
        event = decode_envelope(body)
    except PayloadError as error:
        raise ApiError(Code.NOT_A_STRIPE_EVENT, str(error)) from None
    fields |= {"event_id": event.id, "type": event.type}
    if event.type not in SUPPORTED_EVENT_TYPES:
        raise ApiError(
            Code.UNSUPPORTED_EVENT_TYPE,
            f"event type {event.type!r} is not supported; send only: "
            + ", ".join(SUPPORTED_EVENT_TYPES),
        )
    return notification_fact(
        app_id, event, body, received_at_ms=time.time_ns() // 1_000_000, secret_fingerprint=matched
    )


async def _append(service: Service, fact: NotificationReceived) -> int | None:
    """Wait for the shared commit, at most the store timeout (then 503; Stripe retries)."""
    try:
        async with asyncio.timeout(service.settings.store_timeout_s):
            return await service.committer.submit(fact)
    except TimeoutError:
        raise ApiError(Code.STORE_UNAVAILABLE, "the store did not confirm in time; retry") from None


def _log(fields: dict[str, Any], started: float, status: int, outcome: str, **more: Any) -> None:
    if not log.isEnabledFor(logging.INFO):
        return
    duration_ms = round((time.perf_counter() - started) * 1000, 2)
    log.info(
        "stripe webhook",
        extra={**fields, "status": status, "outcome": outcome, "duration_ms": duration_ms, **more},
    )
