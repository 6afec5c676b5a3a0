"""Who may see a console page (the `console_session` guard), the answers of the console's
errors (HTML, or a redirect to the sign-in), and the security headers of every answer."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie, State
from litestar.handlers import BaseRouteHandler
from litestar.response import Redirect, Template

from subledger.http.console.sessions import COOKIE, ConsoleStore, Session, Signer, key_fingerprint
from subledger.http.errors import EXCEPTION_HANDLERS, refusal
from subledger.service import Service

log = logging.getLogger("subledger.console")

# No inline script or style, no framing, forms only to ourselves, no referrer (a one-time
# link's token is in its URL).
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class SignInNeededError(Exception):
    """No session, an expired or forged one, or one whose app's secret key changed."""


class PageError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


EXCEPTION_TYPES = (SignInNeededError, PageError, *EXCEPTION_HANDLERS)


class ConsoleCaller(msgspec.Struct, frozen=True):
    app_id: str
    app_name: str
    session: Session
    csrf: str


class Console:
    """The console's server key and link store, made on first use (the store may be down
    when the server starts)."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self._store: ConsoleStore | None = None
        self._signer: Signer | None = None
        self._lock = asyncio.Lock()

    @property
    def store(self) -> ConsoleStore:
        assert self._store is not None, "Console.ready() first"
        return self._store

    @property
    def signer(self) -> Signer:
        assert self._signer is not None, "Console.ready() first"
        return self._signer

    def _make(self) -> None:
        store = ConsoleStore(self.service.reader.db)
        self._signer = Signer(store.server_key(self.service.settings.secrets_key))
        self._store = store

    async def ready(self) -> Console:
        if self._signer is None:
            async with self._lock:
                if self._signer is None:
                    await self.service.read(self._make)
        return self


def console_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Console:
    console: Console = connection.app.state.console
    return console


async def console_dependency(state: State) -> Console:
    """The handlers' `console`, ready (its server key read or made)."""
    console: Console = state.console
    return await console.ready()


async def console_session(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    """A page for a signed-in operator: the cookie's app, while its secret key is the one
    the session began with."""
    console = await console_of(connection).ready()
    session = console.signer.session(connection.cookies.get(COOKIE))
    if session is None:
        raise SignInNeededError
    service = console.service
    app = service.registry.cached(session.app_id) or await service.read(
        service.registry.get, session.app_id
    )
    if app is None or key_fingerprint(app.app.secret_key_hash) != session.key_fp:
        raise SignInNeededError
    connection.scope["auth"] = ConsoleCaller(
        app_id=app.app_id,
        app_name=app.app.name,
        session=session,
        csrf=console.signer.csrf(session.sid),
    )


def _secure(request: Request[Any, Any, Any]) -> bool:
    forwarded = request.headers.get("x-forwarded-proto", "")
    return request.url.scheme == "https" or forwarded.lower() == "https"


def session_cookie(
    request: Request[Any, Any, Any], console: Console, app_id: str, secret_key_hash: str
) -> Redirect:
    """Signed in: the session cookie, and on to the search page."""
    answer = Redirect("/console/", status_code=303)
    answer.cookies.append(
        Cookie(
            key=COOKIE,
            value=console.signer.cookie(app_id, secret_key_hash),
            httponly=True,
            samesite="strict",
            secure=_secure(request),
            path="/console",
        )
    )
    return answer


def add_security_headers(response: Response[Any]) -> Response[Any]:
    response.headers.update(SECURITY_HEADERS)
    return response


def console_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Errors as pages: the sign-in for a missing session, else a page with the status."""
    if isinstance(exc, SignInNeededError):
        return add_security_headers(Redirect("/console/sign-in", status_code=303))
    if isinstance(exc, PageError):
        status, message = exc.status, exc.message
    else:
        error = refusal(exc)
        status, message = error.status, error.message
        if status >= 500:
            log.warning("console error on %s: %r", request.url.path, exc)
    caller = request.scope.get("auth")
    page = Template(
        template_name="error.html",
        context={
            "caller": caller if isinstance(caller, ConsoleCaller) else None,
            "status": status,
            "message": message,
        },
        status_code=status,
    )
    return add_security_headers(page)
