"""A unit of work over the read-model rows of one batch (the fold's `Rows`), with a bounded
row cache, over any source of committed rows: the SQL tables (`sqltables.py`) or memory
(`memory.py`).

Rows are decoded on load and encoded once when the batch is prepared, canonically (sorted
dict keys), so the same state is always the same bytes; history entries are encoded when
recorded. The cache keeps rows as that JSON and survives batches only while this process
is the sole writer: the runner clears it whenever the stored position is not the one it
wrote.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import Any, Protocol

import msgspec

from projections.model import HISTORY, HISTORY_SUBJECTS, HistoryEntry
from projections.storage.changes import Changes, Encoded, Key
from projections.storage.tables import ROW_TYPES

_MISSING = object()
_encoder = msgspec.json.Encoder(order="deterministic")
_decoders = {table: msgspec.json.Decoder(row_type) for table, row_type in ROW_TYPES.items()}
_PAGE = 2000
# Rows the fold writes but never reads back: caching them would only evict useful rows.
# (Never put a table the fold reads here: its keys are not remembered as written.)
WRITE_ONLY = frozenset({"tokens", "unprojectable", "outbound_events", "outbox"})


class Source(Protocol):
    """Committed rows, as their JSON."""

    def select(self, table: str, app_id: str, row_ids: list[str]) -> dict[str, Encoded]: ...
    def row_ids(self, table: str, app_id: str) -> set[str]: ...


class RowCache:
    """Least-recently-used rows as their JSON; `None` records a known-absent row."""

    def __init__(self, max_rows: int) -> None:
        self.max_rows = max_rows
        self._rows: OrderedDict[Key, Encoded | None] = OrderedDict()

    def get(self, key: Key) -> Any:
        found = self._rows.get(key, _MISSING)
        if found is not _MISSING:
            self._rows.move_to_end(key)
        return found

    def put(self, key: Key, value: Encoded | None) -> None:
        rows = self._rows
        if key in rows:
            rows.move_to_end(key)
        rows[key] = value  # a new key goes to the end already
        if len(rows) > self.max_rows:
            rows.popitem(last=False)

    def clear(self) -> None:
        self._rows.clear()


class WorkingSet:
    def __init__(
        self,
        source: Source,
        cache: RowCache | None = None,
        *,
        overlay: dict[Key, Any] | None = None,
        maybe_written: set[int] | None = None,
    ) -> None:
        self.source = source
        self.cache = cache or RowCache(0)
        self.overlay = overlay or {}  # rows of a batch still being committed elsewhere
        # When the tables started empty in this process: hashes of every key written since,
        # so a key not in it is known absent without a query (a collision only costs one).
        self.maybe_written = maybe_written
        self.rows: dict[Key, Any] = {}
        # Insertion-ordered: writes go out in the order rows first changed, deterministic
        # without sorting every key of the batch (the store's rows are the same either way).
        self.dirty: dict[Key, None] = {}
        self.inserts: dict[str, list[tuple[Any, ...]]] = {}

    # --- reads -------------------------------------------------------------------------

    def get(self, table: str, app_id: str, row_id: str) -> Any:
        key = (table, app_id, row_id)
        found = self.rows.get(key, _MISSING)
        if found is not _MISSING:
            return found
        cached = self._cached(key)
        if cached is _MISSING:
            self.prefetch(table, app_id, [row_id])
            return self.rows[key]
        self.rows[key] = cached
        return cached

    def _cached(self, key: Key) -> Any:
        """A row of a batch in flight or of the cache, decoded afresh: both keep rows as
        their JSON, which is far smaller than the objects, and a freshly decoded row lies
        compactly in memory. `_MISSING` when neither holds the key."""
        raw = self.overlay.get(key, _MISSING)
        if raw is _MISSING:
            raw = self.cache.get(key)
        if raw is _MISSING or raw is None:
            return raw
        return _decoders[key[0]].decode(raw)

    def prefetch(self, table: str, app_id: str, row_ids: Iterable[str]) -> None:
        """Load rows not yet in memory in a few round trips (absent rows become None)."""
        wanted = []
        for row_id in dict.fromkeys(row_ids):
            key = (table, app_id, row_id)
            if key in self.rows:
                continue
            cached = self._cached(key)
            if cached is not _MISSING:
                self.rows[key] = cached
            elif self.maybe_written is not None and hash(key) not in self.maybe_written:
                self.rows[key] = None
            else:
                wanted.append(row_id)
        for start in range(0, len(wanted), _PAGE):
            page = wanted[start : start + _PAGE]
            found = self.source.select(table, app_id, page)
            for row_id in page:
                key = (table, app_id, row_id)
                raw = found.get(row_id)
                self.rows[key] = None if raw is None else _decoders[table].decode(raw)
                self.cache.put(key, raw)

    def ids(self, table: str, app_id: str) -> list[str]:
        """Every row id of one app in a table, including rows changed in this batch."""
        stored = self.source.row_ids(table, app_id)
        for changed in (self.overlay, self.rows):
            for t, a, row_id in changed:
                if t == table and a == app_id:
                    if changed[(t, a, row_id)] is None:
                        stored.discard(row_id)
                    else:
                        stored.add(row_id)
        return sorted(stored)

    # --- writes ------------------------------------------------------------------------

    def put(self, table: str, app_id: str, row_id: str, value: Any) -> None:
        key = (table, app_id, row_id)
        self.rows[key] = value
        self.dirty[key] = None

    def add_history(
        self, app_id: str, entry: HistoryEntry, subjects: dict[str, tuple[int, ...]]
    ) -> None:
        """Encoded now, while its objects are fresh in the CPU's cache (history is never
        read back within a batch)."""
        position = entry.position
        self.inserts.setdefault(HISTORY, []).append((app_id, position, _encoder.encode(entry)))
        about = self.inserts.setdefault(HISTORY_SUBJECTS, [])
        for subject, parts in subjects.items():
            about.append((app_id, subject, position, _encoder.encode(parts)))

    def append(self, table: str, keys: tuple[Any, ...], value: Any) -> None:
        self.inserts.setdefault(table, []).append((*keys, _encoder.encode(value)))

    def prepare(self) -> Changes:
        """Encode this batch's writes (canonically, once) and remember them in the cache."""
        changes = Changes(upserts={}, deletes={}, inserts=self.inserts, values={})
        encode = _encoder.encode  # canonical JSON (sorted dict keys)
        for table, app_id, row_id in self.dirty:
            key = (table, app_id, row_id)
            value = self.rows[key]
            encoded = None if value is None else encode(value)
            if encoded is None:
                changes.deletes.setdefault(table, []).append((app_id, row_id))
            else:
                changes.upserts.setdefault(table, []).append((app_id, row_id, encoded))
            changes.values[key] = encoded
            if table not in WRITE_ONLY:
                self.cache.put(key, encoded)
                if self.maybe_written is not None:
                    self.maybe_written.add(hash(key))
        self.inserts = {}
        self.dirty.clear()
        return changes
