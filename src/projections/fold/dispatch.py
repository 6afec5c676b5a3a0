"""Which step applies each fact: one `match`, in log order, then the batch's documents."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from projections.fold import (
    charts,
    claims,
    customers,
    deliveries,
    notifications,
    outbound,
    settings,
)
from projections.fold.context import Context, Rows
from projections.fold.state import Batch
from projections.model import UNPROJECTABLE, HistoryEntry, HistoryPart, Unprojectable
from projections.rules.subjects import event_subject
from subledger import apps
from subledger.facts import (
    AttributesPosted,
    DeliveryAttempted,
    NotificationReceived,
    NotificationRedelivered,
    RedeliveryRequested,
    StripeObjectRead,
    TestEventRequested,
    TokenPosted,
    UserIdentified,
)
from subledger.stripe import objects

Folded = tuple[int, Any, Any]  # (log position, fact, its decoded Stripe object or None)


def context(position: int, record: Any) -> Context:
    """Where `record` sits in the log, and the kind its history entry shows."""
    match record:
        case NotificationReceived():
            kind = f"stripe:{record.type}"
            return Context(
                record.app_id,
                position,
                record.received_at_ms,
                kind,
                record.created,
                record.event_id,
                record.originator_id,
            )
        case apps.AppEvent():
            app_id = apps.app_id_of(record.originator_id)
            at = record.received_at_ms
            fact = record.originator_id
            version = record.originator_version
            return Context(app_id, position, at, "settings", None, None, fact, version)
        case _:
            kind = getattr(record, "kind", "fact")
            fact = record.originator_id
            return Context(record.app_id, position, record.received_at_ms, kind, None, None, fact)


def apply(b: Batch, position: int, record: Any, obj: Any = None) -> None:
    """Fold one fact; `obj` is its Stripe object when the caller decoded it already."""
    ctx = context(position, record)
    b.start_fact(ctx.app_id)
    match record:
        case NotificationReceived():
            notifications.notification(b, ctx, record, obj)
        case NotificationRedelivered():
            notifications.redelivered(b, ctx, record)
        case TokenPosted():
            claims.token(b, ctx, record)
        case AttributesPosted():
            customers.attributes(b, ctx, record)
        case UserIdentified():
            claims.user_identified(b, ctx, record)
        case StripeObjectRead():
            notifications.stripe_read(b, ctx, record, obj)
        case apps.AppEvent():
            settings.settings(b, ctx, record)
        case DeliveryAttempted():
            deliveries.attempted(b, ctx, record)
        case TestEventRequested():
            outbound.send_test(b, ctx, record)
        case RedeliveryRequested():
            deliveries.redelivery(b, ctx, record)
        case _:
            pass
    outbound.purchase_events(b, ctx)
    b.end_fact(ctx)


def fold_facts(rows: Rows, facts: Iterable[Folded]) -> None:
    """Fold facts (in log order) into `rows`, then rebuild the touched documents."""
    b = Batch(rows)
    for position, record, obj in facts:
        apply(b, position, record, obj)
    charts.refresh(b)
    b.finish()


def fold_unprojectable(rows: Rows, position: int, record: Any, reason: str) -> None:
    """Record that the fact at `position` could not be applied, and why: the projection
    moves on, and a rebuild meets the same fact and records the same."""
    app_id = getattr(record, "app_id", "") if record is not None else ""
    kind = context(position, record).kind if app_id else "unreadable"
    rows.put(
        UNPROJECTABLE,
        app_id,
        f"{position:020d}",
        Unprojectable(position=position, kind=kind, reason=safe_text(reason)),
    )
    named = (
        event_subject(record.event_id) if hasattr(record, "event_id") else "",
        getattr(record, "app_user_id", ""),
        getattr(record, "fetch_token", ""),
        object_id(record),
    )
    subjects = [s for s in named if isinstance(s, str) and s and storable(s)]
    if app_id and subjects:
        part = HistoryPart(text=f"could not be applied ({safe_text(reason)}): skipped")
        entry = HistoryEntry(
            position=position,
            received_at_ms=getattr(record, "received_at_ms", 0),
            kind=kind,
            created=getattr(record, "created", None),
            event_id=getattr(record, "event_id", None),
            parts=(part,),
        )
        rows.add_history(app_id, entry, dict.fromkeys(subjects, (0,)))


def object_id(record: Any) -> str:
    """The id of the Stripe object a notification is about, read as leniently as possible
    (the fact could not be applied, so its body may be anything)."""
    body = getattr(record, "body", None)
    if not isinstance(body, bytes) or not hasattr(record, "event_id"):
        return ""
    return objects.lenient_object_id(body)


def storable(text: str) -> bool:
    """Can this text be a key in both stores (PostgreSQL refuses NUL; UTF-8, surrogates)?"""
    return "\x00" not in text and safe_text(text) == text


def safe_text(text: str) -> str:
    """`text` as valid UTF-8: lone surrogates (which no store can encode) escaped."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
