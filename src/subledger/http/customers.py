"""The subscriber routes (SPEC 5): read a customer document, post attributes."""

from __future__ import annotations

import time
from typing import Annotated

import msgspec
from litestar import get, post
from litestar.di import NamedDependency
from litestar.openapi.spec import Example, OpenAPIFormat, OpenAPIType, Schema
from litestar.params import JSONBody, QueryParameter

from subledger.attributes import split_valid
from subledger.codes import Code
from subledger.facts import AttributesPosted, new_id
from subledger.http.answers import CustomerInfoAnswer
from subledger.http.bodies import AttributesBody
from subledger.http.customerinfo import customer_info, customer_info_as_of
from subledger.http.errors import ApiError
from subledger.http.guards import AppUserIdPath, Caller, api_key, path_app_user_id
from subledger.http.openapi import BEARER, WRITE_ERRORS, customer_info_or
from subledger.service import Service

ID_ERRORS = (Code.EMPTY_APP_USER_ID, Code.INVALID_APP_USER_ID, Code.INVALID_API_KEY)
AsOfQuery = Annotated[
    str | None,
    QueryParameter(
        name="as_of",
        description=(
            "the document as it was at this point of the log (SPEC 12), secret key only: a "
            "log position (1 or more, as `subledger events` lists them) or an ISO 8601 time "
            "with its offset (the last fact received at or before it); dates are judged "
            "at that moment"
        ),
        examples=[Example(value="2026-10-01T00:00:00Z"), Example(value="1")],
        # What `subledger.asof.parse` reads: a position, or an RFC 3339 date-time.
        schema_extra={
            "anyOf": [
                Schema(type=OpenAPIType.STRING, pattern="^[1-9][0-9]{0,18}$"),
                Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.DATE_TIME),
            ]
        },
    ),
]


@get(
    "/v1/subscribers/{app_user_id:str}",
    operation_id="getSubscriber",
    tags=["customers"],
    summary="The customer document of an App User ID (empty for an unknown id), now or as_of",
    guards=[api_key, path_app_user_id],
    security=BEARER,
    responses=customer_info_or(
        *ID_ERRORS, Code.SECRET_KEY_NEEDED, Code.INVALID_AS_OF, Code.AS_OF_NOT_REACHED
    ),
)
async def get_subscriber(
    app_user_id: AppUserIdPath,
    caller: NamedDependency[Caller],
    service: NamedDependency[Service],
    as_of: AsOfQuery = None,
) -> CustomerInfoAnswer:
    if as_of is not None:
        return await customer_info_as_of(service, caller, app_user_id, as_of)
    return await customer_info(service, caller, app_user_id)


@post(
    "/v1/subscribers/{app_user_id:str}/attributes",
    operation_id="postSubscriberAttributes",
    tags=["customers"],
    summary="Set customer attributes (newer updated_at_ms wins; null or empty deletes)",
    status_code=200,
    guards=[api_key, path_app_user_id],
    security=BEARER,
    responses=customer_info_or(*WRITE_ERRORS),
)
async def post_attributes(
    app_user_id: AppUserIdPath,
    data: JSONBody[AttributesBody],
    caller: NamedDependency[Caller],
    service: NamedDependency[Service],
) -> CustomerInfoAnswer:
    customer = await service.read(service.reader.customer, caller.app_id, app_user_id)
    existing = frozenset(
        k for k in (customer.attributes if customer else {}) if not k.startswith("$")
    )
    valid, problems = split_valid(data.attributes, existing)
    if valid:
        await service.record_and_wait(
            AttributesPosted(
                originator_id=new_id(),
                app_id=caller.app_id,
                received_at_ms=time.time_ns() // 1_000_000,
                app_user_id=app_user_id,
                attributes=valid,
            )
        )
    if problems:
        raise ApiError(
            Code.INVALID_ATTRIBUTES,
            "some attributes were refused; the others were stored",
            attribute_errors=[msgspec.structs.asdict(p) for p in problems],
        )
    return await customer_info(service, caller, app_user_id)
