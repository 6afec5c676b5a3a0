"""A unit of work over the read-model rows of one batch, with a bounded row cache.

Rows are decoded on load and encoded once at flush, canonically (sorted dict keys), so the
same state is always the same bytes; history entries are encoded when recorded. The cache
keeps rows as that JSON and survives batches only while this process is the sole writer:
the runner clears it whenever the stored position is not the one it wrote.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec

from projections.db import Cursor, ViewDb
from projections.model import HistoryEntry
from projections.shapes import Changes, Key
from projections.tables import HISTORY, STATE_TABLES

Encoded = bytes | str  # a row's JSON: bytes when this process encoded it, str from the store
_MISSING = object()
_encoder = msgspec.json.Encoder(order="deterministic")
_decoders = {table: msgspec.json.Decoder(row_type) for table, (_, row_type) in STATE_TABLES.items()}
_PAGE = 2000
# Rows the fold writes but never reads back: caching them would only evict useful rows.
WRITE_ONLY = frozenset({"documents", "tokens"})


def _columns(count: int) -> str:
    """SQLite: the columns of each JSON array row (json_extract works before SQLite 3.38)."""
    return ", ".join(f"json_extract(value, '$[{i}]')" for i in range(count))


# PostgreSQL: a text column travels as one string the server splits, which is far cheaper
# than psycopg dumping a list item by item. A column whose values contain the separator
# (an App User ID may hold any character but NUL) travels as a plain array instead.
_US = "\x1f"
_US_BYTES = b"\x1f"
_SPLIT_JSON = "(string_to_array(chr(31) || convert_from(%b, 'UTF8'), chr(31)))[2:]"
_SPLIT = "(string_to_array(chr(31) || %s, chr(31)))[2:]"  # a lone '' stays one element


def _text_column(values: Sequence[str]) -> tuple[str, str | list[str]]:
    """(SQL expression, parameter) for one text[] column."""
    joined = _US.join(values)
    if joined.count(_US) == len(values) - 1:
        return _SPLIT, joined
    return "%b::text[]", list(values)


def _json_column(values: Sequence[bytes]) -> tuple[str, bytes]:
    """A column of encoded JSON rows: JSON escapes control characters, so the separator
    never occurs inside a value; the server decodes the bytes (Python never makes a str)."""
    return _SPLIT_JSON, _US_BYTES.join(values)


def _int_column(values: Sequence[int], sql_type: str) -> tuple[str, str]:
    return f"string_to_array(%s, ',')::{sql_type}[]", ",".join(map(str, values))


def _unnest(*columns: tuple[str, Any]) -> tuple[str, list[Any]]:
    """`unnest(…)` over prepared columns, and its parameters."""
    return f"unnest({', '.join(c[0] for c in columns)})", [c[1] for c in columns]


def _json_rows(rows: list[Any]) -> bytes:
    """Rows as one JSON array, bound as bytes and read by `_JSON_ROWS` as text: decoding it
    to a str here only made sqlite3 encode it back to UTF-8 (history texts hold arrows, so
    the str was two bytes a character), all while the writer thread held the GIL."""
    return msgspec.json.encode(rows)


_JSON_ROWS = "json_each(CAST(? AS TEXT))"  # SQLite 3.40's JSON functions refuse a BLOB


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
        db: ViewDb,
        cur: Cursor,
        prefix: str,
        cache: RowCache,
        *,
        overlay: dict[Key, Any] | None = None,
        maybe_written: set[int] | None = None,
    ) -> None:
        self.db = db
        self.cur = cur
        self.prefix = prefix
        self.cache = cache
        self.overlay = overlay or {}  # rows of a batch still being committed elsewhere
        # When the tables started empty in this process: hashes of every key written since,
        # so a key not in it is known absent without a query (a collision only costs one).
        self.maybe_written = maybe_written
        self.rows: dict[Key, Any] = {}
        # Insertion-ordered: writes go out in the order rows first changed, deterministic
        # without sorting every key of the batch (the store's rows are the same either way).
        self.dirty: dict[Key, None] = {}
        self.history: list[tuple[str, str, int, int, bytes]] = []  # entries encoded
        self._seq: dict[tuple[str, str, int], int] = {}

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
        compactly in memory (a row assembled over many facts is scattered, and walking it
        stalls on memory). `_MISSING` when neither holds the key."""
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
            found = self._select(table, app_id, page)
            for row_id in page:
                key = (table, app_id, row_id)
                raw = found.get(row_id)
                self.rows[key] = None if raw is None else _decoders[table].decode(raw)
                self.cache.put(key, raw)

    def _select(self, table: str, app_id: str, row_ids: list[str]) -> dict[str, str]:
        name = self.prefix + table
        if self.db.dialect == "sqlite":
            marks = ",".join("?" * len(row_ids))
            self.cur.execute(
                f"SELECT id, state FROM {name} WHERE app_id = ? AND id IN ({marks})",
                [app_id, *row_ids],
            )
        else:
            # prepare=False: a generic plan for ANY(array) can pick a sequential scan.
            self.cur.execute(
                f"SELECT id, state FROM {name} WHERE app_id = %s AND id = ANY(%b::text[])",
                (app_id, row_ids),
                prepare=False,
            )
        return {row[0]: row[1] for row in self.cur.fetchall()}

    def ids(self, table: str, app_id: str) -> list[str]:
        """Every row id of one app in a table, including rows changed in this batch."""
        self.cur.execute(
            self.db.q(f"SELECT id FROM {self.prefix}{table} WHERE app_id = ?"), (app_id,)
        )
        stored = {row[0] for row in self.cur.fetchall()}
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

    def delete(self, table: str, app_id: str, row_id: str) -> None:
        self.put(table, app_id, row_id, None)

    def record(self, app_id: str, subjects: Iterable[str], entry: HistoryEntry) -> None:
        """Add `entry` to each subject's history. It is encoded now, while its objects are
        fresh in the CPU's cache (history is never read back within a batch)."""
        encoded = _encoder.encode(entry)
        for subject in subjects:
            seq_key = (app_id, subject, entry.position)
            seq = self._seq.get(seq_key, 0)
            self._seq[seq_key] = seq + 1
            self.history.append((app_id, subject, entry.position, seq, encoded))

    def prepare(self) -> Changes:
        """Encode this batch's writes (canonically, once) and remember them in the cache."""
        changes = Changes(upserts={}, deletes={}, history=[], values={})
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
        changes.history = self.history
        self.history = []
        self.dirty.clear()
        return changes

    def write(self, changes: Changes, cur: Cursor | None = None) -> int:
        """Apply prepared changes with `cur` (default: this working set's cursor)."""
        target = cur or self.cur
        for table, rows in changes.upserts.items():
            self._upsert(target, table, rows)
        for table, keys in changes.deletes.items():
            self._delete(target, table, keys)
        if changes.history:
            self._insert_history(target, changes.history)
        return changes.size

    def flush(self) -> int:
        """Write dirty rows and history now; returns the number of rows written."""
        return self.write(self.prepare())

    # One statement per table and batch: rows travel as arrays (PostgreSQL: unnest; SQLite:
    # one JSON text exploded by json_each). Per-row client work — psycopg's executemany, or
    # sqlite3's executemany, which holds the GIL between rows — dominated projection time.

    def _upsert(self, cur: Cursor, table: str, rows: list[tuple[str, str, bytes]]) -> None:
        name = self.prefix + table
        conflict = "ON CONFLICT (app_id, id) DO UPDATE SET state = excluded.state"
        if self.db.dialect == "sqlite":
            cur.execute(
                f"INSERT INTO {name} (app_id, id, state) SELECT {_columns(3)} "
                f"FROM {_JSON_ROWS} WHERE true {conflict}",
                (_json_rows([(a, i, state.decode()) for a, i, state in rows]),),
            )
            return
        app_ids, ids, states = zip(*rows, strict=True)
        source, params = _unnest(_text_column(app_ids), _text_column(ids), _json_column(states))
        cur.execute(
            f"INSERT INTO {name} (app_id, id, state) SELECT * FROM {source} {conflict}", params
        )

    def _delete(self, cur: Cursor, table: str, keys: list[tuple[str, str]]) -> None:
        name = self.prefix + table
        if self.db.dialect == "sqlite":
            cur.execute(
                f"DELETE FROM {name} WHERE (app_id, id) IN "
                f"(SELECT {_columns(2)} FROM {_JSON_ROWS})",
                (_json_rows(keys),),
            )
            return
        source, params = _unnest(*(_text_column(c) for c in zip(*keys, strict=True)))
        cur.execute(f"DELETE FROM {name} WHERE (app_id, id) IN (SELECT * FROM {source})", params)

    def _insert_history(self, cur: Cursor, rows: list[tuple[str, str, int, int, bytes]]) -> None:
        name = self.prefix + HISTORY
        columns = "(app_id, subject, position, seq, entry)"
        if self.db.dialect == "sqlite":
            cur.execute(
                f"INSERT INTO {name} {columns} SELECT {_columns(5)} FROM {_JSON_ROWS}",
                (_json_rows([(a, s, p, q, entry.decode()) for a, s, p, q, entry in rows]),),
            )
            return
        app_ids, subjects, positions, seqs, entries = zip(*rows, strict=True)
        source, params = _unnest(
            _text_column(app_ids),
            _text_column(subjects),
            _int_column(positions, "bigint"),
            _int_column(seqs, "int"),
            _json_column(entries),
        )
        cur.execute(f"INSERT INTO {name} {columns} SELECT * FROM {source}", params)
