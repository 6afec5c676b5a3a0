"""Every error leaves as `{"code": int, "message": str}`; status codes are mapped here only."""

from __future__ import annotations

import logging
from typing import Any

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, NotFoundException, ValidationException
from litestar.exceptions.http_exceptions import MethodNotAllowedException, RequestEntityTooLarge

from subledger.store import StoreUnavailableError

log = logging.getLogger("subledger.http")

# subledger's own codes (RevenueCat's 7xxx codes are used where SPEC section 11 names them).
UNKNOWN_APP = 8101
BODY_TOO_LARGE = 8102
NO_WEBHOOK_SECRET = 8103
BAD_SIGNATURE_HEADER = 8104
SIGNATURE_MISMATCH = 8105
SIGNATURE_TOO_OLD = 8106
NOT_A_STRIPE_EVENT = 8107
UNSUPPORTED_EVENT_TYPE = 8108
NOT_FOUND = 8404
METHOD_NOT_ALLOWED = 8405
INTERNAL = 8500
STORE_UNAVAILABLE = 8503
PROJECTION_LAGGING = 8504


class ApiError(Exception):
    """A refusal with its HTTP status, numeric code and human message."""

    def __init__(self, status: int, code: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra


def error_response(status: int, code: int, message: str, **extra: Any) -> Response[Any]:
    headers = {"Retry-After": "1"} if status == 503 else None
    return Response(
        {"code": code, "message": message, **extra},
        status_code=status,
        media_type=MediaType.JSON,
        headers=headers,
    )


def _api_error(_: Request[Any, Any, Any], exc: ApiError) -> Response[Any]:
    return error_response(exc.status, exc.code, exc.message, **exc.extra)


def _http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    if isinstance(exc, RequestEntityTooLarge):
        return error_response(413, BODY_TOO_LARGE, "request body is over the size limit")
    if isinstance(exc, NotFoundException):
        return error_response(404, NOT_FOUND, "no such route")
    if isinstance(exc, MethodNotAllowedException):
        return error_response(405, METHOD_NOT_ALLOWED, "method not allowed on this route")
    if isinstance(exc, ValidationException):
        return error_response(400, 7226, f"malformed request: {exc.detail}")
    if exc.status_code >= 500:
        return error_response(exc.status_code, INTERNAL, "internal error")
    return error_response(exc.status_code, exc.status_code, str(exc.detail))


def _store_error(_: Request[Any, Any, Any], exc: StoreUnavailableError) -> Response[Any]:
    log.warning("store unavailable: %s", exc)
    return error_response(503, STORE_UNAVAILABLE, "the store is unavailable; retry shortly")


def _internal_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, INTERNAL, "internal error")


EXCEPTION_HANDLERS: dict[Any, Any] = {
    ApiError: _api_error,
    HTTPException: _http_error,
    StoreUnavailableError: _store_error,
    Exception: _internal_error,
}
