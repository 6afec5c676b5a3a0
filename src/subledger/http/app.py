"""The HTTP application factory: one composition root for the web process."""

from __future__ import annotations

from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide

from subledger.http.bodies import StorableJsonRequest
from subledger.http.customers import get_subscriber, post_attributes
from subledger.http.errors import EXCEPTION_HANDLERS
from subledger.http.guards import caller_of, service_of
from subledger.http.health import health, ready
from subledger.http.history import get_history
from subledger.http.openapi import openapi_config
from subledger.http.receipts import post_receipt
from subledger.http.webhooks import receive_stripe_webhook
from subledger.service import Service
from subledger.settings import Settings


def create_app(settings: Settings, *, service: Service | None = None) -> Litestar:
    """Build the service (store, registry, background threads) and its routes."""
    running = service or Service(settings)
    return Litestar(
        route_handlers=[
            health,
            ready,
            receive_stripe_webhook,
            post_receipt,
            get_subscriber,
            post_attributes,
            get_history,
        ],
        dependencies={
            "service": Provide(service_of, sync_to_thread=False),
            "caller": Provide(caller_of, sync_to_thread=False),
        },
        exception_handlers=EXCEPTION_HANDLERS,
        request_class=StorableJsonRequest,
        request_max_body_size=settings.max_body_bytes,
        openapi_config=openapi_config(),
        on_startup=[running.start],
        on_shutdown=[running.close_async, running.stop],
        state=State({"service": running}),
        debug=False,
        logging_config=None,  # keep subledger's JSON-lines logging (subledger.logs)
    )
