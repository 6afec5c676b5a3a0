"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

import anyio
from litestar import Request, get

from subledger.http.errors import STORE_UNAVAILABLE, ApiError
from subledger.service import Service


@get("/health", operation_id="health", tags=["operations"], sync_to_thread=False)
def health() -> dict[str, str]:
    """The process answers (liveness)."""
    return {"status": "ok"}


@get("/ready", operation_id="ready", tags=["operations"])
async def ready(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """The store answers within the store timeout (readiness)."""
    service: Service = request.app.state.service
    try:
        with anyio.fail_after(service.settings.store_timeout_s):
            position = await anyio.to_thread.run_sync(service.ledger.last_position)
    except Exception as error:  # noqa: BLE001 - any failure means not ready
        raise ApiError(
            503, STORE_UNAVAILABLE, f"store not reachable: {type(error).__name__}"
        ) from None
    projection = (
        service.projector.describe()
        if service.projector is not None
        else await anyio.to_thread.run_sync(service.reader.projection_state)
    )
    projection["mode"] = service.settings.projector_mode
    projection |= await anyio.to_thread.run_sync(service.reader.unprojectable_state)
    return {
        "status": "ready",
        "store": service.settings.database.kind,
        "position": position,
        "projection": projection,
    }
