"""The customer document as of a timeline entry (SPEC 12), beside the entry before it, with
what changed marked line by line.

The seam: `AsOfSource.documents` answers the stored document of a customer at two log
positions. Until the as-of read model is on main, `LogFoldAsOf` folds the log up to those
positions in memory (the same fold the projector runs, so the same bytes a projection
stopped there would hold); it refuses logs longer than `max_facts`. An as-of reader that
keeps the projection's past replaces it without touching the pages.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable
from typing import Protocol

import msgspec

from projections.memoryfold import fold_entries
from projections.model import DOCUMENTS, USERS
from projections.reader import Reader
from projections.storage.memory import MemoryTables
from subledger.ledger import Ledger

_text = msgspec.json.Decoder(str)


class AsOfUnavailableError(RuntimeError):
    """The document as of that position cannot be shown here (say why)."""


class DiffLine(msgspec.Struct, frozen=True):
    text: str
    status: str  # same | added | removed


class AsOfView(msgspec.Struct, frozen=True):
    position: int
    before: int  # the position compared with (0: the empty log)
    lines: list[DiffLine]
    exists: bool


class AsOfSource(Protocol):
    def documents(
        self, app_id: str, app_user_id: str, before: int, position: int
    ) -> tuple[str | bytes | None, str | bytes | None]: ...


def _document(tables: MemoryTables, app_id: str, app_user_id: str) -> bytes | None:
    raw = tables.get(USERS, app_id, app_user_id)
    if raw is None:
        return None
    return tables.get(DOCUMENTS, app_id, _text.decode(raw))


class LogFoldAsOf:
    """Documents as of positions, from the log folded in memory up to each."""

    def __init__(self, ledger: Ledger, max_facts: int = 50_000) -> None:
        self.ledger = ledger
        self.max_facts = max_facts

    def documents(
        self, app_id: str, app_user_id: str, before: int, position: int
    ) -> tuple[str | bytes | None, str | bytes | None]:
        if position > self.max_facts:
            raise AsOfUnavailableError(
                f"the log is past {self.max_facts} facts there: the as-of read model shows it"
            )
        tables = MemoryTables()
        if before:
            fold_entries(self.ledger.log_page(1, self.max_facts, stop=before), tables=tables)
        earlier = _document(tables, app_id, app_user_id)
        fold_entries(self.ledger.log_page(before + 1, self.max_facts, stop=position), tables=tables)
        return earlier, _document(tables, app_id, app_user_id)


class ReadModelAsOf:
    """Documents as of positions from the as-of read model's versions (SPEC 12)."""

    def __init__(self, document_as_of: Callable[..., str | None]) -> None:
        self.document_as_of = document_as_of

    def documents(
        self, app_id: str, app_user_id: str, before: int, position: int
    ) -> tuple[str | bytes | None, str | bytes | None]:
        def at(p: int) -> str | None:
            return self.document_as_of(app_id, app_user_id, position=p, time_ms=None) if p else None

        return at(before), at(position)


def as_of_source(reader: Reader, ledger: Ledger) -> AsOfSource:
    """The read model's versions where the reader has them, else the log folded here."""
    read = getattr(reader, "document_as_of", None)
    return ReadModelAsOf(read) if read is not None else LogFoldAsOf(ledger)


def _lines(raw: str | bytes | None) -> list[str]:
    if raw is None:
        return []
    return json.dumps(json.loads(raw), indent=2, sort_keys=True).splitlines()


def as_of_view(
    source: AsOfSource, app_id: str, app_user_id: str, before: int, position: int
) -> AsOfView:
    earlier, now = source.documents(app_id, app_user_id, before, position)
    lines = [
        DiffLine(text=line[2:], status={"+": "added", "-": "removed"}.get(line[0], "same"))
        for line in difflib.ndiff(_lines(earlier), _lines(now))
        if not line.startswith("?")
    ]
    return AsOfView(position=position, before=before, lines=lines, exists=now is not None)
