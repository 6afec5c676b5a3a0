"""What the fold's steps are given besides the batch: where the fact sits in the log, and
the protocol of the rows it reads and writes. Types only (the compiled fold's modules
define none: mypyc would drop a msgspec struct's keywords)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any, Protocol

import msgspec

from projections.model import HistoryEntry


class Rows(Protocol):
    """Where a batch's rows live: a SQL working set, or memory in unit tests."""

    def get(self, table: str, app_id: str, row_id: str) -> Any:
        """The row's value, or None when there is none."""

    def put(self, table: str, app_id: str, row_id: str, value: Any) -> None:
        """Set the row (None deletes it)."""

    def prefetch(self, table: str, app_id: str, row_ids: Iterable[str]) -> None:
        """Load these rows in a few round trips (a speed-up only: `get` loads any missed)."""

    def ids(self, table: str, app_id: str) -> list[str]:
        """Every row id of one app in a table, sorted."""

    def add_history(
        self, app_id: str, entry: HistoryEntry, subjects: dict[str, tuple[int, ...]]
    ) -> None:
        """Append one fact's history entry, and for each subject the indexes of the parts
        about it (never read back by the fold)."""

    def append(self, table: str, keys: tuple[Any, ...], value: Any) -> None:
        """Append one row of an append-only table (its key columns, then its value)."""


class Context(msgspec.Struct, frozen=True, gc=False):
    """Where a fact sits in the log: what its history entry carries."""

    app_id: str
    position: int
    received_at_ms: int
    kind: str
    created: int | None
    event_id: str | None = None
    originator: uuid.UUID | None = None  # the fact's own id (settings: with `version`)
    version: int = 0

    @property
    def fact_id(self) -> str:
        """The fact's own id as derived outbound event ids name it (made when asked: most
        facts derive no event)."""
        if self.originator is None:
            return ""
        return f"{self.originator.hex}/{self.version}" if self.version else self.originator.hex
