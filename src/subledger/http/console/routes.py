"""The console's routes (SPEC 13): server-rendered pages under /console/, read-only but for
the re-send of a delivery. Pages need a session (the `console_session` guard); forms carry
a CSRF token derived from the session, and the sign-in forms a double-submit token."""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import urlencode

from litestar import Controller, Request, get, post
from litestar.datastructures import Cookie
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template

from subledger.facts import RedeliveryRequested, new_id
from subledger.http.console import pages
from subledger.http.console.asof import as_of_view
from subledger.http.console.charts import chart_page, chart_query
from subledger.http.console.guard import (
    Console,
    ConsoleCaller,
    PageError,
    console_session,
    session_cookie,
)
from subledger.http.console.sessions import COOKIE, PRE_COOKIE, now_ms
from subledger.service import Service

STATUSES = ("pending", "failed", "delivered", "canceled")


def _page(
    template: str, caller: ConsoleCaller | None, status_code: int = 200, **context: Any
) -> Template:
    return Template(
        template_name=template,
        context={"caller": caller, **context},
        status_code=status_code,
    )


def _signed_out_page(template: str, status_code: int = 200, **context: Any) -> Template:
    """A page with a form for visitors without a session: its double-submit token is in
    the form and in a cookie of its own (login CSRF)."""
    token = secrets.token_urlsafe(16)
    page = _page(template, None, status_code, csrf=token, **context)
    page.cookies.append(
        Cookie(
            key=PRE_COOKIE,
            value=token,
            httponly=True,
            samesite="strict",
            path="/console",
            max_age=900,
        )
    )
    return page


async def _form(request: Request[Any, Any, Any]) -> dict[str, str]:
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


def _pre_ok(request: Request[Any, Any, Any], form: dict[str, str]) -> bool:
    expected = request.cookies.get(PRE_COOKIE, "")
    return bool(expected) and secrets.compare_digest(expected, form.get("csrf", ""))


