"""`GET /v1/subscribers/{id}/history`: the explained timeline of a customer (SPEC 9)."""

from __future__ import annotations

import msgspec
from litestar import get
from litestar.di import NamedDependency

from projections.history import history_document
from subledger.codes import Code
from subledger.http.answers import HistoryDocument
from subledger.http.guards import AppUserIdPath, Caller, api_key, path_app_user_id, secret_key
from subledger.http.openapi import BEARER, errors
from subledger.service import Service


@get(
    "/v1/subscribers/{app_user_id:str}/history",
    operation_id="getSubscriberHistory",
    tags=["audit"],
    summary="Every fact that touched the customer, in log order, with what it changed",
    guards=[api_key, secret_key, path_app_user_id],
    security=BEARER,
    responses=errors(
        Code.EMPTY_APP_USER_ID,
        Code.INVALID_APP_USER_ID,
        Code.INVALID_API_KEY,
        Code.SECRET_KEY_NEEDED,
    ),
)
async def get_history(
    app_user_id: AppUserIdPath, caller: NamedDependency[Caller], service: NamedDependency[Service]
) -> HistoryDocument:
    history = await service.read(service.reader.customer_history, caller.app_id, app_user_id)
    return msgspec.convert(history_document(history), HistoryDocument)
