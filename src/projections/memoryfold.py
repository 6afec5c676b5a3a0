"""The fold in memory over a stretch of the stored log, as the projector folds it (batches;
a batch holding a fact the fold cannot apply is applied fact by fact, and a fact that fails
alone is recorded as unprojectable). Tests compare its rows with the SQL tables; the console
reads a customer's document as of a log position from it (SPEC 12)."""

from __future__ import annotations

from collections.abc import Sequence

from projections.runner import fold_log, record_unprojectable
from projections.storage.memory import MemoryTables
from projections.storage.workingset import WorkingSet
from subledger.store import LogEntry


def fold_committed(tables: MemoryTables, entries: Sequence[LogEntry]) -> None:
    ws = WorkingSet(tables)
    fold_log(ws, entries)
    tables.apply(ws.prepare())


def fold_entries(
    entries: Sequence[LogEntry], batch_size: int = 500, tables: MemoryTables | None = None
) -> MemoryTables:
    """`entries` folded into `tables` (new ones by default), batch by batch."""
    tables = MemoryTables() if tables is None else tables
    for start in range(0, len(entries), batch_size):
        batch = entries[start : start + batch_size]
        try:
            fold_committed(tables, batch)
        except Exception:  # noqa: BLE001 - as the projector, fact by fact
            for entry in batch:
                try:
                    fold_committed(tables, [entry])
                except Exception as error:  # noqa: BLE001
                    ws = WorkingSet(tables)
                    record_unprojectable(ws, entry, error)
                    tables.apply(ws.prepare())
    return tables
