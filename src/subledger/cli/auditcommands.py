"""`subledger replay | explain | events`: the auditor's commands."""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import msgspec

from projections.history import history_document
from projections.reader import Reader
from projections.replay import Replay, ReplayConflictError, ReplayResult
from projections.rules.dates import iso_ms
from projections.runner import StaleProjectionError
from projections.storage.tables import PROJECTIONS
from subledger import asof
from subledger.apps import app_id_of
from subledger.cli.asofview import print_document
from subledger.cli.output import add_json_flag, emit, fail
from subledger.cli.progress import progress_reporter
from subledger.cli.timeline import print_timeline
from subledger.ledger import Ledger, UnknownAppError
from subledger.sealing import SealedSecret
from subledger.settings import Settings
from subledger.store import UnreadableRecord


def register(commands: Any) -> None:
    replay = commands.add_parser("replay", help="rebuild projections from the log")
    replay.add_argument(
        "--projection",
        action="append",
        choices=PROJECTIONS,
        metavar="NAME",
        help=f"one of {', '.join(PROJECTIONS)} (repeatable; default all)",
    )
    replay.add_argument(
        "--verify",
        action="store_true",
        help="compare with the live tables instead of swapping; exit 1 on difference",
    )
    replay.add_argument("--batch-size", type=int, default=2000, metavar="N")
    add_json_flag(replay)
    replay.set_defaults(handler=_replay)

    explain = commands.add_parser("explain", help="why a customer is in its state, fact by fact")
    explain.add_argument("--app", required=True, metavar="APP_ID")
    explain.add_argument("app_user_id")
    explain.add_argument("--page-size", type=int, default=40, metavar="N")
    explain.add_argument(
        "--as-of",
        type=_as_of,
        metavar="POSITION|TIME",
        help="the customer document as it was at this log position or ISO 8601 time "
        "(with offset), and the facts up to then",
    )
    add_json_flag(explain)
    explain.set_defaults(handler=_explain)

    events = commands.add_parser("events", help="list the raw facts (the ground truth)")
    events.add_argument("--app", metavar="APP_ID")
    events.add_argument("--since", type=int, default=1, metavar="POS")
    events.add_argument(
        "--limit", type=_count, default=100, metavar="N", help="at most N facts (0: all of them)"
    )
    events.add_argument("--raw", action="store_true", help="include raw Stripe bodies")
    add_json_flag(events)
    events.set_defaults(handler=_events)


def _as_of(text: str) -> str:
    try:
        asof.parse(text)
    except asof.AsOfError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def _open(args: argparse.Namespace, settings: Settings) -> Ledger | int:
    try:
        return Ledger(settings.database)
    except Exception as error:  # noqa: BLE001
        return fail(args, f"cannot open store {settings.database.redacted_url}: {error}")


def _replay(args: argparse.Namespace, settings: Settings) -> int:
    ledger = _open(args, settings)
    if isinstance(ledger, int):
        return ledger
    projections = list(dict.fromkeys(args.projection or PROJECTIONS))  # each once, in order
    started = time.monotonic()
    try:
        with progress_reporter(enabled=not args.json) as progress:
            result = Replay(ledger, batch_size=max(1, args.batch_size), progress=progress).run(
                projections, verify=args.verify
            )
    except (ReplayConflictError, StaleProjectionError) as error:
        return fail(args, f"replay stopped: {error}")
    finally:
        ledger.close()
    elapsed = time.monotonic() - started
    data = msgspec.to_builtins(result) | {"seconds": round(elapsed, 3)}
    code = emit(args, data, _replay_text(result, elapsed))
    return 1 if result.verified is False else code


def _replay_text(result: ReplayResult, elapsed: float) -> str:
    rate = result.facts / elapsed if elapsed > 0 else 0.0
    head = f"rebuilt {result.facts} facts to position {result.position} in {elapsed:.1f} s"
    lines = [f"{head} ({rate:,.0f} facts/s)"]
    lines += [f"  {c.projection:<10} {c.checksum}  ({c.rows} rows)" for c in result.checksums]
    if result.verified is True:
        lines.append("verify: rebuilt tables equal the live tables")
    elif result.verified is False:
        lines.append("verify: DIFFERENT — first differing rows:")
        for d in result.differences:
            lines.append(f"  {d.table} {d.key}\n    live:    {d.live}\n    rebuilt: {d.rebuilt}")
    elif result.swapped:
        lines.append("swapped the rebuilt tables in")
    return "\n".join(lines)


def _explain(args: argparse.Namespace, settings: Settings) -> int:
    ledger = _open(args, settings)
    if isinstance(ledger, int):
        return ledger
    try:
        ledger.get_app(args.app)  # a mistyped app id is an error, not an empty history
        reader = Reader(settings.database)
    except UnknownAppError as error:
        ledger.close()
        return fail(args, str(error))
    except Exception as error:  # noqa: BLE001
        ledger.close()
        return fail(args, f"cannot open store {settings.database.redacted_url}: {error}")
    try:
        if args.as_of is not None:
            return _explain_as_of(args, ledger, reader)
        history = reader.customer_history(args.app, args.app_user_id)
    finally:
        reader.close()
        ledger.close()
    if args.json:
        return emit(args, history_document(history), "")
    print_timeline(history, page_size=max(5, args.page_size))
    return 0


