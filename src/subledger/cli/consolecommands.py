"""`subledger console-link APP_ID`: a short-lived, one-time sign-in link to the console."""

from __future__ import annotations

import argparse
from typing import Any

from projections.storage.db import ViewDb
from subledger.cli.appcommands import run_on_ledger
from subledger.cli.output import add_json_flag, emit, fail
from subledger.http.console.sessions import LINK_TTL_S, ConsoleStore
from subledger.ledger import Ledger
from subledger.settings import Settings


def register(commands: Any) -> None:
    link = commands.add_parser(
        "console-link", help="print a one-time sign-in link to the web console (/console/)"
    )
    link.add_argument("app_id")
    link.add_argument(
        "--ttl", type=int, default=LINK_TTL_S, help=f"seconds it stays valid (default {LINK_TTL_S})"
    )
    link.add_argument(
        "--base-url",
        help="where the console is served (default http://SUBLEDGER_HOST:SUBLEDGER_PORT)",
    )
    add_json_flag(link)
    link.set_defaults(handler=_link)


def _link(args: argparse.Namespace, settings: Settings) -> int:
    if not 1 <= args.ttl <= 86_400:
        return fail(args, "--ttl must be between 1 and 86400 seconds", code=2)
    base = (args.base_url or f"http://{settings.host}:{settings.port}").rstrip("/")

    def action(ledger: Ledger) -> int:
        app = ledger.get_app(args.app_id)  # an unknown app is refused (exit 1)
        db = ViewDb(settings.database)
        try:
            token = ConsoleStore(db).issue_link(app.app_id, args.ttl)
        finally:
            db.close()
        url = f"{base}/console/link/{token}"
        data = {"app_id": app.app_id, "url": url, "expires_in_s": args.ttl}
        return emit(args, data, f"{url}\n(one use, valid {args.ttl} s)")

    return run_on_ledger(args, settings, action)
