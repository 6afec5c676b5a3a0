"""The read-model tables: which projection owns each, its row type, and the DDL per store.

Every table but history is `(app_id, id, state)` with `state` canonical JSON, so rows are
readable in psql/sqlite3 and byte-comparable between a live projection and a rebuild.
"""

from __future__ import annotations

from typing import Any

from projections.model import AppState, Customer, Payments, Purchase, TokenOutcome
from projections.shapes import Subscriber

LIVE = "sl_"
REBUILD = "slr_"

PURCHASES, LINKS, PAYMENTS = "purchases", "purchase_links", "payments"
APPS, USERS, CUSTOMERS, TOKENS = "apps", "users", "customers", "tokens"
DOCUMENTS = "documents"

# table → (projection, row type)
STATE_TABLES: dict[str, tuple[str, Any]] = {
    PURCHASES: ("purchases", Purchase),
    LINKS: ("purchases", str),
    PAYMENTS: ("purchases", Payments),
    APPS: ("ownership", AppState),
    USERS: ("ownership", str),
    CUSTOMERS: ("ownership", Customer),
    TOKENS: ("ownership", TokenOutcome),
    DOCUMENTS: ("customers", Subscriber),
}
HISTORY = "history"
PROJECTIONS: tuple[str, ...] = ("purchases", "ownership", "customers", "history")


def tables_of(projection: str) -> list[str]:
    state = [t for t, (p, _) in STATE_TABLES.items() if p == projection]
    return [*state, HISTORY] if projection == "history" else state


def all_tables() -> list[str]:
    return [*STATE_TABLES, HISTORY]


def ddl(prefix: str, dialect: str) -> list[str]:
    big = "INTEGER" if dialect == "sqlite" else "BIGINT"
    # Keys in byte order on PostgreSQL too, so checksums stream in primary-key order
    # instead of sorting every row (SQLite's default collation is already binary).
    key = "TEXT" if dialect == "sqlite" else 'TEXT COLLATE "C"'
    statements = [
        f"CREATE TABLE IF NOT EXISTS {prefix}{table} ("
        f"app_id {key} NOT NULL, id {key} NOT NULL, state TEXT NOT NULL, "
        "PRIMARY KEY (app_id, id))"
        for table in STATE_TABLES
    ]
    statements.append(
        f"CREATE TABLE IF NOT EXISTS {prefix}{HISTORY} ("
        f"app_id {key} NOT NULL, subject {key} NOT NULL, position {big} NOT NULL, "
        "seq INTEGER NOT NULL, entry TEXT NOT NULL, "
        "PRIMARY KEY (app_id, subject, position, seq))"
    )
    statements.append(
        f"CREATE TABLE IF NOT EXISTS {prefix}meta (name TEXT PRIMARY KEY, value {big} NOT NULL)"
    )
    return statements
