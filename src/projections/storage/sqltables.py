"""The read-model tables of one store, under one prefix (live `sl_`, rebuild `slr_`): the
committed rows a working set reads, and one statement per table to write a batch.

Per-row client work (psycopg's executemany, or sqlite3's, which holds the GIL between rows)
dominated projection time: rows travel as arrays (PostgreSQL: unnest; SQLite: one JSON
text exploded by json_each).
"""

from __future__ import annotations

from projections.storage.changes import Changes, Encoded
from projections.storage.db import Cursor, ViewDb
from projections.storage.tables import TABLES


class SqlTables:
    """A `Source` for working sets, reading through `cur` (a transaction's cursor)."""

    def __init__(self, db: ViewDb, cur: Cursor, prefix: str) -> None:
        self.db = db
        self.cur = cur
        self.prefix = prefix

    def select(self, table: str, app_id: str, row_ids: list[str]) -> dict[str, Encoded]:
        found: dict[str, Encoded] = self.db.dialect.select_rows(
            self.cur, self.prefix + table, app_id, row_ids
        )
        return found

    def row_ids(self, table: str, app_id: str) -> set[str]:
        self.cur.execute(
            self.db.q(f"SELECT id FROM {self.prefix}{table} WHERE app_id = ?"), (app_id,)
        )
        return {row[0] for row in self.cur.fetchall()}


def write(db: ViewDb, cur: Cursor, prefix: str, changes: Changes) -> int:
    """Apply a batch's prepared changes in the caller's transaction; returns the row count."""
    dialect = db.dialect
    for table, rows in changes.upserts.items():
        dialect.upsert(cur, prefix + table, rows)
    for table, keys in changes.deletes.items():
        dialect.delete(cur, prefix + table, keys)
    for table, inserted in changes.inserts.items():
        if inserted:
            dialect.insert(cur, TABLES[table], prefix + table, inserted)
    return changes.size


def create(db: ViewDb, prefix: str) -> None:
    """Create the read-model tables under `prefix` where missing."""
    db.execute_script(db.dialect.ddl(prefix, list(TABLES.values())))
