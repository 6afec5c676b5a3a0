"""`subledger serve`: the HTTP service (and, by default, the projector in-process)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import msgspec
import uvicorn

from subledger import logs
from subledger.cli.output import add_json_flag, fail
from subledger.http.app import create_app
from subledger.settings import Settings


def register(commands: Any) -> None:
    serve = commands.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", help="interface to bind (default SUBLEDGER_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default SUBLEDGER_PORT or 8000)")
    add_json_flag(serve)
    serve.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    host = args.host or settings.host
    port = settings.port if args.port is None else args.port
    settings = msgspec.structs.replace(settings, host=host, port=port)
    logs.configure(settings.log_level)
    try:
        app = create_app(settings)
    except Exception as error:  # noqa: BLE001 - a store that cannot open is one clear line
        return fail(args, f"cannot open store {settings.database.redacted_url}: {error}")
    sys.stderr.write(
        f"subledger serving on http://{host}:{port} (store: {settings.database.redacted_url})\n"
    )
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False)
    return 0
