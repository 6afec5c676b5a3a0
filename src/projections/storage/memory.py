"""The read models in memory: the same rows, as the same bytes, as the SQL tables hold.

For unit and property tests: the whole fold runs on `MemoryTables` without a database, and
what it writes can be compared byte for byte with what the SQL tables hold.
"""

from __future__ import annotations

from typing import Any

from projections.storage.changes import Changes, Encoded
from projections.storage.tables import TABLES


class MemoryTables:
    """Committed rows by table: `(app_id, id) → JSON` (history: its key columns → JSON)."""

    def __init__(self) -> None:
        self.tables: dict[str, dict[tuple[Any, ...], bytes]] = {name: {} for name in TABLES}

    def select(self, table: str, app_id: str, row_ids: list[str]) -> dict[str, Encoded]:
        rows = self.tables[table]
        return {i: rows[(app_id, i)] for i in row_ids if (app_id, i) in rows}

    def row_ids(self, table: str, app_id: str) -> set[str]:
        return {key[1] for key in self.tables[table] if key[0] == app_id}

    def apply(self, changes: Changes) -> None:
        for table, upserted in changes.upserts.items():
            for app_id, row_id, state in upserted:
                self.tables[table][(app_id, row_id)] = state
        for table, keys in changes.deletes.items():
            for key in keys:
                self.tables[table].pop(key, None)
        for table, inserted in changes.inserts.items():
            for row in inserted:
                self.tables[table][tuple(row[:-1])] = row[-1]

    def get(self, table: str, app_id: str, row_id: str) -> bytes | None:
        return self.tables[table].get((app_id, row_id))

    def rows(self) -> dict[str, dict[tuple[Any, ...], bytes]]:
        """Every table's rows in key order (as the stores order them)."""
        return {name: dict(sorted(rows.items())) for name, rows in self.tables.items()}
