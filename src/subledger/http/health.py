"""Liveness and readiness."""

from __future__ import annotations

from litestar import get
from litestar.di import NamedDependency

from subledger.http.answers import Health, ProjectionState, Ready
from subledger.http.openapi import errors
from subledger.service import Service


@get("/health", operation_id="health", tags=["operations"], sync_to_thread=False)
def health() -> Health:
    """The process answers (liveness)."""
    return Health(status="ok")


@get("/ready", operation_id="ready", tags=["operations"], responses=errors())
async def ready(service: NamedDependency[Service]) -> Ready:
    """The store answers within the store timeout (readiness); 503/8503 otherwise."""
    state = await service.read(service.readiness)
    projection = state["projection"]
    return Ready(
        status="ready",
        store=service.settings.database.kind,
        position=state["position"],
        projection=ProjectionState(**projection, mode=service.settings.projector_mode),
    )
