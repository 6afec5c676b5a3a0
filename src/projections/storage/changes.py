"""One batch's writes, encoded: what a writer (maybe another thread, maybe memory) applies.
Types only (the working set is compiled with mypyc, which would drop a msgspec struct's
keywords)."""

from __future__ import annotations

from typing import Any

import msgspec

Key = tuple[str, str, str]  # (table, app_id, id)
Encoded = bytes | str  # a row's JSON: bytes when this process encoded it, str from a store


class Changes(msgspec.Struct):
    """One batch's writes, encoded: what a writer (maybe another thread) applies."""

    upserts: dict[str, list[tuple[str, str, bytes]]]
    deletes: dict[str, list[tuple[str, str]]]
    inserts: dict[str, list[tuple[Any, ...]]]  # append-only tables: keys…, value JSON
    values: dict[Key, bytes | None]  # encoded, for readers while the write is in flight

    @property
    def size(self) -> int:
        return len(self.values) + sum(len(rows) for rows in self.inserts.values())
