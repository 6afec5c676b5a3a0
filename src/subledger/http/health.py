"""Liveness and readiness."""

from __future__ import annotations

from litestar import get
from litestar.di import NamedDependency

from subledger.http.answers import DeliveryBacklog, Health, ProjectionState, Ready
from subledger.http.openapi import errors
from subledger.service import Service


@get("/health", operation_id="health", tags=["operations"], sync_to_thread=False)
def health() -> Health:
    """The process answers (liveness)."""
    return Health(status="ok")


@get("/ready", operation_id="ready", tags=["operations"], responses=errors())
async def ready(service: NamedDependency[Service]) -> Ready:
    """The store answers within the store timeout (readiness); 503/8503 otherwise. Also
    where the projection stands and the outbound delivery backlog."""
    state = await service.read(service.readiness)
    projection = state["projection"]
    return Ready(
        status="ready",
        store=service.settings.database.kind,
        position=state["position"],
        projection=ProjectionState(**projection, mode=service.settings.projector_mode),
        deliveries=DeliveryBacklog(**state["deliveries"]),
    )


@get(
    "/metrics",
    operation_id="metrics",
    tags=["operations"],
    media_type="text/plain; version=0.0.4",
    responses=errors(),
)
async def metrics(service: NamedDependency[Service]) -> str:
    """What /ready reports, as Prometheus gauges (text exposition format)."""
    state = await service.read(service.readiness)
    projection, backlog = state["projection"], state["deliveries"]
    gauges = [
        ("subledger_log_position", "last position of the log", state["position"]),
        ("subledger_projection_position", "last position projected", projection["position"]),
        (
            "subledger_projection_lag_p50_ms",
            "receive to projected, median",
            projection["lag_ms_p50"],
        ),
        ("subledger_projection_lag_p99_ms", "receive to projected, p99", projection["lag_ms_p99"]),
        (
            "subledger_unprojectable_facts",
            "facts the fold could not apply (docs/reliability.md)",
            projection["unprojectable"],
        ),
        (
            "subledger_deliveries_pending",
            "outbound deliveries pending, retries included",
            backlog["pending"],
        ),
        ("subledger_deliveries_due", "outbound deliveries due now", backlog["due"]),
        (
            "subledger_deliveries_oldest_pending_age_ms",
            "how long the longest-waiting due delivery has waited",
            backlog["oldest_pending_age_ms"],
        ),
    ]
    return "".join(
        f"# HELP {name} {text}\n# TYPE {name} gauge\n{name} {value}\n"
        for name, text, value in gauges
        if value is not None
    )
