"""`POST /v1/receipts`: an app backend says who bought a Stripe purchase (SPEC 4)."""

from __future__ import annotations

import re
import time
from typing import Any

import anyio
import msgspec
from litestar import Request, Response, post

from subledger.attributes import split_valid
from subledger.facts import AttributeValue, TokenPosted, new_id
from subledger.http.auth import authenticate
from subledger.http.customers import (
    decode_body,
    document_response,
    record_and_wait,
    valid_user,
)
from subledger.http.errors import ApiError
from subledger.service import Service

_TOKEN = re.compile(r"^(sub|cs)_[A-Za-z0-9_]{4,255}$")
REFUSED_TRANSFER = "There is already another active subscriber using the same receipt."


class ReceiptBody(msgspec.Struct, frozen=True):
    fetch_token: str
    app_user_id: str = ""
    attributes: dict[str, AttributeValue] | None = None
    presented_offering_identifier: str | None = None


_receipt_body = msgspec.json.Decoder(ReceiptBody)  # on import: see store._decoder


@post(
    "/v1/receipts",
    operation_id="postReceipt",
    tags=["customers"],
    summary="Post a Stripe purchase token (sub_… or cs_…) for an App User ID",
)
async def post_receipt(request: Request[Any, Any, Any]) -> Response[bytes]:
    loaded, is_secret = await authenticate(request)
    if request.headers.get("x-platform", "").lower() != "stripe":
        raise ApiError(400, 7000, "X-Platform header must be 'stripe'")
    body: ReceiptBody = decode_body(await request.body(), _receipt_body)
    user = valid_user(body.app_user_id)
    if not _TOKEN.match(body.fetch_token):
        raise ApiError(
            400,
            7103,
            "fetch_token must be a Stripe subscription (sub_…) or Checkout Session (cs_…) id",
        )
    attributes, problems = split_valid(body.attributes or {})
    if problems:
        raise ApiError(
            400,
            7263,
            "invalid attributes: nothing was stored",
            attribute_errors=[msgspec.structs.asdict(p) for p in problems],
        )
    service: Service = request.app.state.service
    fact = TokenPosted(
        originator_id=new_id(),
        app_id=loaded.app_id,
        received_at_ms=time.time_ns() // 1_000_000,
        app_user_id=user,
        fetch_token=body.fetch_token,
        attributes=attributes,
        presented_offering_identifier=body.presented_offering_identifier,
    )
    reads = await service.stripe_reads_before_token(loaded, body.fetch_token)
    await record_and_wait(service, *reads, fact)
    outcome = await anyio.to_thread.run_sync(
        service.reader.token_outcome, loaded.app_id, fact.originator_id.hex
    )
    if outcome is not None and outcome.outcome == "refused":
        raise ApiError(409, 7102, REFUSED_TRANSFER)
    return await document_response(service, loaded.app_id, user, with_attributes=is_secret)
