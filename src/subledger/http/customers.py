"""Customer documents (SPEC 5, 8): read-your-writes answers and the subscriber routes."""

from __future__ import annotations

import time
from typing import Any

import anyio
import msgspec
from litestar import MediaType, Request, Response, get, post
from litestar.params import FromPath

from projections.rules.documents import empty_subscriber
from subledger.attributes import split_valid
from subledger.facts import AttributesPosted, AttributeValue, Fact, new_id
from subledger.http import errors
from subledger.http.auth import authenticate
from subledger.http.errors import ApiError
from subledger.identity import AppUserIdError, check_app_user_id
from subledger.service import Service

INVALID_ATTRIBUTES = 7263
MALFORMED = 7226


class AttributesBody(msgspec.Struct, frozen=True):
    attributes: dict[str, AttributeValue]


def valid_user(app_user_id: str) -> str:
    try:
        return check_app_user_id(app_user_id)
    except AppUserIdError as error:
        raise ApiError(400, error.code, str(error)) from None


# Built on import (see store._decoder for why decoders are never built lazily).
_attributes_body = msgspec.json.Decoder(AttributesBody)


def decode_body(raw: bytes, decoder: msgspec.json.Decoder[Any]) -> Any:
    try:
        return decoder.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError) as error:
        raise ApiError(400, MALFORMED, f"malformed request body: {error}") from None


async def record_and_wait(service: Service, *facts: Fact) -> int:
    """Append, then wait until the projection has applied it (read-your-writes)."""
    position = await anyio.to_thread.run_sync(lambda: service.ledger.record(*facts))
    service.appended()
    timeout = service.settings.projection_wait_s
    done = await service.wait_projected_async(position, timeout)
    if not done:
        raise ApiError(
            503,
            errors.PROJECTION_LAGGING,
            "recorded, but the projection did not catch up in time; retry (repeating is harmless)",
        )
    return position


async def document_response(
    service: Service, app_id: str, app_user_id: str, *, with_attributes: bool, status: int = 200
) -> Response[bytes]:
    raw = await anyio.to_thread.run_sync(service.reader.document, app_id, app_user_id)
    now_ms = time.time_ns() // 1_000_000
    request_date = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now_ms // 1000))
    subscriber = (
        raw.encode() if raw else msgspec.json.encode(empty_subscriber(app_user_id, request_date))
    )
    if not with_attributes:
        doc = msgspec.json.decode(subscriber)
        doc.pop("subscriber_attributes", None)
        subscriber = msgspec.json.encode(doc)
    body = (
        b'{"request_date":"'
        + request_date.encode()
        + b'","request_date_ms":'
        + str(now_ms).encode()
        + b',"subscriber":'
        + subscriber
        + b"}"
    )
    return Response(body, status_code=status, media_type=MediaType.JSON)


@get(
    "/v1/subscribers/{app_user_id:str}",
    operation_id="getSubscriber",
    tags=["customers"],
    summary="The customer document of an App User ID (empty for an unknown id)",
)
async def get_subscriber(
    app_user_id: FromPath[str], request: Request[Any, Any, Any]
) -> Response[bytes]:
    loaded, is_secret = await authenticate(request)
    user = valid_user(app_user_id)
    service: Service = request.app.state.service
    return await document_response(service, loaded.app_id, user, with_attributes=is_secret)


@post(
    "/v1/subscribers/{app_user_id:str}/attributes",
    operation_id="postSubscriberAttributes",
    tags=["customers"],
    summary="Set customer attributes (newer updated_at_ms wins; null or empty deletes)",
)
async def post_attributes(
    app_user_id: FromPath[str], request: Request[Any, Any, Any]
) -> Response[bytes]:
    loaded, is_secret = await authenticate(request)
    user = valid_user(app_user_id)
    service: Service = request.app.state.service
    body: AttributesBody = decode_body(await request.body(), _attributes_body)
    customer = await anyio.to_thread.run_sync(service.reader.customer, loaded.app_id, user)
    existing = frozenset(
        k for k in (customer.attributes if customer else {}) if not k.startswith("$")
    )
    valid, problems = split_valid(body.attributes, existing)
    if valid:
        fact = AttributesPosted(
            originator_id=new_id(),
            app_id=loaded.app_id,
            received_at_ms=time.time_ns() // 1_000_000,
            app_user_id=user,
            attributes=valid,
        )
        await record_and_wait(service, fact)
    if problems:
        raise ApiError(
            400,
            INVALID_ATTRIBUTES,
            "some attributes were refused; the others were stored",
            attribute_errors=[msgspec.structs.asdict(p) for p in problems],
        )
    return await document_response(service, loaded.app_id, user, with_attributes=is_secret)
