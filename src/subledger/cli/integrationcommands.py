"""`subledger integrations …`: outbound webhook receivers (SPEC 10) and their deliveries.

Adding and removing are settings events; a test event and a re-send are facts the fold
turns into deliveries, which the sender (`serve`, or `subledger deliver`) then posts.
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


def register(commands: Any) -> None:
    group = commands.add_parser("integrations", help="outbound webhooks: receivers, deliveries")
    sub = group.add_subparsers(dest="integrations_command", required=True, metavar="ACTION")

    add = sub.add_parser("add", help="send an app's events to a URL from now on")
    add.add_argument("app_id")
    add.add_argument("--url", required=True, help="http(s) URL the events are POSTed to")
    add.add_argument(
        "--authorization",
        metavar="VALUE",
        help="sent verbatim as the Authorization header ('-' reads it from stdin)",
    )
    add.add_argument(
        "--event-type",
        action="append",
        default=[],
        metavar="TYPE",
        help=f"repeatable; default every type ({', '.join(FILTERABLE)})",
    )
    add.add_argument("--environment", default="both", choices=ENVIRONMENTS)
    add_json_flag(add)
    add.set_defaults(handler=_add)

    for name, handler, text in (
        ("list", _list, "list an app's integrations"),
        ("remove", _remove, "stop sending to an integration (its pending deliveries drop)"),
        ("test", _test, "send a TEST event to an integration"),
    ):
        parser = sub.add_parser(name, help=text)
        parser.add_argument("app_id")
        if name != "list":
            parser.add_argument("integration_id")
        add_json_flag(parser)
        parser.set_defaults(handler=handler)

    listing = sub.add_parser("deliveries", help="deliveries and their attempts, newest first")
    listing.add_argument("app_id")
    listing.add_argument("--integration", metavar="ID")
    listing.add_argument("--status", choices=STATUSES)
    listing.add_argument("--limit", type=int, default=50, metavar="N", help="0: all")
    add_json_flag(listing)
    listing.set_defaults(handler=_deliveries)

    resend = sub.add_parser("resend", help="send deliveries again (failed ones, usually)")
    resend.add_argument("app_id")
    resend.add_argument("integration_id")
    resend.add_argument("event_id", nargs="*", help="outbound event ids")
    resend.add_argument("--failed", action="store_true", help="every failed delivery")
    add_json_flag(resend)
    resend.set_defaults(handler=_resend)


def _add(args: argparse.Namespace, settings: Settings) -> int:
    authorization = args.authorization
    if authorization == "-":
        authorization = sys.stdin.readline().rstrip("\r\n")

    def action(ledger: Ledger) -> int:
        _, integration = ledger.add_integration(
            args.app_id,
            args.url,
            authorization=authorization,
            event_types=args.event_type,
            environment=args.environment,
        )
        shown = integration_settings(integration)
        return emit(args, shown, f"added {integration.id}\n{_human(shown)}")

    return run_on_ledger(args, settings, action)


def _list(args: argparse.Namespace, settings: Settings) -> int:
    def action(ledger: Ledger) -> int:
        found = [integration_settings(i) for i in ledger.get_app(args.app_id).integrations]
        return emit(args, found, "\n".join(_human(i) for i in found) or "no integrations")

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
        _known(ledger, args.app_id, args.integration_id)
        events = list(args.event_id)
        if args.failed:
            failed = _read(settings, args.app_id, args.integration_id, "failed", 0)
            events += [d.event for d in failed]
        facts = [
            RedeliveryRequested(
                originator_id=uuid.uuid4(),
                app_id=args.app_id,
                received_at_ms=ledger.clock(),
                integration_id=args.integration_id,
                outbound_event_id=event,
            )
            for event in dict.fromkeys(events)
        ]
        position = ledger.record(*facts) if facts else None
        data = {"requested": len(facts), "position": position}
        return emit(args, data, f"{len(facts)} re-send(s) requested")

    return run_on_ledger(args, settings, action)


def _deliveries(args: argparse.Namespace, settings: Settings) -> int:
    def action(ledger: Ledger) -> int:
        ledger.get_app(args.app_id)  # a mistyped app id is an error, not an empty list
        found = _read(settings, args.app_id, args.integration, args.status, args.limit)
        data = [msgspec.to_builtins(_shown(d)) for d in found]
        return emit(args, data, "\n".join(_line(d) for d in found) or "no deliveries")

    return run_on_ledger(args, settings, action)


def _read(
    settings: Settings, app_id: str, integration: str | None, status: str | None, limit: int
) -> list[Delivery]:
    reader = Reader(settings.database)
    try:
        return DeliveryReader(reader).deliveries(
            app_id, integration_id=integration, status=status, limit=max(0, limit)
        )
    finally:
        reader.close()


def _known(ledger: Ledger, app_id: str, integration_id: str) -> None:
    if integration_id not in {i.id for i in ledger.get_app(app_id).integrations}:
        raise AppConfigError(f"app {app_id} has no integration {integration_id}")


def _shown(d: Delivery) -> dict[str, Any]:
    """A delivery with every field (stored rows omit defaults)."""
    return {
        **msgspec.structs.asdict(d),
        "due": iso_ms(d.due_ms) if d.due_ms is not None else None,
        "attempts": [{**msgspec.structs.asdict(a), "at": iso_ms(a.at_ms)} for a in d.attempts],
    }


def _line(d: Delivery) -> str:
    last = d.attempts[-1] if d.attempts else None
    tried = f"{len(d.attempts)} attempt(s)"
    if last is not None:
        tried += f", last {last.status or 'no answer'} at {iso_ms(last.at_ms)}"
        if last.error:
            tried += f" ({last.error})"
    due = f", next at {iso_ms(d.due_ms)}" if d.due_ms is not None else ""
    return f"{d.position:>8}  {d.type:<22} {d.event}  {d.integration}  {d.status}: {tried}{due}"


def _human(shown: dict[str, Any]) -> str:
    types = shown["event_types"]
    return (
        f"{shown['id']}  {shown['url']}  types: {types if types == 'all' else ','.join(types)}"
        f"  environment: {shown['environment']}  authorization: {shown['authorization'] or '-'}"
    )