class ConsoleController(Controller):
    path = "/console"
    include_in_schema = False

    @get("/sign-in", name="console-sign-in")
    async def sign_in_form(self, message: FromQuery[str] = "") -> Template:
        return _signed_out_page("sign_in.html", message=message)

    @post("/sign-in", status_code=303)
    async def sign_in(
        self,
        request: Request[Any, Any, Any],
        service: NamedDependency[Service],
        console: NamedDependency[Console],
    ) -> Redirect | Template:
        form = await _form(request)
        key = form.get("key", "").strip()
        found = await service.read(service.registry.authenticate, key) if key else None
        if not _pre_ok(request, form) or found is None or not found[1]:
            message = (
                "the sign-in form expired: try again"
                if not _pre_ok(request, form)
                else "a public key cannot sign in: use the app's secret key"
                if found is not None
                else "unknown key"
            )
            return _signed_out_page("sign_in.html", 401, message=message)
        app = found[0]
        return session_cookie(request, console, app.app_id, app.app.secret_key_hash)

    @get("/link/{token:str}")
    async def link_form(self, token: FromPath[str]) -> Template:
        """A confirmation, so a link preview fetching the URL does not spend the token."""
        return _signed_out_page("link.html", token=token)

    @post("/link", status_code=303)
    async def use_link(
        self,
        request: Request[Any, Any, Any],
        service: NamedDependency[Service],
        console: NamedDependency[Console],
    ) -> Redirect:
        form = await _form(request)
        app_id = (
            await service.read(console.store.use_link, form.get("token", ""))
            if _pre_ok(request, form)
            else None
        )
        app = await service.read(service.registry.get, app_id) if app_id else None
        if app is None:
            return Redirect("/console/sign-in?message=the+link+is+used+or+expired", status_code=303)
        return session_cookie(request, console, app.app_id, app.app.secret_key_hash)

    @post("/sign-out", status_code=303, guards=[console_session])
    async def sign_out(
        self, request: Request[Any, Any, Any], console: NamedDependency[Console]
    ) -> Redirect:
        await _checked_form(request, console)
        answer = Redirect("/console/sign-in", status_code=303)
        answer.cookies.append(Cookie(key=COOKIE, value="", path="/console", max_age=0))
        return answer

    @get("/", guards=[console_session])
    async def search(
        self,
        request: Request[Any, Any, Any],
        service: NamedDependency[Service],
        q: FromQuery[str] = "",
    ) -> Template:
        caller: ConsoleCaller = request.auth
        hits = await service.read(pages.search, service.reader, caller.app_id, q) if q else []
        return _page("search.html", caller, q=q, hits=hits)

    @get("/customers/{app_user_id:str}", guards=[console_session])
    async def customer(
        self,
        request: Request[Any, Any, Any],
        service: NamedDependency[Service],
        app_user_id: FromPath[str],
        page: FromQuery[int] = 1,
        at: FromQuery[int | None] = None,
    ) -> Template:
        caller: ConsoleCaller = request.auth
        shown = await service.read(
            pages.customer_page, service.reader, caller.app_id, app_user_id, page
        )
        if not shown:
            raise PageError(404, f"no customer {app_user_id!r} in this app")
        as_of = None
        if at is not None:
            positions = shown["positions"]
            if at not in positions:
                raise PageError(404, f"position {at} is not in this customer's timeline")
            index = positions.index(at)
            before = positions[index - 1] if index else 0
            as_of = await service.read(
                as_of_view, service.reader, caller.app_id, app_user_id, before, at
            )
        return _page(
            "customer.html",
            caller,
            app_user_id=app_user_id,
            at=at,
            as_of=as_of,
            **shown,
        )

    @get("/purchases/{key:str}", guards=[console_session])
    async def purchase(
        self, request: Request[Any, Any, Any], service: NamedDependency[Service], key: FromPath[str]
    ) -> Template:
        caller: ConsoleCaller = request.auth
        shown = await service.read(pages.purchase_page, service.reader, caller.app_id, key)
        if not shown:
            raise PageError(404, f"no purchase {key!r} in this app")
        return _page("purchase.html", caller, **shown)

    @get("/deliveries", guards=[console_session])
    async def deliveries(
        self,
        request: Request[Any, Any, Any],
        service: NamedDependency[Service],
        status: FromQuery[str] = "",
        message: FromQuery[str] = "",
    ) -> Template:
        caller: ConsoleCaller = request.auth
        wanted = status if status in STATUSES else None
        rows = await service.read(pages.delivery_rows, service.reader, caller.app_id, wanted)
        return _page(
            "deliveries.html",
            caller,
            rows=rows,
            status=wanted or "",
            statuses=STATUSES,
            message=message,
        )

    @post("/deliveries/resend", status_code=303, guards=[console_session])
    async def resend(
        self,
        request: Request[Any, Any, Any],
        service: NamedDependency[Service],
        console: NamedDependency[Console],
    ) -> Redirect:
        """The console's only write: a re-send, recorded as the CLI records it (a fact)."""
        caller: ConsoleCaller = request.auth
        form = await _checked_form(request, console)
        integration, event = form.get("integration", ""), form.get("event", "")
        known = await service.read(
            pages.delivery_exists, service.reader, caller.app_id, integration, event
        )
        if not known:
            raise PageError(404, "no such delivery in this app")
        position = await service.record_and_wait(
            RedeliveryRequested(
                originator_id=new_id(),
                app_id=caller.app_id,
                received_at_ms=now_ms(),
                integration_id=integration,
                outbound_event_id=event,
            )
        )
        message = f"re-send of {event} to {integration} recorded at position {position}"
        return Redirect(f"/console/deliveries?{urlencode({'message': message})}", status_code=303)

    @get("/charts", guards=[console_session])
    async def charts(
        self,
        *,
        request: Request[Any, Any, Any],
        service: NamedDependency[Service],
        name: FromQuery[str] = "",
        resolution: FromQuery[str] = "day",
        start: FromQuery[str] = "",
        end: FromQuery[str] = "",
        bucket: FromQuery[str] = "",
    ) -> Template:
        caller: ConsoleCaller = request.auth
        query = chart_query(name, resolution, start, end)
        shown = await chart_page(service, caller.app_id, query, bucket)
        return _page("charts.html", caller, **shown)


async def _checked_form(request: Request[Any, Any, Any], console: Console) -> dict[str, str]:
    """The form of a signed-in page, refused (403) without the session's CSRF token."""
    form = await _form(request)
    caller: ConsoleCaller = request.auth
    if not console.signer.csrf_ok(caller.session.sid, form.get("csrf")):
        raise PageError(403, "the form's CSRF token is missing or wrong: reload the page")
    return form
