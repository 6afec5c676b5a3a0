"""`GET /v1/subscribers/{id}/history`: the explained timeline of a customer (SPEC 9)."""

from __future__ import annotations

from typing import Any

import anyio
import msgspec
from litestar import MediaType, Request, Response, get
from litestar.params import FromPath

from projections.history import history_document
from subledger.http.auth import require_secret
from subledger.http.customers import valid_user
from subledger.service import Service


@get(
    "/v1/subscribers/{app_user_id:str}/history",
    operation_id="getSubscriberHistory",
    tags=["audit"],
    summary="Every fact that touched the customer, in log order, with what it changed",
)
async def get_history(
    app_user_id: FromPath[str], request: Request[Any, Any, Any]
) -> Response[bytes]:
    loaded = await require_secret(request)
    user = valid_user(app_user_id)
    service: Service = request.app.state.service
    history = await anyio.to_thread.run_sync(service.reader.customer_history, loaded.app_id, user)
    body = msgspec.json.encode(history_document(history))
    return Response(body, media_type=MediaType.JSON)
