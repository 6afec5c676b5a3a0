"""`POST /v1/receipts`: an app backend says who bought a Stripe purchase (SPEC 4)."""

from __future__ import annotations

import re
import time
from typing import Annotated

import msgspec
from litestar import post
from litestar.di import NamedDependency
from litestar.params import HeaderParameter, JSONBody

from subledger.attributes import split_valid
from subledger.codes import Code
from subledger.facts import TokenPosted, new_id
from subledger.http.answers import CustomerInfoAnswer
from subledger.http.bodies import ReceiptBody
from subledger.http.customerinfo import customer_info
from subledger.http.errors import ApiError
from subledger.http.guards import Caller, api_key, stripe_platform, valid_app_user_id
from subledger.http.openapi import BEARER, WRITE_ERRORS, customer_info_or
from subledger.identity import PURCHASE_TOKEN
from subledger.service import Service

_TOKEN = re.compile(PURCHASE_TOKEN)
REFUSED_TRANSFER = "There is already another active subscriber using the same receipt."
Platform = Annotated[
    str,
    HeaderParameter(
        name="X-Platform",
        description="must be `stripe` (any case); else 7000",
        pattern="^[Ss][Tt][Rr][Ii][Pp][Ee]$",
    ),
]


@post(
    "/v1/receipts",
    operation_id="postReceipt",
    tags=["customers"],
    summary="Post a Stripe purchase token (sub_… or cs_…) for an App User ID",
    status_code=200,
    guards=[api_key, stripe_platform],
    security=BEARER,
    responses=customer_info_or(
        *WRITE_ERRORS, Code.PLATFORM_NOT_STRIPE, Code.NOT_A_PURCHASE_TOKEN, Code.TRANSFER_REFUSED
    ),
)
async def post_receipt(
    data: JSONBody[ReceiptBody],
    caller: NamedDependency[Caller],
    service: NamedDependency[Service],
    x_platform: Platform,
) -> CustomerInfoAnswer:
    user = valid_app_user_id(data.app_user_id)
    if not _TOKEN.match(data.fetch_token):
        raise ApiError(
            Code.NOT_A_PURCHASE_TOKEN,
            "fetch_token must be a Stripe subscription (sub_…) or Checkout Session (cs_…) id",
        )
    attributes, problems = split_valid(data.attributes or {})
    if problems:
        raise ApiError(
            Code.INVALID_ATTRIBUTES,
            "invalid attributes: nothing was stored",
            attribute_errors=[msgspec.structs.asdict(p) for p in problems],
        )
    fact = TokenPosted(
        originator_id=new_id(),
        app_id=caller.app_id,
        received_at_ms=time.time_ns() // 1_000_000,
        app_user_id=user,
        fetch_token=data.fetch_token,
        attributes=attributes,
        presented_offering_identifier=data.presented_offering_identifier,
    )
    reads = await service.stripe_reads_before_token(caller.app, data.fetch_token)
    await service.record_and_wait(*reads, fact)
    outcome = await service.read(
        service.reader.token_outcome, caller.app_id, fact.originator_id.hex
    )
    if outcome is not None and outcome.outcome == "refused":
        raise ApiError(Code.TRANSFER_REFUSED, REFUSED_TRANSFER)
    return await customer_info(service, caller, user)
