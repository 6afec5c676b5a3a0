"""State as of any moment (SPEC 12): an `as_of` value read as a log position or a time,
and the customer document the projection held then, dated then.

Shared by `GET /v1/subscribers/{id}?as_of=` and `subledger explain --as-of`. A position is
the fact's place in the log (`subledger events` lists them); a time means the last fact
received at or before it. The document's `request_date` is the moment asked about (for a
position: that fact's receive time), so "active" is judged then, never by today's clock.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

import msgspec

from projections.reader import Reader
from projections.rules.dates import iso
from projections.rules.documents import empty_subscriber
from subledger.ledger import Ledger
from subledger.storable import INT64_MAX

_DIGITS = re.compile(r"[0-9]{1,19}")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_LOOK_BACK = 64  # positions searched backwards for a fact's time (PostgreSQL leaves gaps)


class AsOfError(ValueError):
    """An `as_of` that names no moment of the projected log (400/8120)."""


class AsOf(msgspec.Struct, frozen=True):
    """A moment of the log: a position, or a time (Unix ms); `at_ms` dates the document."""

    position: int | None
    time_ms: int | None
    at_ms: int


def parse(text: str) -> tuple[int | None, int | None]:
    """(position, None) for digits, (None, Unix ms) for an ISO 8601 time with its offset."""
    text = text.strip()
    if _DIGITS.fullmatch(text):
        position = int(text)
        if not 1 <= position <= INT64_MAX:
            raise AsOfError(f"as_of position {text} is not a log position (1 or more)")
        return position, None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise AsOfError(
            f"as_of {text[:40]!r} is neither a log position nor an ISO 8601 time"
        ) from None
    if moment.tzinfo is None:
        raise AsOfError("as_of time needs its UTC offset (e.g. 2026-10-01T00:00:00Z)")
    return None, (moment - _EPOCH) // timedelta(milliseconds=1)


def resolve(text: str, ledger: Ledger, reader: Reader, now_ms: int | None = None) -> AsOf:
    """The moment `text` names, refused when the projection has not reached it."""
    position, time_ms = parse(text)
    now_ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    if time_ms is not None:
        if time_ms > now_ms:
            raise AsOfError(f"as_of {text.strip()} is in the future")
        return AsOf(position=None, time_ms=time_ms, at_ms=time_ms)
    assert position is not None
    projected = reader.position()
    if position > projected:
        raise AsOfError(f"as_of position {position} is past the projected log (at {projected})")
    return AsOf(position=position, time_ms=None, at_ms=received_at(ledger, position))


def received_at(ledger: Ledger, position: int) -> int:
    """When the fact at `position` (or the last one before a gap) was received."""
    found = 0
    for start in (position, max(1, position - _LOOK_BACK)):
        for _, record in ledger.records(start, stop=position):
            found = getattr(record, "received_at_ms", found)
        if found:
            return found
    return found


def document(reader: Reader, app_id: str, app_user_id: str, at: AsOf) -> tuple[str, int, bytes]:
    """(request_date, request_date_ms, subscriber JSON) as of `at`: an id nobody held then
    gets the empty document, as an unknown id does today (SPEC 5)."""
    stored = reader.document_as_of(app_id, app_user_id, position=at.position, time_ms=at.time_ms)
    request_date = iso(at.at_ms // 1000) or ""
    raw = (
        stored.encode()
        if stored is not None
        else msgspec.json.encode(empty_subscriber(app_user_id, request_date))
    )
    return request_date, at.at_ms, raw
