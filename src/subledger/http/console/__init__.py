"""The console (SPEC 13): a read-only web console for an app's operators at /console/."""

from __future__ import annotations

from pathlib import Path

from litestar import Router
from litestar.di import Provide
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from subledger.http.console.guard import (
    EXCEPTION_TYPES,
    Console,
    add_security_headers,
    console_dependency,
    console_error,
)
from subledger.http.console.routes import ConsoleController

HERE = Path(__file__).parent


def console_router() -> Router:
    return Router(
        path="/",
        route_handlers=[
            ConsoleController,
            create_static_files_router(
                path="/console/static",
                directories=[HERE / "static"],
                after_request=add_security_headers,
                include_in_schema=False,
            ),
        ],
        after_request=add_security_headers,
        dependencies={"console": Provide(console_dependency)},
        exception_handlers=dict.fromkeys(EXCEPTION_TYPES, console_error),
        include_in_schema=False,
    )


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    return TemplateConfig(directory=HERE / "templates", engine=JinjaTemplateEngine)


__all__ = ["Console", "console_router", "template_config"]
