"""Bearer keys: which app a request speaks for, and whether it holds the secret key."""

from __future__ import annotations

from typing import Any

import anyio
from litestar import Request

from subledger.http.errors import ApiError
from subledger.registry import LoadedApp
from subledger.service import Service

INVALID_KEY = 7225
SECRET_KEY_NEEDED = 7244


async def authenticate(request: Request[Any, Any, Any]) -> tuple[LoadedApp, bool]:
    """(app, is_secret_key) for the request's key; 401/7225 otherwise."""
    service: Service = request.app.state.service
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise ApiError(401, INVALID_KEY, "missing API key: send Authorization: Bearer <key>")
    found = service.registry.cached_key(key) or await anyio.to_thread.run_sync(
        service.registry.authenticate, key
    )
    if found is None:
        raise ApiError(401, INVALID_KEY, "invalid API key")
    return found


async def require_secret(request: Request[Any, Any, Any]) -> LoadedApp:
    loaded, is_secret = await authenticate(request)
    if not is_secret:
        raise ApiError(403, SECRET_KEY_NEEDED, "this route needs the app's secret key")
    return loaded
