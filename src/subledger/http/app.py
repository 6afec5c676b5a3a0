"""The HTTP application factory: one composition root for the web process."""

from __future__ import annotations

from litestar import Litestar
from litestar.datastructures import State
from litestar.openapi.config import OpenAPIConfig

from subledger.http.customers import get_subscriber, post_attributes
from subledger.http.errors import EXCEPTION_HANDLERS
from subledger.http.health import health, ready
from subledger.http.history import get_history
from subledger.http.identify import get_identify_user, post_identify
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
            post_identify,
            get_identify_user,
            get_subscriber,
            post_attributes,
            get_history,
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(title="subledger", version="0.1.0", path="/schema"),
        on_startup=[running.start],
        on_shutdown=[running.close_async, running.stop],
        state=State({"service": running}),
        debug=False,
        logging_config=None,  # keep subledger's JSON-lines logging (subledger.logs)
    )
