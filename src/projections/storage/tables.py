"""The read-model tables: which projection owns each, its key columns and row type.

State tables are `(app_id, id) → state` with `state` canonical JSON, so rows are readable in
psql/sqlite3 and byte-comparable between a live projection and a rebuild. History holds one
entry per fact, and beside it which parts of the entry each subject's history shows.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from projections.model import (
    APPS,
    CHART_CUSTOMERS,
    CHART_DAYS,
    CHART_PURCHASES,
    CUSTOMERS,
    DELIVERIES,
    DOCUMENT_VERSIONS,
    DOCUMENTS,
    HISTORY,
    HISTORY_SUBJECTS,
    LINKS,
    OUTBOUND_EVENTS,
    OUTBOX,
    PAYMENTS,
    PURCHASES,
    TOKENS,
    UNPROJECTABLE,
    USER_VERSIONS,
    USERS,
    AppState,
    ChartCustomer,
    ChartDay,
    ChartPurchase,
    Customer,
    Delivery,
    OutboundEvent,
    OutboxEntry,
    Payments,
    Purchase,
    TokenOutcome,
    Unprojectable,
)
from projections.views import Subscriber

LIVE = "sl_"
REBUILD = "slr_"


class Table(NamedTuple):
    name: str
    projection: str
    keys: tuple[str, ...]  # key columns, in primary-key order
    numbers: tuple[str, ...] = ()  # key columns holding integers (positions)
    value: str = "state"  # the column holding the row's JSON


def _state(name: str, projection: str) -> Table:
    return Table(name, projection, ("app_id", "id"))


def _versions(name: str, projection: str, subject: str, value: str) -> Table:
    """As of any moment (SPEC 12): `subject`'s value after each fact that changed it; the
    fact's receive time is a key column too, so a time finds its versions by index."""
    numbers = ("position", "received_at_ms")
    return Table(name, projection, ("app_id", subject, *numbers), numbers, value)


TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        _state(PURCHASES, "purchases"),
        _state(LINKS, "purchases"),
        _state(PAYMENTS, "purchases"),
        _state(APPS, "ownership"),
        _state(USERS, "ownership"),
        _state(CUSTOMERS, "ownership"),
        _state(TOKENS, "ownership"),
        _state(DOCUMENTS, "customers"),
        _state(UNPROJECTABLE, "history"),
        Table(HISTORY, "history", ("app_id", "position"), ("position",), "entry"),
        _state(OUTBOUND_EVENTS, "outbound"),
        _state(DELIVERIES, "outbound"),
        _state(OUTBOX, "outbound"),
        _state(CHART_PURCHASES, "charts"),
        _state(CHART_CUSTOMERS, "charts"),
        _state(CHART_DAYS, "charts"),
        Table(
            HISTORY_SUBJECTS,
            "history",
            ("app_id", "subject", "position"),
            ("position",),
            "parts",
        ),
        _versions(USER_VERSIONS, "ownership", "app_user_id", "customer"),
        _versions(DOCUMENT_VERSIONS, "customers", "customer", "document"),
    )
}
# State tables and the type of their rows (history is written, never read back, by the fold).
ROW_TYPES: dict[str, Any] = {
    PURCHASES: Purchase,
    LINKS: str,
    PAYMENTS: Payments,
    APPS: AppState,
    USERS: str,
    CUSTOMERS: Customer,
    TOKENS: TokenOutcome,
    DOCUMENTS: Subscriber,
    UNPROJECTABLE: Unprojectable,
    OUTBOUND_EVENTS: OutboundEvent,
    DELIVERIES: Delivery,
    OUTBOX: OutboxEntry,
    CHART_PURCHASES: ChartPurchase,
    CHART_CUSTOMERS: ChartCustomer,
    CHART_DAYS: ChartDay,
}
PROJECTIONS: tuple[str, ...] = (
    "purchases",
    "ownership",
    "customers",
    "history",
    "outbound",
    "charts",
)


def tables_of(projection: str) -> list[Table]:
    return [t for t in TABLES.values() if t.projection == projection]
