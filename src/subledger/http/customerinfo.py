"""The customer document as answered (SPEC 8): the stored JSON inside the request's time,
without `subscriber_attributes` for the public key. Shared by the routes that answer it."""

from __future__ import annotations

import time

import msgspec

from projections.rules.dates import iso
from projections.rules.documents import empty_subscriber
from subledger import asof
from subledger.codes import Code
from subledger.http.answers import CustomerInfoAnswer, PublicSubscriber
from subledger.http.errors import ApiError
from subledger.http.guards import Caller
from subledger.service import Service

_public = msgspec.json.Decoder(PublicSubscriber)


async def customer_info_as_of(
    service: Service, caller: Caller, app_user_id: str, as_of: str
) -> CustomerInfoAnswer:
    """The document as the projection held it at `as_of`, dated then (SPEC 12): secret key
    only (403/7244); 400/8120 for what names no moment, 404/8121 for one not reached yet."""
    if not caller.is_secret:
        raise ApiError(Code.SECRET_KEY_NEEDED, "as_of needs the app's secret key")
    try:
        at = await service.read(asof.resolve, as_of, service.ledger, service.reader)
    except asof.AsOfNotReachedError as error:
        raise ApiError(Code.AS_OF_NOT_REACHED, str(error)) from None
    except asof.AsOfError as error:
        raise ApiError(Code.INVALID_AS_OF, str(error)) from None
    request_date, request_ms, raw = await service.read(
        asof.document, service.reader, caller.app_id, app_user_id, at
    )
    return CustomerInfoAnswer(request_date, request_ms, msgspec.Raw(raw))


async def customer_info(service: Service, caller: Caller, app_user_id: str) -> CustomerInfoAnswer:
    """Unknown ids get an empty document; nothing is stored by a read (SPEC 5)."""
    stored = await service.read(service.reader.document, caller.app_id, app_user_id)
    now_ms = time.time_ns() // 1_000_000
    request_date = iso(now_ms // 1000) or ""
    raw = (
        stored.encode()
        if stored is not None
        else msgspec.json.encode(empty_subscriber(app_user_id, request_date))
    )
    if not caller.is_secret:
        raw = msgspec.json.encode(_public.decode(raw))
    return CustomerInfoAnswer(request_date, now_ms, msgspec.Raw(raw))
