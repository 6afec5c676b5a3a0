"""Every error leaves as `{"code": int, "message": str}`; what each failure answers is decided
here only (`refusal`), for the response and for the log line that reports it."""

from __future__ import annotations

import logging
from typing import Any

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, NotFoundException, ValidationException
from litestar.exceptions.http_exceptions import MethodNotAllowedException, RequestEntityTooLarge

from subledger.codes import Code, status_of
from subledger.service import ProjectionLaggingError
from subledger.store import STORE_FAULTS

log = logging.getLogger("subledger.http")


class ApiError(Exception):
    """A refusal: HTTP status, numeric code, human message, extra body fields, headers."""

    def __init__(self, code: Code, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status_of(code)
        self.code = int(code)
        self.message = message
        self.extra = extra
        self.headers: dict[str, str] = {"Retry-After": "1"} if self.status == 503 else {}

    @classmethod
    def framework(cls, status: int, message: str, headers: dict[str, str]) -> ApiError:
        """Another refusal of the HTTP framework: its code is the HTTP status."""
        error = cls(Code.INTERNAL, message)
        error.status = error.code = status
        error.headers = headers
        return error


def refusal(exc: Exception) -> ApiError:
    """What `exc` answers: status, code and message (an unexpected error is a 500)."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, ProjectionLaggingError):
        return ApiError(Code.PROJECTION_LAGGING, str(exc))
    if isinstance(exc, STORE_FAULTS):
        return ApiError(Code.STORE_UNAVAILABLE, "the store is unavailable; retry shortly")
    if isinstance(exc, HTTPException):
        return _framework_refusal(exc)
    return ApiError(Code.INTERNAL, "internal error")


def _framework_refusal(exc: HTTPException) -> ApiError:
    if isinstance(exc, RequestEntityTooLarge):
        return ApiError(Code.BODY_TOO_LARGE, "request body is over the size limit")
    if isinstance(exc, NotFoundException):
        return ApiError(Code.NO_SUCH_ROUTE, "no such route")
    if isinstance(exc, MethodNotAllowedException):
        error = ApiError(Code.METHOD_NOT_ALLOWED, "method not allowed on this route")
        error.headers = {"Allow": (exc.headers or {}).get("allow", "")}
        return error
    if isinstance(exc, ValidationException):
        return ApiError(Code.MALFORMED_BODY, f"malformed request: {_problems(exc)}")
    if exc.status_code >= 500:
        return ApiError(Code.INTERNAL, "internal error")
    return ApiError.framework(exc.status_code, str(exc.detail), dict(exc.headers or {}))


def _problems(exc: ValidationException) -> str:
    """Which fields litestar's decoding refused, and why."""
    found = exc.extra if isinstance(exc.extra, list) else []
    named = [f"{p.get('key', '?')}: {p.get('message', '')}" for p in found if isinstance(p, dict)]
    return "; ".join(named) or str(exc.detail)


def error_response(error: ApiError) -> Response[Any]:
    return Response(
        {"code": error.code, "message": error.message, **error.extra},
        status_code=error.status,
        media_type=MediaType.JSON,
        headers=error.headers or None,
    )


def _handle(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    error = refusal(exc)
    if error.status == 503 and not isinstance(exc, ApiError):
        log.warning("store unavailable on %s %s: %s", request.method, request.url.path, exc)
    elif error.code == Code.INTERNAL:
        log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(error)


EXCEPTION_HANDLERS: dict[Any, Any] = dict.fromkeys(
    (ApiError, HTTPException, ProjectionLaggingError, *STORE_FAULTS, Exception), _handle
)
