"""`POST /v1/subscribers/identify`: RevenueCat's logIn/identifyUser (SPEC 5)."""

from __future__ import annotations

import time
from typing import Any

import anyio
import msgspec
from litestar import Request, Response, get, post

from subledger.facts import UserIdentified, new_id
from subledger.http.auth import authenticate
from subledger.http.customers import decode_body, document_response, record_and_wait, valid_user
from subledger.service import Service


class IdentifyBody(msgspec.Struct, frozen=True):
    app_user_id: str = ""
    new_app_user_id: str = ""


_identify_body = msgspec.json.Decoder(IdentifyBody)  # on import: see store._decoder


@post(
    "/v1/subscribers/identify",
    operation_id="identifySubscriber",
    tags=["customers"],
    summary="Identify the current App User ID as a new one (alias or transfer, in log order)",
)
async def post_identify(request: Request[Any, Any, Any]) -> Response[bytes]:
    """The new id's document: 201 when this fact made the new id known, else 200."""
    loaded, is_secret = await authenticate(request)
    body: IdentifyBody = decode_body(await request.body(), _identify_body)
    current, new = valid_user(body.app_user_id), valid_user(body.new_app_user_id)
    service: Service = request.app.state.service
    fact = UserIdentified(
        originator_id=new_id(),
        app_id=loaded.app_id,
        received_at_ms=time.time_ns() // 1_000_000,
        app_user_id=current,
        new_app_user_id=new,
    )
    position = await record_and_wait(service, fact)
    customer = await anyio.to_thread.run_sync(service.reader.customer, loaded.app_id, new)
    # `since` holds where each id first appeared: this fact's position means it is new.
    created = customer is not None and customer.since[customer.ids.index(new)] == position
    return await document_response(
        service, loaded.app_id, new, with_attributes=is_secret, status=201 if created else 200
    )


@get("/v1/subscribers/identify", include_in_schema=False)
async def get_identify_user(request: Request[Any, Any, Any]) -> Response[bytes]:
    """The App User ID "identify" is valid: its document, which the route above shadows."""
    loaded, is_secret = await authenticate(request)
    service: Service = request.app.state.service
    return await document_response(service, loaded.app_id, "identify", with_attributes=is_secret)
