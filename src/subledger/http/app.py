"""The HTTP application factory: one composition root for the web process."""

from __future__ import annotations

from litestar import Litestar, Router
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.middleware import DefineMiddleware

# litestar applies its CORSConfig to every route (litestar issue #3403); only this middleware,
# on the router of the public routes, keeps ingest and operations routes without CORS.
from litestar.middleware._internal.cors import CORSMiddleware

from subledger.http.bodies import StorableJsonRequest
from subledger.http.charts import get_chart, get_chart_bucket
from subledger.http.customers import get_subscriber, post_attributes
from subledger.http.errors import EXCEPTION_HANDLERS
from subledger.http.guards import caller_of, service_of
from subledger.http.health import health, metrics, ready
from subledger.http.history import get_history
from subledger.http.identify import get_identify_user, post_identify
from subledger.http.openapi import openapi_config
from subledger.http.receipts import post_receipt
from subledger.http.webhooks import receive_stripe_webhook
from subledger.service import Service
from subledger.settings import Settings

# What @revenuecat/purchases-js sends (its SDK_HEADERS), plus nothing else.
SDK_HEADERS = [
    "Authorization",
    "Content-Type",
    "Accept",
    "X-Platform",
    "X-Version",
    "X-Is-Sandbox",
    "X-Platform-Flavor",
    "X-Platform-Flavor-Version",
    "X-RC-Subscriber-Token",
]


def public_routes(settings: Settings) -> Router:
    """The routes a browser may call with the public key, with CORS for the configured
    origins (`SUBLEDGER_CORS_ORIGINS`). The history needs the secret key: no CORS."""
    cors = CORSConfig(
        allow_origins=list(settings.cors_origins),
        allow_methods=["GET", "POST"],
        allow_headers=SDK_HEADERS,
    )
    return Router(
        path="/",
        route_handlers=[
            post_receipt,
            post_identify,
            get_identify_user,
            get_subscriber,
            post_attributes,
        ],
        middleware=[DefineMiddleware(CORSMiddleware, config=cors)] if settings.cors_origins else [],
    )


def create_app(settings: Settings, *, service: Service | None = None) -> Litestar:
    """Build the service (store, registry, background threads) and its routes."""
    running = service or Service(settings)
    return Litestar(
        route_handlers=[
            health,
            ready,
            metrics,
            receive_stripe_webhook,
            public_routes(settings),
            get_history,
            get_chart,
            get_chart_bucket,
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
