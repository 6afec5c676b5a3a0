"""Outbound webhooks (SPEC 10): `subledger apps add-integration | set-integration |
remove-integration | test-integration`, and `subledger deliveries [resend]`.

Adding, changing and removing are settings events; a test event and a re-send are facts
the fold turns into deliveries, which the sender (`serve`, or `subledger deliver`) posts.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from typing import Any

import msgspec

from projections.deliveries import STATUSES, DeliveryReader
from projections.model import Delivery
from projections.reader import Reader
from projections.rules.dates import iso_ms
from subledger.apps import AppConfigError
from subledger.cli.appcommands import run_on_ledger
from subledger.cli.output import add_json_flag, emit, fail
from subledger.facts import RedeliveryRequested, TestEventRequested
from subledger.integrations import ENVIRONMENTS, FILTERABLE
from subledger.ledger import Ledger, integration_settings
from subledger.settings import Settings


def register(commands: Any, apps: Any) -> None:
    """The integration actions join `apps` (`apps`: its subparsers); `deliveries` is a
    command of its own."""
    add = apps.add_parser("add-integration", help="POST the app's events to a URL from now on")
    add.add_argument("app_id")
    _integration_options(add, url_required=True)
    add.set_defaults(handler=_add)

    change = apps.add_parser(
        "set-integration", help="change an integration's URL, Authorization, events, environment"
    )
    change.add_argument("app_id")
    change.add_argument("integration_id")
    _integration_options(change, url_required=False)
    change.set_defaults(handler=_set)

    for name, handler, text in (
        ("remove-integration", _remove, "stop sending to an integration (pending: canceled)"),
        ("test-integration", _test, "send a TEST event to an integration"),
    ):
        parser = apps.add_parser(name, help=text)
        parser.add_argument("app_id")
        parser.add_argument("integration_id")
        add_json_flag(parser)
        parser.set_defaults(handler=handler)

    listing = commands.add_parser(
        "deliveries", help="outbound events and their attempts, newest first; `resend`"
    )
    listing.add_argument("--app", metavar="APP_ID", help="one app (default: every app)")
    listing.add_argument("--integration", metavar="ID")
    listing.add_argument("--status", choices=STATUSES)
    listing.add_argument("--limit", type=int, default=50, metavar="N", help="0: all")
    add_json_flag(listing)
    listing.set_defaults(handler=_deliveries)
    actions = listing.add_subparsers(dest="deliveries_command", metavar="ACTION")
    resend = actions.add_parser(
        "resend", help="send events again with the same id (given up or delivered ones)"
    )
    resend.add_argument("event_id", nargs="*", help="outbound event ids")
    resend.add_argument("--integration", metavar="ID", help="only to this integration")
    resend.add_argument("--failed", action="store_true", help="every failed delivery")
    resend.add_argument("--app", metavar="APP_ID", help="with --failed: one app")
    add_json_flag(resend)
    resend.set_defaults(handler=_resend)


def _integration_options(parser: argparse.ArgumentParser, *, url_required: bool) -> None:
    parser.add_argument("--url", required=url_required, help="http(s) URL the events are POSTed to")
    parser.add_argument(
        "--authorization",
        metavar="VALUE",
        help="sent verbatim as the Authorization header ('-' reads it from stdin"
        + ("" if url_required else ", '' removes it")
        + ")",
    )
    parser.add_argument(
        "--events",
        metavar="TYPE,…",
        help=f"event types, comma-separated ({', '.join(FILTERABLE)}); "
        "default or 'all': every type",
    )
    parser.add_argument(
        "--environment", default="both" if url_required else None, choices=ENVIRONMENTS
    )
    add_json_flag(parser)


def _authorization(value: str | None) -> str | None:
    return sys.stdin.readline().rstrip("\r\n") if value == "-" else value


def _events(value: str | None) -> list[str] | None:
    if value is None:
        return None
    types = [t for t in value.split(",") if t.strip()]
    return [] if [t.strip().lower() for t in types] == ["all"] else types


def _add(args: argparse.Namespace, settings: Settings) -> int:
    authorization = _authorization(args.authorization)

    def action(ledger: Ledger) -> int:
        _, integration = ledger.add_integration(
            args.app_id,
            args.url,
            authorization=authorization,
            event_types=_events(args.events) or [],
            environment=args.environment,
        )
        shown = integration_settings(integration)
        return emit(args, shown, f"{integration.id}\n{_human(shown)}")

    return run_on_ledger(args, settings, action)


def _set(args: argparse.Namespace, settings: Settings) -> int:
    authorization = _authorization(args.authorization)

    def action(ledger: Ledger) -> int:
        _, integration = ledger.set_integration(
            args.app_id,
            args.integration_id,
            url=args.url,
            authorization=authorization,
            event_types=_events(args.events),
            environment=args.environment,
        )
        shown = integration_settings(integration)
        return emit(args, shown, _human(shown))

    return run_on_ledger(args, settings, action)


def _remove(args: argparse.Namespace, settings: Settings) -> int:
    def action(ledger: Ledger) -> int:
        ledger.remove_integration(args.app_id, args.integration_id)
        data = {"removed": args.integration_id}
        return emit(args, data, f"removed {args.integration_id}")

    return run_on_ledger(args, settings, action)


def _test(args: argparse.Namespace, settings: Settings) -> int:
    def action(ledger: Ledger) -> int:
        _known(ledger, args.app_id, args.integration_id)
        position = ledger.record(
            TestEventRequested(
                originator_id=uuid.uuid4(),
                app_id=args.app_id,
                received_at_ms=ledger.clock(),
                integration_id=args.integration_id,
            )
        )
        human = f"TEST event requested at position {position}: `deliveries` shows its outcome"
        return emit(args, {"position": position}, human)

    return run_on_ledger(args, settings, action)


def _resend(args: argparse.Namespace, settings: Settings) -> int:
    if not args.event_id and not args.failed:
        return fail(args, "name outbound event ids, or --failed", code=2)

    def action(ledger: Ledger) -> int:
        if args.app is not None:
            ledger.get_app(args.app)
        wanted: dict[tuple[str, str, str], None] = {}
        reader = Reader(settings.database)
        try:
            deliveries = DeliveryReader(reader)
            for event in args.event_id:
                found = deliveries.of_event(event, args.integration)
                if not found:
                    to = f" to integration {args.integration}" if args.integration else ""
                    raise AppConfigError(f"no delivery of event {event}{to}")
                wanted |= dict.fromkeys((app, d.integration, d.event) for app, d in found)
            if args.failed:
                failed = deliveries.deliveries(
                    args.app, integration_id=args.integration, status="failed", limit=0
                )
                wanted |= dict.fromkeys((app, d.integration, d.event) for app, d in failed)
        finally:
            reader.close()
        facts = [
            RedeliveryRequested(
                originator_id=uuid.uuid4(),
                app_id=app,
                received_at_ms=ledger.clock(),
                integration_id=integration,
                outbound_event_id=event,
            )
            for app, integration, event in wanted
        ]
        position = ledger.record(*facts) if facts else None
        data = {"requested": len(facts), "position": position}
        return emit(args, data, f"{len(facts)} re-send(s) requested")

    return run_on_ledger(args, settings, action)


def _deliveries(args: argparse.Namespace, settings: Settings) -> int:
    def action(ledger: Ledger) -> int:
        if args.app is not None:
            ledger.get_app(args.app)  # a mistyped app id is an error, not an empty list
        reader = Reader(settings.database)
        try:
            found = DeliveryReader(reader).deliveries(
                args.app,
                integration_id=args.integration,
                status=args.status,
                limit=max(0, args.limit),
            )
        finally:
            reader.close()
        data = [msgspec.to_builtins(_shown(app, d)) for app, d in found]
        return emit(args, data, "\n".join(_lines(app, d) for app, d in found) or "no deliveries")

    return run_on_ledger(args, settings, action)


def _known(ledger: Ledger, app_id: str, integration_id: str) -> None:
    if integration_id not in {i.id for i in ledger.get_app(app_id).integrations}:
        raise AppConfigError(f"app {app_id} has no integration {integration_id}")


def _shown(app: str, d: Delivery) -> dict[str, Any]:
    """A delivery with every field (stored rows omit defaults)."""
    return {
        "app_id": app,
        **msgspec.structs.asdict(d),
        "due": iso_ms(d.due_ms) if d.due_ms is not None else None,
        "attempts": [{**msgspec.structs.asdict(a), "at": iso_ms(a.at_ms)} for a in d.attempts],
    }


def _lines(app: str, d: Delivery) -> str:
    """The event and where it stands, then one line per attempt."""
    due = f", next at {iso_ms(d.due_ms)}" if d.due_ms is not None else ""
    lines = [
        f"{d.event}  {d.type:<22} {app}  {d.integration}  {d.status}{due}"
        f"  (position {d.position}, {len(d.attempts)} attempt(s))"
    ]
    for a in d.attempts:
        answer = str(a.status) if a.status else "no answer"
        error = f"  {a.error}" if a.error else ""
        lines.append(
            f"    #{a.attempt:<3} {iso_ms(a.at_ms)}  {answer:<9} {a.duration_ms:>6} ms{error}"
        )
    return "\n".join(lines)


def _human(shown: dict[str, Any]) -> str:
    types = shown["event_types"]
    return (
        f"{shown['id']}  {shown['url']}  types: {types if types == 'all' else ','.join(types)}"
        f"  environment: {shown['environment']}  authorization: {shown['authorization'] or '-'}"
    )
