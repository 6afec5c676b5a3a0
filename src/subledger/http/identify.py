"""`POST /v1/subscribers/identify`: RevenueCat's logIn/identifyUser (SPEC 5)."""

from __future__ import annotations

import time

from litestar import Response, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from subledger.facts import UserIdentified, new_id
from subledger.http.answers import CustomerInfoAnswer
from subledger.http.bodies import IdentifyBody
from subledger.http.customerinfo import customer_info
from subledger.http.guards import Caller, api_key, valid_app_user_id
from subledger.http.openapi import BEARER, CUSTOMER_INFO, WRITE_ERRORS, customer_info_or
from subledger.service import Service


@post(
    "/v1/subscribers/identify",
    operation_id="identifySubscriber",
    tags=["customers"],
    summary="Identify the current App User ID as a new one (alias or transfer, in log order)",
    guards=[api_key],
    security=BEARER,
    responses={201: CUSTOMER_INFO, **customer_info_or(*WRITE_ERRORS)},
)
async def post_identify(
    data: JSONBody[IdentifyBody],
    caller: NamedDependency[Caller],
    service: NamedDependency[Service],
) -> Response[CustomerInfoAnswer]:
    """The new id's document: 201 when this fact made the new id known, else 200."""
    current, new = valid_app_user_id(data.app_user_id), valid_app_user_id(data.new_app_user_id)
    fact = UserIdentified(
        originator_id=new_id(),
        app_id=caller.app_id,
        received_at_ms=time.time_ns() // 1_000_000,
        app_user_id=current,
        new_app_user_id=new,
    )
    position = await service.record_and_wait(fact)
    customer = await service.read(service.reader.customer, caller.app_id, new)
    # `since` holds where each id first appeared: this fact's position means it is new.
    created = customer is not None and customer.since[customer.ids.index(new)] == position
    answer = await customer_info(service, caller, new)
    return Response(answer, status_code=201 if created else 200)


@get(
    "/v1/subscribers/identify",
    include_in_schema=False,
    guards=[api_key],
)
async def get_identify_user(
    caller: NamedDependency[Caller], service: NamedDependency[Service]
) -> CustomerInfoAnswer:
    """The App User ID "identify" is valid: its document, which the route above shadows."""
    return await customer_info(service, caller, "identify")
