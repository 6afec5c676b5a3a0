"""Who may call a route, checked by litestar before a handler runs (guards), and what the
handlers are given (dependencies): the service and the caller's app and key kind."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.handlers import BaseRouteHandler
from litestar.params import PathParameter

from subledger.codes import Code
from subledger.http.errors import ApiError
from subledger.identity import AppUserIdError, app_user_id_pattern, check_app_user_id
from subledger.registry import LoadedApp
from subledger.service import Service

# The path's App User ID, checked by the `path_app_user_id` guard (7220/7256); "." and ".."
# are left out of the documented pattern as clients resolve them as path segments.
AppUserIdPath = Annotated[
    str,
    PathParameter(
        description="an App User ID, URL-encoded (SPEC 1: 1-100 characters, no '/' or NUL)",
        schema_extra={"pattern": "^(?!\\.\\.?$)" + app_user_id_pattern()[1:]},
    ),
]


class Caller(msgspec.Struct, frozen=True):
    """The app a Bearer key speaks for, and whether it is the app's secret key."""

    app: LoadedApp
    is_secret: bool

    @property
    def app_id(self) -> str:
        return self.app.app_id


def service_of(state: State) -> Service:
    service: Service = state.service
    return service


def caller_of(request: Request[Any, Any, Any]) -> Caller:
    """Set by the `api_key` guard (litestar's `auth` slot of the connection)."""
    caller: Caller = request.auth
    return caller


async def api_key(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """401/7225 unless `Authorization: Bearer <key>` holds one of an app's two keys."""
    scheme, _space, key = connection.headers.get("authorization", "").partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise ApiError(Code.INVALID_API_KEY, "missing API key: send Authorization: Bearer <key>")
    service = service_of(connection.app.state)
    found = service.registry.cached_key(key) or await service.read(
        service.registry.authenticate, key
    )
    if found is None:
        raise ApiError(Code.INVALID_API_KEY, "invalid API key")
    connection.scope["auth"] = Caller(*found)


async def secret_key(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """403/7244 for the public key (after `api_key`)."""
    if not connection.auth.is_secret:
        raise ApiError(Code.SECRET_KEY_NEEDED, "this route needs the app's secret key")


def stripe_platform(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """400/7000 unless `X-Platform: stripe` (any case), before the body is read."""
    if connection.headers.get("x-platform", "").lower() != "stripe":
        raise ApiError(Code.PLATFORM_NOT_STRIPE, "X-Platform header must be 'stripe'")


def path_app_user_id(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """400/7220 or 7256 for an App User ID in the path that SPEC 1 does not allow."""
    valid_app_user_id(connection.path_params["app_user_id"])


def valid_app_user_id(app_user_id: str) -> str:
    try:
        return check_app_user_id(app_user_id)
    except AppUserIdError as error:
        raise ApiError(error.code, str(error)) from None