def _explain_as_of(args: argparse.Namespace, ledger: Ledger, reader: Reader) -> int:
    """The document as `GET /v1/subscribers/{id}?as_of=` answers it (SPEC 12); on a
    terminal its entitlements judged then, and the facts up to that moment."""
    try:
        at = asof.resolve(args.as_of, ledger, reader)
    except asof.AsOfError as error:
        return fail(args, str(error))
    request_date, request_ms, raw = asof.document(reader, args.app, args.app_user_id, at)
    answer = {
        "request_date": request_date,
        "request_date_ms": request_ms,
        "subscriber": msgspec.json.decode(raw),
    }
    if args.json:
        return emit(args, answer, "")
    history = reader.customer_history(args.app, args.app_user_id)
    until = [
        e
        for e in history.entries
        if (e.position <= at.position if at.position is not None else e.received_at_ms <= at.at_ms)
    ]
    heading = f"position {at.position}" if at.position is not None else f"time {args.as_of}"
    print_document(answer, f"{args.app_user_id} at {heading}")
    print_timeline(msgspec.structs.replace(history, entries=until), page_size=args.page_size)
    return 0


def _events(args: argparse.Namespace, settings: Settings) -> int:
    """Streamed, row by row: `--limit 0 --raw` over a large log keeps memory flat. The JSON
    form is still one array, byte for byte what encoding the whole list would give."""
    ledger = _open(args, settings)
    if isinstance(ledger, int):
        return ledger
    out = sys.stdout
    shown = 0
    more_from: int | None = None  # the first matching fact past --limit
    try:
        out.write("[" if args.json else "")
        stop = ledger.last_position()
        skipped = _unprojectable(settings)
        for position, record in ledger.records(max(1, args.since), stop=stop, unreadable=True):
            if args.app and _app_of(record) not in (args.app, ""):
                continue
            if args.limit and shown >= args.limit:
                more_from = position
                break
            row = _event_row(position, record, raw=args.raw)
            if position in skipped:
                row["unprojectable"] = skipped[position]
                row["summary"] += f" — UNPROJECTABLE: {skipped[position]}"
            if args.json:
                out.write(("," if shown else "") + msgspec.json.encode(row).decode())
            else:
                out.write(
                    f"{row['position']:>8}  {row['received_at']}  {row['kind']:<34} "
                    f"{row['app_id']}  {row['summary']}\n"
                )
            shown += 1
        out.write("]\n" if args.json else "" if shown else "no facts\n")
        out.flush()  # the rows before the note, also when both go to one file
    except BrokenPipeError:  # `subledger events | head`: the reader took what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as error:  # noqa: BLE001 - one clear line, e.g. the store went away
        # A JSON array is left open on purpose: no reader can take it for the whole list.
        out.write("\n")
        out.flush()
        sys.stderr.write(f"subledger: listing stopped after {shown} facts: {error}\n")
        return 1
    finally:
        ledger.close()
    if more_from is not None:  # never a silent cut: an auditor must know the list goes on
        sys.stderr.write(
            f"subledger: the first {shown} facts shown; more follow from position "
            f"{more_from} (--since {more_from}, or --limit 0 for all)\n"
        )
    return 0


def _app_of(record: Any) -> str:
    """The app a record belongs to ("" for one that cannot be read)."""
    if isinstance(record, UnreadableRecord):
        return ""
    return getattr(record, "app_id", None) or app_id_of(record.originator_id)


def _unprojectable(settings: Settings) -> dict[int, str]:
    """Position → why the fold could not apply the fact there."""
    reader = Reader(settings.database)
    try:
        _, found = reader.unprojectable(limit=100_000)
    finally:
        reader.close()
    return {u.position: u.reason for u in found}


def _event_row(position: int, record: Any, *, raw: bool) -> dict[str, Any]:
    kind = getattr(record, "kind", "fact")
    fields = msgspec.structs.asdict(record)
    body = fields.pop("body", None)
    fields.pop("originator_version", None)
    app_id = fields.pop("app_id", None) or _app_of(record)
    received = fields.pop("received_at_ms", None)
    row: dict[str, Any] = {
        "position": position,
        "received_at": iso_ms(received) if received is not None else None,
        "kind": f"stripe:{record.type}" if kind == "stripe" else kind,
        "app_id": app_id,
        "fact": type(record).__name__,
        "id": str(fields.pop("originator_id", "")),
        "summary": _summary(record),
        "fields": _without_secrets(msgspec.to_builtins(fields)),
    }
    if raw and body is not None:
        row["raw_body"] = body.decode("utf-8", errors="replace")
    return row


_SEALED = frozenset(SealedSecret.__struct_fields__)


def _without_secrets(value: Any) -> Any:
    """Sealed secrets (webhook secrets, Stripe keys) as fingerprint and scheme only: under
    the `plain` scheme the stored bytes are the secret itself, and a listing is no place
    for it, sealed or not (`subledger apps show` shows fingerprints the same way). Works
    on builtins, so every other field keeps the shape `to_builtins` gives it."""
    if isinstance(value, dict):
        if value.keys() == _SEALED:
            return {"fingerprint": value["fingerprint"], "scheme": value["scheme"]}
        return {key: _without_secrets(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_without_secrets(item) for item in value]
    return value


def _summary(record: Any) -> str:
    for names in (
        ("event_id", "type"),
        ("app_user_id", "fetch_token"),
        ("app_user_id", "new_app_user_id"),
        ("request", "status"),
        ("integration_id", "outbound_event_id", "status"),
        ("integration_id", "outbound_event_id"),
        ("integration_id",),
        ("topic", "reason"),
        ("name",),
    ):
        if all(hasattr(record, n) for n in names):
            return " ".join(str(getattr(record, n)) for n in names)
    if hasattr(record, "app_user_id"):
        return str(record.app_user_id)
    return type(record).__name__
