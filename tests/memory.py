"""The fold in memory: facts in log order, folded into `MemoryTables` without any store.

`MemoryLog` is what unit and property tests drive; `fold_entries` folds a store's log the
way the projector does (decoded records, batches), so its rows can be compared byte for
byte with what the SQL tables hold (`sql_rows`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec

from projections.fold.dispatch import Folded, fold_facts
from projections.fold.notifications import decode_stripe
from projections.model import DOCUMENTS, HISTORY, HISTORY_SUBJECTS, HistoryEntry
from projections.runner import fold_log, record_unprojectable
from projections.storage.db import ViewDb
from projections.storage.memory import MemoryTables
from projections.storage.tables import LIVE, TABLES
from projections.storage.workingset import WorkingSet
from subledger import apps
from subledger.integrations import Integration
from subledger.settings import Database
from subledger.store import LogEntry
from tests.samples import PRODUCT

Rows = dict[str, dict[tuple[Any, ...], bytes]]
_entry = msgspec.json.Decoder(HistoryEntry)


def fold_batches(tables: MemoryTables, facts: Sequence[Folded], batch_size: int) -> None:
    """Fold `facts` in batches of `batch_size`, each committed before the next."""
    for start in range(0, len(facts), batch_size):
        ws = WorkingSet(tables)
        fold_facts(ws, facts[start : start + batch_size])
        tables.apply(ws.prepare())


def fold_entries(entries: Sequence[LogEntry], batch_size: int = 500) -> MemoryTables:
    """The log folded as the projector folds it: a batch holding a fact the fold cannot
    apply is applied one fact at a time, and each fact that fails alone is recorded."""
    tables = MemoryTables()
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


def fold_committed(tables: MemoryTables, entries: Sequence[LogEntry]) -> None:
    ws = WorkingSet(tables)
    fold_log(ws, entries)
    tables.apply(ws.prepare())


def sql_rows(database: Database, prefix: str = LIVE) -> Rows:
    """Every read-model row a store holds, keyed as `MemoryTables` keys them."""
    db = ViewDb(database)
    found: Rows = {}
    try:
        with db.read() as cur:
            for table in TABLES.values():
                columns = ", ".join([*table.keys, table.value])
                cur.execute(f"SELECT {columns} FROM {prefix}{table.name}")
                found[table.name] = {
                    tuple(row[:-1]): str(row[-1]).encode() for row in cur.fetchall()
                }
    finally:
        db.close()
    return {name: dict(sorted(rows.items())) for name, rows in found.items()}


class MemoryLog:
    """A log of facts for one or more apps, folded in memory."""

    def __init__(self) -> None:
        self.facts: list[Any] = []
        self.versions: dict[uuid.UUID, int] = {}  # each app's last settings version

    def new_app(
        self,
        entitlements: dict[str, list[str]] | None = None,
        aggregate: uuid.UUID | None = None,
        **config: Any,
    ) -> str:
        """Append an app's creation and its entitlement mapping; returns its id (a fixed
        `aggregate` gives two logs the same app id, so their rows compare)."""
        aggregate = aggregate or uuid.uuid4()
        created = apps.AppCreated(
            originator_id=aggregate,
            originator_version=1,
            received_at_ms=0,
            name="memory",
            config=apps.AppConfig(**config),
            public_key_hash="",
            secret_key_hash="",
        )
        mapped = apps.EntitlementsMapped(
            originator_id=aggregate,
            originator_version=2,
            received_at_ms=0,
            entitlements=entitlements if entitlements is not None else {"pro": [PRODUCT]},
        )
        self.facts += [created, mapped]
        self.versions[aggregate] = 2
        return apps.app_id_of(aggregate)

    def settings(self, app_id: str, cls: type[apps.AppEvent], at: int = 0, **fields: Any) -> None:
        """Append a settings event of `app_id` (the next version of the app)."""
        aggregate = apps.aggregate_id_of(app_id)
        assert aggregate is not None
        self.versions[aggregate] += 1
        self.facts.append(
            cls(
                originator_id=aggregate,
                originator_version=self.versions[aggregate],
                received_at_ms=at,
                **fields,
            )
        )

    def add_integration(self, app_id: str, integration_id: str = "int_a", **filters: Any) -> None:
        """An outbound integration from this point of the log on (SPEC 10)."""
        integration = Integration(id=integration_id, url="http://127.0.0.1:9/hook", **filters)
        self.settings(app_id, apps.IntegrationAdded, integration=integration)

    def append(self, *facts: Any) -> None:
        self.facts.extend(facts)

    def fold(self, batch_size: int = 1000) -> MemoryTables:
        """Every fact, positions from 1, folded from empty tables."""
        folded = [(n, fact, decode_stripe(fact)) for n, fact in enumerate(self.facts, start=1)]
        tables = MemoryTables()
        fold_batches(tables, folded, batch_size)
        return tables


def document(tables: MemoryTables, app_id: str, app_user_id: str) -> bytes | None:
    """The stored document of the customer holding `app_user_id` (as the reader finds it)."""
    raw = tables.get("users", app_id, app_user_id)
    if raw is None:
        return None
    customer_id = msgspec.json.decode(raw)
    return tables.get(DOCUMENTS, app_id, customer_id)


def history(tables: MemoryTables, app_id: str, subjects: Iterable[str]) -> list[HistoryEntry]:
    """The entries about `subjects`, each with only the parts about them (as the reader)."""
    wanted = set(subjects)
    parts: dict[int, set[int]] = {}
    for (app, subject, position), raw in tables.tables[HISTORY_SUBJECTS].items():
        if app == app_id and subject in wanted:
            parts.setdefault(position, set()).update(msgspec.json.decode(raw))
    return [
        _entry.decode(tables.tables[HISTORY][(app_id, p)]).only(parts[p]) for p in sorted(parts)
    ]
